"""`monitor api`: serves the API and dashboard with uvicorn, stops cleanly, refuses a bad token file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.embedded.broker import free_port
from tests.api.conftest import NO_BROKER, Filled, Tokens

pytestmark = pytest.mark.heavy  # runs `monitor api` in a process of its own


def test_help_says_how_to_reach_it_and_stop_it() -> None:
    result = CliRunner().invoke(main, ["api", "--help"])

    assert result.exit_code == 0
    for words in ("--host", "--port", "Bearer", "#token=", "monitor token create", "/metrics", "/readyz",
                  "Ctrl-C"):
        assert words in result.output, words


def _start(filled: Filled, tokens_path: Path, port: int, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "MONITOR_DATABASE_URL": filled.url, "MONITOR_API_TOKENS": str(tokens_path),
           "MONITOR_DATA_DIR": str(tmp_path), "MONITOR_KAFKA_BOOTSTRAP": NO_BROKER}
    return subprocess.Popen([sys.executable, "-m", "monitor", "api", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_serving(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"monitor api exited early: {process.communicate()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("monitor api did not answer /healthz within 30 s")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_it_serves_until_interrupted_and_then_exits_cleanly(filled: Filled, tokens: Tokens, tmp_path: Path,
                                                             stop: signal.Signals) -> None:
    mine = filled.copy(tmp_path)
    port = free_port()
    process = _start(mine, tokens.path, port, tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(process, url)
        response = httpx.get(f"{url}/api/v1/exporters", headers={"Authorization": f"Bearer {tokens.regulator}"})
        assert response.status_code == 200 and response.json()["items"]
        assert httpx.get(f"{url}/").headers["content-type"].startswith("text/html")

        process.send_signal(stop)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert "api stopped" in stderr and "Traceback" not in stderr
    assert f"http://127.0.0.1:{port}/#token=" in stderr


def test_a_bad_token_file_is_refused_at_start_with_the_file_and_the_reason(filled: Filled, tmp_path: Path) -> None:
    bad = tmp_path / "tokens.json"
    bad.write_text('{"tokens": [{"id": "xyz"}]}')
    bad.chmod(0o600)

    process = _start(filled, bad, free_port(), tmp_path)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 2
    assert str(bad) in stderr and "tokens" in stderr
