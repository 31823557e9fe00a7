"""Deliverers sending the outbox to a real HTTP receiver on 127.0.0.1, on real SQLite and PostgreSQL stores:
a receiver that is down, then failing, then well gets every transition, in order per alert, signed; tenants
get only their own; two deliverers never send one delivery twice; an old delivery expires and shows in the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from monitor.access.tokens import create_token
from monitor.api import ApiSettings, create_app
from monitor.delivery.deliverer import Deliverer
from monitor.delivery.webhooks import verify_signature
from monitor.history.store import HistoryStore
from tests.delivery.support import (
    A1,
    A2,
    D1,
    D2,
    SECRETS,
    X9,
    Receiver,
    deliverer,
    eventually,
    outbox_rows,
    register_network,
    seqs_per_alert,
    store_transitions,
    transition,
    verify_as_documented,
    webhooks,
)

ALERTS = (A1, A2, D2)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def running(*deliverers: Deliverer) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(d.run()) for d in deliverers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def all_settled(store: HistoryStore) -> bool:
    rows = await outbox_rows(store)
    return bool(rows) and all(r.status != "pending" for r in rows)


async def test_every_transition_arrives_in_order_and_signed_though_the_receiver_was_down_then_failing(
        store_url: str) -> None:
    receiver = Receiver()
    hooks = webhooks(receiver.port)
    store = await HistoryStore.open(store_url, webhooks=hooks)
    sender = deliverer(store_url, hooks, concurrency=4)
    before = {result: metric("monitor_webhook_attempts_total", webhook="hook-a1", result=result)
              for result in ("ok", "http_error", "network_error")}
    try:
        await register_network(store)
        await store_transitions(store, [transition(e, n, s) for s in (0, 1) for e in ALERTS for n in (1, 2)])
        async with running(sender):
            # down: nothing listens on the port
            await eventually(lambda: _errors_contain(store, "ConnectError"), 10, "attempts refused while down")
            # up, but answering 500; meanwhile the alerts move on
            await receiver.listen()
            await eventually(lambda: _received(receiver, 6), 10, "attempts answered with 500")
            await store_transitions(store, [transition(e, n, s) for s in (2, 3) for e in ALERTS for n in (1, 2)])
            assert not receiver.accepted()
            # recovered
            receiver.status = 200
            took = await eventually(lambda: all_settled(store), 30, "every delivery settled")
            await eventually(lambda: _gauge_is("monitor_webhook_outbox_pending", 0, webhook="hook-a1"), 5,
                             "the pending gauge counts none")
        rows = await outbox_rows(store)
    finally:
        await receiver.close()
        await store.close()
    refused = sum(1 for r in receiver.receipts if r.answered == 500)
    print(f"\n{len(rows)} deliveries, {len(receiver.receipts)} requests received ({refused} answered 500), "
          f"{sender.stats}; settled {took:.1f} s after the receiver recovered")

    assert len(rows) == 4 * len(ALERTS) * 2 + 4 * 2  # D2's go to both webhooks
    assert {r.status for r in rows} == {"delivered"}
    accepted = receiver.accepted()
    # every transition arrived (at least once: de-duplicated by delivery id, exactly the outbox)
    assert {r.delivery_id for r in accepted} == {r.delivery_id for r in rows}
    by_id = {r.delivery_id: r for r in rows}
    for receipt in receiver.receipts:
        row = by_id[receipt.delivery_id]
        secret = SECRETS[row.webhook_id]
        header = receipt.headers["Monitor-Signature"]
        assert receipt.body == row.body.encode()  # the stored bytes, exactly
        assert verify_as_documented(secret, header, receipt.body)
        assert verify_signature(secret, header, receipt.body)
        other = SECRETS["hook-a2" if row.webhook_id == "hook-a1" else "hook-a1"]
        assert not verify_as_documented(other, header, receipt.body)
        assert (receipt.headers["Monitor-Webhook-Id"], receipt.headers["Monitor-Alert-Id"]) == (row.webhook_id,
                                                                                                row.alert_id)
        assert receipt.headers["Content-Type"] == "application/json"
        assert receipt.path == ("/a1" if row.webhook_id == "hook-a1" else "/a2")
    # in order per alert: each alert's transitions were first received in the order they were stored,
    # failed attempts included (the next is never sent before the one before it is done)
    expected: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        expected.setdefault((row.webhook_id, row.alert_id), []).append(row.transition_seq)
    assert seqs_per_alert(receiver.receipts) == {key: sorted(seqs) for key, seqs in expected.items()}
    assert refused >= 6
    after = {result: metric("monitor_webhook_attempts_total", webhook="hook-a1", result=result)
             for result in ("ok", "http_error", "network_error")}
    assert all(after[r] > before[r] for r in after)


async def _gauge_is(name: str, value: float, **labels: str) -> bool:
    return REGISTRY.get_sample_value(name, labels) == value


async def _errors_contain(store: HistoryStore, text: str) -> bool:
    return any(text in (r.last_error or "") for r in await outbox_rows(store))


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.receipts) >= count


async def test_each_automaker_gets_only_its_own_and_its_distributors_alerts(store_url: str) -> None:
    receiver = Receiver(status=200)
    await receiver.listen()
    hooks = webhooks(receiver.port)
    store = await HistoryStore.open(store_url, webhooks=hooks)
    try:
        await register_network(store)
        await store_transitions(store, [transition(e, 1, s) for s in (0, 1) for e in (A1, A2, D1, D2, X9)])
        async with running(deliverer(store_url, hooks)):
            await eventually(lambda: all_settled(store), 20, "every delivery settled")
    finally:
        await receiver.close()
        await store.close()
    seen = {path: {r.document["alert"]["exporter_id"] for r in receiver.accepted() if r.path == path}
            for path in ("/a1", "/a2")}
    assert seen == {"/a1": {A1, D1, D2}, "/a2": {A2, D2}}
    accountable = {(r.path, tuple(r.document["alert"]["accountable"])) for r in receiver.accepted()
                   if r.document["alert"]["exporter_id"] == D2}
    assert accountable == {("/a1", (D2, A1)), ("/a2", (D2, A2))}  # never the other automaker
    assert not any(X9 in r.body.decode() for r in receiver.receipts)


async def test_two_deliverers_on_one_store_never_send_one_delivery_twice(store_url: str) -> None:
    receiver = Receiver(status=200, delay=0.03)  # slow enough that both have requests in flight together
    await receiver.listen()
    hooks = webhooks(receiver.port)
    store = await HistoryStore.open(store_url, webhooks=hooks)
    first, second = deliverer(store_url, hooks, concurrency=4), deliverer(store_url, hooks, concurrency=4)
    try:
        await register_network(store)
        await store_transitions(store, [transition(e, n, s) for s in (0, 1) for e in ALERTS for n in range(1, 7)])
        async with running(first, second):
            await eventually(lambda: all_settled(store), 30, "every delivery settled")
        rows = await outbox_rows(store)
    finally:
        await receiver.close()
        await store.close()
    print(f"\nfirst: {first.stats}\nsecond: {second.stats}")
    received = Counter(r.delivery_id for r in receiver.receipts)
    assert set(received) == {r.delivery_id for r in rows} and len(rows) == 2 * len(ALERTS) * 6 + 2 * 6
    assert max(received.values()) == 1, [d for d, n in received.items() if n > 1]
    assert first.stats.delivered > 0 and second.stats.delivered > 0
    assert first.stats.delivered + second.stats.delivered == len(rows)


async def test_a_delivery_older_than_the_max_age_expires_shows_in_the_api_and_the_next_goes(
        store_url: str, tmp_path: Path) -> None:
    receiver = Receiver(status=200)  # not listening yet: every attempt is refused
    hooks = webhooks(receiver.port, max_age_seconds=0.6)
    store = await HistoryStore.open(store_url, webhooks=hooks)
    expired_before = metric("monitor_webhook_deliveries_total", webhook="hook-a1", outcome="expired")
    try:
        await register_network(store)
        await store_transitions(store, [transition(A1, 1, 0)])
        async with running(deliverer(store_url, hooks)):
            await eventually(lambda: all_settled(store), 10, "the delivery expired")
            [old] = await outbox_rows(store)
            assert old.status == "expired" and old.attempts >= 1 and "ConnectError" in (old.last_error or "")
            # the receiver is back: the alert's next transition is not held up by the expired one
            await receiver.listen()
            await store_transitions(store, [transition(A1, 1, 1)])
            await eventually(lambda: all_settled(store), 10, "the next transition delivered")
        _, new = await outbox_rows(store)
        assert new.status == "delivered"
        assert [r.delivery_id for r in receiver.accepted()] == [new.delivery_id]
        assert metric("monitor_webhook_deliveries_total", webhook="hook-a1", outcome="expired") == expired_before + 1

        tokens = tmp_path / "tokens.json"
        regulator, a1, a2 = (create_token(tokens, "regulator"), create_token(tokens, "automaker", [A1]),
                             create_token(tokens, "automaker", [A2]))
        app = create_app(ApiSettings(database_url=store_url, api_tokens=tokens, data_dir=tmp_path,
                                     kafka_bootstrap="127.0.0.1:9"), store=store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            async def get(token: str, **params: str) -> httpx.Response:
                return await client.get("/api/v1/webhooks/deliveries", params=params,
                                        headers={"Authorization": f"Bearer {token}"})

            answer = await get(regulator, status="expired")
            assert answer.status_code == 200
            [item] = answer.json()["items"]
            assert {k: item[k] for k in ("delivery_id", "webhook_id", "alert_id", "exporter_id", "seq", "status")} == {
                "delivery_id": old.delivery_id, "webhook_id": "hook-a1", "alert_id": old.alert_id, "exporter_id": A1,
                "seq": old.transition_seq, "status": "expired"}
            assert item["attempts"] == old.attempts and "ConnectError" in item["last_error"]
            assert item["next_attempt_at"] is None and item["delivered_at"] is None
            mine = await get(a1)
            assert [i["status"] for i in mine.json()["items"]] == ["expired", "delivered"]
            assert (await get(a2)).json() == {"items": [], "next": None}  # A2's webhook sees no A1 alert
            assert (await get(a2, webhook="hook-a1")).status_code == 404  # another's webhook: as if none
            assert (await get(regulator, webhook="hook-none")).status_code == 404
            refused = await get(regulator, webhook_id="hook-a1")
            assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
            assert (await get(regulator, cursor="not-a-cursor")).status_code == 422
            assert (await client.get("/api/v1/webhooks/deliveries")).status_code == 401
    finally:
        await receiver.close()
        await store.close()


@pytest.mark.parametrize("attempts", [1, 2, 5, 30])
def test_the_pause_after_a_failure_grows_with_jitter_within_its_bounds(attempts: int) -> None:
    sender = Deliverer(store_url="sqlite+aiosqlite://", webhooks=[], backoff_initial=1.0, backoff_max=60.0)
    pauses = [sender.backoff(attempts) for _ in range(200)]
    assert all(1.0 <= p <= min(60.0, 2 ** (attempts - 1)) for p in pauses)
    if attempts > 1:
        assert len(set(pauses)) > 100  # jittered, not one fixed value
