"""Profiles: which one is active, what it holds, and that bad names are errors naming the profile."""
from __future__ import annotations

import pytest

from poisonlab.lab import profile
from poisonlab.lab.profile import get_profile


@pytest.fixture
def no_profile_env(monkeypatch):
    monkeypatch.delenv("POISONLAB_PROFILE", raising=False)
    monkeypatch.delenv("QUARTO_PROFILE", raising=False)
    return monkeypatch


def test_default_is_full(no_profile_env):
    assert profile.active_profile_name() == "full" and get_profile().name == "full"


def test_poisonlab_profile_wins(no_profile_env):
    no_profile_env.setenv("QUARTO_PROFILE", "full")
    no_profile_env.setenv("POISONLAB_PROFILE", "quick")
    assert get_profile().name == "quick"


@pytest.mark.parametrize("value, name", [("quick", "quick"), ("draft,quick", "quick"), ("full, draft", "full"),
                                         ("draft", "full"), ("", "full")])
def test_quarto_profile_is_read(no_profile_env, value, name):
    no_profile_env.setenv("QUARTO_PROFILE", value)
    assert get_profile().name == name


def test_bad_names_raise_value_error_naming_profile(no_profile_env):
    with pytest.raises(ValueError, match="profile must be one of quick, full"):
        get_profile("huge")
    no_profile_env.setenv("POISONLAB_PROFILE", "huge")
    with pytest.raises(ValueError, match="profile must be one of quick, full"):
        get_profile()


@pytest.mark.parametrize("name", profile.PROFILES)
def test_sizes_are_positive_and_enough_for_an_interval(name):
    p = get_profile(name)
    assert isinstance(p.repeats, int) and p.repeats >= 3  # a t interval with >= 2 degrees of freedom
    assert isinstance(p.points, int) and p.points >= 3  # a fitted line needs a third point for its CI


def test_full_is_at_least_as_large_as_quick():
    quick, full = get_profile("quick"), get_profile("full")
    assert full.repeats >= quick.repeats and full.points >= quick.points


def test_both_profiles_have_the_same_sections_and_keys():
    quick, full = get_profile("quick"), get_profile("full")
    assert set(quick.sections) == set(full.sections) >= {"linear", "logistic", "images", "engine"}
    for section in quick.sections:
        assert set(quick.sections[section]) == set(full.sections[section]), section


def test_sections_read_like_attributes_and_are_read_only():
    p = get_profile("quick")
    assert {"repeats", "points"} <= set(p.linear)  # common sizes reach every section (which may override them)
    with pytest.raises(TypeError):
        p.linear["repeats"] = 1
    with pytest.raises(AttributeError):
        p.no_such_section


def test_the_renderer_passes_the_profile_to_the_kernel():
    from bookrender import notebooks

    env = notebooks.kernel_env("quick")
    assert env["POISONLAB_PROFILE"] == env["QUARTO_PROFILE"] == "quick" and env["TQDM_DISABLE"] == "1"
