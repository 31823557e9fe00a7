"""`monitor demo`: one command starts the broker, a worker and the simulator, shows what happens,
and Ctrl-C (or its --duration) stops everything, leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitor.embedded.broker import free_port
from tests.streaming import ROOT


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
    assert broker and worker, output
    return [int(broker.group(1)), int(worker.group(1))]


def test_demo_shows_events_and_alerts_then_stops_everything(tmp_path: Path) -> None:
    demo = _start(tmp_path, "--duration", "30")
    output, _ = demo.communicate(timeout=180)
    assert demo.returncode == 0, output
    lines = [line for line in output.splitlines() if line.startswith("events in")]
    assert lines, output
    produced = [int(re.sub(r"\D", "", line.split()[2])) for line in lines]
    assert produced[-1] > 1000, output
    assert re.search(r"open alerts: response_48h \d+", lines[-1])
    assert "stopped: worker and broker are down" in output
    assert not any(_alive(pid) for pid in _pids(output))


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    demo = _start(tmp_path)
    output = ""
    assert demo.stdout is not None
    deadline = time.monotonic() + 90
    while "worker started" not in output and time.monotonic() < deadline:
        output += demo.stdout.readline()
    time.sleep(5)
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=90)
    output += rest
    assert demo.returncode == 0, output
    assert "stopped: worker and broker are down" in output
    assert not any(_alive(pid) for pid in _pids(output))
