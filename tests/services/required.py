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
