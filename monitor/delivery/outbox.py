"""The webhook outbox in the history store: enqueued with each alert transition, claimed and settled by deliverers.

A row of `webhook_deliveries` is made for each webhook that may see an alert's exporter, in
the transaction that stores the transition (`enqueue_transition`), so a stored transition
is never without its deliveries and a transition read again (a replay) enqueues nothing.

Deliverers take rows with `Outbox.claim`: only pending rows that are due, not leased by
another deliverer, and the lowest pending seq of their (webhook, alert), so that one alert's
transitions go out one at a time and in order. A claim is a conditional UPDATE (and, on
PostgreSQL, `FOR UPDATE SKIP LOCKED`), so two deliverers never hold one row at once; a lease
that runs out (its deliverer died) makes the row claimable again.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from monitor.access.redaction import named_exporters, redacted
from monitor.access.tokens import Principal, TokenRole
from monitor.contracts.registry import ExporterRegistration
from monitor.history.tables import AlertTransition, Registration, Webhook, WebhookDelivery

if TYPE_CHECKING:
    from monitor.delivery.webhooks import Webhook as WebhookConfig
    from monitor.history.store import HistoryStore

PENDING, DELIVERED, EXPIRED = "pending", "delivered", "expired"
STATUSES = (PENDING, DELIVERED, EXPIRED)
ERROR_LIMIT = 500  # characters of an error kept in last_error


# ---- enqueueing, inside the store's write transaction -------------------------------------------------------


async def enqueue_transition(session: AsyncSession, webhooks: Sequence[WebhookConfig], transition: AlertTransition,
                             now: datetime) -> int:
    """Add a delivery of a just-stored transition for every webhook that may see its exporter; return how many.

    A webhook sees its exporters and the registered authorised distributors whose
    `authorised_by` names one of them (as `Principal.visible` grants an automaker's token),
    by the registrations stored when the transition is. The body is the `AlertDelivery`
    document with `accountable` (and any `authorised_by`) holding only exporters the webhook
    may see.
    """
    if not webhooks:
        return 0
    message = transition.message
    named = sorted({transition.exporter_id, *named_exporters(message)})
    rows = await session.execute(select(Registration.exporter_id, Registration.registration)
                                 .where(Registration.exporter_id.in_(named)))
    registrations = {exporter_id: ExporterRegistration.model_validate(document) for exporter_id, document in rows}
    added = 0
    for webhook in webhooks:
        visible = Principal(TokenRole.automaker, webhook.exporters, token_id=webhook.id).visible(registrations)
        assert visible is not None  # noqa: S101 - an automaker's view is always a set
        if transition.exporter_id not in visible:
            continue
        delivery_id = str(uuid.uuid4())
        body = {"delivery_id": delivery_id, "webhook_id": webhook.id, "alert": redacted(message, visible),
                "transition": {"seq": transition.seq, "hash": transition.hash}}
        session.add(WebhookDelivery(
            delivery_id=delivery_id, webhook_id=webhook.id, alert_id=transition.alert_id,
            exporter_id=transition.exporter_id, transition_seq=transition.seq, body=orjson.dumps(body).decode(),
            created_at=now, status=PENDING, attempts=0, next_attempt_at=now))
        added += 1
    return added


async def record_webhooks(session: AsyncSession, webhooks: Iterable[WebhookConfig], now: datetime) -> None:
    """Keep each webhook's id and exporters (not its URL or secret), for the API to tell whose deliveries
    are whose."""
    for webhook in webhooks:
        exporters = sorted(webhook.exporters)
        row = await session.get(Webhook, webhook.id, with_for_update=True)
        if row is None:
            session.add(Webhook(webhook_id=webhook.id, exporters=exporters, configured_at=now))
        elif list(row.exporters) != exporters:
            row.exporters, row.configured_at = exporters, now


# ---- deliverers' side ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a deliverer holds the lease of: what to send, and what it needs to settle it."""

    delivery_id: str
    webhook_id: str
    alert_id: str
    exporter_id: str
    seq: int
    body: bytes
    attempts: int  # including the one about to be made
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Expired:
    """A delivery given up because it grew older than its webhook's max age."""

    delivery_id: str
    webhook_id: str
    alert_id: str
    exporter_id: str
    seq: int
    attempts: int
    last_error: str | None


def _lease_free(now: datetime) -> Any:
    return or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now)


class Outbox:
    """The outbox of one history store, for deliverers and the API."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    async def claim(self, *, owner: str, now: datetime, lease: timedelta, limit: int,
                    webhooks: Iterable[str]) -> list[Claimed]:
        """Lease up to `limit` due deliveries of these webhooks to `owner` until `now + lease`.

        Each is pending, due (`next_attempt_at` reached), not leased to anyone (or its lease
        ran out), and the lowest pending seq of its webhook and alert. Counts the attempt
        (attempts + 1, last_attempt_at = now). Oldest due first.
        """
        ids = sorted(set(webhooks))
        if limit < 1 or not ids:
            return []
        earlier = aliased(WebhookDelivery)
        d = WebhookDelivery
        candidates = (
            select(d.delivery_id)
            .where(d.status == PENDING, d.webhook_id.in_(ids), d.next_attempt_at <= now, _lease_free(now),
                   ~exists().where(earlier.webhook_id == d.webhook_id, earlier.alert_id == d.alert_id,
                                   earlier.status == PENDING, earlier.transition_seq < d.transition_seq))
            # by the (status, next_attempt_at) index alone, so the scan stops at `limit` rows; the order of an
            # alert's transitions is kept by the NOT EXISTS above, not by this
            .order_by(d.next_attempt_at).limit(limit)
            # PostgreSQL: rows another deliverer is claiming right now are passed over, not waited for
            .with_for_update(skip_locked=True, of=d))
        until = now + lease
        async with self.store.write_transaction() as session:
            chosen = list(await session.scalars(candidates))
            if not chosen:
                return []
            claimed = await session.execute(
                update(d).where(d.delivery_id.in_(chosen), d.status == PENDING, _lease_free(now))
                .values(claimed_by=owner, claimed_until=until, attempts=d.attempts + 1, last_attempt_at=now)
                .returning(d.delivery_id, d.webhook_id, d.alert_id, d.exporter_id, d.transition_seq, d.body,
                           d.attempts, d.created_at)
                .execution_options(synchronize_session=False))
            rows = list(claimed)
        found = [Claimed(delivery_id=r[0], webhook_id=r[1], alert_id=r[2], exporter_id=r[3], seq=r[4],
                         body=r[5].encode("utf-8"), attempts=r[6], created_at=_utc(r[7])) for r in rows]
        return sorted(found, key=lambda c: c.seq)

    async def delivered(self, delivery_id: str, *, now: datetime, status_code: int) -> bool:
        """Settle a delivery the receiver accepted (whoever holds its lease now); False when it was
        already settled."""
        d = WebhookDelivery
        async with self.store.write_transaction() as session:
            result = await session.execute(
                update(d).where(d.delivery_id == delivery_id, d.status == PENDING)
                .values(status=DELIVERED, delivered_at=now, last_status_code=status_code, last_error=None,
                        next_attempt_at=None, claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False))
            return _count(result) == 1

    async def failed(self, delivery_id: str, *, owner: str, next_attempt_at: datetime, status_code: int | None,
                     error: str) -> bool:
        """Record a failed attempt and when to try again, releasing `owner`'s lease; False when
        the row is no longer pending under that lease."""
        d = WebhookDelivery
        async with self.store.write_transaction() as session:
            result = await session.execute(
                update(d).where(d.delivery_id == delivery_id, d.status == PENDING, d.claimed_by == owner)
                .values(last_status_code=status_code, last_error=error[:ERROR_LIMIT],
                        next_attempt_at=next_attempt_at, claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False))
            return _count(result) == 1

    async def release(self, owner: str, delivery_ids: Iterable[str] | None = None) -> int:
        """Give up `owner`'s leases (of these deliveries, or all) so another attempt may be made at once."""
        d = WebhookDelivery
        query = update(d).where(d.claimed_by == owner, d.status == PENDING)
        if delivery_ids is not None:
            query = query.where(d.delivery_id.in_(sorted(set(delivery_ids))))
        async with self.store.write_transaction() as session:
            result = await session.execute(query.values(claimed_by=None, claimed_until=None)
                                           .execution_options(synchronize_session=False))
            return _count(result)

    async def expire(self, *, now: datetime, max_ages: Mapping[str, float]) -> list[Expired]:
        """Give up (status expired) every pending delivery older than its webhook's max age, in
        seconds by webhook id, unless a deliverer holds its lease now. Returns those expired here."""
        d = WebhookDelivery
        by_age: dict[float, list[str]] = {}
        for webhook_id, age in max_ages.items():
            by_age.setdefault(age, []).append(webhook_id)
        expired: list[Expired] = []
        async with self.store.write_transaction() as session:
            for age, ids in sorted(by_age.items()):
                result = await session.execute(
                    update(d).where(d.status == PENDING, d.webhook_id.in_(sorted(ids)),
                                    d.created_at < now - timedelta(seconds=age), _lease_free(now))
                    .values(status=EXPIRED, next_attempt_at=None, claimed_by=None, claimed_until=None)
                    .returning(d.delivery_id, d.webhook_id, d.alert_id, d.exporter_id, d.transition_seq,
                               d.attempts, d.last_error)
                    .execution_options(synchronize_session=False))
                expired += [Expired(*row) for row in result]
        return sorted(expired, key=lambda e: e.seq)

    async def prune(self, *, before: datetime) -> int:
        """Delete the settled deliveries (delivered or expired) whose last attempt (or, never tried,
        their enqueueing) was before `before`; return how many. Pending ones are never deleted."""
        d = WebhookDelivery
        settled_at = func.coalesce(d.delivered_at, d.last_attempt_at, d.created_at)
        async with self.store.write_transaction() as session:
            result = await session.execute(
                delete(d).where(d.status.in_((DELIVERED, EXPIRED)), settled_at < before)
                .execution_options(synchronize_session=False))
            return _count(result)

    async def pending_counts(self) -> dict[str, int]:
        """Pending deliveries by webhook id (webhooks with none are absent)."""
        d = WebhookDelivery
        query = select(d.webhook_id, func.count()).where(d.status == PENDING).group_by(d.webhook_id)
        async with self.store.read_session() as session:
            return {webhook_id: count for webhook_id, count in await session.execute(query)}

    # ---- the API's side --------------------------------------------------------------------------------------

    async def webhooks(self) -> dict[str, frozenset[str]]:
        """Every webhook ever configured (by whoever enqueued), with its exporters."""
        async with self.store.read_session() as session:
            rows = await session.execute(select(Webhook.webhook_id, Webhook.exporters))
            return {webhook_id: frozenset(exporters) for webhook_id, exporters in rows}

    async def deliveries(self, *, webhooks: Iterable[str] | None, exporters: Iterable[str] | None = None,
                         webhook: str | None = None, status: str | None = None, alert: str | None = None,
                         limit: int = 100, after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Deliveries ordered by (seq, webhook id), at most `limit`, and the cursor of the next page
        (None on the last). `webhooks`, `exporters`: None for all, else only deliveries to those
        webhooks, of alerts of those exporters. ValueError for a bad cursor or a `limit` below 1."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        d = WebhookDelivery
        query = select(d.delivery_id, d.webhook_id, d.alert_id, d.exporter_id, d.transition_seq, d.status,
                       d.attempts, d.created_at, d.last_attempt_at, d.next_attempt_at, d.last_status_code,
                       d.last_error, d.delivered_at)
        if webhooks is not None:
            query = query.where(d.webhook_id.in_(sorted(set(webhooks))))
        if exporters is not None:
            query = query.where(d.exporter_id.in_(sorted(set(exporters))))
        for column, wanted in ((d.webhook_id, webhook), (d.status, status), (d.alert_id, alert)):
            if wanted is not None:
                query = query.where(column == wanted)
        if after is not None:
            seq, webhook_id = decode_delivery_cursor(after)
            query = query.where(or_(d.transition_seq > seq, and_(d.transition_seq == seq, d.webhook_id > webhook_id)))
        query = query.order_by(d.transition_seq, d.webhook_id).limit(limit + 1)
        async with self.store.read_session() as session:
            rows = [dict(row._mapping) for row in await session.execute(query)]
        page, more = rows[:limit], len(rows) > limit
        for row in page:
            row["seq"] = row.pop("transition_seq")
        following = encode_delivery_cursor(page[-1]["seq"], page[-1]["webhook_id"]) if more else None
        return page, following


def encode_delivery_cursor(seq: int, webhook_id: str) -> str:
    """The opaque cursor of the page after the delivery (seq, webhook id)."""
    return base64.urlsafe_b64encode(orjson.dumps(["d", seq, webhook_id])).decode().rstrip("=")


def decode_delivery_cursor(cursor: str) -> tuple[int, str]:
    """The (seq, webhook id) a cursor from `encode_delivery_cursor` holds; ValueError for anything else."""
    try:
        data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, seq, webhook_id = orjson.loads(data)
        if kind != "d" or not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(webhook_id, str) \
                or not -(2 ** 63) <= seq < 2 ** 63 or "\x00" in webhook_id:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ValueError(f"not a cursor this store gave: {cursor!r}") from None
    return seq, webhook_id


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
