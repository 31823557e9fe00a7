"""Every row of OBLIGATIONS.md "Worked examples (default policy)", times read as UTC.

Default policy: deadline 48 h, at-risk warning at 36 h, min rate 0.20, min quantity 1.
Per the README (How the rules are read), the warning opens at start + 36 h when the cycle is still unanswered
then, and resolves at the answer, the withdrawal or the deadline, whichever comes first; the breach
opens at the deadline and resolves at a late answer.  Registration: category II (no network
minimum), major market KE; every test looks only at the obligation it is about.
"""

import pytest

from tests.builders import alert_facts, alerts_of, counts, evaluate, figure, registration, stock, ticket

R48 = "response_48h"


def test_row1_responded_at_exactly_48h_is_compliant() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-03T10:00:00Z")])
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == 1.0
    assert response["p50_hours"] == 48.0
    assert response["p95_hours"] == 48.0
    # still unanswered at 36 h (03-02 22:00): at risk until the answer at 03-03 10:00; no breach
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#1", "KE", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z")]


def test_row2_responded_one_second_late_is_breached_at_the_deadline() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-03T10:00:01Z")])
    assert counts(doc) == {"compliant": 0, "breached": 1, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == 0.0
    # the late answer is still a response time: 48 h + 1 s
    assert response["p50_hours"] == pytest.approx(48 + 1 / 3600)
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#1", "KE", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z"),
        ("breach", "resolved", "T-1#1", "KE", "2026-03-03T10:00:00Z", "2026-03-03T10:00:01Z"),
    ]
    breach = next(a for a in alerts_of(doc, R48) if a["severity"] == "breach")
    assert breach["renewal_relevant"] is True
    assert breach["policy_version"] == "2026.1"
    warning = next(a for a in alerts_of(doc, R48) if a["severity"] == "warning")
    assert warning["renewal_relevant"] is False
    assert warning["alert_id"] != breach["alert_id"]


def test_row3_unanswered_before_the_deadline_is_pending() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z")], as_of="2026-03-02T10:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 1}
    response = figure(doc)[R48]
    assert response["ratio"] is None  # pending is not in the ratio, and nothing else is
    assert response["p50_hours"] is None
    assert alert_facts(doc, R48) == []  # 24 h old: not yet at risk (36 h)
    assert doc["as_of"] == "2026-03-02T10:00:00Z"


def test_row4_unanswered_past_the_deadline_is_breached_at_the_deadline() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z")], as_of="2026-03-04T00:00:00Z")
    assert counts(doc) == {"compliant": 0, "breached": 1, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == 0.0
    assert response["p50_hours"] is None  # never answered: no response time
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#1", "KE", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z"),
        ("breach", "open", "T-1#1", "KE", "2026-03-03T10:00:00Z", None),
    ]


def test_row5_cancelled_before_the_deadline_is_withdrawn() -> None:
    events = [ticket("e1", "opened", "2026-03-01T10:00:00Z"), ticket("e2", "cancelled", "2026-03-02T09:00:00Z")]
    for as_of in (None, "2026-03-04T00:00:00Z"):  # the cancellation's own instant, and long after the deadline
        doc = evaluate(events, as_of=as_of)
        assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 1, "pending": 0}
        assert figure(doc)[R48]["ratio"] is None
        assert alert_facts(doc, R48) == []  # cancelled at 23 h, before the 36 h warning


def test_row6_resolved_without_a_response_answers_the_cycle() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "resolved", "2026-03-02T09:00:00Z")])
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == 1.0
    assert response["p50_hours"] == 23.0
    assert alert_facts(doc, R48) == []


def test_row7_reopened_ticket_has_a_compliant_then_a_breached_cycle() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-01T12:00:00Z"),
                    ticket("e3", "resolved", "2026-03-01T18:00:00Z"),
                    ticket("e4", "reopened", "2026-03-05T08:00:00Z")], as_of="2026-03-08T00:00:00Z")
    assert counts(doc) == {"compliant": 1, "breached": 1, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == 0.5
    # only cycle 1 was answered (2 h); cycle 2 never was
    assert response["p50_hours"] == 2.0
    assert response["p95_hours"] == 2.0
    # cycle 2: start 03-05 08:00, at risk from 03-06 20:00, breached at 03-07 08:00
    assert alert_facts(doc, R48) == [
        ("warning", "resolved", "T-1#2", "KE", "2026-03-06T20:00:00Z", "2026-03-07T08:00:00Z"),
        ("breach", "open", "T-1#2", "KE", "2026-03-07T08:00:00Z", None),
    ]


def test_row8_response_arriving_before_its_opening_counts_as_if_sorted() -> None:
    doc = evaluate([ticket("e2", "responded", "2026-03-01T12:00:00Z"),
                    ticket("e1", "opened", "2026-03-01T10:00:00Z")])
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    response = figure(doc)[R48]
    assert response["ratio"] == 1.0
    assert response["p50_hours"] == 2.0
    assert alert_facts(doc, R48) == []
    assert doc["data_quality"] == []  # the answer does not precede the cycle start in event time


# Parts: catalogue {P1..P10} for KE; D1 reports P1=3, P2=0; D2 reports P2=1, P3=2.
PARTS_REGISTRY = [registration(parts={"KE": [f"P{i}" for i in range(1, 11)]})]
PARTS_STEP_1 = [stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 3, "P2": 0}),
                stock("s2", "D2", "2026-03-01T10:00:00Z", {"P2": 1, "P3": 2})]
# D1 then reports P1=0 (stocked {P2, P3}: exactly 0.20, still compliant), then D2 reports P3=0.
PARTS_STEP_2 = [stock("s3", "D1", "2026-03-02T10:00:00Z", {"P1": 0}),
                stock("s4", "D2", "2026-03-02T11:00:00Z", {"P3": 0})]


def test_parts_step1_three_of_ten_stocked_is_compliant() -> None:
    doc = evaluate(PARTS_STEP_1, registry=PARTS_REGISTRY)
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 3, "rate": 0.3, "compliant": True}
    # both reports at one instant are applied before judging: the rate never was 0.1
    assert alert_facts(doc, "parts_inventory") == []


def test_parts_step2_one_of_ten_stocked_is_a_breach() -> None:
    doc = evaluate(PARTS_STEP_1 + PARTS_STEP_2, registry=PARTS_REGISTRY)
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 1, "rate": 0.1, "compliant": False}
    # at 03-02 10:00 the rate is 2/10 (not below the minimum); it falls to 1/10 with s4 at 11:00
    assert alert_facts(doc, "parts_inventory") == [
        ("breach", "open", "KE", "KE", "2026-03-02T11:00:00Z", None)]
    breach = alerts_of(doc, "parts_inventory")[0]
    assert breach["renewal_relevant"] is True
