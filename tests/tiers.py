"""Tiers that need something installed (the real control plane, Unleash): skipped on a laptop, failed in CI.

A skip in CI would hide a missing install step behind a green run, so where ``CI`` is set (as
`.ci/run` and every hosted CI set it) a tier that cannot run fails, saying why.
"""

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether this is a CI run, where every tier must run."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def cannot_run(why: str) -> NoReturn:
    """Skip the test, saying ``why``; in CI, fail it instead."""
    if in_ci():
        pytest.fail(f"{why} (CI runs every tier: `make setup` should have installed it)", pytrace=False)
    pytest.skip(why)
