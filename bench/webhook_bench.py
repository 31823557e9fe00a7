"""Webhook delivery on SQLite and PostgreSQL: what enqueueing costs the history sink, and how fast one
deliverer empties the outbox to a receiver on loopback.

    python bench/webhook_bench.py                          # 2,000 transitions, 2 webhooks, both backends
    python bench/webhook_bench.py --transitions 5000 --concurrency 32 --backends sqlite

For each backend, in a fresh store (a SQLite file in a temporary directory; a database made for the run
on the PostgreSQL server of MONITOR_TEST_POSTGRES, dropped at the end):

1. **enqueue**: the same alert transitions (batches of 100, as the sink writes them) stored through
   `record_batch` into a store opened without webhooks, then into one opened with two webhooks (one
   automaker each, half of the transitions of a distributor both authorised: 1.5 deliveries per
   transition); transitions/s of each.
2. **deliver**: one deliverer (`monitor.delivery.deliverer.Deliverer`, the given concurrency) sending
   the whole outbox to an aiohttp receiver on 127.0.0.1 that answers 200 at once; deliveries/s from
   its start to the last settled row, and the time from a row's enqueueing to its receipt is not
   measured (they were all enqueued before it started).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.delivery.deliverer import Deliverer
from monitor.delivery.webhooks import Webhook
from monitor.embedded.broker import free_port
from monitor.history.store import ALERT, REGISTRATION, HistoryStore, Source
from monitor.history.tables import WebhookDelivery
from tests.history.records import alert, registration
from tests.postgres import ADMIN_DSN, admin


def transitions(count: int) -> list[dict[str, object]]:
    """`count` transitions: alerts of A1, A2 and distributor D (authorised by both), opened then resolved."""
    out = []
    for index in range(count):
        exporter = ("EXP-A1", "EXP-A2", "EXP-D", "EXP-D")[index % 4]
        number = index // 8 * 2 + (index % 4 == 3)  # two alerts of the distributor's for each of the others'
        resolved = (index // 4) % 2 == 1
        message = alert(number, exporter=exporter, status="resolved" if resolved else "open",
                        resolved_at="2026-03-04T08:00:00Z" if resolved else None)
        out.append({**message, "accountable": [exporter] if exporter != "EXP-D" else ["EXP-D", "EXP-A1", "EXP-A2"]})
    return out


async def fill(url: str, hooks: list[Webhook], messages: list[dict[str, object]], topic: str) -> float:
    store = await HistoryStore.open(url, webhooks=hooks)
    try:
        distributor = registration("EXP-D", role="authorised_distributor", authorised_by=("EXP-A1", "EXP-A2"))
        await store.record_batch([(REGISTRATION, registration(e), Source("r", 0, i))
                                  for i, e in enumerate(("EXP-A1", "EXP-A2"))]
                                 + [(REGISTRATION, distributor, Source("r", 0, 9))])
        started = time.perf_counter()
        for start in range(0, len(messages), 100):
            await store.record_batch([(ALERT, m, Source(topic, 0, start + i))
                                      for i, m in enumerate(messages[start:start + 100])])
        return time.perf_counter() - started
    finally:
        await store.close()


async def run(url: str, count: int, concurrency: int) -> None:
    received = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hooks = [Webhook(id=f"hook-{a}", url=f"http://127.0.0.1:{port}/{a}", secret="bench-secret-0123456789",  # noqa: S106
                     exporters=frozenset({f"EXP-{a.upper()}"})) for a in ("a1", "a2")]
    messages = transitions(count)
    plain = await fill(url, [], messages, "plain")
    enqueued = await fill(url, hooks, messages, "hooked")
    store = await HistoryStore.open(url)
    async with store.read_session() as session:
        total = await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0
    deliverer = Deliverer(store_url=url, webhooks=hooks, concurrency=concurrency, poll_seconds=0.05)
    started = time.perf_counter()
    task = asyncio.create_task(deliverer.run())
    try:
        while deliverer.stats.delivered < total:
            await asyncio.sleep(0.02)
        took = time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
        await runner.cleanup()
    print(f"  enqueue: {count / plain:,.0f} transitions/s without webhooks, {count / enqueued:,.0f} with two "
          f"({total:,} deliveries)")
    print(f"  deliver: {total:,} deliveries in {took:.1f} s = {total / took:,.0f}/s at concurrency {concurrency} "
          f"({received:,} requests received)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        print(backend)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                await run(f"sqlite+aiosqlite:///{directory}/history.sqlite3", args.transitions, args.concurrency)
        else:
            from sqlalchemy.engine import make_url

            name = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
            await admin(f'CREATE DATABASE "{name}"')
            try:
                url = make_url(ADMIN_DSN).set(drivername="postgresql+asyncpg", database=name)
                await run(url.render_as_string(hide_password=False), args.transitions, args.concurrency)
            finally:
                await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
