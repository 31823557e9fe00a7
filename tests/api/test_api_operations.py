"""What operators rely on: liveness, readiness (store and broker), Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.api import create_app
from tests.api.conftest import Api, Filled, Tokens, serve_in_process, settings_for
from tests.api.network import A1


@pytest.fixture
async def broker_port() -> AsyncIterator[int]:
    """A TCP listener standing in for a broker's port: readiness only needs a connection to open."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_liveness_answers_without_a_token(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_ready_when_the_store_and_a_broker_answer(filled: Filled, tokens: Tokens, broker_port: int) -> None:
    app = create_app(settings_for(filled.url, tokens, kafka_bootstrap=f"127.0.0.1:9,127.0.0.1:{broker_port}"))
    async for api in serve_in_process(app, tokens, filled.network):
        response = await api.client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


async def test_not_ready_while_no_broker_answers_and_it_says_why(api: Api) -> None:
    response = await api.client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["checks"]["store"] == "ok"
    assert "127.0.0.1:9" in body["checks"]["broker"]


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


async def test_metrics_count_requests_and_latency_by_route_template(api: Api) -> None:
    template = "/api/v1/exporters/{exporter_id}/history"

    def figures(text: str) -> tuple[dict[tuple[str, str], float], float]:
        samples = _samples(text)
        counts = {(labels["route"], labels["status"]): value for name, labels, value in samples
                  if name == "monitor_api_requests_total"}
        latency = sum(value for name, labels, value in samples
                      if name == "monitor_api_request_duration_seconds_count" and labels["route"] == template)
        return counts, latency

    # the counts are the process's (the default registry): other tests' requests count too
    counts_before, latency_before = figures((await api.client.get("/metrics")).text)
    for _ in range(3):
        await api.get(f"/api/v1/exporters/{A1}/history")
    await api.get("/api/v1/exporters/EXP-NONE/history")
    await api.get("/no/such/path/abc123")

    response = await api.client.get("/metrics")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    counts, latency = figures(response.text)

    def added(route: str, status: str) -> float:
        return counts.get((route, status), 0) - counts_before.get((route, status), 0)

    assert added(template, "200") == 3 and added(template, "404") == 1
    assert added("<unmatched>", "404") == 1
    assert latency - latency_before == 4
    assert not any("abc123" in str(labels) or "EXP-NONE" in str(labels) for _, labels, _ in samples)
    assert any(name == "monitor_api_request_duration_seconds_bucket" for name, _, _ in samples)


async def test_the_openapi_document_describes_every_route_with_its_models(api: Api) -> None:
    response = await api.client.get("/openapi.json")

    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    for path in ("/api/v1/compliance", "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/exporters",
                 "/api/v1/exporters/{exporter_id}/history", "/api/v1/exporters/{exporter_id}/renewal",
                 "/healthz", "/readyz", "/metrics", "/"):
        assert path in paths, path
    refs = {
        "/api/v1/compliance": "ComplianceList", "/api/v1/alerts": "AlertPage", "/api/v1/alerts/{alert_id}":
        "AlertDetail", "/api/v1/exporters": "ExporterList", "/api/v1/exporters/{exporter_id}/history": "History",
        "/api/v1/exporters/{exporter_id}/renewal": "RenewalAssessment",
    }
    for path, model in refs.items():
        operation = paths[path]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(model)
        assert operation["security"] == [{"HTTPBearer": []}]
        for status in ("401", "422"):
            content = operation["responses"][status]["content"]
            assert list(content) == ["application/problem+json"]
            assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    renewal = paths["/api/v1/exporters/{exporter_id}/renewal"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv", "text/html"} <= renewal.keys()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in doc["components"]["schemas"]
