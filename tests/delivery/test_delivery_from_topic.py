"""End to end on the embedded broker: alert messages on the alerts topic, stored by the history sink (which
enqueues them), sent by a deliverer to a real HTTP receiver; a replay of the topic sends nothing more."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from monitor.contracts.registry import ExporterRegistration
from monitor.history.sink import HistorySink
from monitor.history.store import HistoryStore
from monitor.stream.topics import ensure_topics
from tests.delivery.support import (
    A1,
    A2,
    AUTHORISED_BY,
    D2,
    SECRETS,
    Receiver,
    deliverer,
    outbox_rows,
    seqs_per_alert,
    transition,
    verify_as_documented,
    webhooks,
)
from tests.history.records import registration
from tests.history.running import eventually, make_sink, stop
from tests.streaming import produce, unique_names


async def test_alerts_on_the_topic_reach_the_webhooks_through_the_sink(embedded_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    await ensure_topics(embedded_bootstrap, names, partitions=2)
    messages = [transition(e, n, s) for s in range(3) for e in (A1, A2, D2) for n in (1, 2)]
    repeat = {**transition(A1, 1, 2), "raised_at": "2026-03-03T12:00:00Z"}  # republished: not a transition
    await produce(embedded_bootstrap, [(names.alerts, m["alert_id"].encode(), orjson.dumps(m))
                                    for m in [*messages, repeat]])
    receiver = Receiver(status=200)
    await receiver.listen()
    hooks = webhooks(receiver.port)
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    # the registry file, recorded when the sink starts, says who authorised the distributor
    registry = {e: ExporterRegistration.model_validate(registration(
        e, role="authorised_distributor" if e in AUTHORISED_BY else "automaker",
        authorised_by=AUTHORISED_BY.get(e, ()))) for e in (A1, A2, D2)}
    sink = make_sink(embedded_bootstrap, names, url, f"{names.prefix}history", registry=registry, webhooks=hooks)
    sender = deliverer(url, hooks)
    tasks = [asyncio.create_task(sink.run()), asyncio.create_task(sender.run())]
    store = await HistoryStore.open(url)
    expected_deliveries = 3 * 2 * 4  # A1's and A2's to their own webhook, D2's to both
    try:
        await eventually(lambda: _delivered(store, expected_deliveries), 60, "every transition delivered")
        # the topic read again by another group stores, enqueues and sends nothing more
        replay = make_sink(embedded_bootstrap, names, url, f"{names.prefix}history-again", webhooks=hooks)
        tasks.append(asyncio.create_task(replay.run()))
        await eventually(lambda: _consumed(replay, len(messages) + 1), 30, "the replay read the topic")
        await asyncio.sleep(0.5)  # a delivery enqueued by mistake would have been sent by now
        rows = await outbox_rows(store)
    finally:
        for task in tasks:
            await stop(task)
        await store.close()
        await receiver.close()
    assert replay.stats.stored == 0
    assert len(rows) == expected_deliveries and {r.status for r in rows} == {"delivered"}
    assert {r.delivery_id for r in receiver.accepted()} == {r.delivery_id for r in rows}
    assert len(receiver.receipts) == expected_deliveries  # no failures, no restarts: each exactly once
    expected: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        expected.setdefault((row.webhook_id, row.alert_id), []).append(row.transition_seq)
    assert seqs_per_alert(receiver.receipts) == {key: sorted(seqs) for key, seqs in expected.items()}
    assert all(verify_as_documented(SECRETS[r.headers["Monitor-Webhook-Id"]], r.headers["Monitor-Signature"], r.body)
               for r in receiver.receipts)
    # each alert's transitions came in the order published (the alerts topic is keyed by alert id)
    for (webhook_id, alert_id), _ in expected.items():
        statuses = [r.document["alert"]["status"] for r in receiver.receipts
                    if r.document["alert"]["alert_id"] == alert_id and r.headers["Monitor-Webhook-Id"] == webhook_id]
        assert statuses == ["open", "resolved", "open"]


async def _delivered(store: HistoryStore, count: int) -> bool:
    rows = await outbox_rows(store)
    return len(rows) >= count and all(r.status == "delivered" for r in rows)


async def _consumed(sink: HistorySink, count: int) -> bool:
    return sink.stats.consumed >= count and sink.stats.batches > 0
