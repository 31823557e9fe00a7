"""The webhook outbox in the history store, on real SQLite and real PostgreSQL: what is enqueued with each
transition and for whom, and how deliverers claim, settle and expire deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from monitor.delivery.outbox import Outbox
from monitor.delivery.webhooks import AlertDelivery
from monitor.history.store import HistoryStore
from tests.delivery.support import (
    A1,
    A2,
    D1,
    D2,
    X9,
    outbox_rows,
    register_network,
    source,
    store_transitions,
    transition,
    webhooks,
)

LEASE = timedelta(seconds=30)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[HistoryStore]:
    """A store enqueueing for A1's and A2's webhooks, holding the network's registrations."""
    opened = await HistoryStore.open(store_url, webhooks=webhooks(9))
    try:
        await register_network(opened)
        yield opened
    finally:
        await opened.close()


async def test_each_new_transition_is_enqueued_for_the_webhooks_that_may_see_it(store: HistoryStore) -> None:
    messages = [transition(e, 1, 0) for e in (A1, A2, D1, D2, X9)]
    assert await store_transitions(store, messages) == 5

    rows = await outbox_rows(store)
    assert sorted((r.webhook_id, r.exporter_id) for r in rows) == [
        ("hook-a1", A1), ("hook-a1", D1), ("hook-a1", D2), ("hook-a2", A2), ("hook-a2", D2)]
    assert {r.status for r in rows} == {"pending"} and {r.attempts for r in rows} == {0}
    for row in rows:
        body = AlertDelivery.model_validate_json(row.body)  # the documented body, exactly
        assert (body.delivery_id, body.webhook_id, body.alert.alert_id) == (row.delivery_id, row.webhook_id,
                                                                           row.alert_id)
        [stored] = [t for t in await store.transitions(row.alert_id) if t["seq"] == row.transition_seq]
        assert body.transition.model_dump() == {"seq": stored["seq"], "hash": stored["hash"]}
    # a distributor's alert names only the automakers the webhook's owner may see
    d2 = {r.webhook_id: orjson.loads(r.body)["alert"]["accountable"] for r in rows if r.exporter_id == D2}
    assert d2 == {"hook-a1": [D2, A1], "hook-a2": [D2, A2]}
    assert orjson.loads(next(r.body for r in rows if r.exporter_id == D1))["alert"]["accountable"] == [D1, A1]


async def test_a_repeat_or_a_replayed_transition_enqueues_nothing(store: HistoryStore) -> None:
    first, repeat = transition(A1, 1, 0), {**transition(A1, 1, 0), "raised_at": "2026-03-03T11:00:00Z"}
    where = source()
    assert await store.record_alert(first, where)
    assert not await store.record_alert(repeat, source())  # only raised_at differs: not a transition
    assert not await store.record_alert(first, where)  # the same topic offset read again
    assert len(await outbox_rows(store)) == 1
    assert await store.record_alert(transition(A1, 1, 1), source())
    assert [r.transition_seq for r in await outbox_rows(store)] == sorted(t["seq"] for t in
                                                                          await store.transitions(f"{A1}/A1"))


async def test_only_the_lowest_pending_seq_of_an_alert_is_claimed_and_a_lease_is_held_alone(
        store: HistoryStore) -> None:
    await store_transitions(store, [transition(A1, 1, step) for step in range(3)] + [transition(A1, 2, 0)])
    outbox = Outbox(store)
    now = datetime.now(UTC)
    rows = await outbox_rows(store)
    alert1 = [r for r in rows if r.alert_id == f"{A1}/A1"]

    first = await outbox.claim(owner="one", now=now, lease=LEASE, limit=10, webhooks=["hook-a1"])
    other = next(r.delivery_id for r in rows if r.alert_id == f"{A1}/A2")
    assert [c.delivery_id for c in first] == [alert1[0].delivery_id, other]  # in seq order
    assert {c.attempts for c in first} == {1}
    # leased: nobody else gets them, and the alert's later transitions wait for the first
    assert await outbox.claim(owner="two", now=now, lease=LEASE, limit=10, webhooks=["hook-a1"]) == []

    # a failed attempt waits for its next attempt time, and still holds back the alert's later transitions
    assert await outbox.failed(alert1[0].delivery_id, owner="one", next_attempt_at=now + timedelta(seconds=5),
                               status_code=500, error="HTTP 500")
    assert await outbox.claim(owner="two", now=now, lease=LEASE, limit=10, webhooks=["hook-a1"]) == []
    [again] = await outbox.claim(owner="two", now=now + timedelta(seconds=5), lease=LEASE, limit=10,
                                 webhooks=["hook-a1"])
    assert (again.delivery_id, again.attempts) == (alert1[0].delivery_id, 2)
    # the lease of a deliverer that died runs out, and then another takes the delivery over
    later = now + timedelta(seconds=5) + LEASE + timedelta(seconds=1)
    taken_over = await outbox.claim(owner="three", now=later, lease=LEASE, limit=10, webhooks=["hook-a1"])
    assert {(c.delivery_id, c.attempts) for c in taken_over} == {(alert1[0].delivery_id, 3), (first[1].delivery_id, 2)}
    assert not await outbox.failed(alert1[0].delivery_id, owner="two", next_attempt_at=later, status_code=None,
                                   error="too late")  # not the holder any more

    assert await outbox.delivered(alert1[0].delivery_id, now=later, status_code=204)
    [second] = await outbox.claim(owner="three", now=later, lease=LEASE, limit=10, webhooks=["hook-a1"])
    assert second.delivery_id == alert1[1].delivery_id


async def test_a_delivery_older_than_its_max_age_expires_and_lets_the_next_go(store: HistoryStore) -> None:
    await store_transitions(store, [transition(A1, 1, 0)])
    outbox = Outbox(store)
    now = datetime.now(UTC)
    [claimed] = await outbox.claim(owner="one", now=now, lease=LEASE, limit=5, webhooks=["hook-a1"])
    # a leased delivery is not expired under its deliverer's feet
    assert await outbox.expire(now=now + timedelta(seconds=1), max_ages={"hook-a1": 0.5}) == []
    assert await outbox.failed(claimed.delivery_id, owner="one", next_attempt_at=now + timedelta(seconds=120),
                               status_code=None, error="ConnectError: refused")
    expired = await outbox.expire(now=now + timedelta(seconds=1), max_ages={"hook-a1": 0.5, "hook-a2": 3600})
    assert [(e.delivery_id, e.attempts, e.last_error) for e in expired] == [
        (claimed.delivery_id, 1, "ConnectError: refused")]
    assert await outbox.pending_counts() == {}
    [row] = await outbox_rows(store)
    assert (row.status, row.next_attempt_at, row.claimed_by) == ("expired", None, None)

    # the alert's next transition no longer waits for it
    await store_transitions(store, [transition(A1, 1, 1)])
    [following] = await outbox.claim(owner="one", now=now + timedelta(seconds=1), lease=LEASE, limit=5,
                                     webhooks=["hook-a1"])
    assert following.seq > claimed.seq
    items, _ = await outbox.deliveries(webhooks=None, webhook="hook-a1", status="expired")
    assert [(i["delivery_id"], i["attempts"], i["next_attempt_at"]) for i in items] == [(claimed.delivery_id, 1, None)]


async def test_settled_deliveries_past_their_retention_are_deleted_and_pending_ones_never(
        store: HistoryStore) -> None:
    await store_transitions(store, [transition(A1, n, 0) for n in (1, 2, 3)])  # three alerts for hook-a1
    outbox = Outbox(store)
    now = datetime.now(UTC)
    old, recent, unsent = sorted(await outbox.claim(owner="one", now=now, lease=LEASE, limit=5,
                                                    webhooks=["hook-a1"]), key=lambda c: c.seq)
    assert await outbox.delivered(old.delivery_id, now=now, status_code=200)
    assert await outbox.delivered(recent.delivery_id, now=now + timedelta(days=10), status_code=200)
    assert await outbox.release("one", [unsent.delivery_id]) == 1  # still pending

    assert await outbox.prune(before=now + timedelta(days=5)) == 1
    assert {r.delivery_id: r.status for r in await outbox_rows(store)} == {
        recent.delivery_id: "delivered", unsent.delivery_id: "pending"}
    assert await outbox.prune(before=now + timedelta(days=1000)) == 1
    assert [(r.delivery_id, r.status) for r in await outbox_rows(store)] == [(unsent.delivery_id, "pending")]


async def test_deliveries_are_listed_filtered_and_paged(store: HistoryStore) -> None:
    await store_transitions(store, [transition(e, n, s) for e in (A1, D2) for n in (1, 2) for s in (0, 1)])
    outbox = Outbox(store)
    everything, end = await outbox.deliveries(webhooks=None, limit=1000)
    assert end is None and len(everything) == 8 + 4  # A1's and D2's for hook-a1, D2's for hook-a2
    pages, cursor = [], None
    while True:
        page, cursor = await outbox.deliveries(webhooks=None, limit=5, after=cursor)
        pages += page
        if cursor is None:
            break
    assert pages == everything
    assert [(d["seq"], d["webhook_id"]) for d in everything] == sorted((d["seq"], d["webhook_id"]) for d in everything)
    mine, _ = await outbox.deliveries(webhooks=["hook-a2"], limit=1000)
    assert {d["exporter_id"] for d in mine} == {D2} and len(mine) == 4
    one, _ = await outbox.deliveries(webhooks=None, alert=f"{D2}/A2", webhook="hook-a1")
    assert [d["alert_id"] for d in one] == [f"{D2}/A2"] * 2
    with pytest.raises(ValueError, match="cursor"):
        await outbox.deliveries(webhooks=None, after="bm90IGEgY3Vyc29y")
    assert await outbox.webhooks() == {"hook-a1": frozenset({A1}), "hook-a2": frozenset({A2})}
