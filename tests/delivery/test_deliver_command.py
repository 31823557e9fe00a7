"""`monitor deliver` as its own process: killed (SIGKILL) while the receiver fails and recovers, started
again, nothing is lost; it serves /metrics and /healthz, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from monitor.delivery.webhooks import load_webhooks, verify_signature
from monitor.embedded.broker import free_port
from monitor.history.store import HistoryStore
from tests.delivery.support import (
    A1,
    A2,
    D2,
    SECRETS,
    Receiver,
    eventually,
    outbox_rows,
    register_network,
    seqs_per_alert,
    store_transitions,
    transition,
    verify_as_documented,
)
from tests.promtool import PROMTOOL, promtool_problems
from tests.streaming import ROOT

pytestmark = pytest.mark.heavy  # runs `monitor deliver` in a process of its own


class DeliverProcess:
    """`python -m monitor deliver` in its own process, with its own log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = int(env["MONITOR_DELIVER_WEB_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DeliverProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "monitor", "-v", "deliver"], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        return self

    async def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"monitor deliver exited with {self.process.returncode}:\n{self.log()}")
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"http://127.0.0.1:{self.port}/healthz")).json()["status"] == "ok"
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


async def test_killed_and_started_again_monitor_deliver_loses_nothing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver()  # down: nothing listens yet
    hooks_file = tmp_path / "webhooks.yaml"
    hooks_file.write_text(yaml.safe_dump([
        {"id": "hook-a1", "url": f"http://127.0.0.1:{receiver.port}/a1", "secret_env": "HOOK_A1_SECRET",
         "exporters": [A1]},
        {"id": "hook-a2", "url": f"http://127.0.0.1:{receiver.port}/a2", "secret": SECRETS["hook-a2"],
         "exporters": [A2]}]))
    env = {**os.environ, "HOOK_A1_SECRET": SECRETS["hook-a1"], "MONITOR_WEBHOOKS": str(hooks_file),
           "MONITOR_DATA_DIR": str(tmp_path), "MONITOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.sqlite3'}",
           "MONITOR_WEBHOOK_BACKOFF_INITIAL_SECONDS": "0.05", "MONITOR_WEBHOOK_BACKOFF_MAX_SECONDS": "0.3",
           "MONITOR_WEBHOOK_TIMEOUT_SECONDS": "1", "MONITOR_WEBHOOK_LEASE_SECONDS": "2",
           "MONITOR_WEBHOOK_POLL_SECONDS": "0.05", "MONITOR_WEBHOOK_CONCURRENCY": "2",
           "MONITOR_DELIVER_WEB_PORT": str(free_port())}
    monkeypatch.setenv("HOOK_A1_SECRET", SECRETS["hook-a1"])  # the sink's side reads the same file
    store = await HistoryStore.open(env["MONITOR_DATABASE_URL"], webhooks=load_webhooks(hooks_file))
    first = DeliverProcess(env, tmp_path / "deliver-1.log")
    second = DeliverProcess({**env, "MONITOR_DELIVER_WEB_PORT": str(free_port())}, tmp_path / "deliver-2.log")
    try:
        await register_network(store)
        await store_transitions(store, [transition(e, n, s) for s in (0, 1) for e in (A1, A2, D2) for n in (1, 2)])
        first.start()
        await eventually(first.healthy, 30, "the first deliverer answers /healthz")
        await eventually(lambda: _errors_contain(store, "ConnectError"), 10, "attempts refused while down")
        await receiver.listen()  # up, failing
        await eventually(lambda: _count(receiver, 4), 10, "attempts answered with 500")
        await store_transitions(store, [transition(e, n, s) for s in (2, 3) for e in (A1, A2, D2) for n in (1, 2)])
        receiver.status, receiver.delay = 200, 0.1  # recovering, slowly
        await eventually(lambda: _accepted(receiver, 5), 10, "some deliveries accepted")
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        killed_at = time.monotonic()
        pending = [r for r in await outbox_rows(store) if r.status == "pending"]
        accepted_before = len(receiver.accepted())
        assert pending, "the deliverer was killed with nothing left to send: the test proves nothing"
        await store_transitions(store, [transition(e, 3, s) for s in (0, 1) for e in (A1, D2)])  # while none runs

        second.start()
        await eventually(second.healthy, 30, "the second deliverer answers /healthz")
        await eventually(lambda: _all_settled(store), 60, "every delivery settled after the restart")
        settled = time.monotonic() - killed_at
        async with httpx.AsyncClient(timeout=5) as client:
            exposition = (await client.get(f"http://127.0.0.1:{second.port}/metrics")).text
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(15) == 0, second.log()
        rows = await outbox_rows(store)
    finally:
        first.stop()
        second.stop()
        await receiver.close()
        await store.close()
    duplicates = len(receiver.accepted()) - len({r.delivery_id for r in receiver.accepted()})
    print(f"\n{len(rows)} deliveries; killed with {len(pending)} pending and {accepted_before} accepted; "
          f"{len(receiver.receipts)} requests in all, {duplicates} accepted twice; all settled {settled:.1f} s "
          "after the kill")

    assert {r.status for r in rows} == {"delivered"} and len(rows) == 4 * 3 * 2 + 4 * 2 + 2 * 3
    assert {r.delivery_id for r in receiver.accepted()} == {r.delivery_id for r in rows}
    expected: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        expected.setdefault((row.webhook_id, row.alert_id), []).append(row.transition_seq)
    assert seqs_per_alert(receiver.receipts) == {key: sorted(seqs) for key, seqs in expected.items()}
    for receipt in receiver.receipts:
        secret = SECRETS[receipt.headers["Monitor-Webhook-Id"]]
        assert verify_as_documented(secret, receipt.headers["Monitor-Signature"], receipt.body)
        assert verify_signature(secret, receipt.headers["Monitor-Signature"], receipt.body)
    for name in ("monitor_webhook_outbox_pending", "monitor_webhook_deliveries_total",
                 "monitor_webhook_attempts_total", "monitor_webhook_delivery_seconds"):
        assert f"# TYPE {name} " in exposition
    assert 'monitor_webhook_deliveries_total{outcome="delivered",webhook="hook-a1"}' in exposition
    if PROMTOOL is not None:  # the deliverer's exposition passes Prometheus' own lint, as the worker's and the API's
        assert promtool_problems(exposition) == ""
    assert "deliver stopped" in second.log()


async def _errors_contain(store: HistoryStore, text: str) -> bool:
    return any(text in (r.last_error or "") for r in await outbox_rows(store))


async def _count(receiver: Receiver, count: int) -> bool:
    return len(receiver.receipts) >= count


async def _accepted(receiver: Receiver, count: int) -> bool:
    return len(receiver.accepted()) >= count


async def _all_settled(store: HistoryStore) -> bool:
    rows = await outbox_rows(store)
    return bool(rows) and all(r.status != "pending" for r in rows)
