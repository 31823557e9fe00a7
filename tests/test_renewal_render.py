"""The renewal assessment rendered: JSON (the model), RFC 4180 CSV, and a self-contained printable HTML page."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from monitor.renewal.assessment import RenewalAssessment
from monitor.renewal.render import CSV_COLUMNS, MEDIA_TYPES, render, to_csv, to_html, to_json
from tests.renewal_builders import alert, chain_of, judge, monitored_from, responses

HOSTILE = '<script>alert("x")</script>, "quoted"\nnext line'


def _assessment(subject: str = "KE") -> RenewalAssessment:
    alerts = [
        alert("parts_inventory", "2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z", subject=subject,
              evidence={"catalogue": 10, "stocked": 1, "rate": 0.1, "min_rate": 0.2, "missing_parts": ["P2"]}),
        alert("response_48h", "2026-05-10T10:00:00Z", subject="=HYPERLINK(\"http://x\")",
              evidence={"ticket_id": "T-1", "cycle": 1, "deadline": "2026-05-10T10:00:00Z", "answer": None}),
        alert("authorisation", "2026-04-01T08:00:00Z", market=None, subject="registration",
              evidence={"reason": "the exporter is not registered"}),
    ]
    rows = [*monitored_from("2026-01-01"), responses("2026-12-31", 19, 1)]
    return judge(alerts, rows, chain=chain_of(alerts))


def test_json_is_the_model() -> None:
    assessment = _assessment()
    text = to_json(assessment)
    assert json.loads(text) == assessment.model_dump(mode="json")
    assert RenewalAssessment.model_validate_json(text) == assessment
    assert render(assessment, "json") == text and MEDIA_TYPES["json"] == "application/json"


def test_csv_has_a_row_per_obligation_then_one_per_breach() -> None:
    text = to_csv(_assessment(subject=HOSTILE))
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["row"], r["obligation"]) for r in rows] == [
        ("obligation", "response_48h"), ("obligation", "parts_inventory"), ("obligation", "emergency_coverage"),
        ("obligation", "network_size"), ("obligation", "authorisation"),
        ("breach", "response_48h"), ("breach", "parts_inventory"), ("breach", "authorisation")]
    assert {(r["exporter_id"], r["period"], r["overall"], r["chain_verified"]) for r in rows} == {
        ("EXP-1", "2026", "at_risk", "true")}
    parts = rows[1]
    assert (parts["verdict"], parts["days_in_breach"], parts["days_met"], parts["threshold_parameter"],
            parts["threshold_status"]) == ("pass", "2", "363", "renewal.min_share_of_days_met", "reported")
    assert rows[0]["days_met"] == ""  # not day-based: empty, not "None"
    breach = rows[6]
    assert breach["subject"] == HOSTILE  # commas, quotes and a newline survive the round trip
    assert (breach["opened_at"], breach["resolved_at"], breach["open_at_as_of"], breach["days_in_breach"]) == (
        "2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z", "false", "2")
    assert breach["evidence"] == "rate 0.10: 1 of 10 catalogue parts stocked (minimum 0.2); missing P2"
    assert breach["transitions"] == "2" and re.fullmatch(r"[0-9a-f]{64}", breach["last_hash"])
    # a spreadsheet must not run an exporter's text as a formula
    assert rows[5]["subject"] == "'=HYPERLINK(\"http://x\")"
    assert rows[5]["evidence"].startswith("ticket T-1 cycle 1")


def test_csv_quotes_as_rfc_4180_says() -> None:
    text = to_csv(_assessment(subject=HOSTILE))
    quoted = '"<script>alert(""x"")</script>, ""quoted""\nnext line"'
    assert quoted in text


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_every_value_and_stands_alone() -> None:
    page = to_html(_assessment(subject=HOSTILE))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;, &quot;quoted&quot;" in page
    parsed = _Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert not [a for a in parsed.attributes if a[0] in ("src", "href")]
    head = page.split("</head>")[0]
    assert "url(" not in head and "@import" not in head and "//" not in head  # no asset from the CSS
    assert "@media print" in page and "@page" in page
    text = "".join(parsed.text)
    assert HOSTILE in text  # shown as text, exactly
    assert "Overall: at risk" in " ".join(text.split())
    assert MEDIA_TYPES["html"].startswith("text/html")


def test_html_shows_each_breach_with_its_transitions_and_each_policy_parameter_with_its_source() -> None:
    assessment = _assessment()
    page = to_html(assessment)
    for result in assessment.obligations:
        for breach in result.evidence:
            assert breach.alert_id.replace('"', "&quot;") in page
            for transition in breach.transitions:
                assert transition.hash is not None and transition.hash in page
    for name, parameter in assessment.policy_versions[0].parameters.items():
        assert name in page and parameter.source.replace("'", "&#x27;") in page


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        render(_assessment(), "pdf")  # type: ignore[arg-type]
