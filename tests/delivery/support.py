"""What the webhook tests share: a real HTTP receiver on 127.0.0.1, the automakers' webhooks, alert
transitions written through the store's own write path, and the documented signature recipe."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import select

from monitor.delivery.deliverer import Deliverer
from monitor.delivery.webhooks import Webhook
from monitor.embedded.broker import free_port
from monitor.history.store import ALERT, REGISTRATION, HistoryStore, Source
from monitor.history.tables import WebhookDelivery
from tests.history.records import alert, registration

A1, A2, D1, D2, X9 = "EXP-A1", "EXP-A2", "EXP-D1", "EXP-D2", "EXP-X9"
AUTHORISED_BY = {D1: (A1,), D2: (A1, A2)}
SECRETS = {"hook-a1": "a1-webhook-secret-0123", "hook-a2": "a2-webhook-secret-4567"}
_offsets = itertools.count()


def webhooks(port: int, **changes: Any) -> list[Webhook]:
    """Automaker A1's and A2's webhooks, both on the receiver at `port` (paths /a1, /a2)."""
    return [Webhook(id="hook-a1", url=f"http://127.0.0.1:{port}/a1", secret=SECRETS["hook-a1"],
                    exporters=frozenset({A1}), **changes),
            Webhook(id="hook-a2", url=f"http://127.0.0.1:{port}/a2", secret=SECRETS["hook-a2"],
                    exporters=frozenset({A2}), **changes)]


def accountable(exporter: str) -> list[str]:
    return [exporter, *AUTHORISED_BY.get(exporter, ())]


def transition(exporter: str, number: int, step: int) -> dict[str, Any]:
    """Alert `number` of `exporter` at its `step`-th transition: open, then resolved, reopened as a
    breach, resolved again... (each differs from the one before, so each is a new transition)."""
    status = "open" if step % 2 == 0 else "resolved"
    message = alert(number, exporter=exporter, status=status,
                    resolved_at=None if status == "open" else f"2026-03-0{4 + step // 2}T08:00:00Z",
                    raised_at=f"2026-03-03T10:{step:02d}:00Z", severity="warning" if step < 2 else "breach")
    return {**message, "accountable": accountable(exporter)}


def source() -> Source:
    return Source("aftersales.alerts", 0, next(_offsets))


async def register_network(store: HistoryStore) -> None:
    """Registrations: automakers A1 and A2, distributors D1 (authorised by A1) and D2 (by both)."""
    items = [(REGISTRATION, registration(e), source()) for e in (A1, A2)]
    items += [(REGISTRATION, registration(e, role="authorised_distributor", authorised_by=AUTHORISED_BY[e]), source())
              for e in (D1, D2)]
    await store.record_batch(items)


async def store_transitions(store: HistoryStore, messages: Iterable[dict[str, Any]]) -> int:
    """Store alert messages through the store's write path (one batch), as the sink does."""
    return await store.record_batch([(ALERT, m, source()) for m in messages])


async def outbox_rows(store: HistoryStore) -> list[WebhookDelivery]:
    """Every outbox row, by seq then webhook."""
    async with store.read_session() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.transition_seq,
                                                                           WebhookDelivery.webhook_id)))


# ---- the receiver --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    @property
    def delivery_id(self) -> str:
        return self.headers["Monitor-Delivery-Id"]


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1:port that is down (nothing listens: connection refused) until
    `listen()`, then answers `status` (500, then 200 when told) to every POST, after `delay` seconds."""

    port: int = field(default_factory=free_port)
    status: int = 500
    delay: float = 0.0
    receipts: list[Receipt] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        answered = self.status
        self.receipts.append(Receipt(request.path, dict(request.headers), body, answered))
        return web.Response(status=answered, text="ok" if answered < 300 else "receiver failing on purpose")

    async def listen(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def accepted(self) -> list[Receipt]:
        return [r for r in self.receipts if 200 <= r.answered < 300]


# ---- the documented recipe -------------------------------------------------------------------------------------


def verify_as_documented(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The README's Python verification recipe, as written there."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(parts["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, parts["v1"])


# ---- running ------------------------------------------------------------------------------------------------


FAST = {"backoff_initial": 0.05, "backoff_max": 0.4, "timeout": 2.0, "lease_seconds": 3.0, "poll_seconds": 0.05}


def deliverer(url: str, hooks: list[Webhook], **options: Any) -> Deliverer:
    """A deliverer with short pauses, so the tests stay fast (`options` win)."""
    return Deliverer(store_url=url, webhooks=hooks, **{**FAST, **options})


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds until `condition()` holds; AssertionError after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await condition():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def first_receipts(receipts: Iterable[Receipt]) -> list[Receipt]:
    """The first receipt of each delivery id, in the order received."""
    seen: set[str] = set()
    firsts = []
    for receipt in receipts:
        if receipt.delivery_id not in seen:
            seen.add(receipt.delivery_id)
            firsts.append(receipt)
    return firsts


def seqs_per_alert(receipts: Iterable[Receipt]) -> dict[tuple[str, str], list[int]]:
    """The transition seqs of each (webhook, alert) in the order their first receipts came."""
    found: dict[tuple[str, str], list[int]] = {}
    for receipt in first_receipts(receipts):
        doc = receipt.document
        found.setdefault((doc["webhook_id"], doc["alert"]["alert_id"]), []).append(doc["transition"]["seq"])
    return found
