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


def chapter_sizes():
    """(short name, {profile: Sizes}) of every chapter that has a sizes.py."""
    import importlib
    import importlib.util

    from poisonlab.lab import experiment

    return [(alias, importlib.import_module(f"{package}.sizes").SIZES) for alias, package in experiment.chapters().items()
            if importlib.util.find_spec(f"{package}.sizes") is not None]


def test_every_chapter_has_typed_sizes_in_both_profiles():
    import dataclasses

    found = chapter_sizes()
    assert {"linear", "logistic", "images"} <= {alias for alias, _ in found}
    for alias, by_profile in found:
        quick, full = by_profile["quick"], by_profile["full"]
        assert type(quick) is type(full) and dataclasses.is_dataclass(quick), alias
        assert quick.repeats >= 3 and full.repeats >= quick.repeats, alias  # t intervals with >= 2 dof
        with pytest.raises(dataclasses.FrozenInstanceError):
            quick.repeats = 1
        for f in dataclasses.fields(quick):  # every size as its declared kind, in both profiles
            kind = f.type.split("[")[0].split(" |")[0]
            for value in (getattr(quick, f.name), getattr(full, f.name)):
                assert type(value).__name__ == kind or (kind == "float" and isinstance(value, int)), (alias, f.name)


def test_sizes_pick_the_profile_and_name_what_is_missing(no_profile_env):
    by_profile = {"quick": 1, "full": 2}
    assert profile.sizes(by_profile) == 2 and profile.sizes(by_profile, "quick") == 1
    assert profile.sizes(by_profile, get_profile("quick")) == 1
    with pytest.raises(ValueError, match="by_profile must give the sizes of every profile; missing full"):
        profile.sizes({"quick": 1})
    with pytest.raises(ValueError, match="profile must be one of"):
        profile.sizes(by_profile, "huge")


def test_the_renderer_passes_the_profile_to_the_kernel():
    from bookrender import notebooks

    env = notebooks.kernel_env("quick")
    assert env["POISONLAB_PROFILE"] == env["QUARTO_PROFILE"] == "quick" and env["TQDM_DISABLE"] == "1"
