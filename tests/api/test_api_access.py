"""Who may call what (CONTRACT.md, HTTP API roles): bearer tokens, and an automaker's narrow view.

An automaker sees its exporters and the distributors they authorised (OBLIGATIONS.md, "Who
answers for what"); any other exporter answers exactly like one that does not exist.
"""

from __future__ import annotations

import json

import pytest

from monitor.access.tokens import create_token
from tests.api.conftest import Api
from tests.api.network import A1, A2, D1, D2, SEES, X9

ROUTES = ["/api/v1/exporters", "/api/v1/compliance", "/api/v1/alerts", f"/api/v1/exporters/{A1}/history",
          f"/api/v1/exporters/{A1}/renewal?period=2026", "/api/v1/alerts/any-id"]


@pytest.mark.parametrize("path", ROUTES)
async def test_every_api_route_refuses_a_request_without_a_token(api: Api, path: str) -> None:
    response = await api.get(path, who=None)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["status"] == 401 and problem["title"] and "Authorization: Bearer" in problem["detail"]


@pytest.mark.parametrize("header", ["Bearer mon_not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "mon_raw-token"])
async def test_a_wrong_or_malformed_token_is_refused(api: Api, header: str) -> None:
    response = await api.get("/api/v1/alerts", who=None, headers={"Authorization": header})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_made_while_the_api_runs_works_at_once(api: Api) -> None:
    path = api.tokens.path
    before = path.read_bytes()
    try:
        token = create_token(path, "automaker", [A2])
        response = await api.get("/api/v1/exporters", who=None, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert {e["exporter_id"] for e in response.json()["items"]} == SEES[A2]
    finally:
        path.write_bytes(before)  # the session's token file, as the other tests expect it


@pytest.mark.parametrize("who", [A1, A2, D1, X9])
async def test_an_automaker_lists_only_what_it_answers_for(api: Api, who: str) -> None:
    sees = SEES[who]
    exporters = (await api.get("/api/v1/exporters", who=who)).json()["items"]
    compliance = (await api.get("/api/v1/compliance", who=who)).json()["items"]
    alerts = (await api.get("/api/v1/alerts", who=who, limit=1000)).json()["items"]

    assert {e["exporter_id"] for e in exporters} == sees
    assert {s["exporter_id"] for s in compliance} == sees
    assert {a["alert_id"] for a in alerts} == {a["alert_id"] for a in api.network.alerts.values()
                                               if a["exporter_id"] in sees}
    for alert in alerts:
        assert set(alert["accountable"]) <= sees
    for exporter in exporters:
        if exporter["registration"]:
            assert set(exporter["registration"]["authorised_by"]) <= sees


async def test_a_distributor_answered_for_jointly_names_only_the_callers_automaker(api: Api) -> None:
    alerts = (await api.get("/api/v1/alerts", who=A2, exporter=D2, limit=1000)).json()["items"]
    exporters = (await api.get("/api/v1/exporters", who=A2)).json()["items"]

    assert alerts and all(a["accountable"] == [D2, A2] for a in alerts)
    assert next(e for e in exporters if e["exporter_id"] == D2)["registration"]["authorised_by"] == [A2]
    # the regulator sees both automakers behind it
    everything = (await api.get("/api/v1/alerts", exporter=D2, limit=1000)).json()["items"]
    assert all(a["accountable"] == [D2, A1, A2] for a in everything)


def _without(response_text: str, exporter_id: str) -> str:
    return response_text.replace(exporter_id, "<id>")


@pytest.mark.parametrize("path", [
    "/api/v1/exporters/{id}/history", "/api/v1/exporters/{id}/renewal?period=2026",
    "/api/v1/alerts?exporter={id}", "/api/v1/compliance?exporter={id}",
])
async def test_an_exporter_the_caller_may_not_see_answers_like_one_that_does_not_exist(api: Api, path: str) -> None:
    hidden = await api.get(path.format(id=A2), who=A1)
    missing = await api.get(path.format(id="EXP-NONE"), who=A1)
    missing_for_regulator = await api.get(path.format(id="EXP-NONE"))

    assert hidden.status_code == missing.status_code == missing_for_regulator.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert _without(hidden.text, A2) == _without(missing.text, "EXP-NONE") == \
        _without(missing_for_regulator.text, "EXP-NONE")
    assert {k: v for k, v in hidden.headers.items() if k != "content-length"} == \
        {k: v for k, v in missing.headers.items() if k != "content-length"}


async def test_another_exporters_alert_answers_like_an_unknown_alert(api: Api) -> None:
    theirs = next(a for a in api.network.alerts.values() if a["exporter_id"] == A2)
    hidden = await api.get(f"/api/v1/alerts/{theirs['alert_id']}", who=A1)
    missing = await api.get("/api/v1/alerts/00000000-0000-0000-0000-000000000000", who=A1)

    assert hidden.status_code == missing.status_code == 404
    assert _without(hidden.text, theirs["alert_id"]) == _without(missing.text, "00000000-0000-0000-0000-000000000000")
    assert (await api.get(f"/api/v1/alerts/{theirs['alert_id']}", who=A2)).status_code == 200


async def test_a_distributors_own_token_does_not_see_its_automakers(api: Api) -> None:
    response = await api.get(f"/api/v1/exporters/{A1}/history", who=D1)

    assert response.status_code == 404
    body = json.dumps((await api.get("/api/v1/alerts", who=D1, limit=1000)).json())
    assert A1 not in body and A2 not in body and D2 not in body
