"""Each rule at its edge: one side of every boundary of OBLIGATIONS.md and the README (How the rules are read).

Expected values are worked out by hand from the documents; the comments give the arithmetic.
"""

import pytest

from monitor.contracts.policy import PolicyFile
from tests.builders import (
    FOREIGN_VIN,
    LICENCE,
    VIN,
    alert_facts,
    alerts_of,
    counts,
    evaluate,
    figure,
    network,
    outlet,
    registration,
    stock,
    ticket,
    utc,
)

R48 = "response_48h"
OPENED = ticket("e1", "opened", "2026-03-01T10:00:00Z")  # deadline 03-03 10:00Z, warning at 03-02 22:00Z


# --- response_48h: the deadline ------------------------------------------------------------------

def test_answer_at_exactly_48h_in_another_offset_is_compliant() -> None:
    # 13:00+03:00 is 10:00Z: exactly 48:00:00 after the opening
    doc = evaluate([OPENED, ticket("e2", "responded", "2026-03-03T13:00:00+03:00")])
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    assert figure(doc)[R48]["p50_hours"] == 48.0
    assert [a for a in alert_facts(doc, R48) if a[0] == "breach"] == []


def test_answer_at_48h_and_one_second_is_a_breach() -> None:
    doc = evaluate([OPENED, ticket("e2", "responded", "2026-03-03T13:00:01+03:00")])
    assert counts(doc) == {"compliant": 0, "breached": 1, "withdrawn": 0, "pending": 0}
    assert [a for a in alert_facts(doc, R48) if a[0] == "breach"] == [
        ("breach", "resolved", "T-1#1", "KE", "2026-03-03T10:00:00Z", "2026-03-03T10:00:01Z")]


def test_unanswered_with_as_of_equal_to_the_deadline_is_breached() -> None:
    doc = evaluate([OPENED], as_of="2026-03-03T10:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 1, "withdrawn": 0, "pending": 0}
    assert figure(doc)[R48]["ratio"] == 0.0
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#1", "KE", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z"),
        ("breach", "open", "T-1#1", "KE", "2026-03-03T10:00:00Z", None),
    ]


def test_unanswered_one_microsecond_before_the_deadline_is_pending() -> None:
    doc = evaluate([OPENED], as_of="2026-03-03T09:59:59.999999Z")
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 1}
    assert figure(doc)[R48]["ratio"] is None
    assert alert_facts(doc, R48) == [("warning", "open", "T-1#1", "KE", "2026-03-02T22:00:00Z", None)]


# --- response_48h: the at-risk warning at 36 h ------------------------------------------------------

def test_answer_at_exactly_36h_prevents_the_warning() -> None:
    doc = evaluate([OPENED, ticket("e2", "responded", "2026-03-02T22:00:00Z")])
    assert counts(doc)["compliant"] == 1
    assert figure(doc)[R48]["p50_hours"] == 36.0
    assert alert_facts(doc, R48) == []


def test_unanswered_at_exactly_36h_has_an_open_warning() -> None:
    doc = evaluate([OPENED], as_of="2026-03-02T22:00:00Z")
    assert counts(doc)["pending"] == 1
    assert alert_facts(doc, R48) == [("warning", "open", "T-1#1", "KE", "2026-03-02T22:00:00Z", None)]
    warning = alerts_of(doc, R48)[0]
    assert warning["renewal_relevant"] is False


def test_unanswered_one_microsecond_before_36h_has_no_warning() -> None:
    doc = evaluate([OPENED], as_of="2026-03-02T21:59:59.999999Z")
    assert counts(doc)["pending"] == 1
    assert alert_facts(doc, R48) == []


# --- response_48h: cancellation -----------------------------------------------------------------------

def test_cancellation_one_second_before_the_deadline_withdraws_the_cycle() -> None:
    doc = evaluate([OPENED, ticket("e2", "cancelled", "2026-03-03T09:59:59Z")], as_of="2026-03-05T00:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 1, "pending": 0}
    assert figure(doc)[R48]["ratio"] is None
    # at risk from 36 h until the withdrawal; no breach
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#1", "KE", "2026-03-02T22:00:00Z", "2026-03-03T09:59:59Z")]


def test_cancellation_at_the_deadline_itself_withdraws_the_cycle() -> None:
    # README, How the rules are read: withdrawn if the cancellation is "no later than the deadline"
    doc = evaluate([OPENED, ticket("e2", "cancelled", "2026-03-03T10:00:00Z")], as_of="2026-03-05T00:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 1, "pending": 0}
    assert [a for a in alert_facts(doc, R48) if a[0] == "breach"] == []


def test_cancellation_after_the_deadline_leaves_the_breach_standing() -> None:
    doc = evaluate([OPENED, ticket("e2", "cancelled", "2026-03-03T10:00:01Z")], as_of="2026-03-05T00:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 1, "withdrawn": 0, "pending": 0}
    assert figure(doc)[R48]["ratio"] == 0.0
    # the breach alert resolves at the cancellation, but the breach still counts
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#1", "KE", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z"),
        ("breach", "resolved", "T-1#1", "KE", "2026-03-03T10:00:00Z", "2026-03-03T10:00:01Z"),
    ]


# --- response_48h: ratio and percentiles ---------------------------------------------------------------

def test_ratio_and_percentiles_are_null_with_no_cycles() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z")])
    assert figure(doc)[R48] == {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 0,
                                "ratio": None, "p50_hours": None, "p95_hours": None}


def _answered_after(hours: list[float], *, unanswered: int = 0) -> list[dict]:
    events = []
    for n, h in enumerate(hours):
        events.append(ticket(f"o{n}", "opened", "2026-03-01T00:00:00Z", ticket_id=f"T-{n}"))
        answer = f"2026-03-{1 + int(h) // 24:02d}T{int(h) % 24:02d}:00:00Z"
        events.append(ticket(f"r{n}", "responded", answer, ticket_id=f"T-{n}"))
    for n in range(unanswered):
        events.append(ticket(f"u{n}", "opened", "2026-03-01T00:00:00Z", ticket_id=f"U-{n}"))
    return events


def test_percentiles_interpolate_linearly_over_an_odd_set_with_a_late_answer() -> None:
    # response hours 1, 2, 4, 10 (compliant) and 50 (late); one cycle never answered (breached, no hours)
    doc = evaluate(_answered_after([10, 1, 50, 4, 2], unanswered=1), as_of="2026-03-05T00:00:00Z")
    assert counts(doc) == {"compliant": 4, "breached": 2, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == pytest.approx(4 / 6)
    # sorted [1, 2, 4, 10, 50]: p50 at rank 0.5*4 = 2 -> 4; p95 at rank 0.95*4 = 3.8 -> 10 + 0.8*(50-10) = 42
    assert response["p50_hours"] == pytest.approx(4.0)
    assert response["p95_hours"] == pytest.approx(42.0)


def test_percentiles_interpolate_linearly_over_an_even_set() -> None:
    doc = evaluate(_answered_after([4, 1, 10, 2]), as_of="2026-03-05T00:00:00Z")
    response = figure(doc)[R48]
    assert response["ratio"] == 1.0
    # sorted [1, 2, 4, 10]: p50 at rank 1.5 -> 2 + 0.5*2 = 3; p95 at rank 2.85 -> 4 + 0.85*6 = 9.1
    assert response["p50_hours"] == pytest.approx(3.0)
    assert response["p95_hours"] == pytest.approx(9.1)


# --- parts_inventory ----------------------------------------------------------------------------------------

def test_parts_rate_of_exactly_20_percent_is_compliant() -> None:
    # P11 is outside the catalogue P1..P10 and counts neither way; P3 at 0 is not stocked
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 1, "P2": 4, "P3": 0, "P11": 9})])
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 2, "rate": 0.2, "compliant": True}
    assert alert_facts(doc, "parts_inventory") == []


def test_parts_rate_of_10_percent_is_a_breach_from_the_report() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 1, "P2": 0, "P11": 9})])
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 1, "rate": 0.1, "compliant": False}
    assert alert_facts(doc, "parts_inventory") == [("breach", "open", "KE", "KE", "2026-03-01T10:00:00Z", None)]


# --- emergency_coverage: staleness -------------------------------------------------------------------------

HEARTBEAT = outlet("o1", "O1", "2026-03-01T10:00:00Z")


def test_outlet_exactly_24h_old_is_still_active_and_covers_its_market() -> None:
    doc = evaluate([HEARTBEAT], as_of="2026-03-02T10:00:00Z")
    assert figure(doc)["emergency_coverage"] == {"active_outlets": 1, "rescue_outlets": 1, "covered": True,
                                                 "major_market": True}
    assert alert_facts(doc, "emergency_coverage") == []


def test_outlet_24h_and_one_second_old_is_stale_and_the_breach_opens_at_24h() -> None:
    doc = evaluate([HEARTBEAT], as_of="2026-03-02T10:00:01Z")
    assert figure(doc)["emergency_coverage"] == {"active_outlets": 0, "rescue_outlets": 0, "covered": False,
                                                 "major_market": True}
    # opened_at = last status event + stale_after
    assert alert_facts(doc, "emergency_coverage") == [
        ("breach", "open", "KE", "KE", "2026-03-02T10:00:00Z", None)]


# --- authorisation: licence dates in China Standard Time ---------------------------------------------------

@pytest.mark.parametrize(("at", "expected"), [
    ("2025-12-31T23:59:59+08:00",
     [("breach", "open", f"licence:{LICENCE}:not_yet_valid", None, "2025-12-31T15:59:59Z", None)]),
    ("2026-01-01T00:00:00+08:00", []),
    ("2026-12-31T23:59:59+08:00", []),
    ("2027-01-01T00:00:00+08:00",
     [("breach", "open", f"licence:{LICENCE}:expired", None, "2026-12-31T16:00:00Z", None)]),
], ids=["day-before-first", "first-day", "last-day", "day-after-last"])
def test_licence_is_valid_from_its_first_through_its_last_day_in_utc_plus_8(at: str, expected: list) -> None:
    doc = evaluate([outlet("o1", "O1", at)])
    assert alert_facts(doc, "authorisation") == expected


# --- network_size ------------------------------------------------------------------------------------------

def _outlets(operational: int, *, suspended: int = 0) -> list[dict]:
    """Outlets heard from at 03-01 10:00Z, alternating KE / NG and rescue / maintenance-only:
    every operational outlet counts towards the network, whatever its market or capabilities."""
    events = []
    for i in range(1, operational + suspended + 1):
        events.append(outlet(f"o{i}", f"O-{i:02d}", "2026-03-01T10:00:00Z", market="KE" if i % 2 else "NG",
                             rescue=i % 3 != 0, status="operational" if i <= operational else "suspended"))
    return events


def test_category_i_with_51_active_outlets_meets_the_network_minimum() -> None:
    doc = evaluate(_outlets(51), registry=[registration(category="I")])
    assert network(doc) == {"active_outlets": 51, "required": 51, "compliant": True}
    assert alert_facts(doc, "network_size") == []


def test_category_i_with_50_active_outlets_is_a_network_breach() -> None:
    # a 51st outlet that is suspended is not active and does not count
    doc = evaluate(_outlets(50, suspended=1), registry=[registration(category="I")])
    assert network(doc) == {"active_outlets": 50, "required": 51, "compliant": False}
    # judged from the monitoring start (the exporter's first event); exporter-wide: market null
    assert alert_facts(doc, "network_size") == [("breach", "open", "network", None, "2026-03-01T10:00:00Z", None)]


def test_category_i_network_breach_opens_when_an_outlet_goes_stale() -> None:
    # 51 outlets at 03-01 10:00Z; all but O-01 report again at 03-02 09:00Z; O-01 is stale after 03-02 10:00Z
    events = _outlets(51) + [outlet(f"p{i}", f"O-{i:02d}", "2026-03-02T09:00:00Z", market="KE" if i % 2 else "NG",
                                    rescue=i % 3 != 0) for i in range(2, 52)]
    doc = evaluate(events, registry=[registration(category="I")], as_of="2026-03-02T12:00:00Z")
    assert network(doc) == {"active_outlets": 50, "required": 51, "compliant": False}
    assert alert_facts(doc, "network_size") == [("breach", "open", "network", None, "2026-03-02T10:00:00Z", None)]


def test_a_category_without_a_minimum_has_no_requirement() -> None:
    doc = evaluate(_outlets(3), registry=[registration(category="II")])
    assert network(doc) == {"active_outlets": 3, "required": None, "compliant": None}
    assert alert_facts(doc, "network_size") == []


# --- authorisation: registration and brands ------------------------------------------------------------------

def test_unregistered_exporter_raises_a_registration_alert_and_has_no_parts_figure() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T11:00:00Z", {"P1": 5}, exporter="EXP-9"),
                    ticket("e1", "opened", "2026-03-01T10:00:00Z", exporter="EXP-9")])
    assert alert_facts(doc, "authorisation", "EXP-9") == [
        ("breach", "open", "registration", None, "2026-03-01T10:00:00Z", None)]
    assert figure(doc, "KE", "EXP-9")["parts_inventory"] == {"catalogue": None, "stocked": None, "rate": None,
                                                             "compliant": None}
    assert alert_facts(doc, "parts_inventory", "EXP-9") == []
    # its other figures are computed as usual: the ticket is 1 h old
    assert counts(doc, "KE", "EXP-9") == {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 1}


def test_vin_of_a_foreign_manufacturer_raises_one_authorisation_alert_per_ticket() -> None:
    doc = evaluate([ticket("e2", "responded", "2026-03-01T11:00:00Z", vin=FOREIGN_VIN),  # arrives first
                    ticket("e1", "opened", "2026-03-01T10:00:00Z", vin=FOREIGN_VIN),
                    ticket("e3", "opened", "2026-03-01T10:30:00Z", ticket_id="T-2", vin=VIN)])
    grey = alerts_of(doc, "authorisation")
    assert [(a["severity"], a["status"], a["market"], a["opened_at"]) for a in grey] == [
        ("breach", "open", "KE", "2026-03-01T10:00:00Z")]
    assert "T-1" in grey[0]["subject"] and "T-2" not in grey[0]["subject"]
    assert grey[0]["renewal_relevant"] is True
    # the event is still processed: the ticket's response counts
    assert counts(doc)["compliant"] == 1


def test_distributor_may_export_the_brand_of_the_automaker_that_authorised_it() -> None:
    registry = [registration("AUTO-1"),
                registration("DIST-1", role="authorised_distributor", authorised_by=("AUTO-1",), wmi=())]
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", exporter="DIST-1", vin=VIN)], registry=registry)
    assert alerts_of(doc, "authorisation", None) == []


def test_distributor_exporting_another_brand_raises_an_alert_both_answer_for() -> None:
    registry = [registration("AUTO-1"),
                registration("DIST-1", role="authorised_distributor", authorised_by=("AUTO-1",), wmi=())]
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", exporter="DIST-1", vin=VIN),
                    ticket("e2", "opened", "2026-03-01T10:00:00Z", exporter="DIST-1", ticket_id="T-2",
                           vin=FOREIGN_VIN)], registry=registry)
    grey = alerts_of(doc, "authorisation", None)
    assert [(a["exporter_id"], a["market"], a["opened_at"]) for a in grey] == [
        ("DIST-1", "KE", "2026-03-01T10:00:00Z")]
    assert "T-2" in grey[0]["subject"]
    assert sorted(grey[0]["accountable"]) == ["AUTO-1", "DIST-1"]


# --- policy versions -----------------------------------------------------------------------------------------

TWO_VERSIONS = PolicyFile.model_validate([
    {"version": "V-A", "effective_from": "2026-01-01"},
    {"version": "V-B", "effective_from": "2026-03-05", "parameters": {
        "response_48h.deadline_hours": {"value": 24, "status": "official", "source": "amended rules"},
        "response_48h.warn_at_hours": {"value": 12, "status": "official", "source": "amended rules"}}},
])


def test_each_cycle_is_judged_by_the_policy_version_in_force_at_its_start() -> None:
    events = [
        # starts one second before V-B (00:00:00Z of 03-05): 48 h deadline; answered after 30 h -> compliant
        ticket("a1", "opened", "2026-03-04T23:59:59Z", ticket_id="T-A"),
        ticket("a2", "responded", "2026-03-06T05:59:59Z", ticket_id="T-A"),
        # starts at V-B's first instant: 24 h deadline, warning at 12 h; answered after 30 h -> breach
        ticket("b1", "opened", "2026-03-05T00:00:00Z", ticket_id="T-B"),
        ticket("b2", "responded", "2026-03-06T06:00:00Z", ticket_id="T-B"),
    ]
    doc = evaluate(events, policy=TWO_VERSIONS)
    assert counts(doc) == {"compliant": 1, "breached": 1, "withdrawn": 0, "pending": 0}
    assert figure(doc)[R48]["ratio"] == 0.5
    # T-A's warning would be at 36 h (03-06 11:59:59), after its answer: none
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-B#1", "KE", "2026-03-05T12:00:00Z", "2026-03-06T00:00:00Z"),
        ("breach", "resolved", "T-B#1", "KE", "2026-03-06T00:00:00Z", "2026-03-06T06:00:00Z"),
    ]
    assert {a["policy_version"] for a in alerts_of(doc, R48)} == {"V-B"}
    assert doc["policy_versions"] == ["V-A", "V-B"]
    deadlines = {p["version"]: p["parameters"]["response_48h.deadline_hours"]["value"] for p in doc["policies"]}
    assert deadlines == {"V-A": 48, "V-B": 24}


def test_a_version_not_yet_in_force_at_as_of_is_not_named() -> None:
    events = [OPENED, ticket("e2", "responded", "2026-03-01T12:00:00Z")]
    doc = evaluate(events, policy=TWO_VERSIONS, as_of="2026-03-03T00:00:00Z")
    assert doc["policy_versions"] == ["V-A"]
    assert counts(doc)["compliant"] == 1


# --- as_of ------------------------------------------------------------------------------------------------------

AROUND_AS_OF = [OPENED,
                ticket("e2", "responded", "2026-03-02T10:00:00Z"),
                outlet("o1", "O1", "2026-03-02T08:00:00Z"),
                stock("s1", "D1", "2026-03-02T08:00:00Z", {"P1": 1, "P2": 1})]


def test_events_after_as_of_have_not_happened_yet() -> None:
    doc = evaluate(AROUND_AS_OF, as_of="2026-03-02T07:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 1}
    assert figure(doc)["emergency_coverage"]["active_outlets"] == 0
    assert figure(doc)["parts_inventory"]["stocked"] == 0
    assert doc["as_of"] == "2026-03-02T07:00:00Z"


def test_the_same_events_count_once_as_of_has_passed_them() -> None:
    doc = evaluate(AROUND_AS_OF, as_of="2026-03-02T10:00:00Z")
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    assert figure(doc)["emergency_coverage"]["active_outlets"] == 1
    assert figure(doc)["parts_inventory"]["stocked"] == 2


def test_as_of_defaults_to_the_latest_occurred_at() -> None:
    doc = evaluate(AROUND_AS_OF)
    assert doc["as_of"] == "2026-03-02T10:00:00Z"


# --- more edges of the ticket rules ---------------------------------------------------------------------------

def test_answer_at_the_same_instant_as_a_cancellation_counts() -> None:
    # README, How the rules are read: "An answer at the same instant as a cancellation counts."
    doc = evaluate([OPENED, ticket("e2", "cancelled", "2026-03-01T15:00:00Z"),
                    ticket("e3", "responded", "2026-03-01T15:00:00Z")])
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    assert figure(doc)[R48]["p50_hours"] == 5.0


def test_cancellation_strictly_before_the_answer_withdraws_the_cycle() -> None:
    doc = evaluate([OPENED, ticket("e2", "cancelled", "2026-03-01T14:59:59Z"),
                    ticket("e3", "responded", "2026-03-01T15:00:00Z")])
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 1, "pending": 0}
    assert figure(doc)[R48]["p50_hours"] is None


def test_first_cancellation_of_the_cycle_before_its_answer_withdraws_it_even_after_a_resolution() -> None:
    # README, How the rules are read: the answer is "the first responded among [the cycle's events], or, with none, the
    # first resolved" -> the response at 13:00; "Cancellation: the first cancelled of the cycle. If it comes
    # before the answer (strictly earlier) and no later than the deadline, the cycle is withdrawn." -> 12:00
    doc = evaluate([OPENED,
                    ticket("e2", "resolved", "2026-03-01T11:00:00Z"),
                    ticket("e3", "cancelled", "2026-03-01T12:00:00Z"),
                    ticket("e4", "responded", "2026-03-01T13:00:00Z")])
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 1, "pending": 0}


def test_an_answer_before_every_cycle_start_is_a_data_quality_problem_and_does_not_answer() -> None:
    doc = evaluate([ticket("e2", "responded", "2026-03-01T09:00:00Z"), OPENED], as_of="2026-03-04T00:00:00Z")
    # the response precedes the opening: the cycle has no answer and is breached at 03-03 10:00Z
    assert counts(doc) == {"compliant": 0, "breached": 1, "withdrawn": 0, "pending": 0}
    problems = [(d["kind"], d["exporter_id"], d["event_ids"]) for d in doc["data_quality"]]
    assert problems == [("answer_before_cycle_start", "EXP-1", ["e2"])]


def test_window_selects_cycles_by_start_both_ends_inclusive() -> None:
    events = [OPENED, ticket("e2", "responded", "2026-03-01T12:00:00Z")]  # one cycle, started 03-01 10:00Z
    start, before, after = "2026-03-01T10:00:00Z", "2026-03-01T09:59:59.999999Z", "2026-03-01T10:00:00.000001Z"
    for window_from, window_to, compliant in [(start, start, 1), (before, start, 1), (start, after, 1),
                                              (after, None, 0), (None, before, 0)]:
        doc = evaluate(events, window_from=window_from and utc(window_from),
                       window_to=window_to and utc(window_to))
        assert counts(doc)["compliant"] == compliant, (window_from, window_to)
        assert figure(doc)[R48]["ratio"] == (1.0 if compliant else None)


def test_duplicates_are_recognised_within_one_exporter_only() -> None:
    registry = [registration("EXP-1"), registration("EXP-2")]
    # the same event_ids from two exporters are two tickets, not redeliveries
    events = [ticket("e1", "opened", "2026-03-01T10:00:00Z", exporter="EXP-1"),
              ticket("e2", "responded", "2026-03-01T12:00:00Z", exporter="EXP-1"),
              ticket("e1", "opened", "2026-03-01T10:00:00Z", exporter="EXP-2"),
              ticket("e2", "responded", "2026-03-01T14:00:00Z", exporter="EXP-2"),
              ticket("e2", "responded", "2026-03-01T12:00:00Z", exporter="EXP-1")]  # a true redelivery
    doc = evaluate(events, registry=registry)
    assert figure(doc, "KE", "EXP-1")[R48]["p50_hours"] == 2.0
    assert figure(doc, "KE", "EXP-2")[R48]["p50_hours"] == 4.0
    assert counts(doc, "KE", "EXP-1")["compliant"] == 1
    assert doc["data_quality"] == []


# --- more edges of the state obligations -----------------------------------------------------------------------

def test_same_instant_stock_reports_of_one_depot_keep_the_larger_event_id() -> None:
    for order in ([0, 1], [1, 0]):
        reports = [stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 0, "P2": 1}),
                   stock("s2", "D1", "2026-03-01T10:00:00Z", {"P1": 5, "P2": 1})]
        doc = evaluate([reports[i] for i in order])
        assert figure(doc)["parts_inventory"]["stocked"] == 2  # P1 = 5 (s2), P2 = 1


def test_a_report_listing_a_part_twice_counts_the_sum_of_its_lines() -> None:
    report = stock("s1", "D1", "2026-03-01T10:00:00Z", {"P2": 1})
    report["lines"] = [{"part_number": "P1", "quantity_on_hand": 0}, {"part_number": "P1", "quantity_on_hand": 1},
                       {"part_number": "P2", "quantity_on_hand": 1}]
    doc = evaluate([report])
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 2, "rate": 0.2, "compliant": True}


def test_markets_are_judged_from_the_exporters_first_event_or_when_first_named() -> None:
    # major market KE never reported on; NG named by the first event; TH first named a day later
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", market="NG"),
                    ticket("e2", "opened", "2026-03-02T10:00:00Z", market="TH", ticket_id="T-2")],
                   as_of="2026-03-02T12:00:00Z")
    for market in ("KE", "NG", "TH"):
        assert figure(doc, market)["parts_inventory"] == {"catalogue": 10, "stocked": 0, "rate": 0.0,
                                                          "compliant": False}
    assert figure(doc, "KE")["emergency_coverage"] == {"active_outlets": 0, "rescue_outlets": 0, "covered": False,
                                                       "major_market": True}
    assert figure(doc, "TH")["emergency_coverage"] == {"active_outlets": 0, "rescue_outlets": 0, "covered": False,
                                                       "major_market": False}
    assert alert_facts(doc, "parts_inventory") == [
        ("breach", "open", "KE", "KE", "2026-03-01T10:00:00Z", None),
        ("breach", "open", "NG", "NG", "2026-03-01T10:00:00Z", None),
        ("breach", "open", "TH", "TH", "2026-03-02T10:00:00Z", None),
    ]
    # only major markets raise coverage alerts
    assert alert_facts(doc, "emergency_coverage") == [("breach", "open", "KE", "KE", "2026-03-01T10:00:00Z", None)]


def test_a_stale_outlet_heard_from_again_ends_the_coverage_breach() -> None:
    doc = evaluate([HEARTBEAT, outlet("o2", "O1", "2026-03-02T16:00:00Z")])
    assert figure(doc)["emergency_coverage"]["covered"] is True
    assert alert_facts(doc, "emergency_coverage") == [
        ("breach", "resolved", "KE", "KE", "2026-03-02T10:00:00Z", "2026-03-02T16:00:00Z")]


def test_a_suspended_or_rescueless_outlet_does_not_cover_its_market() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z", status="suspended"),
                    outlet("o2", "O2", "2026-03-01T10:00:00Z", rescue=False)])
    assert figure(doc)["emergency_coverage"] == {"active_outlets": 1, "rescue_outlets": 0, "covered": False,
                                                 "major_market": True}
    assert alert_facts(doc, "emergency_coverage") == [("breach", "open", "KE", "KE", "2026-03-01T10:00:00Z", None)]


def test_a_registered_exporter_that_sent_nothing_is_listed_without_alerts() -> None:
    registry = [registration("EXP-1"), registration("EXP-2", major=("NG",))]
    doc = evaluate([OPENED], registry=registry)
    assert figure(doc, "NG", "EXP-2")["parts_inventory"] == {"catalogue": 10, "stocked": 0, "rate": 0.0,
                                                             "compliant": False}
    assert [a for a in doc["alerts"] if a["exporter_id"] == "EXP-2"] == []
    assert [(d["kind"], d["exporter_id"]) for d in doc["data_quality"]] == [("silent_exporter", "EXP-2")]
