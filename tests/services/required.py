"""What a test does when a real part it needs is missing: under CI=true it fails, elsewhere it skips.

Either way the message is one line saying what is missing and what to install.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) the test that needs `what`."""
    if in_ci():
        pytest.fail(f"CI=true and {what}", pytrace=False)
    pytest.skip(what)


def needs(available: bool, what: str) -> pytest.MarkDecorator:
    """A mark for tests that need a real part: nothing when it is `available`; otherwise the
    test is skipped with `what` (say what to install), or under CI=true failed at set-up."""
    if available:
        return pytest.mark.requires(what, available=True)
    if in_ci():
        return pytest.mark.requires(what, available=False)
    return pytest.mark.skipif(True, reason=what)
