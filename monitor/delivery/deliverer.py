"""The deliverer: sends the outbox's deliveries to the webhooks, signed, retrying with back-off.

Every `poll_seconds` (and at once when a delivery settles) it gives up deliveries older than
their webhook's max age, then leases due deliveries (`Outbox.claim`: at most one in flight
per webhook and alert, lowest seq first) up to its concurrency, and POSTs each with httpx.
A 2xx answer settles it as delivered; any other answer, a network error or a timeout
schedules the next attempt after a pause from tenacity's `wait_random_exponential` (growing
from MONITOR_WEBHOOK_BACKOFF_INITIAL_SECONDS to at most MONITOR_WEBHOOK_BACKOFF_MAX_SECONDS,
jittered), written into the row so the pause outlives a restart.

Delivery is at least once: a deliverer that dies between the receiver's answer and settling
the row leaves it leased; when the lease ends another deliverer sends it again (the same
`delivery_id`). Run it as `monitor deliver`, or in a worker (its history stage, `monitor.stream.stages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential
from tenacity import wait_random_exponential as jittered_exponential

from monitor import __version__
from monitor.delivery.outbox import Claimed, Outbox
from monitor.delivery.webhooks import Webhook, headers_for
from monitor.history.store import HistoryStore, store_errors
from monitor.stopping import run_until_stopped

if TYPE_CHECKING:
    from monitor.delivery.settings import DeliverySettings

log = logging.getLogger(__name__)
T = TypeVar("T")

disable_created_metrics()  # as the worker and the API: no `_created` series, which Prometheus would store for nothing
PENDING_GAUGE = Gauge("monitor_webhook_outbox_pending", "Deliveries waiting in the outbox (pending, count), by webhook",
                      ["webhook"])
DELIVERIES = Counter("monitor_webhook_deliveries_total",
                     "Deliveries settled, by webhook and outcome (delivered, or expired: older than the max age)",
                     ["webhook", "outcome"])
ATTEMPTS = Counter("monitor_webhook_attempts_total",
                   "Requests made to webhooks, by webhook and result (ok: 2xx; http_error: another status; "
                   "network_error: no answer)", ["webhook", "result"])
DELIVERY_SECONDS = Histogram("monitor_webhook_delivery_seconds",
                             "Seconds one request to a webhook took, to its answer or failure",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

SNIPPET_BYTES = 300  # of a refusing receiver's answer, kept in last_error
GAUGE_EVERY = 1.0  # seconds between counts of the pending deliveries
PRUNE_EVERY = 3600.0  # seconds between deletions of settled deliveries past their retention
EXPIRE_EVERY = 1.0  # seconds between looks for deliveries past their max age (a round follows every settled one)


@dataclass
class DelivererStats:
    """What one deliverer has done since it started."""

    attempts: int = 0
    delivered: int = 0
    failed: int = 0  # attempts that did not succeed (each tried again later, unless it expired)
    expired: int = 0
    store_retries: int = 0


def pause_after(wait: Callable[[RetryCallState], float], attempts: int) -> float:
    """The seconds tenacity's `wait` strategy gives after the `attempts`-th failed attempt, for waits
    the deliverer keeps itself (in the outbox, or between rounds) rather than inside a retry loop."""
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(attempts, 1)
    return float(wait(state))


def utc_now() -> datetime:
    return datetime.now(UTC)


class Deliverer:
    """Sends the deliveries of one history store's outbox to the configured webhooks."""

    def __init__(self, *, store_url: str, webhooks: Sequence[Webhook], max_age_seconds: float = 86400.0,
                 backoff_initial: float = 1.0, backoff_max: float = 600.0, timeout: float = 10.0,
                 lease_seconds: float = 60.0, concurrency: int = 16, poll_seconds: float = 0.5,
                 retention_days: float = 90.0, owner: str | None = None) -> None:
        if lease_seconds <= timeout:
            raise ValueError(f"the lease ({lease_seconds:g} s) must outlast a request's timeout ({timeout:g} s)")
        self.store_url = store_url
        self.webhooks = {w.id: w for w in webhooks}
        self.max_ages = {w.id: w.max_age_seconds or max_age_seconds for w in webhooks}
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.lease = timedelta(seconds=lease_seconds)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.retention = timedelta(days=retention_days) if retention_days > 0 else None
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = DelivererStats()
        self.store_up = False
        self._wait = jittered_exponential(multiplier=backoff_initial, min=backoff_initial, max=backoff_max)
        self._in_flight: dict[asyncio.Task[None], Claimed] = {}
        self._wake = asyncio.Event()
        self._last_gauge = 0.0
        self._last_expiry = 0.0
        self._last_prune = float("-inf")  # the first round prunes

    @classmethod
    def from_settings(cls, settings: DeliverySettings, webhooks: Sequence[Webhook]) -> Deliverer:
        """The deliverer `monitor deliver` (or a worker) runs: MONITOR_DATABASE_URL and MONITOR_WEBHOOK_*."""
        from monitor.history.store import history_url

        return cls(store_url=history_url(settings), webhooks=webhooks,
                   max_age_seconds=settings.webhook_max_age_seconds,
                   backoff_initial=settings.webhook_backoff_initial_seconds,
                   backoff_max=settings.webhook_backoff_max_seconds, timeout=settings.webhook_timeout_seconds,
                   lease_seconds=settings.webhook_lease_seconds, concurrency=settings.webhook_concurrency,
                   poll_seconds=settings.webhook_poll_seconds, retention_days=settings.webhook_retention_days)

    @property
    def store_url_shown(self) -> str:
        """The store's URL with any password hidden, for logs and messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.store_url).render_as_string(hide_password=True)

    @property
    def in_flight(self) -> int:
        """Requests being made now."""
        return len(self._in_flight)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt: random, between the initial pause
        and min(max, initial × 2^(attempts-1))."""
        return pause_after(self._wait, attempts)

    async def run(self) -> None:
        """Deliver until cancelled.

        Cancelling stops it: no more deliveries are taken; the requests in flight get up to
        their timeout to finish and be settled, and any still unfinished then are abandoned
        and their leases released, so they are sent again (by this or another deliverer).
        """
        if not self.webhooks:
            log.warning("webhooks: none configured; nothing to deliver")
        store = await self._retrying("opening the store",
                                     lambda: HistoryStore.open(self.store_url, webhooks=tuple(self.webhooks.values())))
        self.store_up = True
        outbox = Outbox(store)
        client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), follow_redirects=False,
                                   headers={"User-Agent": f"aftersales-monitor/{__version__}"},
                                   limits=httpx.Limits(max_connections=self.concurrency))
        log.info("webhooks: delivering to %s from %s (deliverer %s)", ", ".join(sorted(self.webhooks)) or "none",
                 store.url, self.owner)
        try:
            await self._loop(outbox, client)
        finally:
            await self._finish(outbox)
            await client.aclose()
            await store.close()

    async def _loop(self, outbox: Outbox, client: httpx.AsyncClient) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._round(outbox, client)
            except store_errors() as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # a driver turned the cancellation into its own error: stopping wins over retrying
                    raise asyncio.CancelledError from exc
                failures += 1
                self.stats.store_retries += 1
                self.store_up = False
                pause = self._store_pause(failures)
                log.warning("webhooks: the history store failed (%r); trying again in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                continue
            if failures:
                log.warning("webhooks: the history store answers again after %d failures", failures)
            failures, self.store_up = 0, True
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a cancellation that arrives
            # just as the wait ends, and the deliverer would then never stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

    def _store_pause(self, failures: int) -> float:
        return pause_after(wait_exponential(multiplier=0.2, min=0.2, max=max(self.poll_seconds, 10.0)), failures)

    async def _round(self, outbox: Outbox, client: httpx.AsyncClient) -> None:
        now = utc_now()
        expiring = time.monotonic() - self._last_expiry >= EXPIRE_EVERY
        for expired in await outbox.expire(now=now, max_ages=self.max_ages) if expiring else []:
            self.stats.expired += 1
            DELIVERIES.labels(expired.webhook_id, "expired").inc()
            log.warning("webhooks: delivery %s of alert %s to %s given up after %d attempts: older than %g s "
                        "(last error: %s)", expired.delivery_id, expired.alert_id, expired.webhook_id,
                        expired.attempts, self.max_ages.get(expired.webhook_id, 0), expired.last_error or "none",
                        extra={"webhook_id": expired.webhook_id, "delivery_id": expired.delivery_id,
                               "alert_id": expired.alert_id, "exporter_id": expired.exporter_id})
        if expiring:
            self._last_expiry = time.monotonic()
        if self.retention is not None and time.monotonic() - self._last_prune >= PRUNE_EVERY:
            pruned = await outbox.prune(before=now - self.retention)
            self._last_prune = time.monotonic()
            if pruned:
                log.info("webhooks: %d settled deliveries older than %g days deleted from the outbox", pruned,
                         self.retention / timedelta(days=1))
        free = self.concurrency - len(self._in_flight)
        if free > 0:
            for claimed in await outbox.claim(owner=self.owner, now=now, lease=self.lease, limit=free,
                                              webhooks=self.webhooks):
                task = asyncio.create_task(self._deliver(outbox, client, claimed),
                                           name=f"webhook-delivery-{claimed.delivery_id}")
                self._in_flight[task] = claimed
                task.add_done_callback(self._settled)
        if time.monotonic() - self._last_gauge >= GAUGE_EVERY:
            counts = await outbox.pending_counts()
            for webhook_id in self.webhooks:
                PENDING_GAUGE.labels(webhook_id).set(counts.get(webhook_id, 0))
            self._last_gauge = time.monotonic()

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wake.set()  # a slot is free, and the alert's next transition may be due
        if not task.cancelled() and task.exception() is not None:
            log.error("webhooks: a delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, outbox: Outbox, client: httpx.AsyncClient, claimed: Claimed) -> None:
        webhook = self.webhooks[claimed.webhook_id]
        ids = {"webhook_id": claimed.webhook_id, "delivery_id": claimed.delivery_id, "alert_id": claimed.alert_id,
               "exporter_id": claimed.exporter_id}
        headers = headers_for(webhook, claimed.delivery_id, claimed.alert_id, claimed.body)
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            async with client.stream("POST", webhook.url, content=claimed.body, headers=headers) as response:
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    snippet = b""
                    async for chunk in response.aiter_bytes():
                        snippet += chunk
                        if len(snippet) >= SNIPPET_BYTES:
                            break
                    text = snippet[:SNIPPET_BYTES].decode("utf-8", "replace").strip()
                    error = f"HTTP {status_code}" + (f": {text}" if text else "")
        except httpx.HTTPError as exc:
            status_code = None
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            DELIVERY_SECONDS.observe(time.perf_counter() - started)
        self.stats.attempts += 1
        result = "ok" if error is None else ("http_error" if status_code is not None else "network_error")
        ATTEMPTS.labels(claimed.webhook_id, result).inc()
        now = utc_now()
        if error is None:
            assert status_code is not None  # noqa: S101 - an answer came
            settled = await self._settling(lambda: outbox.delivered(claimed.delivery_id, now=now,
                                                                    status_code=status_code))
            if settled:
                self.stats.delivered += 1
                DELIVERIES.labels(claimed.webhook_id, "delivered").inc()
            log.info("webhooks: delivered %s (alert %s, seq %d) to %s: HTTP %d after %d attempts",
                     claimed.delivery_id, claimed.alert_id, claimed.seq, claimed.webhook_id, status_code,
                     claimed.attempts, extra=ids)
            return
        self.stats.failed += 1
        pause = self.backoff(claimed.attempts)
        await self._settling(lambda: outbox.failed(claimed.delivery_id, owner=self.owner,
                                                   next_attempt_at=now + timedelta(seconds=pause),
                                                   status_code=status_code, error=error or ""))
        log.warning("webhooks: attempt %d of %s (alert %s) to %s failed: %s; next attempt in %.1f s",
                    claimed.attempts, claimed.delivery_id, claimed.alert_id, claimed.webhook_id, error, pause,
                    extra=ids)

    async def _settling(self, action: Callable[[], Awaitable[bool]]) -> bool:
        """Write a delivery's outcome, trying again while the store fails, for as long as the lease
        lasts; after that the row is another deliverer's to send again, and this outcome is dropped."""
        try:
            return await self._retrying("settling a delivery", action, stop_after=self.lease.total_seconds())
        except store_errors() as exc:
            log.error("webhooks: could not record a delivery's outcome (%r); it will be sent again", exc)
            return False

    async def _finish(self, outbox: Outbox) -> None:
        """Let the requests in flight finish (up to their timeout), then abandon the rest and release them."""
        if not self._in_flight:
            return
        log.info("webhooks: stopping; waiting up to %.0f s for %d requests in flight", self.timeout,
                 len(self._in_flight))
        tasks = dict(self._in_flight)
        _, unfinished = await asyncio.wait(tasks, timeout=self.timeout + 1.0)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if unfinished:
            abandoned = [tasks[t].delivery_id for t in unfinished]
            with contextlib.suppress(*store_errors()):
                released = await outbox.release(self.owner, abandoned)
                log.warning("webhooks: %d requests abandoned at stop; %d released to be sent again", len(abandoned),
                            released)

    async def _retrying(self, what: str, action: Callable[[], Awaitable[T]], stop_after: float | None = None) -> T:
        def before_sleep(state: RetryCallState) -> None:
            self.stats.store_retries += 1
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning("webhooks: %s failed (attempt %d: %r); trying again in %.1f s", what, state.attempt_number,
                        error, wait)

        options: dict[str, Any] = {"stop": stop_after_delay(stop_after)} if stop_after is not None else {}
        retrying = AsyncRetrying(retry=retry_if_exception_type(store_errors()), before_sleep=before_sleep,
                                 reraise=True, wait=wait_exponential(multiplier=0.2, min=0.2, max=10.0), **options)
        async def attempt() -> T:  # tenacity awaits only a coroutine function, not a lambda returning a coroutine
            return await action()

        result: T = await retrying(attempt)
        return result


class CannotListen(Exception):
    """The web port of `monitor deliver` could not be opened (taken, not allowed)."""


async def serve_deliverer(deliverer: Deliverer, host: str, port: int,
                          started: Callable[[int], None] | None = None) -> None:
    """Run a deliverer with /metrics and /healthz on host:port until Ctrl-C or SIGTERM, then stop it
    cleanly (see `Deliverer.run`). `started` is called with the port once it listens."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "store": "ok" if deliverer.store_up else "unavailable",
                                  "webhooks": sorted(deliverer.webhooks), "in_flight": deliverer.in_flight,
                                  "delivered": deliverer.stats.delivered, "attempts": deliverer.stats.attempts})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise CannotListen(f"could not listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    if started is not None:
        started(bound)
    try:
        await run_until_stopped(deliverer.run(), name="webhook-deliverer", what="webhooks")
    finally:
        await runner.cleanup()
    s = deliverer.stats
    log.info("webhooks: stopped after %d attempts, %d delivered, %d expired", s.attempts, s.delivered, s.expired)
