"""GET /api/v1/exporters/{id}/renewal: the assessment from the store, as JSON, CSV or a printable page."""

from __future__ import annotations

import csv
import io

import pytest

from monitor.api.problems import ProblemError
from monitor.api.renewal import negotiate
from tests.api.conftest import Api
from tests.api.network import A1, A2, D2


async def test_the_assessment_judges_the_period_from_the_stored_history(api: Api) -> None:
    response = await api.get(f"/api/v1/exporters/{A1}/renewal", period=2026)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["exporter_id"], body["period"], body["as_of"]) == (A1, 2026, "2026-03-06T00:00:00Z")
    assert [o["obligation"] for o in body["obligations"]] == [
        "response_48h", "parts_inventory", "emergency_coverage", "network_size", "authorisation"]
    assert body["chain"]["verified"] is True
    # the chain vouches for every stored transition of the exporter
    stored = sum(n for alert_id, n in api.network.transitions.items()
                 if api.network.alerts[alert_id]["exporter_id"] == A1)
    assert body["chain"]["transitions"] == stored
    authorisation = body["obligations"][-1]
    assert authorisation["verdict"] == "fail" and authorisation["breaches"] == 1
    assert body["overall"] == "at_risk"


async def test_csv_and_html_are_the_same_assessment(api: Api) -> None:
    as_json = (await api.get(f"/api/v1/exporters/{A1}/renewal", period=2026)).json()
    as_csv = await api.get(f"/api/v1/exporters/{A1}/renewal", period=2026, headers={"Accept": "text/csv"})
    as_html = await api.get(f"/api/v1/exporters/{A1}/renewal", period=2026,
                            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})

    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["vary"] == "Accept"
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    verdicts = {r["obligation"]: r["verdict"] for r in rows if r["row"] == "obligation"}
    assert verdicts == {o["obligation"]: o["verdict"] for o in as_json["obligations"]}
    assert {r["overall"] for r in rows} == {as_json["overall"]}

    assert as_html.status_code == 200 and as_html.headers["content-type"].startswith("text/html")
    assert A1 in as_html.text and "2026" in as_html.text
    assert "<script" not in as_html.text.lower() and "http://" not in as_html.text


async def test_an_automaker_reads_a_jointly_answered_distributors_assessment_without_the_other_automaker(
        api: Api) -> None:
    response = await api.get(f"/api/v1/exporters/{D2}/renewal", who=A2, period=2026)

    assert response.status_code == 200
    assert A1 not in response.text
    evidence = [e for o in response.json()["obligations"] for e in o["evidence"]]
    assert evidence and all(e["accountable"] == [D2, A2] for e in evidence)


@pytest.mark.parametrize(("period", "why"), [("1999", "greater than or equal to 2000"), ("2026.5", "integer"),
                                             (None, "required")])
async def test_a_bad_period_is_refused_with_the_reason(api: Api, period: str | None, why: str) -> None:
    response = await api.get(f"/api/v1/exporters/{A1}/renewal", period=period)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["invalid_parameters"][0]["parameter"] == "query.period"
    assert "query.period" in problem["detail"] and why in problem["detail"]


async def test_a_format_that_is_not_offered_is_refused(api: Api) -> None:
    response = await api.get(f"/api/v1/exporters/{A1}/renewal", period=2026, headers={"Accept": "application/pdf"})

    assert response.status_code == 406
    assert response.headers["content-type"] == "application/problem+json"
    assert "text/csv" in response.json()["detail"]


@pytest.mark.parametrize(("accept", "chosen"), [
    (None, "json"), ("*/*", "json"), ("application/json", "json"), ("text/csv", "csv"),
    ("text/html", "html"), ("text/*", "html"), ("text/csv;q=0.5, text/html;q=0.9", "html"),
    ("text/html;q=0.2, application/json", "json"), ("application/pdf, */*;q=0.1", "json"),
    ("TEXT/CSV", "csv"), ("text/html;q=0, text/csv", "csv"),
])
def test_the_accept_header_picks_the_format(accept: str | None, chosen: str) -> None:
    assert negotiate(accept) == chosen


def test_an_accept_header_allowing_nothing_offered_is_not_acceptable() -> None:
    with pytest.raises(ProblemError) as refused:
        negotiate("image/png, application/json;q=0")
    assert refused.value.status == 406

