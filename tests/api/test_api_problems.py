"""Every error is an RFC 9457 problem document that says what was wrong: which parameter, and why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.api import create_app
from tests.api.conftest import Api, Tokens, serve_in_process, settings_for
from tests.api.network import A1, Network

PROBLEM_FIELDS = {"type", "title", "status", "detail"}


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS and body["status"] == status
    assert body["type"].startswith("urn:aftersales-monitor:problem:") and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(("path", "params", "parameter", "words"), [
    ("/api/v1/alerts", {"limit": "0"}, "query.limit", "greater than or equal to 1"),
    ("/api/v1/alerts", {"limit": "many"}, "query.limit", "integer"),
    ("/api/v1/alerts", {"obligation": "speed"}, "query.obligation", "response_48h"),
    ("/api/v1/alerts", {"status": "closed"}, "query.status", "retracted"),
    ("/api/v1/alerts", {"since": "2026-03-01T10:00:00"}, "query.since", "timezone"),
    ("/api/v1/alerts", {"since": "yesterday"}, "query.since", "RFC 3339"),
    ("/api/v1/alerts", {"since": "0.0"}, "query.since", "RFC 3339"),
    (f"/api/v1/exporters/{A1}/history", {"to": "1700000000"}, "query.to", "YYYY-MM-DD"),
    ("/api/v1/alerts", {"since": "9999-12-31T23:00:00-05:00"}, "query.since", "out of range"),
    ("/api/v1/alerts", {"cursor": "not-a-cursor"}, "query.cursor", "not a cursor"),
    # a well-formed cursor whose instant is before the first one a datetime holds in UTC
    ("/api/v1/alerts", {"cursor": "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwgImEiXQ"}, "query.cursor", "not a cursor"),
    ("/api/v1/compliance", {"market": "kenya"}, "query.market", "pattern"),
    (f"/api/v1/exporters/{A1}/history", {"from": "2026-02-30"}, "query.from", "date"),
    (f"/api/v1/exporters/{A1}/history", {"from": "2026-03-05", "to": "2026-03-01"}, "query.to", "before"),
    ("/api/v1/alerts", {"exporter_id": A1}, "query.exporter_id", "not a parameter of this route"),
    ("/api/v1/exporters", {"limit": "5"}, "query.limit", "it takes: none"),
    ("/api/v1/alerts", {"exporter": [A1, "EXP-A2"]}, "query.exporter", "given more than once"),
    ("/api/v1/webhooks/deliveries", {"alert": ["a", "b"]}, "query.alert", "given more than once"),
])
async def test_a_bad_parameter_is_named_with_the_reason(api: Api, path: str, params: dict, parameter: str,
                                                        words: str) -> None:
    response = await api.get(path, **params)

    body = _problem(response, 422)
    assert parameter in body["detail"] and words in body["detail"]
    assert body["invalid_parameters"][0]["parameter"] == parameter


async def test_an_unknown_exporter_and_an_unknown_alert_are_404(api: Api) -> None:
    assert "EXP-NONE" in _problem(await api.get("/api/v1/exporters/EXP-NONE/history"), 404)["detail"]
    assert "nope" in _problem(await api.get("/api/v1/alerts/nope"), 404)["detail"]


async def test_an_unknown_route_and_a_wrong_method_are_problems_too(api: Api) -> None:
    assert "/api/v1/nothing" in _problem(await api.get("/api/v1/nothing"), 404)["detail"]
    refused = await api.client.post("/api/v1/alerts", headers={"Authorization": f"Bearer {api.tokens.regulator}"})
    assert "POST" in _problem(refused, 405)["detail"]


async def test_an_unexpected_failure_is_a_500_problem_that_hides_the_internals(api: Api) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    api.app.add_api_route("/api/v1/broken-for-this-test", broken)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        response = await client.get("/api/v1/broken-for-this-test")

    body = _problem(response, 500)
    assert "RuntimeError" in body["detail"] and "hunter2" not in response.text


@pytest.fixture
async def api_without_store(tokens: Tokens) -> AsyncIterator[Api]:
    # a PostgreSQL URL on a port where nothing listens: the store cannot be opened
    settings = settings_for("postgresql+asyncpg://postgres@127.0.0.1:9/none", tokens)
    async for served in serve_in_process(create_app(settings), tokens, Network()):
        yield served


async def test_an_unreachable_store_is_a_503_problem_and_not_ready(api_without_store: Api) -> None:
    body = _problem(await api_without_store.get("/api/v1/alerts"), 503)
    assert "history store" in body["detail"]

    ready = await api_without_store.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready" and "cannot be opened" in ready.json()["checks"]["store"]
    assert (await api_without_store.client.get("/healthz")).status_code == 200
