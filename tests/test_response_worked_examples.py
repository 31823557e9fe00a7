"""Every ticket row of OBLIGATIONS.md's worked examples (times in UTC), with hand-worked results."""

from tests.scenario import alerts, evaluate, figure, ticket


def _counts(doc: dict) -> tuple[int, int, int, int]:
    r = figure(doc)["response_48h"]
    return r["compliant"], r["breached"], r["withdrawn"], r["pending"]


def test_responded_after_exactly_48_hours_is_compliant() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-03T10:00:00Z")])
    assert _counts(doc) == (1, 0, 0, 0)
    assert figure(doc)["response_48h"]["p50_hours"] == 48.0
    assert figure(doc)["response_48h"]["ratio"] == 1.0
    # unanswered past 36 h: the at-risk warning opened at 03-02 22:00 and closed at the answer
    assert alerts(doc, "response_48h") == [
        ("warning", "T-1#1", "resolved", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z")]


def test_responded_one_second_late_is_breached_at_the_deadline() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-03T10:00:01Z")])
    assert _counts(doc) == (0, 1, 0, 0)
    assert figure(doc)["response_48h"]["ratio"] == 0.0
    assert alerts(doc, "response_48h") == [
        ("warning", "T-1#1", "resolved", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z"),
        ("breach", "T-1#1", "resolved", "2026-03-03T10:00:00Z", "2026-03-03T10:00:01Z"),
    ]
    breach = next(a for a in doc["alerts"] if a["obligation"] == "response_48h" and a["severity"] == "breach")
    assert breach["renewal_relevant"] is True
    assert breach["evidence"]["answer"]["event_id"] == "e2"
    assert breach["evidence"]["response_hours"] == 48 + 1 / 3600


def test_unanswered_before_the_deadline_is_pending_and_outside_the_ratio() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z")], as_of="2026-03-02T10:00:00Z")
    assert _counts(doc) == (0, 0, 0, 1)
    assert figure(doc)["response_48h"]["ratio"] is None
    assert alerts(doc, "response_48h") == []


def test_unanswered_past_the_deadline_is_breached_at_the_deadline() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z")], as_of="2026-03-04T00:00:00Z")
    assert _counts(doc) == (0, 1, 0, 0)
    assert alerts(doc, "response_48h") == [
        ("warning", "T-1#1", "resolved", "2026-03-02T22:00:00Z", "2026-03-03T10:00:00Z"),
        ("breach", "T-1#1", "open", "2026-03-03T10:00:00Z", None),
    ]


def test_cancelled_before_the_deadline_is_withdrawn() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "cancelled", "2026-03-02T09:00:00Z")], as_of="2026-03-05T00:00:00Z")
    assert _counts(doc) == (0, 0, 1, 0)
    assert figure(doc)["response_48h"]["ratio"] is None
    assert alerts(doc, "response_48h") == []  # cancelled at 23 h, before the warning


def test_resolved_without_a_response_answers_the_cycle() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "resolved", "2026-03-02T09:00:00Z")])
    assert _counts(doc) == (1, 0, 0, 0)
    assert figure(doc)["response_48h"]["p50_hours"] == 23.0


def test_a_reopened_ticket_starts_a_second_cycle() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-01T12:00:00Z"),
                    ticket("e3", "resolved", "2026-03-01T18:00:00Z"),
                    ticket("e4", "reopened", "2026-03-05T08:00:00Z")], as_of="2026-03-08T00:00:00Z")
    assert _counts(doc) == (1, 1, 0, 0)
    assert figure(doc)["response_48h"]["ratio"] == 0.5
    assert alerts(doc, "response_48h") == [
        ("warning", "T-1#2", "resolved", "2026-03-06T20:00:00Z", "2026-03-07T08:00:00Z"),
        ("breach", "T-1#2", "open", "2026-03-07T08:00:00Z", None),
    ]


def test_a_response_arriving_before_its_opening_counts_as_if_sorted() -> None:
    doc = evaluate([ticket("e2", "responded", "2026-03-01T12:00:00Z"),
                    ticket("e1", "opened", "2026-03-01T10:00:00Z")])
    assert _counts(doc) == (1, 0, 0, 0)
    assert figure(doc)["response_48h"]["p50_hours"] == 2.0
    assert doc["data_quality"] == []
