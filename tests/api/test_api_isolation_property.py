"""Property: whatever an automaker asks, on any route with any filters, it never gets another exporter's data.

Requests go to a real uvicorn serving the test network. Every exporter id in every answer (as
`exporter_id`, in `accountable`, in `authorised_by`, or anywhere in the text) must be one the
token may see; a question about any other exporter answers 404 exactly as an unknown one does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Filled, Tokens
from tests.api.network import A1, A2, ALL, D1, D2, SEES, X9

AUTOMAKERS = [A1, A2, D1, D2, X9]
EXPORTER_IDS = [*ALL, "EXP-NONE"]
MARKETS = ["KE", "NG", "TH", "GH", "ZA"]
OBLIGATIONS = ["response_48h", "parts_inventory", "emergency_coverage", "network_size", "authorisation"]
STATUSES = ["open", "resolved", "retracted"]
DAYS = [f"2026-0{m}-{d:02d}" for m in (2, 3) for d in (1, 2, 3, 5, 28)]


@pytest.fixture(scope="module")
def client(live_api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api, timeout=30) as session:
        yield session


def maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.none() | st.sampled_from(values)


def _query(**params: Any) -> dict[str, Any]:
    return {key.rstrip("_"): value for key, value in params.items() if value is not None}


def requests(alert_ids: list[str]) -> st.SearchStrategy[tuple[str, dict[str, Any], str]]:
    """(path, query, Accept) of any route with any filters."""
    exporters = st.sampled_from(EXPORTER_IDS)
    listing = st.builds(lambda: ("/api/v1/exporters", {}, "application/json"))
    compliance = st.builds(lambda e, m: ("/api/v1/compliance", _query(exporter=e, market=m), "application/json"),
                           maybe(EXPORTER_IDS), maybe(MARKETS))
    alerts = st.builds(
        lambda e, m, o, s, since, limit: ("/api/v1/alerts", _query(exporter=e, market=m, obligation=o, status=s,
                                                                   since=since, limit=limit), "application/json"),
        maybe(EXPORTER_IDS), maybe(MARKETS), maybe(OBLIGATIONS), maybe(STATUSES),
        maybe([f"{d}T00:00:00Z" for d in DAYS]), st.none() | st.integers(1, 7))
    detail = st.builds(lambda a: (f"/api/v1/alerts/{a}", {}, "application/json"), st.sampled_from(alert_ids))
    history = st.builds(
        lambda e, o, start, end: (f"/api/v1/exporters/{e}/history", _query(obligation=o, from_=start, to=end),
                                  "application/json"),
        exporters, maybe(OBLIGATIONS), maybe(DAYS[:5]), maybe(DAYS[5:]))
    renewal = st.builds(lambda e, p, accept: (f"/api/v1/exporters/{e}/renewal", {"period": p}, accept),
                        exporters, st.sampled_from([2025, 2026]),
                        st.sampled_from(["application/json", "text/csv", "text/html"]))
    deliveries = st.builds(
        lambda w, s, a, limit: ("/api/v1/webhooks/deliveries", _query(webhook=w, status=s, alert=a, limit=limit),
                                "application/json"),
        maybe(["hook-a1", "hook-a2"]), maybe(["pending", "delivered", "expired"]), maybe(alert_ids),
        st.none() | st.integers(1, 7))
    return st.one_of(listing, compliance, alerts, detail, history, renewal, deliveries)


def _ids_named(doc: Any) -> Iterator[str]:
    """Every exporter id a document names in the fields that hold them."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "exporter_id" and isinstance(value, str):
                yield value
            elif key in ("accountable", "authorised_by") and isinstance(value, list):
                yield from value
            else:
                yield from _ids_named(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _ids_named(item)


def _check(response: httpx.Response, sees: set[str]) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 404:
        return  # checked against an unknown exporter's answer by the caller
    assert response.status_code == 200, response.text
    others = [e for e in ALL if e not in sees]
    assert not [e for e in others if e in response.text], f"another exporter's data in {response.text[:500]}"
    if response.headers["content-type"].startswith("application/json"):
        assert set(_ids_named(response.json())) <= sees


@pytest.mark.heavy  # 150 generated requests: seconds
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_automaker_never_gets_another_exporters_data(client: httpx.Client, tokens: Tokens, filled: Filled,
                                                       data: st.DataObject) -> None:
    who = data.draw(st.sampled_from(AUTOMAKERS), label="token of")
    sees = SEES[who]
    path, query, accept = data.draw(requests(sorted(filled.network.alerts)), label="request")
    headers = {"Authorization": f"Bearer {tokens.automaker[who]}", "Accept": accept}

    response = client.get(path, params=query, headers=headers)
    _check(response, sees)

    named = query.get("exporter") or (path.split("/")[4] if path.startswith("/api/v1/exporters/") else None)
    if named is not None:
        # a visible exporter answers; any other answers exactly as one that does not exist
        if named in sees:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 404
            unknown = client.get(path.replace(named, "EXP-UNKNOWN"),
                                 params={k: ("EXP-UNKNOWN" if v == named else v) for k, v in query.items()},
                                 headers=headers)
            assert response.text.replace(named, "EXP-UNKNOWN") == unknown.text
    if path.startswith("/api/v1/alerts/"):
        owner = filled.network.alerts[path.rsplit("/", 1)[1]]["exporter_id"]
        assert response.status_code == (200 if owner in sees else 404)
    if path == "/api/v1/webhooks/deliveries":
        # only the deliveries of webhooks naming one of the token's exporters: hook-a1 for A1, hook-a2 for A2
        own = {A1: "hook-a1", A2: "hook-a2"}.get(who)
        named_hook = query.get("webhook")
        assert response.status_code == (404 if named_hook is not None and named_hook != own else 200), response.text
        if response.status_code == 200:
            assert {d["webhook_id"] for d in response.json()["items"]} <= ({own} if own else set())
    if path in ("/api/v1/alerts", "/api/v1/webhooks/deliveries") and response.status_code == 200:
        # every following page is held to the same rule
        body = response.json()
        while body["next"] is not None:
            page = client.get(path, params={**query, "cursor": body["next"]}, headers=headers)
            _check(page, sees)
            body = page.json()


def test_the_property_sees_something_for_every_automaker(client: httpx.Client, tokens: Tokens) -> None:
    # guards the property against passing vacuously: every token does see its own exporters' data
    for who in AUTOMAKERS:
        response = client.get("/api/v1/alerts", params={"limit": 1000},
                              headers={"Authorization": f"Bearer {tokens.automaker[who]}"})
        assert {a["exporter_id"] for a in response.json()["items"]} == SEES[who]
        assert json.dumps(response.json()).count("alert_id") >= len(SEES[who])
