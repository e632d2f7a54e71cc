"""Every chapter's laws, in the quick profile: prediction against measurement, and a rival rejected.

A chapter whose laws module (poisonlab/chapters/<slug>/laws.py) holds `LAWS` (name -> its Law in a profile),
`law(name, profile)` and `rival(name, profile)` is tested here, law by law, with no test code of its own.
Each law's interval is a 95% interval from the Monte Carlo error: a Student-t interval over independent
repeats (or Monte Carlo draws), or a delete-one-repeat jackknife t-interval when the statistic is a
function of a whole curve (a fitted exponent, a ratio pooled over a grid; repeats are independent, grid
points of one repeat are not). `Law.agrees` means: the prediction lies in it (or within its tolerance).
A test that cannot fail is a defect, so every law is also checked against its *rival*: the value its
statistic would have if a named competing theory were true, which must fall outside the interval. (At 95%
each true law fails with probability ~5% for an unlucky seed; the seeds are fixed, so the suite is
deterministic.)

Each law's verdict (`stats.Law.verdict`) is "yes" unless the chapter declares, in its laws module, an
exception with why: `DISAGREES` (name -> why the law fails, verdict "no", a finding the chapter explains) and
`UNRESOLVED` (name -> why the interval cannot confirm the law in the quick profile these tests run: wider than
+-10% of the law's scale, or holding the rival's value; verdict "not resolved"). Both are checked both ways:
an exception that no longer holds fails, and the prose that explains it is revisited. An undeclared law may
also come out "not resolved" here (the quick profile has fewer repeats than the page), never "no", and never
with its rival inside its interval. The page writes each law's verdict in the full profile from
`law.verdict`, so its prose cannot disagree with its table.
"""
from __future__ import annotations

import importlib
import importlib.util
import math

import pytest

from poisonlab import stats
from poisonlab.lab import experiment
from poisonlab.lab.profile import get_profile

PROFILE = get_profile("quick")


def _laws_modules() -> dict:
    """Short name -> laws module of every chapter that declares its laws (LAWS, law, rival)."""
    found = {}
    for alias, package in experiment.chapters().items():
        if importlib.util.find_spec(f"{package}.laws") is None:
            continue
        module = importlib.import_module(f"{package}.laws")
        if hasattr(module, "LAWS"):
            found[alias] = module
    return found


def _declared(alias: str, what: str) -> dict:
    """The exceptions a chapter declares (DISAGREES, UNRESOLVED): name -> why."""
    return getattr(MODULES[alias], what, {})


MODULES = _laws_modules()
CASES = [(alias, name) for alias, module in MODULES.items() for name in module.LAWS]
pytestmark = [pytest.mark.book, pytest.mark.laws]  # the sweeps behind the laws: the book's own computations


def test_the_chapters_declare_laws_and_rivals():
    assert {"linear", "logistic", "images"} <= set(MODULES)
    for alias, module in MODULES.items():
        assert callable(module.law) and callable(module.rival), alias
        assert not hasattr(module, "ADMITS_RIVAL"), f"{alias}: ADMITS_RIVAL is now UNRESOLVED"
        for what in ("DISAGREES", "UNRESOLVED"):
            assert set(_declared(alias, what)) <= set(module.LAWS), (alias, what)
        assert not set(_declared(alias, "DISAGREES")) & set(_declared(alias, "UNRESOLVED")), alias
        with pytest.raises(ValueError, match="name"):
            module.law("no-such-law", PROFILE)


@pytest.mark.parametrize("alias, name", CASES)
def test_law_verdict(alias, name):
    law = MODULES[alias].law(name, PROFILE)
    assert isinstance(law, stats.Law) and law.statement
    assert math.isfinite(law.fitted) and law.lo <= law.fitted <= law.hi
    expected = ({"no"} if name in _declared(alias, "DISAGREES")
                else {"not resolved"} if name in _declared(alias, "UNRESOLVED") else {"yes", "not resolved"})
    why = _declared(alias, "DISAGREES").get(name) or _declared(alias, "UNRESOLVED").get(name)
    assert law.verdict in expected, (
        f"{alias} {name}: verdict {law.verdict!r}, expected {expected!r}" + (f" (declared: {why})" if why else "")
        + f"; predicted {law.predicted}, fitted {law.fitted} [{law.lo}, {law.hi}], rival {law.rival}, "
          f"scale {law.scale}")
    assert MODULES[alias].law(name, PROFILE) is law  # computed once per process: cells and tables share it


@pytest.mark.parametrize("alias, name", CASES)
def test_law_rejects_its_rival(alias, name):
    law = MODULES[alias].law(name, PROFILE)
    alternative = MODULES[alias].rival(name, PROFILE)
    assert math.isfinite(alternative) and law.rival == alternative  # the verdict knows the rival
    if name in _declared(alias, "UNRESOLVED"):
        return  # its verdict, checked above, says whether the interval holds the rival or is too wide
    assert not (law.lo <= alternative <= law.hi), (
        f"{alias} {name}: the interval [{law.lo}, {law.hi}] also admits the rival prediction {alternative}: "
        f"the test could not tell the law from it")


@pytest.mark.parametrize("alias", list(MODULES))
def test_laws_table_lists_every_law(alias):
    module = MODULES[alias]
    table = stats.table([module.law(name, PROFILE) for name in module.LAWS])
    disagrees = _declared(alias, "DISAGREES")
    assert len(table) == len(module.LAWS)
    assert list(table["agrees"]) == [name not in disagrees for name in module.LAWS]
    assert set(table["verdict"]) <= {"yes", "no", "not resolved"}
