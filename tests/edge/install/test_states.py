"""The deploy table: every step names a real function, and its crash rule is what
recovery applies."""

from __future__ import annotations

import importlib

import pytest

from edge.install.states import BY_NAME, PRE_ACTIVATION, STEPS, OnCrash, on_crash


def test_every_step_names_a_function_that_exists() -> None:
    for step in STEPS:
        module_name, _, attr_path = step.handler.partition(".")
        obj: object = importlib.import_module(f"edge.install.{module_name}")
        for attr in attr_path.split("."):
            obj = getattr(obj, attr)
        assert callable(obj), step


def test_the_served_model_is_untouched_until_activation() -> None:
    assert PRE_ACTIVATION == ("downloading", "verifying", "self_test", "shadow")
    first_roll_back = next(i for i, s in enumerate(STEPS) if s.on_crash is OnCrash.ROLL_BACK)
    assert STEPS[first_roll_back].name == "activating"
    assert all(s.on_crash is OnCrash.ROLL_BACK for s in STEPS[first_roll_back:])
    assert len(BY_NAME) == len(STEPS)


@pytest.mark.parametrize(
    ("step", "rule"),
    [
        ("downloading", OnCrash.DISCARD),
        (None, OnCrash.DISCARD),  # a journal written before the first step was recorded
        ("shadow", OnCrash.DISCARD),
        ("probation", OnCrash.ROLL_BACK),
        ("from-a-newer-agent", OnCrash.ROLL_BACK),
    ],
)
def test_crash_rules(step: str | None, rule: OnCrash) -> None:
    assert on_crash(step) is rule
