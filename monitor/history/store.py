"""The history store: alert transitions, figures and registrations kept in SQL (SQLite or PostgreSQL).

One code path for both databases, through SQLAlchemy 2's asyncio API (aiosqlite, asyncpg);
the schema comes from the Alembic migrations beside this module, applied by `HistoryStore.open`.

What it keeps (table names are fixed; readers rely on them):

- `alert_transitions`: every alert message published, appended and never changed, each
  hash-chained to the exporter's previous transition (`monitor.history.chain`). A message
  read again from the same topic offset adds nothing; a republished message equal to the
  alert's latest transition but for `raised_at` is a repeat, kept apart in `alert_repeats`.
- `chain_heads`: the last hash, seq and count of each exporter's chain.
- `alerts`: each alert as its latest transition says.
- `compliance_latest`: the latest ComplianceSnapshot (by as_of) per exporter and market.
- `daily_figures`: per exporter, market ("*" for network_size), obligation and UTC day, the
  figure of the day's last snapshot and whether the obligation held (`monitor.history.daily`).
- `policy_versions`, `registrations`.
- `webhooks`, `webhook_deliveries`: the webhook outbox (`monitor.delivery.outbox`). A store
  opened with webhooks enqueues a delivery of each new alert transition to every webhook
  that may see its exporter, in the transaction that stores the transition.

Every instant given or returned is an aware datetime in UTC; every list comes in a stated,
deterministic order.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from sqlalchemy import Select, and_, event, func, or_, select, text, union
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from monitor.contracts.outputs import AppliedPolicy, ComplianceAlert
from monitor.contracts.registry import ExporterRegistration
from monitor.history.chain import ChainCheck, canonical_json, same_fact, transition_hash
from monitor.history.daily import Part, held_throughout, parts_of
from monitor.history.tables import (
    Alert,
    AlertRepeat,
    AlertTransition,
    ChainHead,
    ComplianceLatest,
    DailyFigure,
    PolicyVersionRow,
    Registration,
)
from monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from monitor.delivery.webhooks import Webhook

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

# the kinds of item `record_batch` takes
ALERT = "alert"
SNAPSHOT = "snapshot"
REGISTRATION = "registration"
KINDS = (ALERT, SNAPSHOT, REGISTRATION)

_MIGRATING = threading.Lock()  # polled, never waited on: the holder may be a coroutine of the same loop
# SQLite has one write lock per file, and its busy handler lets a writer that keeps coming back
# starve the others (a worker's sink and deliverer: "database is locked" after CONNECT_TIMEOUT).
# The writers of a file in one process and event loop take turns on this lock first, in order.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary())
CONNECT_TIMEOUT = 10.0  # seconds: PostgreSQL's connect timeout, SQLite's wait for a writer's lock


class Source(NamedTuple):
    """Where a message was read: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int


def history_url(settings: MonitorSettings) -> str:
    """The store's SQLAlchemy URL: MONITOR_DATABASE_URL, else a SQLite file in the data directory."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite+aiosqlite:///{settings.data_dir / 'history.sqlite3'}"


def applied_policies(versions: Iterable[Any]) -> list[AppliedPolicy]:
    """AppliedPolicy records of policy versions (`PolicyBook.describe`'s PolicyVersion objects)."""
    return [AppliedPolicy(version=v.version, effective_from=v.effective_from.isoformat(),
                          parameters={name: p.model_dump(mode="json") for name, p in v.parameters.items()})
            for v in versions]


# ---- what a message must hold to be stored ---------------------------------------------------------


class _AlertFields(ComplianceAlert):
    # a newer worker may add optional fields: they are kept in the stored message, not refused
    model_config = ConfigDict(extra="ignore", frozen=True)

    opened_at: AwareDatetime
    resolved_at: AwareDatetime | None
    raised_at: AwareDatetime | None


class _SnapshotFields(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    exporter_id: str
    market: str
    as_of: AwareDatetime
    policy_version: str
    response_48h: dict[str, Any]
    parts_inventory: dict[str, Any]
    emergency_coverage: dict[str, Any]
    network_size: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Checked:
    kind: str
    document: dict[str, Any]
    fields: Any
    source: Source | None


def check(kind: str, document: Any) -> None:
    """Raise ValueError (saying why) when `document` cannot be stored as a `kind` item
    ("alert": a ComplianceAlert, "snapshot": a ComplianceSnapshot, "registration": an
    ExporterRegistration); return None when it can."""
    _checked(kind, document, None)


def _checked(kind: str, document: Any, source: Source | None) -> _Checked:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if not isinstance(document, dict):
        raise ValueError(f"a {kind} must be a JSON object, not {type(document).__name__}")
    try:
        if kind == ALERT:
            fields: Any = _AlertFields.model_validate(document)
            canonical_json(document)  # refuses NaN and other values JSON cannot hold
        elif kind == SNAPSHOT:
            fields = _SnapshotFields.model_validate(document)
            canonical_json(document)
        else:
            fields = ExporterRegistration.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(message)'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"not a valid {kind}: {problems}") from None
    return _Checked(kind, document, fields, source)


# ---- the store ---------------------------------------------------------------------------------------


def store_errors() -> tuple[type[BaseException], ...]:
    """The errors of a store that cannot be written now (unreachable, restarting, locked, in conflict with
    another writer): worth trying again. Anything else is a fault to show, not to wait out."""
    import sqlite3

    import asyncpg
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


class HistoryStore:
    """The history store behind one database URL; open it with `await HistoryStore.open(url)`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # writing transactions take SQLite's write lock at once (BEGIN IMMEDIATE): two writers that
        # both read first and then write would otherwise fail instead of waiting for each other
        self._writer = engine.execution_options(history_write=True)
        self.url = engine.url.render_as_string(hide_password=True)
        database = engine.url.database
        self._sqlite_file = (str(Path(database).expanduser().resolve())
                             if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:"
                             else None)
        self.webhooks: tuple[Webhook, ...] = ()  # each new alert transition is enqueued for these

    @classmethod
    async def open(cls, url: str, *, webhooks: Iterable[Webhook] = ()) -> HistoryStore:
        """Connect to the database at `url` and bring its schema up to date (Alembic migrations).

        With `webhooks`, their ids and exporters are recorded, and every alert transition this
        store object stores from now on is enqueued for each of them that may see its exporter.
        A SQLite file's directory is created when missing. Raises SQLAlchemy's or the driver's
        error (OSError for an unreachable server) when the database cannot be reached; nothing
        is left open then.
        """
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, json_serializer=canonical_json, json_deserializer=orjson.loads,
                                     pool_pre_ping=True, connect_args={"timeout": CONNECT_TIMEOUT})
        if parsed.get_backend_name() == "sqlite":
            _sqlite_transactions(engine)
        store = cls(engine)
        try:
            # Alembic keeps the migration in progress in module globals: one at a time per process
            while not _MIGRATING.acquire(blocking=False):
                await asyncio.sleep(0.01)
            try:
                # a reader first: a schema already up to date takes no write lock (SQLite has one, and
                # a worker's sink may hold it while another process opens the store)
                async with engine.connect() as connection:
                    current = await connection.run_sync(_at_head)
                if not current:
                    async with store._writer.begin() as connection:
                        await connection.run_sync(_upgrade)
            finally:
                _MIGRATING.release()
            store.webhooks = tuple(webhooks)
            if store.webhooks:
                from monitor.delivery.outbox import record_webhooks

                async with store._write() as session:
                    await record_webhooks(session, store.webhooks, datetime.now(UTC))
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""
        await self._engine.dispose()

    async def ping(self) -> bool:
        """Whether the database answers a query now (for readiness checks); never raises."""
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready, whatever the driver raised
            log.debug("history store %s does not answer: %r", self.url, exc)
            return False
        return True

    # ---- writing -------------------------------------------------------------------------------------

    async def record_alert(self, message: dict[str, Any], source: Source) -> bool:
        """Store an alert message read at `source`; True when it is a new transition.

        False when that source was stored before (a replay), or when the message equals the
        alert's latest transition but for `raised_at` (a repeat). ValueError when it is not a
        ComplianceAlert.
        """
        return await self.record_batch([(ALERT, message, source)]) == 1

    async def record_snapshot(self, snapshot: dict[str, Any], source: Source) -> bool:
        """Store a ComplianceSnapshot: the latest per exporter and market (by as_of), and the
        daily figures of its UTC day. True when any row changed. ValueError when it is not one."""
        return await self.record_batch([(SNAPSHOT, snapshot, source)]) == 1

    async def record_registration(self, registration: dict[str, Any]) -> bool:
        """Store an exporter's registration from the registry topic (it replaces any earlier
        one); True when it changed what is stored. ValueError when it is not valid."""
        item = _checked(REGISTRATION, registration, None)
        async with self._write() as session:
            return await self._store_registration(session, item.fields, origin="topic")

    async def record_file_registrations(self, registrations: Iterable[Mapping[str, Any]]) -> int:
        """Store registrations read from the registry file; one already received from the registry
        topic is left as it is (the topic wins). Returns how many rows changed."""
        items = [_checked(REGISTRATION, dict(r), None) for r in registrations]
        async with self._write() as session:
            changed = 0
            for item in items:
                changed += await self._store_registration(session, item.fields, origin="file")
        return changed

    async def record_policies(self, versions: list[AppliedPolicy]) -> None:
        """Store policy versions as applied. A version already stored is kept as it was: a
        version's parameters must not change under the same name (a warning is logged when they do)."""
        async with self._write() as session:
            for version in versions:
                parameters = {name: p.model_dump(mode="json") for name, p in version.parameters.items()}
                row = await session.get(PolicyVersionRow, version.version, with_for_update=True)
                if row is None:
                    session.add(PolicyVersionRow(version=version.version,
                                                 effective_from=date.fromisoformat(version.effective_from),
                                                 parameters=parameters))
                elif (canonical_json(row.parameters) != canonical_json(parameters)
                      or row.effective_from.isoformat() != version.effective_from):
                    log.warning("policy version %s differs from the one stored under that name; the stored one is "
                                "kept (give a changed policy a new version name)", version.version)

    async def record_batch(self, items: list[tuple[str, dict[str, Any], Source]]) -> int:
        """Store (kind, document, source) items in one transaction, in order; return how many
        stored something new. Kinds: "alert", "snapshot", "registration" (its source is not kept).

        Every item is checked first: ValueError for the first one that cannot be stored, and
        nothing is written. Database errors propagate with nothing written either.
        """
        return sum((await self.record_batch_counts(items)).values())

    async def record_batch_counts(self, items: list[tuple[str, dict[str, Any], Source]]) -> dict[str, int]:
        """`record_batch`, counting the items that stored something new by kind (every kind present)."""
        checked = [_checked(kind, document, source) for kind, document, source in items]
        counts = dict.fromkeys(KINDS, 0)
        async with self._write() as session:
            for item in checked:
                if item.kind == ALERT:
                    assert item.source is not None  # noqa: S101 - alerts always come with their source
                    counts[ALERT] += await self._store_alert(session, item.document, item.fields, item.source)
                elif item.kind == SNAPSHOT:
                    counts[SNAPSHOT] += await self._store_snapshot(session, item.document, item.fields)
                else:
                    counts[REGISTRATION] += await self._store_registration(session, item.fields, origin="topic")
        return counts

    def _write(self) -> _WriteTransaction:
        turn = None
        if self._sqlite_file is not None:
            locks = _SQLITE_WRITERS.setdefault(asyncio.get_running_loop(), {})
            turn = locks.setdefault(self._sqlite_file, asyncio.Lock())
        return _WriteTransaction(AsyncSession(self._writer, expire_on_commit=False, autoflush=True), turn)

    def write_transaction(self) -> _WriteTransaction:
        """`async with store.write_transaction() as session`: one writing transaction (SQLite's write
        lock taken at its start), committed on a clean exit and rolled back on an error."""
        return self._write()

    def read_session(self) -> AsyncSession:
        """`async with store.read_session() as session`: a session for reading."""
        return self._read()

    async def _store_alert(self, session: AsyncSession, message: dict[str, Any], fields: _AlertFields,
                           source: Source) -> bool:
        where = (AlertTransition.source_topic == source.topic, AlertTransition.source_partition == source.partition,
                 AlertTransition.source_offset == source.offset)
        if await session.scalar(select(AlertTransition.seq).where(*where)) is not None:
            return False
        if await session.get(AlertRepeat, tuple(source)) is not None:
            return False
        # the head row is the exporter's lock: two writers never append to one chain at once
        head = await session.get(ChainHead, fields.exporter_id, with_for_update=True)
        alert = await session.get(Alert, fields.alert_id, with_for_update=True)
        if alert is not None and same_fact(alert.message, message):
            session.add(AlertRepeat(source_topic=source.topic, source_partition=source.partition,
                                    source_offset=source.offset, alert_id=fields.alert_id,
                                    repeats_seq=alert.last_seq, raised_at=fields.raised_at))
            return False
        prev_hash = head.last_hash if head is not None else ""
        digest = transition_hash(prev_hash, message)
        row = AlertTransition(
            exporter_id=fields.exporter_id, alert_id=fields.alert_id, status=fields.status.value,
            severity=fields.severity.value, obligation=fields.obligation.value, market=fields.market,
            subject=fields.subject, opened_at=fields.opened_at, resolved_at=fields.resolved_at,
            raised_at=fields.raised_at, policy_version=fields.policy_version, message=message,
            source_topic=source.topic, source_partition=source.partition, source_offset=source.offset,
            prev_hash=prev_hash, hash=digest)
        session.add(row)
        await session.flush()  # gives the row its seq
        if head is None:
            session.add(ChainHead(exporter_id=fields.exporter_id, last_seq=row.seq, last_hash=digest, count=1))
        else:
            head.last_seq, head.last_hash, head.count = row.seq, digest, head.count + 1
        projection = {
            "exporter_id": fields.exporter_id, "market": fields.market, "obligation": fields.obligation.value,
            "severity": fields.severity.value, "status": fields.status.value, "subject": fields.subject,
            "opened_at": fields.opened_at, "resolved_at": fields.resolved_at, "raised_at": fields.raised_at,
            "changed_at": fields.raised_at or fields.opened_at, "renewal_relevant": fields.renewal_relevant,
            "policy_version": fields.policy_version, "message": message, "last_seq": row.seq,
        }
        if alert is None:
            session.add(Alert(alert_id=fields.alert_id, transitions=1, **projection))
        else:
            for name, value in projection.items():
                setattr(alert, name, value)
            alert.transitions += 1
        if self.webhooks:
            from monitor.delivery.outbox import enqueue_transition

            await enqueue_transition(session, self.webhooks, row, datetime.now(UTC))
        return True

    async def _store_snapshot(self, session: AsyncSession, snapshot: dict[str, Any], fields: _SnapshotFields) -> bool:
        changed = False
        latest = await session.get(ComplianceLatest, (fields.exporter_id, fields.market), with_for_update=True)
        if latest is None:
            session.add(ComplianceLatest(exporter_id=fields.exporter_id, market=fields.market, as_of=fields.as_of,
                                         policy_version=fields.policy_version, snapshot=snapshot))
            changed = True
        elif fields.as_of >= latest.as_of and (fields.as_of > latest.as_of or
                                               canonical_json(latest.snapshot) != canonical_json(snapshot)):
            latest.as_of, latest.policy_version, latest.snapshot = fields.as_of, fields.policy_version, snapshot
            changed = True
        for part in parts_of(snapshot):
            changed |= await self._store_day(session, fields, part)
        return changed

    async def _store_day(self, session: AsyncSession, fields: _SnapshotFields, part: Part) -> bool:
        """One obligation's figure into its day's row: the day's last snapshot gives the figure
        and `met`; `met_all_day` is false once any part of the day was not met, the hours before
        the day's first snapshot included (they had the state of the last snapshot before)."""
        as_of = fields.as_of.astimezone(UTC)
        day = as_of.date()
        key = (fields.exporter_id, part.market, part.obligation, day)
        row = await session.get(DailyFigure, key, with_for_update=True)
        if row is None:
            before = await session.scalar(
                select(DailyFigure).where(DailyFigure.exporter_id == fields.exporter_id,
                                          DailyFigure.market == part.market,
                                          DailyFigure.obligation == part.obligation, DailyFigure.day < day)
                .order_by(DailyFigure.day.desc()).limit(1))
            start = before.met if before is not None else part.met
            if before is not None:
                # the days with no snapshot in between kept the state of the last one
                gap = before.day + timedelta(days=1)
                while gap < day:
                    session.add(DailyFigure(
                        exporter_id=fields.exporter_id, market=part.market, obligation=part.obligation, day=gap,
                        figure=before.figure, met=before.met, met_all_day=before.met, first_as_of=before.last_as_of,
                        last_as_of=before.last_as_of, policy_version=before.policy_version, carried=True))
                    gap += timedelta(days=1)
            session.add(DailyFigure(
                exporter_id=fields.exporter_id, market=part.market, obligation=part.obligation, day=day,
                figure=part.figure, met=part.met, met_all_day=held_throughout(start, part.met), first_as_of=as_of,
                last_as_of=as_of, policy_version=fields.policy_version, carried=False))
            return True
        was = (canonical_json(row.figure), row.met, row.met_all_day, row.first_as_of, row.last_as_of,
               row.policy_version, row.carried)
        row.met_all_day = held_throughout(row.met_all_day, part.met)
        if row.carried:  # the first snapshot of a day that had been carried over from an earlier one
            row.first_as_of = row.last_as_of = as_of
            row.figure, row.met, row.policy_version, row.carried = part.figure, part.met, fields.policy_version, False
        else:
            row.first_as_of = min(row.first_as_of, as_of)
            if as_of >= row.last_as_of:
                row.figure, row.met, row.last_as_of = part.figure, part.met, as_of
                row.policy_version = fields.policy_version
        now = (canonical_json(row.figure), row.met, row.met_all_day, row.first_as_of, row.last_as_of,
               row.policy_version, row.carried)
        return now != was

    async def _store_registration(self, session: AsyncSession, registration: ExporterRegistration, *,
                                  origin: str) -> bool:
        document = registration.model_dump(mode="json")
        row = await session.get(Registration, registration.exporter_id, with_for_update=True)
        if row is None:
            session.add(Registration(exporter_id=registration.exporter_id, registration=document, origin=origin))
            return True
        if origin == "file" and row.origin == "topic":
            return False
        if row.origin == origin and canonical_json(row.registration) == canonical_json(document):
            return False
        row.registration, row.origin = document, origin
        return True

    # ---- reading -------------------------------------------------------------------------------------

    async def exporters(self) -> list[str]:
        """Every exporter id with a registration, an alert or a figure, sorted."""
        query = union(select(Registration.exporter_id), _distinct_leading(Alert.exporter_id),
                      select(ComplianceLatest.exporter_id), _distinct_leading(DailyFigure.exporter_id),
                      select(ChainHead.exporter_id))
        async with self._engine.connect() as connection:
            return sorted(row[0] for row in await connection.execute(query))

    async def registrations(self) -> dict[str, ExporterRegistration]:
        """Every stored registration by exporter id (in id order)."""
        # asked at every API request: the two columns, no ORM object per row
        query = select(Registration.exporter_id, Registration.registration).order_by(Registration.exporter_id)
        async with self._read() as session:
            rows = await session.execute(query)
            return {exporter_id: ExporterRegistration.model_validate(document) for exporter_id, document in rows}

    async def compliance(self, *, exporters: set[str] | None, exporter: str | None = None,
                         market: str | None = None) -> list[dict[str, Any]]:
        """The latest ComplianceSnapshot of each exporter and market, ordered by (exporter, market).

        `exporters`: None for all, else only those ids; `exporter`, `market`: only that one.
        """
        # the documents alone, no ORM object per row: the regulator's list is every exporter x market
        query = select(ComplianceLatest.snapshot).order_by(ComplianceLatest.exporter_id, ComplianceLatest.market)
        query = _visible(query, ComplianceLatest.exporter_id, exporters, exporter)
        if market is not None:
            query = query.where(ComplianceLatest.market == market)
        async with self._read() as session:
            return list(await session.scalars(query))

    async def alerts(self, *, exporters: set[str] | None, exporter: str | None = None, market: str | None = None,
                     obligation: str | None = None, status: str | None = None, since: datetime | None = None,
                     limit: int = 100, after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Alerts as their latest transition says (ComplianceAlert documents), ordered by
        (opened_at, alert_id), at most `limit` of them, and the cursor of the next page (None
        when there is none).

        `exporters`: None for all, else only those ids. The other filters are exact matches,
        but `since`: alerts whose latest transition was raised at or after it (opened_at when
        it has no raised_at). `after`: a cursor from an earlier call. ValueError for a bad
        cursor, a naive `since` or a `limit` below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = _visible(select(Alert.opened_at, Alert.alert_id, Alert.message), Alert.exporter_id, exporters, exporter)
        for column, wanted in ((Alert.market, market), (Alert.obligation, obligation), (Alert.status, status)):
            if wanted is not None:
                query = query.where(column == wanted)
        if since is not None:
            query = query.where(Alert.changed_at >= _aware("since", since))
        if after is not None:
            opened_at, alert_id = decode_cursor(after)
            query = query.where(or_(Alert.opened_at > opened_at,
                                    and_(Alert.opened_at == opened_at, Alert.alert_id > alert_id)))
        query = query.order_by(Alert.opened_at, Alert.alert_id).limit(limit + 1)
        async with self._read() as session:
            rows = list(await session.execute(query))
        page, more = rows[:limit], len(rows) > limit
        return [row.message for row in page], encode_cursor(page[-1].opened_at, page[-1].alert_id) if more else None

    async def transitions(self, alert_id: str) -> list[dict[str, Any]]:
        """Every stored transition of an alert in the order stored: its message plus seq, hash, prev_hash."""
        query = select(AlertTransition).where(AlertTransition.alert_id == alert_id).order_by(AlertTransition.seq)
        async with self._read() as session:
            return [{**row.message, "seq": row.seq, "hash": row.hash, "prev_hash": row.prev_hash}
                    for row in await session.scalars(query)]

    async def history(self, exporter_id: str, *, obligation: str | None = None, start: date | None = None,
                      end: date | None = None) -> list[dict[str, Any]]:
        """An exporter's daily figures from `start` to `end` (UTC days, both included), ordered
        by (day, market, obligation). Each row: exporter_id, market ("*" for network_size),
        obligation, day, figure, met, met_all_day, first_as_of, last_as_of, policy_version,
        carried (true for a day with no snapshot, which kept the state of the last one before).
        """
        # the table's columns, not ORM objects: a year of one exporter is thousands of rows, and
        # building an ORM object for each took twice as long as the rest of the read
        days = DailyFigure.__table__.c
        query = select(*days).where(days.exporter_id == exporter_id)
        if obligation is not None:
            query = query.where(days.obligation == obligation)
        if start is not None:
            query = query.where(days.day >= start)
        if end is not None:
            query = query.where(days.day <= end)
        query = query.order_by(days.day, days.market, days.obligation)
        async with self._engine.connect() as connection:
            return [dict(row._mapping) for row in await connection.execute(query)]

    async def verify_chain(self, exporter_id: str) -> ChainCheck:
        """Check an exporter's chain of alert transitions against their hashes and the chain head.

        Finds a transition whose stored message or columns were changed, one removed from the
        middle (the next one's prev_hash no longer matches), and ones removed from the end (the
        head names more). An exporter with no transitions and no head verifies, with 0.
        """
        query = select(AlertTransition).where(AlertTransition.exporter_id == exporter_id).order_by(AlertTransition.seq)
        count, prev_hash, last_seq = 0, "", None
        async with self._read() as session:
            head = await session.get(ChainHead, exporter_id)
            async for row in await session.stream_scalars(query.execution_options(yield_per=500)):
                count += 1
                problem = _row_problem(row, prev_hash)
                if problem is not None:
                    return ChainCheck(ok=False, transitions=await self._count(session, exporter_id),
                                      first_bad_seq=row.seq, detail=problem)
                prev_hash, last_seq = row.hash, row.seq
        if head is None:
            if count:
                return ChainCheck(ok=False, transitions=count, first_bad_seq=None,
                                  detail=f"{count} transitions but no chain head")
            return ChainCheck(ok=True, transitions=0)
        if (head.count, head.last_seq, head.last_hash) != (count, last_seq, prev_hash):
            return ChainCheck(ok=False, transitions=count, first_bad_seq=head.last_seq,
                              detail=f"the chain head names {head.count} transitions ending at seq {head.last_seq}; "
                                     f"{count} were found, ending at seq {last_seq}: transitions at the end were "
                                     "removed or the head was changed")
        return ChainCheck(ok=True, transitions=count)

    async def _count(self, session: AsyncSession, exporter_id: str) -> int:
        return await session.scalar(select(func.count()).select_from(AlertTransition)
                                    .where(AlertTransition.exporter_id == exporter_id)) or 0

    async def policies(self, versions: Iterable[str] | None = None) -> list[AppliedPolicy]:
        """Stored policy versions (all, or the named ones), ordered by (effective_from, version)."""
        query = select(PolicyVersionRow).order_by(PolicyVersionRow.effective_from, PolicyVersionRow.version)
        if versions is not None:
            query = query.where(PolicyVersionRow.version.in_(sorted(set(versions))))
        async with self._read() as session:
            return [AppliedPolicy.model_validate({"version": row.version,
                                                  "effective_from": row.effective_from.isoformat(),
                                                  "parameters": row.parameters})
                    for row in await session.scalars(query)]

    def _read(self) -> AsyncSession:
        return AsyncSession(self._engine, expire_on_commit=False)


class _WriteTransaction:
    """`async with store._write() as session`: one transaction, committed on a clean exit; on a
    SQLite file, begun once this process's earlier writers of the file are done (`turn`)."""

    def __init__(self, session: AsyncSession, turn: asyncio.Lock | None = None) -> None:
        self.session = session
        self.turn = turn

    async def __aenter__(self) -> AsyncSession:
        if self.turn is not None:
            await self.turn.acquire()
        try:
            await self.session.begin()
        except BaseException:
            await self._done()
            raise
        return self.session

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if kind is None:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self._done()

    async def _done(self) -> None:
        try:
            await self.session.close()
        finally:
            if self.turn is not None:
                self.turn.release()


# ---- helpers -----------------------------------------------------------------------------------------


def _at_head(connection: Connection) -> bool:
    """Whether the database's schema is at the latest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    return set(MigrationContext.configure(connection).get_current_heads()) == heads


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    # a line per Alembic plugin at every start tells an operator nothing; the upgrades themselves still show
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """SQLite with real transactions: BEGIN issued by SQLAlchemy (IMMEDIATE for writers), WAL
    so readers never wait for the writer."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own implicit BEGIN would come too late
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get("history_write")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _distinct_leading(column: Any) -> Select[Any]:
    """The distinct non-null values of `column`, the first column of an index, by one index seek
    per value (a loose index scan, as a recursive query both databases run). A plain DISTINCT
    reads every row, and `daily_figures` has a row per exporter, market, obligation and day:
    millions in a licence year, for a hundred distinct exporters."""
    walk = select(func.min(column).label("value")).cte(f"{column.table.name}_{column.key}_walk", recursive=True)
    following = select(func.min(column)).where(column > walk.c.value).scalar_subquery()
    walk = walk.union_all(select(following).where(walk.c.value.is_not(None)))
    return select(walk.c.value).where(walk.c.value.is_not(None))


def _visible(query: Select[Any], column: Any, exporters: set[str] | None, exporter: str | None) -> Select[Any]:
    if exporters is not None:
        query = query.where(column.in_(sorted(exporters)))
    if exporter is not None:
        query = query.where(column == exporter)
    return query


def _aware(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} {moment.isoformat()} has no UTC offset")
    return moment.astimezone(UTC)


def encode_cursor(opened_at: datetime, alert_id: str) -> str:
    """The opaque cursor of the page after the alert (opened_at, alert_id)."""
    data = orjson.dumps([opened_at.astimezone(UTC).isoformat(), alert_id])
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (opened_at, alert_id) a cursor from `encode_cursor` holds; ValueError for anything else."""
    try:
        data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        opened_at, alert_id = orjson.loads(data)
        moment = datetime.fromisoformat(opened_at)
        if moment.tzinfo is None or not isinstance(alert_id, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ValueError(f"not a cursor this store gave: {cursor!r}") from None
    return moment.astimezone(UTC), alert_id


_COLUMNS = ("exporter_id", "alert_id", "status", "severity", "obligation", "market", "subject", "policy_version")
_INSTANTS = ("opened_at", "resolved_at", "raised_at")


def _row_problem(row: AlertTransition, prev_hash: str) -> str | None:
    """Why a stored transition does not verify after `prev_hash`, or None when it does."""
    message = row.message
    if not isinstance(message, dict):
        return f"seq {row.seq}: its message is not a JSON object"
    if transition_hash(row.prev_hash, message) != row.hash:
        return f"seq {row.seq}: its message does not match its hash (changed after it was stored)"
    for name in _COLUMNS:
        if getattr(row, name) != message.get(name):
            return f"seq {row.seq}: column {name} ({getattr(row, name)!r}) differs from its message " \
                   f"({message.get(name)!r})"
    for name in _INSTANTS:
        stored, published = getattr(row, name), message.get(name)
        try:
            same = (stored is None and published is None) or (
                stored is not None and published is not None and stored == datetime.fromisoformat(published))
        except (TypeError, ValueError):
            same = False
        if not same:
            return f"seq {row.seq}: column {name} ({stored}) differs from its message ({published!r})"
    if row.prev_hash != prev_hash:
        return f"seq {row.seq}: its prev_hash does not match the hash of the exporter's transition before it " \
               "(a transition in between was removed, or one was changed)"
    return None
