"""Figures and alerts depend on event time, never on arrival order or redelivery."""

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scenario import evaluate, outlet, registration, stock, ticket

START = datetime(2026, 3, 1, tzinfo=UTC)
AS_OF = "2026-03-12T00:00:00Z"
REGISTRY = [registration("EXP-1", category="I", major=("KE", "NG")),
            registration("EXP-2", major=("NG",), parts=4)]


def _at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


@st.composite
def networks(draw: st.DrawFn) -> list[dict]:
    """Tickets with arbitrary life cycles, stock reports and outlet heartbeats over ~10 days."""
    events: list[dict] = []
    minutes = st.integers(min_value=0, max_value=10 * 24 * 60)
    exporters = st.sampled_from(["EXP-1", "EXP-2"])
    markets = st.sampled_from(["KE", "NG", "TH"])
    for n in range(draw(st.integers(min_value=0, max_value=8))):
        exporter, market = draw(exporters), draw(markets)
        kinds = draw(st.lists(st.sampled_from(["opened", "responded", "resolved", "reopened", "cancelled"]),
                              min_size=1, max_size=6))
        for step, kind in enumerate(kinds):
            # coarse times make same-instant events (and ties in the rules) likely
            events.append(ticket(f"t{n}-{step}", kind, _at(draw(minutes) // 600 * 600), ticket_id=f"T-{n}",
                                 exporter=exporter, market=market))
    for n in range(draw(st.integers(min_value=0, max_value=8))):
        lines = draw(st.lists(st.tuples(st.sampled_from(["P1", "P2", "P3", "X"]), st.integers(0, 2)),
                              min_size=1, max_size=3))
        events.append(stock(f"s{n}", f"D{draw(st.integers(0, 1))}", _at(draw(minutes)), *lines,
                            exporter=draw(exporters), market=draw(markets)))
    for n in range(draw(st.integers(min_value=0, max_value=10))):
        events.append(outlet(f"o{n}", f"O{draw(st.integers(0, 2))}", _at(draw(minutes) // 720 * 720),
                             status=draw(st.sampled_from(["operational", "operational", "suspended"])),
                             rescue=draw(st.booleans()), exporter=draw(exporters), market=draw(markets)))
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=networks(), data=st.data())
def test_shuffled_and_duplicated_input_gives_the_same_document(events: list[dict], data: st.DataObject) -> None:
    in_order = sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]))
    expected = evaluate(in_order, registry=REGISTRY, as_of=AS_OF)

    shuffled = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    redelivered = data.draw(st.permutations(shuffled + repeats))
    assert evaluate(redelivered, registry=REGISTRY, as_of=AS_OF) == expected
