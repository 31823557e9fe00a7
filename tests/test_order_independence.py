"""Figures, alerts and data quality depend on event time, never on arrival order or redelivery.

OBLIGATIONS.md, Time: "events may arrive late, duplicated, or out of order, and the result must be
the same as if they had arrived sorted. Duplicates are recognised by event_id."
"""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import FOREIGN_VIN, VIN, evaluate, outlet, registration, stock, ticket

START = datetime(2026, 3, 1, tzinfo=UTC)
TEN_DAYS_IN_MINUTES = 10 * 24 * 60
REGISTRY = [
    registration("EXP-1", category="I", major=("KE", "NG"),
                 parts={"*": ["P1", "P2", "P3", "P4"], "KE": ["P5"]}),
    registration("EXP-2", role="authorised_distributor", authorised_by=("EXP-1",), wmi=(), major=("NG", "TH"),
                 parts={"*": ["P1", "P2"]}),
]
OFFSETS = [UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-5)),
           timezone(timedelta(hours=5, minutes=30))]
exporters = st.sampled_from(["EXP-1", "EXP-2"])
markets = st.sampled_from(["KE", "NG", "TH"])


@st.composite
def instants(draw: st.DrawFn) -> str:
    """A moment in ~10 days, often on a coarse grid so that same-instant events are common,
    written in one of several offsets."""
    minute = draw(st.integers(0, TEN_DAYS_IN_MINUTES))
    if draw(st.booleans()):
        minute = minute // 360 * 360  # 6-hour grid
    moment = START + timedelta(minutes=minute)
    return moment.astimezone(draw(st.sampled_from(OFFSETS))).isoformat()


@st.composite
def networks(draw: st.DrawFn) -> list[dict]:
    events: list[dict] = []
    for n in range(draw(st.integers(0, 6))):
        exporter, market = draw(exporters), draw(markets)
        vin = draw(st.sampled_from([VIN, VIN, FOREIGN_VIN]))
        kinds = draw(st.lists(st.sampled_from(["opened", "responded", "resolved", "reopened", "cancelled"]),
                              min_size=1, max_size=6))
        if draw(st.booleans()):
            kinds = ["opened", *kinds]
        for step, kind in enumerate(kinds):
            events.append(ticket(f"t{n}.{step}", kind, draw(instants()), ticket_id=f"T-{n}", exporter=exporter,
                                 market=market, vin=vin))
    for n in range(draw(st.integers(0, 6))):
        lines = draw(st.dictionaries(st.sampled_from(["P1", "P2", "P3", "P5", "X9"]), st.integers(0, 2),
                                     min_size=1, max_size=4))
        events.append(stock(f"s{n}", draw(st.sampled_from(["D1", "D2"])), draw(instants()), lines,
                            exporter=draw(exporters), market=draw(markets)))
    for n in range(draw(st.integers(0, 8))):
        events.append(outlet(f"o{n}", draw(st.sampled_from(["O1", "O2", "O3"])), draw(instants()),
                             status=draw(st.sampled_from(["operational", "operational", "suspended", "closed"])),
                             rescue=draw(st.booleans()), exporter=draw(exporters), market=draw(markets)))
    return events


def _in_time_order(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))


AS_OF_CHOICES = st.sampled_from(["2026-03-05T12:00:00Z", "2026-03-12T00:00:00Z"])
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(events=networks(), as_of=AS_OF_CHOICES, data=st.data())
def test_shuffling_never_changes_the_document(events: list[dict], as_of: str, data: st.DataObject) -> None:
    expected = evaluate(_in_time_order(events), registry=REGISTRY, as_of=as_of)
    shuffled = data.draw(st.permutations(events), label="arrival order")
    assert evaluate(shuffled, registry=REGISTRY, as_of=as_of) == expected


@SETTINGS
@given(events=networks(), as_of=AS_OF_CHOICES, data=st.data())
def test_redelivered_duplicates_never_change_the_document(events: list[dict], as_of: str,
                                                          data: st.DataObject) -> None:
    expected = evaluate(_in_time_order(events), registry=REGISTRY, as_of=as_of)
    repeats = data.draw(st.lists(st.sampled_from(events), min_size=1, max_size=8), label="redelivered") \
        if events else []
    arrival = data.draw(st.permutations(events + [dict(e) for e in repeats]), label="arrival order")
    got = evaluate(arrival, registry=REGISTRY, as_of=as_of)
    assert got["figures"] == expected["figures"]
    assert got["exporters"] == expected["exporters"]
    assert got["alerts"] == expected["alerts"]
    assert got["data_quality"] == expected["data_quality"]
    assert got == expected


@SETTINGS
@given(events=networks(), data=st.data())
def test_default_as_of_is_the_same_for_any_arrival_order(events: list[dict], data: st.DataObject) -> None:
    expected = evaluate(_in_time_order(events), registry=REGISTRY)
    arrival = data.draw(st.permutations(events + events[:3]), label="arrival order")
    assert evaluate(arrival, registry=REGISTRY) == expected


def test_conflicting_duplicates_give_the_same_document_in_any_arrival_order() -> None:
    # two different messages share event_id e2: the one that sorts first by (occurred_at, canonical JSON),
    # the response at 11:00Z, is kept (README, How the rules are read: Time) -> response time 1 h in every arrival order
    opened = ticket("e1", "opened", "2026-03-01T10:00:00Z")
    late = ticket("e2", "responded", "2026-03-01T12:00:00Z")
    early = ticket("e2", "responded", "2026-03-01T11:00:00Z")
    orders = [[opened, late, early], [opened, early, late], [late, early, opened], [early, opened, late]]
    docs = [evaluate(order, registry=[registration("EXP-1")], as_of="2026-03-02T00:00:00Z") for order in orders]
    for doc in docs:
        ke = next(f for f in doc["figures"] if f["exporter_id"] == "EXP-1" and f["market"] == "KE")
        assert ke["response_48h"]["p50_hours"] == 1.0
        assert [(d["kind"], d["exporter_id"], d["event_ids"]) for d in doc["data_quality"]] == [
            ("conflicting_duplicate", "EXP-1", ["e2"])]
    for doc in docs[1:]:
        assert doc["figures"] == docs[0]["figures"]
        assert doc["alerts"] == docs[0]["alerts"]
        assert doc["data_quality"] == docs[0]["data_quality"]
