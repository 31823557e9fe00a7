"""The history store on real SQLite and real PostgreSQL: migrations, idempotent writes, the hash chain, reads.

Every test runs on both databases (the `store_url` fixture), through the one code path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, inspect, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.contracts.policy import DEFAULT_POLICY, Parameter, PolicyFile, PolicyVersion, SourceStatus
from monitor.history.chain import transition_hash
from monitor.history.store import ALERT, REGISTRATION, SNAPSHOT, HistoryStore, Source, applied_policies
from monitor.history.tables import AlertTransition, Base
from monitor.obligations.policy import PolicyBook
from tests.history.records import TABLES, alert, dump, registration, snapshot


def source(offset: int, partition: int = 0, topic: str = "aftersales.alerts") -> Source:
    return Source(topic, partition, offset)


async def execute(url: str, statement: Any) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(statement)
    finally:
        await engine.dispose()


# ---- migrations ---------------------------------------------------------------------------------------


async def test_migrations_make_the_whole_schema_from_an_empty_database(store_url: str) -> None:
    store = await HistoryStore.open(store_url)
    await store.close()
    again = await HistoryStore.open(store_url)  # opening a current store changes nothing
    await again.close()
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as connection:
            names = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            differences = await connection.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    assert names == TABLES | {"alembic_version"}
    assert version == "0002"
    assert differences == [], "the migrations and the models describe different schemas"


# ---- alerts, the chain, idempotence ----------------------------------------------------------------------


async def test_transitions_are_chained_per_exporter(store: HistoryStore) -> None:
    assert await store.record_alert(alert(1), source(0))
    assert await store.record_alert(alert(1, exporter="EXP-2"), source(1))
    assert await store.record_alert(alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z",
                                          raised_at="2026-03-04T08:00:02Z"), source(2))
    first, second = await store.transitions("EXP-1/A1")
    assert first["prev_hash"] == ""
    assert first["hash"] == transition_hash("", alert(1))
    assert second["prev_hash"] == first["hash"]  # EXP-2's transition in between is in its own chain
    assert second["status"] == "resolved" and second["seq"] > first["seq"]
    [other] = await store.transitions("EXP-2/A1")
    assert other["prev_hash"] == ""
    assert (await store.verify_chain("EXP-1")).model_dump() == {
        "ok": True, "transitions": 2, "first_bad_seq": None, "detail": None}
    assert (await store.verify_chain("EXP-2")).ok
    assert (await store.verify_chain("EXP-9")).model_dump()["transitions"] == 0


async def test_reading_a_topic_again_leaves_the_same_rows(store: HistoryStore, store_url: str) -> None:
    items: list[tuple[str, dict[str, Any], Source]] = [
        (REGISTRATION, registration("EXP-1"), source(0, topic="aftersales.registry")),
        (ALERT, alert(1), source(0)),
        (ALERT, alert(2, market=None, obligation="network_size"), source(1)),
        (SNAPSHOT, snapshot("2026-03-03T10:00:00Z"), source(0, topic="aftersales.compliance")),
        (ALERT, alert(1, raised_at="2026-03-03T10:05:00Z"), source(2)),  # a repeat
        (ALERT, alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z"), source(3)),
        (SNAPSHOT, snapshot("2026-03-05T10:00:00Z", parts_compliant=False), source(1, topic="aftersales.compliance")),
    ]
    assert await store.record_batch(items) == 6
    before = await dump(store_url)
    assert await store.record_batch(items) == 0
    for kind, document, where in items:  # and one at a time
        method = {ALERT: store.record_alert, SNAPSHOT: store.record_snapshot}.get(kind)
        assert not (await method(document, where) if method else await store.record_registration(document))
    assert await dump(store_url) == before
    assert len(before["alert_transitions"]) == 3
    assert (await store.verify_chain("EXP-1")).ok


async def test_a_republished_repeat_of_the_latest_transition_is_not_stored(store: HistoryStore) -> None:
    assert await store.record_alert(alert(1, raised_at="2026-03-03T10:00:01Z"), source(10))
    assert not await store.record_alert(alert(1, raised_at="2026-03-03T11:30:00Z"), source(11))
    assert await store.record_alert(alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z"), source(12))
    # read again: the repeat is recognised by its offset, though it now differs from the latest transition
    assert not await store.record_alert(alert(1, raised_at="2026-03-03T11:30:00Z"), source(11))
    assert not await store.record_alert(alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z",
                                              raised_at="2026-03-05T00:00:00Z"), source(13))
    assert [t["status"] for t in await store.transitions("EXP-1/A1")] == ["open", "resolved"]
    [latest], _ = await store.alerts(exporters=None)
    assert latest == alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z")
    # a message that differs in anything else than raised_at is a transition
    assert await store.record_alert(alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z",
                                          evidence={"ticket_id": "T-1", "answered": "2026-03-04T07:00:00Z"}),
                                    source(14))


async def test_a_bad_message_is_refused_before_anything_is_written(store: HistoryStore) -> None:
    naive = alert(2, opened_at="2026-03-03T10:00:00")
    with pytest.raises(ValueError, match="opened_at"):
        await store.record_batch([(ALERT, alert(1), source(0)), (ALERT, naive, source(1))])
    with pytest.raises(ValueError, match="exporter_id"):
        await store.record_snapshot({"market": "KE"}, source(0))
    with pytest.raises(ValueError, match="unknown kind"):
        await store.record_batch([("ticket", {}, source(0))])
    assert await store.alerts(exporters=None) == ([], None)


# ---- the chain finds what was changed --------------------------------------------------------------------


async def chained(store: HistoryStore, url: str) -> list[int]:
    """Five transitions of EXP-1 (alerts 1..3) and two of EXP-2 between them; EXP-1's seqs."""
    messages = [alert(1), alert(2), alert(1, exporter="EXP-2"), alert(3),
                alert(1, status="resolved", resolved_at="2026-03-04T08:00:00Z"), alert(2, exporter="EXP-2"),
                alert(2, status="retracted")]
    for offset, message in enumerate(messages):
        assert await store.record_alert(message, source(offset))
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(AlertTransition.seq).where(AlertTransition.exporter_id == "EXP-1")
                                            .order_by(AlertTransition.seq))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def test_the_chain_shows_a_transition_edited_in_place(store: HistoryStore, store_url: str) -> None:
    seqs = await chained(store, store_url)
    edited = {**alert(3), "severity": "warning"}
    await execute(store_url, update(AlertTransition).where(AlertTransition.seq == seqs[2]).values(message=edited))
    check = await store.verify_chain("EXP-1")
    assert not check.ok and check.first_bad_seq == seqs[2] and "hash" in (check.detail or "")
    assert check.transitions == 5
    assert (await store.verify_chain("EXP-2")).ok


async def test_the_chain_shows_a_column_edited_apart_from_its_message(store: HistoryStore, store_url: str) -> None:
    seqs = await chained(store, store_url)
    await execute(store_url, update(AlertTransition).where(AlertTransition.seq == seqs[1]).values(status="resolved"))
    check = await store.verify_chain("EXP-1")
    assert not check.ok and check.first_bad_seq == seqs[1] and "status" in (check.detail or "")
    await execute(store_url, update(AlertTransition).where(AlertTransition.seq == seqs[1]).values(status="open"))
    assert (await store.verify_chain("EXP-1")).ok
    moved = datetime(2026, 3, 1, tzinfo=UTC)
    await execute(store_url, update(AlertTransition).where(AlertTransition.seq == seqs[3]).values(opened_at=moved))
    check = await store.verify_chain("EXP-1")
    assert not check.ok and check.first_bad_seq == seqs[3] and "opened_at" in (check.detail or "")


async def test_the_chain_shows_a_transition_deleted_from_the_middle(store: HistoryStore, store_url: str) -> None:
    seqs = await chained(store, store_url)
    await execute(store_url, delete(AlertTransition).where(AlertTransition.seq == seqs[2]))
    check = await store.verify_chain("EXP-1")
    assert not check.ok and check.first_bad_seq == seqs[3] and "removed" in (check.detail or "")
    assert check.transitions == 4
    assert (await store.verify_chain("EXP-2")).ok


async def test_the_chain_shows_transitions_deleted_from_the_end(store: HistoryStore, store_url: str) -> None:
    seqs = await chained(store, store_url)
    await execute(store_url, delete(AlertTransition).where(AlertTransition.seq == seqs[-1]))
    check = await store.verify_chain("EXP-1")
    assert not check.ok and check.first_bad_seq == seqs[-1] and "end" in (check.detail or "")
    await execute(store_url, delete(AlertTransition).where(AlertTransition.exporter_id == "EXP-1"))
    check = await store.verify_chain("EXP-1")
    assert not check.ok and check.transitions == 0
    assert (await store.verify_chain("EXP-2")).ok


# ---- reading ----------------------------------------------------------------------------------------------


async def test_alerts_are_filtered_restricted_and_paged(store: HistoryStore) -> None:
    messages = [
        alert(1, opened_at="2026-03-01T10:00:00Z", raised_at="2026-03-01T10:00:01Z"),
        alert(2, opened_at="2026-03-01T10:00:00Z", raised_at="2026-03-02T00:00:00Z", market="NG"),
        alert(3, opened_at="2026-03-02T10:00:00Z", raised_at=None, obligation="parts_inventory"),
        alert(4, opened_at="2026-03-03T10:00:00Z", raised_at="2026-03-03T10:00:01Z", severity="warning"),
        alert(1, exporter="EXP-2", opened_at="2026-03-01T12:00:00Z"),
        alert(2, exporter="EXP-2", opened_at="2026-03-04T12:00:00Z", market=None, obligation="network_size"),
        alert(1, exporter="EXP-3", opened_at="2026-03-05T12:00:00Z"),
    ]
    for offset, message in enumerate(messages):
        await store.record_alert(message, source(offset))
    await store.record_alert(alert(4, opened_at="2026-03-03T10:00:00Z", raised_at="2026-03-06T09:00:00Z",
                                   severity="warning", status="resolved", resolved_at="2026-03-06T08:00:00Z"),
                             source(99))

    everything, cursor = await store.alerts(exporters=None)
    assert cursor is None
    ids = [a["alert_id"] for a in everything]
    assert ids == ["EXP-1/A1", "EXP-1/A2", "EXP-2/A1", "EXP-1/A3", "EXP-1/A4", "EXP-2/A2", "EXP-3/A1"]

    pages, after = [], None
    while True:
        page, after = await store.alerts(exporters=None, limit=3, after=after)
        pages.append([a["alert_id"] for a in page])
        if after is None:
            break
    assert pages == [ids[:3], ids[3:6], ids[6:]]

    async def alert_ids(**filters: Any) -> list[str]:
        found, _ = await store.alerts(**{"exporters": None, **filters})
        return [a["alert_id"] for a in found]

    assert await alert_ids(exporters={"EXP-2", "EXP-3"}) == ["EXP-2/A1", "EXP-2/A2", "EXP-3/A1"]
    assert await alert_ids(exporters=set()) == []
    assert await alert_ids(exporters={"EXP-2"}, exporter="EXP-1") == []
    assert await alert_ids(exporter="EXP-1", market="NG") == ["EXP-1/A2"]
    assert await alert_ids(obligation="network_size") == ["EXP-2/A2"]
    assert await alert_ids(status="resolved") == ["EXP-1/A4"]
    # since: the latest transition's raised_at, else opened_at
    assert await alert_ids(since=datetime(2026, 3, 2, tzinfo=UTC)) == [
        "EXP-1/A2", "EXP-2/A1", "EXP-1/A3", "EXP-1/A4", "EXP-2/A2", "EXP-3/A1"]
    assert await alert_ids(since=datetime(2026, 3, 6, 9, tzinfo=UTC), exporters={"EXP-1"}) == ["EXP-1/A4"]
    assert (await store.alerts(exporters=None, exporter="EXP-1", limit=2))[1] is not None

    with pytest.raises(ValueError, match="cursor"):
        await store.alerts(exporters=None, after="not-a-cursor")
    with pytest.raises(ValueError, match="offset"):
        await store.alerts(exporters=None, since=datetime(2026, 3, 1))  # noqa: DTZ001 - the naive one refused
    with pytest.raises(ValueError, match="limit"):
        await store.alerts(exporters=None, limit=0)


async def test_latest_compliance_by_exporter_and_market(store: HistoryStore) -> None:
    await store.record_snapshot(snapshot("2026-03-02T10:00:00Z", market="KE"), source(0))
    await store.record_snapshot(snapshot("2026-03-02T10:00:00Z", market="NG", major=False), source(1))
    await store.record_snapshot(snapshot("2026-03-02T11:00:00Z", exporter="EXP-2"), source(2))
    assert await store.record_snapshot(snapshot("2026-03-03T10:00:00Z", market="KE", covered=False), source(3))
    # an older snapshot read late does not replace the latest
    await store.record_snapshot(snapshot("2026-03-01T10:00:00Z", market="KE"), source(4))
    rows = await store.compliance(exporters=None)
    assert [(r["exporter_id"], r["market"], r["as_of"]) for r in rows] == [
        ("EXP-1", "KE", "2026-03-03T10:00:00Z"), ("EXP-1", "NG", "2026-03-02T10:00:00Z"),
        ("EXP-2", "KE", "2026-03-02T11:00:00Z")]
    assert rows[0]["emergency_coverage"]["covered"] is False
    assert [r["market"] for r in await store.compliance(exporters={"EXP-1"}, market="NG")] == ["NG"]
    assert await store.compliance(exporters={"EXP-1"}, exporter="EXP-2") == []
    assert [r["exporter_id"] for r in await store.compliance(exporters=None, exporter="EXP-2")] == ["EXP-2"]


async def test_daily_figures_hold_the_days_last_figure_and_whether_it_held_all_day(store: HistoryStore) -> None:
    def snap(at: str, **kw: Any) -> dict[str, Any]:
        return snapshot(at, **kw)

    await store.record_snapshot(snap("2026-03-01T08:00:00Z", parts_compliant=True), source(0))
    await store.record_snapshot(snap("2026-03-01T12:00:00Z", parts_compliant=False, compliant=5), source(1))
    await store.record_snapshot(snap("2026-03-01T20:00:00Z", parts_compliant=True, compliant=6), source(2))
    # 03-02 and 03-03 have no snapshot; 03-04 starts in the state 03-01 ended in
    await store.record_snapshot(snap("2026-03-04T09:00:00Z", parts_compliant=True, covered=False), source(3))
    await store.record_snapshot(snap("2026-03-05T09:00:00Z", parts_compliant=False, covered=True), source(4))
    await store.record_snapshot(snap("2026-03-06T09:00:00Z", parts_compliant=True), source(5))

    parts = await store.history("EXP-1", obligation="parts_inventory")
    assert [(str(r["day"]), r["met"], r["met_all_day"], r["carried"]) for r in parts] == [
        ("2026-03-01", True, False, False),  # compliant at the end, not all day
        ("2026-03-02", True, True, True),
        ("2026-03-03", True, True, True),
        ("2026-03-04", True, True, False),
        ("2026-03-05", False, False, False),
        ("2026-03-06", True, False, False),  # breached from the day before until 09:00
    ]
    first = parts[0]
    assert first["first_as_of"] == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert first["last_as_of"] == datetime(2026, 3, 1, 20, tzinfo=UTC)
    assert first["figure"]["rate"] == 0.3 and first["policy_version"] == "2026.1"

    response = await store.history("EXP-1", obligation="response_48h", start=date(2026, 3, 1), end=date(2026, 3, 1))
    assert [(r["figure"]["compliant"], r["met"], r["met_all_day"]) for r in response] == [(6, None, None)]
    coverage = await store.history("EXP-1", obligation="emergency_coverage", start=date(2026, 3, 4),
                                   end=date(2026, 3, 5))
    assert [(r["met"], r["met_all_day"]) for r in coverage] == [(False, False), (True, False)]
    network = await store.history("EXP-1", obligation="network_size", end=date(2026, 3, 1))
    assert [(r["market"], r["met"], r["met_all_day"]) for r in network] == [("*", False, False)]
    day = await store.history("EXP-1", start=date(2026, 3, 6), end=date(2026, 3, 6))
    assert [(r["market"], r["obligation"]) for r in day] == [
        ("*", "network_size"), ("KE", "emergency_coverage"), ("KE", "parts_inventory"), ("KE", "response_48h")]
    assert await store.history("EXP-2") == []


async def test_registrations_from_the_topic_win_over_the_file(store: HistoryStore) -> None:
    assert await store.record_file_registrations([registration("EXP-1", name="from file"),
                                                  registration("EXP-2", name="from file")]) == 2
    assert await store.record_registration(registration("EXP-1", name="from topic"))
    assert not await store.record_registration(registration("EXP-1", name="from topic"))
    assert await store.record_file_registrations([registration("EXP-1", name="file, later"),
                                                  registration("EXP-2", name="file, later")]) == 1
    stored = await store.registrations()
    assert list(stored) == ["EXP-1", "EXP-2"]
    assert (stored["EXP-1"].name, stored["EXP-2"].name) == ("from topic", "file, later")


async def test_policy_versions_are_recorded_once_and_read_back(store: HistoryStore) -> None:
    changed = PolicyVersion(version="2026.2", effective_from=date(2026, 7, 1), parameters={
        "parts_inventory.min_rate": Parameter(value=0.25, status=SourceStatus.official, source="notice 2026-6")})
    book = PolicyBook(PolicyFile([*DEFAULT_POLICY.root, changed]))
    versions = applied_policies(book.describe(["2026.1", "2026.2"]))
    await store.record_policies(versions)
    await store.record_policies(versions)
    renamed = applied_policies(PolicyBook(PolicyFile([changed.model_copy(update={"parameters": {}})])).describe(
        ["2026.2"]))
    await store.record_policies(renamed)  # the same name with other parameters: the first is kept
    assert await store.policies() == versions
    [later] = await store.policies(["2026.2", "1999.1"])
    assert later.parameters["parts_inventory.min_rate"].value == 0.25
    assert later.parameters["parts_inventory.min_rate"].status == "official"
    assert later.effective_from == "2026-07-01"


async def test_exporters_are_those_with_any_data(store: HistoryStore) -> None:
    assert await store.exporters() == []
    assert await store.ping()
    await store.record_registration(registration("EXP-3"))
    await store.record_alert(alert(1, exporter="EXP-2"), source(0))
    await store.record_snapshot(snapshot("2026-03-01T00:00:00Z", exporter="EXP-1"), source(1))
    assert await store.exporters() == ["EXP-1", "EXP-2", "EXP-3"]


async def test_a_store_that_cannot_be_reached_is_not_opened() -> None:
    with pytest.raises(OSError):
        await HistoryStore.open("postgresql+asyncpg://postgres@127.0.0.1:1/none")
