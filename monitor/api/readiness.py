"""What the API depends on: the history store (opened when first reachable) and the broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from monitor.api.problems import ProblemError
from monitor.history.store import HistoryStore

log = logging.getLogger(__name__)


class StoreHolder:
    """The history store, opened on first use and again after a failed attempt.

    The API starts even when the database is down, so that /healthz answers and /readyz can
    say why it is not ready; routes that need the store answer 503 until it can be opened.
    """

    def __init__(self, url: str, store: HistoryStore | None = None) -> None:
        self.url = url
        self._store = store
        self._owned = store is None  # a store handed in is closed by whoever opened it
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    async def get(self) -> HistoryStore:
        """The open store; raises a 503 problem when it cannot be opened now."""
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._store is None:
                try:
                    self._store = await HistoryStore.open(self.url)
                    self.last_error = None
                except Exception as exc:  # any driver error: the store is simply not there yet
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("history store %s cannot be opened: %s", _redacted(self.url), self.last_error)
                    raise ProblemError(503, "the history store is unavailable; try again shortly",
                                       headers={"Retry-After": "5"}) from exc
        return self._store

    async def close(self) -> None:
        """Close the store if this holder opened it."""
        if self._store is not None and self._owned:
            await self._store.close()
        self._store = None

    async def check(self, timeout: float) -> str | None:
        """None when the store answers within `timeout` seconds, else why not."""
        try:
            store = await asyncio.wait_for(self.get(), timeout)
            if await asyncio.wait_for(store.ping(), timeout):
                return None
            return "the history store did not answer its ping"
        except ProblemError:
            return f"the history store cannot be opened ({self.last_error})"
        except TimeoutError:
            return f"the history store did not answer within {timeout:g} s"
        except Exception as exc:  # whatever the driver raises, readiness reports it
            return f"the history store failed its ping ({type(exc).__name__}: {exc})"


def _redacted(url: str) -> str:
    """The URL without its password, for logs and readiness details."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


async def broker_reachable(bootstrap: str, timeout: float) -> str | None:
    """None when a TCP connection to one of the bootstrap servers opens within `timeout`, else why not.

    A connection is what a Kafka client needs first; it is enough to tell a broker that is down
    or unreachable from one that is up, without the cost of a client and its metadata.
    """
    failures: list[str] = []
    for server in (s.strip() for s in bootstrap.split(",")):
        if not server:
            continue
        host, _, port_text = server.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port_text)
        except ValueError:
            failures.append(f"{server}: not host:port")
            continue
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except TimeoutError:
            failures.append(f"{server}: no answer within {timeout:g} s")
            continue
        except OSError as exc:
            failures.append(f"{server}: {exc.strerror or exc}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return "the broker is unreachable (" + "; ".join(failures or ["no bootstrap server given"]) + ")"
