"""The API over a PostgreSQL history store: the same answers as over SQLite, through the same code path.

The server is the one MONITOR_TEST_POSTGRES names (an asyncpg DSN of a database to connect to for
creating others; default the local server). A database `test_api_<random>` is made for the
session, filled through HistoryStore's write methods, and dropped at the end (conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.api import create_app
from tests.api.conftest import Api, Filled, Tokens, serve_in_process, settings_for
from tests.api.network import A1, A2, D2, SEES, Network


@pytest.fixture
async def pg_api(postgres_network: tuple[str, Network], tokens: Tokens) -> AsyncIterator[Api]:
    url, network = postgres_network
    async for served in serve_in_process(create_app(settings_for(url, tokens)), tokens, network):
        yield served


@pytest.fixture
async def sqlite_api(filled: Filled, tokens: Tokens) -> AsyncIterator[Api]:
    async for served in serve_in_process(create_app(settings_for(filled.url, tokens)), tokens, filled.network):
        yield served


def _no_ids(doc: Any) -> Any:
    """A document without what differs between two fillings: alert ids and hashes are the same, seqs may not be."""
    if isinstance(doc, dict):
        return {k: _no_ids(v) for k, v in doc.items() if k not in ("seq",)}
    if isinstance(doc, list):
        return [_no_ids(v) for v in doc]
    return doc


@pytest.mark.parametrize(("path", "who"), [
    ("/api/v1/exporters", "regulator"),
    ("/api/v1/compliance", A1),
    ("/api/v1/alerts?limit=5", "regulator"),
    ("/api/v1/alerts?status=open&since=2026-03-03T00:00:00Z", A2),
    (f"/api/v1/exporters/{D2}/history?obligation=parts_inventory&from=2026-03-02", A2),
    (f"/api/v1/exporters/{A1}/renewal?period=2026", "reviewer"),
])
async def test_postgresql_answers_as_sqlite_does(pg_api: Api, sqlite_api: Api, path: str, who: str) -> None:
    on_postgres = await pg_api.get(path, who=who)
    on_sqlite = await sqlite_api.get(path, who=who)

    assert on_postgres.status_code == on_sqlite.status_code == 200, on_postgres.text
    assert _no_ids(on_postgres.json()) == _no_ids(on_sqlite.json())


async def test_pages_and_visibility_hold_on_postgresql(pg_api: Api) -> None:
    seen, cursor = [], None
    while True:
        body = (await pg_api.get("/api/v1/alerts", who=A1, limit=2, cursor=cursor)).json()
        seen.extend(body["items"])
        cursor = body["next"]
        if cursor is None:
            break

    assert {a["alert_id"] for a in seen} == {a["alert_id"] for a in pg_api.network.alerts.values()
                                            if a["exporter_id"] in SEES[A1]}
    assert len(seen) == len({a["alert_id"] for a in seen})
    assert (await pg_api.get(f"/api/v1/exporters/{A2}/history", who=A1)).status_code == 404
    assert (await pg_api.client.get("/readyz")).json()["checks"]["store"] == "ok"


@pytest.mark.parametrize(("path", "parameter"), [
    ("/api/v1/alerts?exporter=A%00B", "query.exporter"),
    ("/api/v1/alerts/A%00B", "path.alert_id"),
    ("/api/v1/exporters/A%00B/history", "path.exporter_id"),
    # a cursor naming an alert id with a NUL in it: well-formed, but not one this API gave
    ("/api/v1/alerts?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwWiIsICJhXHUwMDAwIl0", "query.cursor"),
])
async def test_a_nul_character_postgresql_cannot_hold_is_refused_not_a_server_error(pg_api: Api, path: str,
                                                                                    parameter: str) -> None:
    response = await pg_api.get(path)

    assert response.status_code == 422, response.text
    assert response.json()["invalid_parameters"][0]["parameter"] == parameter
