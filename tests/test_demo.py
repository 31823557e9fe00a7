"""`monitor demo`: one command starts the broker, a worker, the API with the dashboard and the
simulator, shows what happens, and Ctrl-C (or its --duration) stops everything, leaving no
process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.embedded.broker import free_port
from tests.streaming import ROOT

pytestmark = pytest.mark.heavy  # runs `monitor demo` in processes of its own


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--plain", "--broker-port", str(free_port()), "--exporters", "2",
         "--days", "3", "--rate", "3000", "--workdir", str(tmp_path / "demo"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def _pids(output: str) -> list[int]:
    broker = re.search(r"embedded broker listening on \S+ \(pid (\d+)\)", output)
    worker = re.search(r"worker started \(pid (\d+)\)", output)
    api = re.search(r"API and dashboard started \(pid (\d+)\)", output)
    assert broker and worker and api, output
    return [int(broker.group(1)), int(worker.group(1)), int(api.group(1))]


def _get(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def test_demo_shows_events_and_alerts_then_stops_everything(tmp_path: Path) -> None:
    demo = _start(tmp_path, "--duration", "20")
    output, _ = demo.communicate(timeout=180)
    assert demo.returncode == 0, output
    lines = [line for line in output.splitlines() if line.startswith("events in")]
    assert lines, output
    produced = [int(re.sub(r"\D", "", line.split()[2])) for line in lines]
    assert produced[-1] > 1000, output
    assert re.search(r"open alerts: response_48h \d+", lines[-1])
    assert "stopped: API, worker and broker are down" in output
    assert not any(_alive(pid) for pid in _pids(output))


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    demo = _start(tmp_path)
    output = ""
    assert demo.stdout is not None
    deadline = time.monotonic() + 90
    while "Ctrl-C stops everything" not in output and time.monotonic() < deadline:
        output += demo.stdout.readline()
    found = re.search(r"dashboard \(regulator token\): (http://127\.0\.0\.1:(\d+))/#token=(\S+)", output)
    assert found, output
    base, token = found.group(1), found.group(3)
    # the events go through the worker and its history sink into the store the API reads
    alerts: list[object] = []
    deadline = time.monotonic() + 90
    while not alerts and time.monotonic() < deadline:
        time.sleep(1)
        try:
            alerts = list(_get(f"{base}/api/v1/alerts?limit=5", token)["items"])  # type: ignore[call-overload]
        except OSError:
            continue
    assert alerts, output
    # and the worker's deliverer sends them to the demo's webhook receiver, which checks each signature
    delivered: list[object] = []
    deadline = time.monotonic() + 60
    while not delivered and time.monotonic() < deadline:
        time.sleep(1)
        delivered = list(_get(f"{base}/api/v1/webhooks/deliveries?status=delivered&limit=5",  # type: ignore[call-overload]
                              token)["items"])
    assert delivered, output
    with urllib.request.urlopen(f"{base}/", timeout=5) as page:
        assert page.status == 200 and b"<html" in page.read().lower()
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=90)
    output += rest
    assert demo.returncode == 0, output
    assert "stopped: API, worker and broker are down" in output
    assert not any(_alive(pid) for pid in _pids(output))
    received = re.findall(r"webhook of EXP-\d+: (\d+) deliveries received, all signed", output)
    assert received and int(received[-1]) >= len(delivered), output
