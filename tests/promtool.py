"""Debian's promtool (package `prometheus`), for the tests that lint real expositions and deploy/'s files."""

from __future__ import annotations

import shutil
import subprocess

from tests.services.required import needs

PROMTOOL = shutil.which("promtool")
needs_promtool = needs(PROMTOOL is not None, "promtool is not installed (apt-get install prometheus)")


def promtool_problems(exposition: str) -> str:
    """What `promtool check metrics` says about an exposition ('' when nothing), failing on a parse error."""
    checked = subprocess.run([PROMTOOL or "promtool", "check", "metrics"], input=exposition, capture_output=True,
                             text=True, timeout=60, check=False)
    said = (checked.stdout + checked.stderr).strip()
    assert checked.returncode in (0, 3), f"promtool failed ({checked.returncode}): {said}"
    assert (checked.returncode == 0) == (not said), said
    return said
