"""`monitor worker` with MONITOR_WEBHOOKS set runs a deliverer beside its history sink: the alerts it
publishes reach the automaker's webhook (a real receiver on 127.0.0.1), every stored transition once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.history.store import HistoryStore
from tests.delivery.support import Receiver, first_receipts, outbox_rows, verify_as_documented
from tests.history.running import eventually
from tests.streaming import EXAMPLE_EVENTS, WorkerProcess, evaluate_json, produce, records_of_lines, unique_names

SECRET = "worker-webhook-secret-0123"  # noqa: S105 - made up for the test


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver answering 200, served by a loop of its own in a thread (the test waits synchronously)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="receiver", daemon=True)
    thread.start()
    served = Receiver(status=200)
    asyncio.run_coroutine_threadsafe(served.listen(), loop).result(10)
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(served.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_worker_delivers_the_alerts_it_publishes_to_the_webhooks(kafka_bootstrap: str, tmp_path: Path,
                                                                   receiver: Receiver) -> None:
    expected = evaluate_json([EXAMPLE_EVENTS])
    wanted = {a["alert_id"] for a in expected["alerts"] if a["exporter_id"] in ("EXP-001", "EXP-003")}
    names = unique_names()
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    hooks = tmp_path / "webhooks.yaml"
    hooks.write_text(yaml.safe_dump([{"id": "exp-001", "url": f"http://127.0.0.1:{receiver.port}/exp-001",
                                      "secret": SECRET, "exporters": ["EXP-001"]}]))
    env = {"MONITOR_DATABASE_URL": url, "MONITOR_DATA_DIR": str(tmp_path), "MONITOR_WEBHOOKS": str(hooks),
           "MONITOR_WEBHOOK_POLL_SECONDS": "0.1", "MONITOR_AS_OF": expected["as_of"]}
    with WorkerProcess(kafka_bootstrap, names, tmp_path, env=env) as worker:
        worker.wait_ready(120)
        asyncio.run(produce(kafka_bootstrap, records_of_lines(EXAMPLE_EVENTS.read_bytes().splitlines(), names)))
        seen: dict[str, Any] = {}

        async def delivered_everything() -> bool:
            store = await HistoryStore.open(url)
            try:
                rows = await outbox_rows(store)
            finally:
                await store.close()
            seen["missing"] = sorted(wanted - {r.alert_id for r in rows})
            seen["statuses"] = dict(Counter(r.status for r in rows))
            # every alert `evaluate` finds for the automaker and its distributor, each transition delivered
            return not seen["missing"] and all(r.status == "delivered" for r in rows)

        try:
            took = asyncio.run(eventually(delivered_everything, 90, "the worker delivers every enqueued transition"))
        except AssertionError as exc:
            warnings = [line for line in worker.tail(3000).splitlines()
                        if " INFO " not in line and "mode.timers" not in line][-30:]
            raise AssertionError(
                f"{exc}: {len(seen.get('missing', []))} of {len(wanted)} alerts not enqueued "
                f"({seen.get('missing', [])[:5]}), deliveries by status {seen.get('statuses')}, "
                f"{len(receiver.receipts)} received; the worker's warnings:\n" + "\n".join(warnings)) from None
        assert worker.process is not None and worker.process.poll() is None, worker.tail()

    async def rows() -> list[tuple[str, str, int]]:
        store = await HistoryStore.open(url)
        try:
            return [(r.delivery_id, r.exporter_id, r.transition_seq) for r in await outbox_rows(store)]
        finally:
            await store.close()

    stored = asyncio.run(rows())
    firsts = first_receipts(receiver.receipts)
    print(f"\n{len(stored)} deliveries of {len(wanted)} alerts, all delivered {took:.1f} s after producing began")
    assert {r.delivery_id for r in firsts} == {d for d, _, _ in stored}
    assert {e for _, e, _ in stored} == {"EXP-001", "EXP-003"}  # the automaker and the distributor it authorised
    assert all(verify_as_documented(SECRET, r.headers["Monitor-Signature"], r.body) for r in receiver.receipts)
