"""The renewal assessment (OBLIGATIONS.md, "Renewal assessment"), worked by hand.

Licence period 2026 = 365 UTC days. The README ("How the rules are read", Renewal assessment) states
the readings these examples pin down where OBLIGATIONS.md is silent.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from monitor.contracts.policy import PolicyFile
from monitor.obligations.policy import PolicyBook
from monitor.renewal.assessment import assess
from tests.builders import utc
from tests.renewal_builders import BOOK, alert, chain_of, judge, monitored_from, responses, result, row

PARTS_EVIDENCE = {"catalogue": 10, "stocked": 1, "rate": 0.1, "compliant": False, "min_rate": 0.2,
                  "min_quantity": 1, "missing_parts": ["P2", "P3"], "cause": {"kind": "event"}}
TICKET_EVIDENCE = {"ticket_id": "T-1", "cycle": 1, "start": {"event_id": "e1", "type": "opened",
                                                            "occurred_at": "2026-05-08T10:00:00Z"},
                   "deadline": "2026-05-10T10:00:00Z", "answer": {"event_id": "e2", "type": "responded",
                                                                  "occurred_at": "2026-05-10T12:00:00Z"},
                   "cancellation": None, "response_hours": 50.0}


def _a_year(*extra_alerts: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Monitored from 2026-01-01 00:00Z, everything compliant; 19 compliant and 1 breached cycle in 2026."""
    days = [*monitored_from("2026-01-01"), responses("2025-12-31", 10, 5), responses("2026-12-31", 29, 6)]
    return list(extra_alerts), days


# ---- a whole year, every field -----------------------------------------------------------------

def test_a_year_with_a_breach_across_midnight_every_field() -> None:
    parts_breach = alert("parts_inventory", "2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z", evidence=PARTS_EVIDENCE)
    late_answer = alert("response_48h", "2026-05-10T10:00:00Z", "2026-05-10T12:00:00Z", subject="T-1#1",
                        evidence=TICKET_EVIDENCE)
    warning = alert("response_48h", "2026-05-09T22:00:00Z", "2026-05-10T10:00:00Z", subject="T-1#1",
                    severity="warning")
    retracted = alert("parts_inventory", "2026-07-01T00:00:00Z", "2026-07-01T02:00:00Z", status="retracted")
    alerts, days = _a_year(parts_breach, late_answer, warning, retracted)
    # what the daily figures recorded on the breach's days and on the retracted alert's day
    days += [row("parts_inventory", "2026-03-01", met=False), row("parts_inventory", "2026-03-02", met_all_day=False),
             row("parts_inventory", "2026-07-01", met_all_day=False)]

    doc = judge(alerts, days).model_dump(mode="json")

    assert {k: v for k, v in doc.items() if k not in ("obligations", "policy_versions")} == {
        "exporter_id": "EXP-1", "period": 2026, "period_start": "2026-01-01T00:00:00Z",
        "period_end": "2027-01-01T00:00:00Z", "as_of": "2027-01-01T00:00:00Z", "complete": True,
        "overall": "pass", "reasons": ["every applicable obligation passes"],
        "chain": {"verified": True, "transitions": 8, "first_bad_seq": None, "detail": None},
    }
    assert [p["version"] for p in doc["policy_versions"]] == ["2026.1"]
    ratio = doc["policy_versions"][0]["parameters"]["renewal.response_48h.min_ratio"]
    assert ratio["value"] == 0.95 and ratio["status"] == "reported"

    assert [o["obligation"] for o in doc["obligations"]] == [
        "response_48h", "parts_inventory", "emergency_coverage", "network_size", "authorisation"]
    response = result(judge(alerts, days), "response_48h")
    transitions = response["evidence"][0].pop("transitions")
    assert response == {
        "obligation": "response_48h", "measure": "compliance_ratio", "figure": 0.95, "threshold": 0.95,
        "threshold_source": {"parameter": "renewal.response_48h.min_ratio", "policy_version": "2026.1",
                             "value": 0.95, "status": "reported",
                             "source": "monitor default: 95 % of the period's ticket cycles answered within "
                                       "the deadline"},
        "counts": {"compliant": 19, "breached": 1, "withdrawn": 0},
        "breaches": 1, "days_in_breach": 1, "days_considered": 365, "days_met": None, "days_without_data": None,
        "verdict": "pass",
        "notes": ["cycles are counted from the cumulative figures recorded each day: those whose outcome became "
                  "known between the end of the previous period and the last figure of this one"],
        "evidence": [{
            "alert_id": late_answer["alert_id"], "obligation": "response_48h", "market": "KE", "subject": "T-1#1",
            "opened_at": "2026-05-10T10:00:00Z", "resolved_at": "2026-05-10T12:00:00Z", "open_at_as_of": False,
            "opened_in_period": True, "days_in_breach": 1, "policy_version": "2026.1", "accountable": ["EXP-1"],
            "summary": "ticket T-1 cycle 1: opened 2026-05-08T10:00:00Z, deadline 2026-05-10T10:00:00Z; "
                       "responded 2026-05-10T12:00:00Z (50.0 h)",
            "evidence": TICKET_EVIDENCE,
        }],
    }
    assert [(t["seq"], t["status"], t["prev_hash"]) for t in transitions] == [
        (1, "open", ""), (2, "resolved", late_answer["transitions"][0]["hash"])]
    assert [t["hash"] for t in transitions] == [t["hash"] for t in late_answer["transitions"]]

    parts = result(judge(alerts, days), "parts_inventory")
    evidence = parts.pop("evidence")
    assert parts == {
        "obligation": "parts_inventory", "measure": "share_of_days_met", "figure": 363 / 365, "threshold": 0.95,
        "threshold_source": {"parameter": "renewal.min_share_of_days_met", "policy_version": "2026.1",
                             "value": 0.95, "status": "reported",
                             "source": "monitor default: the obligation held on 95 % of the period's days"},
        "counts": None, "breaches": 1, "days_in_breach": 2, "days_considered": 365, "days_met": 363,
        "days_without_data": 0, "verdict": "pass",
        "notes": ["the daily figures recorded the obligation unmet at some moment on 1 day(s) no breach alert "
                  "touches (an alert retracted by late data); those days count as met"],
    }
    assert [(e["alert_id"], e["days_in_breach"], e["summary"]) for e in evidence] == [
        (parts_breach["alert_id"], 2,
         "rate 0.10: 1 of 10 catalogue parts stocked (minimum 0.2); missing P2, P3")]

    for obligation in ("emergency_coverage", "network_size"):
        assert {k: v for k, v in result(judge(alerts, days), obligation).items()
                if k in ("figure", "breaches", "days_in_breach", "days_considered", "days_met", "days_without_data",
                         "verdict", "evidence")} == {
            "figure": 1.0, "breaches": 0, "days_in_breach": 0, "days_considered": 365, "days_met": 365,
            "days_without_data": 0, "verdict": "pass", "evidence": []}
    authorisation = result(judge(alerts, days), "authorisation")
    assert authorisation == {
        "obligation": "authorisation", "measure": "breaches", "figure": 0.0, "threshold": 0.0,
        "threshold_source": {"parameter": None, "policy_version": "2026.1", "value": 0, "status": None,
                             "source": "OBLIGATIONS.md, Renewal assessment: authorisation passes with no breach "
                                       "in the period"},
        "counts": None, "breaches": 0, "days_in_breach": 0, "days_considered": 365, "days_met": None,
        "days_without_data": None, "verdict": "pass", "notes": [], "evidence": []}


# ---- days in breach ----------------------------------------------------------------------------

@pytest.mark.parametrize(("opened", "resolved", "days"), [
    ("2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z", 2),   # across midnight: two days
    ("2026-03-01T10:00:00Z", "2026-03-02T00:00:00Z", 1),   # ends exactly at midnight: the next day is clean
    ("2026-03-02T00:00:00Z", "2026-03-02T05:00:00Z", 1),   # begins exactly at midnight
    ("2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z", 1),   # one second still spoils the day
    ("2026-02-27T12:00:00Z", "2026-03-03T12:00:00Z", 5),   # 27, 28 Feb, 1, 2, 3 Mar
    ("2025-12-30T00:00:00Z", "2026-01-02T06:00:00Z", 2),   # carried in: only the period's days count
    ("2026-12-31T20:00:00Z", "2027-01-05T00:00:00Z", 1),   # runs past the period: its last day only
])
def test_days_in_breach_are_the_utc_days_a_breach_touches(opened: str, resolved: str, days: int) -> None:
    alerts, rows = _a_year(alert("emergency_coverage", opened, resolved))
    judged = result(judge(alerts, rows, as_of="2027-02-01T00:00:00Z"), "emergency_coverage")
    assert (judged["days_in_breach"], judged["days_met"], judged["days_considered"]) == (days, 365 - days, 365)
    assert judged["evidence"][0]["days_in_breach"] == days


def test_a_breach_carried_in_from_the_previous_period_counts_its_days_but_not_as_a_breach() -> None:
    alerts, rows = _a_year(alert("parts_inventory", "2025-12-30T00:00:00Z", "2026-01-02T06:00:00Z"))
    parts = result(judge(alerts, rows), "parts_inventory")
    assert (parts["breaches"], parts["days_in_breach"]) == (0, 2)
    assert [(e["opened_in_period"], e["opened_at"]) for e in parts["evidence"]] == [
        (False, "2025-12-30T00:00:00Z")]


def test_a_breach_still_open_at_as_of_counts_up_to_as_of_and_the_day_of_as_of_is_judged() -> None:
    # as_of 2026-06-15 12:00Z: 165 days have ended (1 Jan .. 14 Jun); 15 Jun is under way
    still_open = alert("parts_inventory", "2026-06-10T08:00:00Z")
    resolved_later = alert("emergency_coverage", "2026-06-12T00:00:00Z", "2026-06-20T00:00:00Z")
    not_yet = alert("network_size", "2026-06-16T00:00:00Z", market=None)
    alerts, rows = _a_year(still_open, resolved_later, not_yet)
    rows = [r for r in rows if r["day"] != "2026-12-31"] + [responses("2026-06-14", 29, 6)]
    assessment = judge(alerts, rows, as_of="2026-06-15T12:00:00Z")

    parts = result(assessment, "parts_inventory")
    assert (parts["days_in_breach"], parts["days_considered"], parts["days_met"]) == (6, 166, 160)
    assert parts["figure"] == 160 / 166 and parts["verdict"] == "pass"
    assert (parts["evidence"][0]["resolved_at"], parts["evidence"][0]["open_at_as_of"]) == (None, True)
    coverage = result(assessment, "emergency_coverage")
    assert (coverage["days_in_breach"], coverage["days_considered"], coverage["days_met"]) == (4, 166, 162)
    # resolved only after as_of: at as_of it is still open
    assert (coverage["evidence"][0]["resolved_at"], coverage["evidence"][0]["open_at_as_of"]) == (None, True)
    network = result(assessment, "network_size")
    assert (network["breaches"], network["evidence"], network["days_considered"]) == (0, [], 165)
    assert assessment.complete is False
    assert assessment.reasons[-1] == "provisional: the period was not over at as_of"


def test_a_retracted_breach_counts_nowhere() -> None:
    alerts, rows = _a_year(alert("emergency_coverage", "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z",
                                 status="retracted"),
                           alert("response_48h", "2026-04-03T10:00:00Z", status="retracted", subject="T-9#1"))
    assessment = judge(alerts, rows)
    for obligation in ("emergency_coverage", "response_48h"):
        judged = result(assessment, obligation)
        assert (judged["breaches"], judged["days_in_breach"], judged["evidence"]) == (0, 0, [])
    assert result(assessment, "emergency_coverage")["days_met"] == 365
    assert assessment.overall == "pass"


def test_a_warning_is_not_a_breach() -> None:
    alerts, rows = _a_year(alert("response_48h", "2026-04-02T22:00:00Z", "2026-04-03T09:00:00Z",
                                 severity="warning", subject="T-2#1"))
    response = result(judge(alerts, rows), "response_48h")
    assert (response["breaches"], response["days_in_breach"], response["evidence"]) == (0, 0, [])


# ---- the response ratio ------------------------------------------------------------------------

@pytest.mark.parametrize(("compliant", "breached", "verdict", "overall"), [
    (19, 1, "pass", "pass"),           # exactly 0.95: passes
    (18, 1, "fail", "at_risk"),        # 0.947...
    (0, 1, "fail", "at_risk"),
    (1, 0, "pass", "pass"),
])
def test_the_response_ratio_against_the_renewal_ratio(compliant: int, breached: int, verdict: str,
                                                       overall: str) -> None:
    rows = [*monitored_from("2026-01-01"), responses("2025-12-31", 10, 5),
            responses("2026-12-31", 10 + compliant, 5 + breached)]
    assessment = judge([], rows)
    response = result(assessment, "response_48h")
    assert response["figure"] == compliant / (compliant + breached)
    assert response["counts"] == {"compliant": compliant, "breached": breached, "withdrawn": 0}
    assert (response["verdict"], assessment.overall) == (verdict, overall)
    if overall == "at_risk":
        assert assessment.reasons == [f"response_48h fails: compliance ratio {response['figure']:.4f} below 0.95"]


def test_the_ratio_sums_markets_and_takes_each_markets_last_figure_of_the_period() -> None:
    rows = [*monitored_from("2026-01-01"),
            responses("2025-06-01", 4, 1, market="KE"),           # before the period: the base
            responses("2026-03-01", 10, 1, market="KE"),
            responses("2026-08-01", 20, 2, market="KE"),          # KE: 16 compliant, 1 breached in 2026
            responses("2026-02-01", 3, 0, market="NG"),
            responses("2026-12-31", 7, 0, market="NG", withdrawn=2),   # NG: 7 compliant, 2 withdrawn
            responses("2027-01-01", 99, 99, market="NG")]         # after the period: not counted
    response = result(judge([], rows, as_of="2027-01-02T00:00:00Z"), "response_48h")
    assert response["counts"] == {"compliant": 23, "breached": 1, "withdrawn": 2}
    assert response["figure"] == 23 / 24


def test_a_period_without_any_judged_cycle_has_insufficient_data() -> None:
    assessment = judge([], monitored_from("2026-01-01"))
    response = result(assessment, "response_48h")
    assert (response["figure"], response["verdict"]) == (None, "insufficient_data")
    assert response["counts"] == {"compliant": 0, "breached": 0, "withdrawn": 0}
    assert assessment.overall == "insufficient_data"
    assert assessment.reasons == ["response_48h has insufficient data"]


def test_a_known_failure_outweighs_missing_data() -> None:
    unregistered = alert("authorisation", "2026-04-01T08:00:00Z", market=None, subject="registration")
    assessment = judge([unregistered], monitored_from("2026-01-01"))
    assert result(assessment, "response_48h")["verdict"] == "insufficient_data"
    assert result(assessment, "authorisation")["verdict"] == "fail"
    assert assessment.overall == "at_risk"


# ---- days without data -------------------------------------------------------------------------

def test_days_before_monitoring_began_are_without_data_and_can_leave_the_verdict_open() -> None:
    # monitoring began 2026-03-01 09:00Z: 31 + 28 days before it, and 1 March only partly observed
    alerts, _ = _a_year()
    rows = [*monitored_from("2026-03-01", first="2026-03-01T09:00:00Z"), responses("2026-12-31", 19, 1)]
    parts = result(judge(alerts, rows), "parts_inventory")
    assert (parts["days_considered"], parts["days_met"], parts["days_without_data"]) == (365, 305, 60)
    # 305/365 < 0.95, but with the 60 days unknown the share could be 365/365: no verdict either way
    assert parts["verdict"] == "insufficient_data"


def test_a_share_that_fails_even_with_every_day_without_data_counted_as_met_fails() -> None:
    breach = alert("parts_inventory", "2026-05-01T00:00:00Z", "2026-05-31T00:00:00Z")  # 30 days
    rows = [*monitored_from("2026-03-01", first="2026-03-01T09:00:00Z"), responses("2026-12-31", 19, 1)]
    assessment = judge([breach], rows)
    parts = result(assessment, "parts_inventory")
    assert (parts["days_met"], parts["days_without_data"], parts["days_in_breach"]) == (275, 60, 30)
    assert parts["verdict"] == "fail"  # (275 + 60) / 365 = 0.918 < 0.95
    assert assessment.overall == "at_risk"


def test_an_undefined_figure_gives_insufficient_data() -> None:
    # an unregistered exporter has no catalogue: its parts figure is undefined all year
    alerts, rows = _a_year()
    rows = [r for r in rows if r["obligation"] != "parts_inventory"]
    rows.append(row("parts_inventory", "2026-01-01", met=None, catalogue=None, stocked=None, rate=None,
                    compliant=None))
    assessment = judge(alerts, rows)
    parts = result(assessment, "parts_inventory")
    assert (parts["days_met"], parts["days_without_data"], parts["verdict"]) == (0, 365, "insufficient_data")
    assert assessment.overall == "insufficient_data"


def test_a_day_without_a_row_carries_the_state_of_the_last_one() -> None:
    # the figure became undefined on 1 July and stayed so: 184 days without data
    alerts, rows = _a_year()
    rows.append(row("emergency_coverage", "2026-07-01", met=None, first="2026-07-01T00:00:00Z"))
    coverage = result(judge(alerts, rows), "emergency_coverage")
    assert (coverage["days_met"], coverage["days_without_data"]) == (181, 184)


def test_coverage_counts_only_major_markets() -> None:
    alerts, rows = _a_year()
    rows.append(row("emergency_coverage", "2026-01-01", market="NG", met=False, covered=False,
                    major_market=False))
    coverage = result(judge(alerts, rows), "emergency_coverage")
    assert (coverage["days_met"], coverage["verdict"], coverage["notes"]) == (365, "pass", [])


def test_network_size_does_not_apply_where_the_policy_sets_no_minimum_for_the_category() -> None:
    alerts, rows = _a_year()
    rows = [r for r in rows if r["obligation"] != "network_size"]
    rows.append(row("network_size", "2026-01-01", met=None, required=None, compliant=None))
    assessment = judge(alerts, rows)
    network = result(assessment, "network_size")
    assert network["verdict"] == "not_applicable"
    assert network["notes"][0] == "the policy sets no minimum number of outlets for the exporter's category"
    assert assessment.overall == "pass"


# ---- authorisation -----------------------------------------------------------------------------

def test_authorisation_fails_on_any_breach_opened_in_the_period_and_only_those() -> None:
    carried = alert("authorisation", "2025-12-20T00:00:00Z", market=None, subject="licence:L:expired")
    grey = alert("authorisation", "2026-04-01T08:00:00Z", subject="T-7/WVWZZZ1JZXW000001",
                 evidence={"reason": "the VIN's manufacturer code is not among the exporter's authorised brands",
                           "ticket_id": "T-7", "vin": "WVWZZZ1JZXW000001",
                           "first_event": {"event_id": "e7", "occurred_at": "2026-04-01T08:00:00Z"}})
    alerts, rows = _a_year(carried)
    assert result(judge(alerts, rows), "authorisation")["verdict"] == "pass"
    judged = result(judge([carried, grey], rows), "authorisation")
    assert (judged["figure"], judged["breaches"], judged["days_in_breach"], judged["verdict"]) == (1.0, 1, 1, "fail")
    assert [e["summary"] for e in judged["evidence"]] == [
        "the VIN's manufacturer code is not among the exporter's authorised brands; ticket T-7, VIN "
        "WVWZZZ1JZXW000001; first event e7 at 2026-04-01T08:00:00Z"]


# ---- the record itself -------------------------------------------------------------------------

def test_a_chain_that_does_not_verify_supports_no_verdict() -> None:
    alerts, rows = _a_year()
    broken = {"ok": False, "transitions": 0, "first_bad_seq": 7, "detail": "seq 7: hash does not match"}
    assessment = judge(alerts, rows, chain=broken)
    assert all(o.verdict in ("pass", "not_applicable") for o in assessment.obligations)
    assert assessment.overall == "insufficient_data"
    assert assessment.reasons[0] == ("the hash chain of the exporter's alert transitions does not verify: "
                                     "seq 7: hash does not match")
    assert assessment.chain.first_bad_seq == 7


def test_transitions_missing_from_the_evidence_fail_the_chain() -> None:
    breach = alert("parts_inventory", "2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z")
    alerts, rows = _a_year(breach)
    chain = chain_of(alerts)
    chain["transitions"] += 1  # the chain holds a transition no alert read carries
    assessment = judge(alerts, rows, chain=chain)
    assert assessment.chain.verified is False
    assert assessment.chain.detail == "the chain holds 3 transition(s) but the alerts read carry 2"
    assert assessment.overall == "insufficient_data"


def test_a_period_not_begun_has_insufficient_data() -> None:
    alerts, rows = _a_year()
    assessment = judge(alerts, rows, as_of="2025-12-01T00:00:00Z")
    assert assessment.overall == "insufficient_data"
    assert assessment.reasons == ["the period had not begun at as_of"]
    assert all(o.days_considered == 0 for o in assessment.obligations)
    assert {o.verdict for o in assessment.obligations} == {"insufficient_data"}


def test_other_exporters_data_is_ignored() -> None:
    _, rows = _a_year()
    stranger = alert("parts_inventory", "2026-03-01T00:00:00Z", exporter="EXP-9")
    rows.append(row("parts_inventory", "2026-03-01", met=False, exporter="EXP-9"))
    assessment = judge([stranger], rows, chain=chain_of([]))
    assert result(assessment, "parts_inventory")["days_met"] == 365


# ---- policy ------------------------------------------------------------------------------------

def test_thresholds_come_from_the_version_in_force_at_the_end_of_the_period_with_their_source() -> None:
    book = PolicyBook(PolicyFile.model_validate([
        {"version": "2026.1", "effective_from": "2026-01-01"},
        {"version": "2026.2", "effective_from": "2026-07-01", "parameters": {
            "renewal.response_48h.min_ratio": {"value": 0.9, "status": "official", "source": "notice 7/2026"}}},
    ]))
    rows = [*monitored_from("2026-01-01"), responses("2026-12-31", 18, 2)]  # 0.90
    assessment = judge([], rows, book=book)
    response = result(assessment, "response_48h")
    assert response["threshold"] == 0.9 and response["verdict"] == "pass"
    assert response["threshold_source"] == {"parameter": "renewal.response_48h.min_ratio",
                                            "policy_version": "2026.2", "value": 0.9, "status": "official",
                                            "source": "notice 7/2026"}
    assert [(p.version, p.effective_from) for p in assessment.policy_versions] == [
        ("2026.1", "2026-01-01"), ("2026.2", "2026-07-01")]
    # before the change took effect the first version applies
    early = judge([], [*monitored_from("2026-01-01"), responses("2026-03-01", 18, 2)],
                  book=book, as_of="2026-03-02T00:00:00Z")
    assert result(early, "response_48h")["verdict"] == "fail"
    assert [p.version for p in early.policy_versions] == ["2026.1"]


def test_a_recorded_policy_version_that_differs_from_the_configured_one_is_named() -> None:
    recorded = [{"version": "2026.1", "effective_from": "2026-01-01", "parameters": {
        name: {**parameter, "value": 0.5} if name == "renewal.min_share_of_days_met" else parameter
        for name, parameter in judge([], []).policy_versions[0].model_dump(mode="json")["parameters"].items()}}]
    alerts, rows = _a_year()
    assessment = assess("EXP-1", 2026, alerts=alerts, days=rows, policy=BOOK, policies=recorded,
                        as_of=utc("2027-01-01T00:00:00Z"), chain=chain_of(alerts))
    assert assessment.policy_versions[0].parameters["renewal.min_share_of_days_met"].value == 0.5  # as recorded
    assert result(assessment, "parts_inventory")["threshold"] == 0.95  # as configured
    assert assessment.reasons == [
        "every applicable obligation passes",
        "policy version 2026.1 as the monitor recorded it differs from the configured one in "
        "renewal.min_share_of_days_met; the thresholds here are the configured ones"]


def test_the_assessment_is_deterministic_and_json_serialisable() -> None:
    alerts, rows = _a_year(alert("parts_inventory", "2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z"))
    first = judge(alerts, rows).model_dump_json()
    assert first == judge(list(reversed(alerts)), list(reversed(rows))).model_dump_json()
    assert date(2026, 1, 1).isoformat() in first
