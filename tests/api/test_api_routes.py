"""The /api/v1 routes for a regulator: what each answers from the history store, with its filters."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.conftest import Api
from tests.api.network import A1, A2, ALL, D2, DAYS, MARKETS, X9, stamp


def _latest_snapshots(api: Api) -> dict[tuple[str, str], dict]:
    latest: dict[tuple[str, str], dict] = {}
    for doc in api.network.snapshots:
        key = (doc["exporter_id"], doc["market"])
        if key not in latest or doc["as_of"] > latest[key]["as_of"]:
            latest[key] = doc
    return latest


async def test_exporters_lists_every_exporter_with_its_registration(api: Api) -> None:
    response = await api.get("/api/v1/exporters")

    assert response.status_code == 200
    items = response.json()["items"]
    assert [e["exporter_id"] for e in items] == sorted(ALL)
    by_id = {e["exporter_id"]: e["registration"] for e in items}
    assert by_id[X9] is None  # it sent figures but never registered
    assert by_id[D2]["role"] == "authorised_distributor" and by_id[D2]["authorised_by"] == [A1, A2]


async def test_compliance_gives_the_latest_snapshot_of_each_exporter_and_market(api: Api) -> None:
    response = await api.get("/api/v1/compliance")

    assert response.status_code == 200
    items = response.json()["items"]
    latest = _latest_snapshots(api)
    assert [(s["exporter_id"], s["market"]) for s in items] == sorted(latest)
    for doc in items:
        # a snapshot stored without the exporter's data freshness (an older worker) shows it as null
        assert doc == {"freshness": None, **latest[(doc["exporter_id"], doc["market"])]}
    assert {doc["freshness"]["state"] if doc["freshness"] else None for doc in items} == {
        "current", "backlog", "quiet", None}


async def test_compliance_filters_by_exporter_and_market(api: Api) -> None:
    only_a1 = (await api.get("/api/v1/compliance", exporter=A1)).json()["items"]
    assert {(s["exporter_id"], s["market"]) for s in only_a1} == {(A1, m) for m in MARKETS[A1]}

    kenya = (await api.get("/api/v1/compliance", market="KE")).json()["items"]
    assert {s["exporter_id"] for s in kenya} == {e for e in ALL if "KE" in MARKETS[e]}
    assert (await api.get("/api/v1/compliance", exporter=A2, market="KE")).json()["items"] == []


async def test_alerts_are_given_in_their_latest_status(api: Api) -> None:
    response = await api.get("/api/v1/alerts", limit=1000)

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert {a["alert_id"]: a for a in body["items"]} == api.network.alerts
    order = [(a["opened_at"], a["alert_id"]) for a in body["items"]]
    assert order == sorted(order)


async def test_alert_filters_narrow_to_exact_matches(api: Api) -> None:
    alerts = api.network.alerts.values()
    cases = [
        ({"status": "open"}, lambda a: a["status"] == "open"),
        ({"obligation": "parts_inventory"}, lambda a: a["obligation"] == "parts_inventory"),
        ({"exporter": D2, "market": "GH"}, lambda a: a["exporter_id"] == D2 and a["market"] == "GH"),
        ({"status": "retracted", "obligation": "emergency_coverage"},
         lambda a: a["status"] == "retracted" and a["obligation"] == "emergency_coverage"),
    ]
    for params, wanted in cases:
        response = await api.get("/api/v1/alerts", limit=1000, **params)
        assert response.status_code == 200, params
        assert {a["alert_id"] for a in response.json()["items"]} == {a["alert_id"] for a in alerts if wanted(a)}


async def test_since_keeps_alerts_whose_latest_transition_is_at_or_after_it(api: Api) -> None:
    since = datetime(2026, 3, 3, 8, 1, tzinfo=UTC)  # the instant the parts breaches resolved

    response = await api.get("/api/v1/alerts", since=stamp(since), limit=1000)

    assert response.status_code == 200
    expected = {a["alert_id"] for a in api.network.alerts.values()
                if datetime.fromisoformat(a["raised_at"] or a["opened_at"]) >= since}
    assert {a["alert_id"] for a in response.json()["items"]} == expected
    assert any(a["obligation"] == "parts_inventory" for a in response.json()["items"])


async def test_pages_of_alerts_follow_one_another_by_cursor(api: Api) -> None:
    whole = (await api.get("/api/v1/alerts", limit=1000)).json()["items"]
    pages, cursor = [], None
    while True:
        body = (await api.get("/api/v1/alerts", limit=4, cursor=cursor)).json()
        assert len(body["items"]) <= 4
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            break

    assert [a for page in pages for a in page] == whole
    assert len(pages) == -(-len(whole) // 4)


async def test_an_alert_comes_with_every_transition_stored_for_it(api: Api) -> None:
    resolved = next(a for a in api.network.alerts.values()
                    if a["exporter_id"] == D2 and a["obligation"] == "parts_inventory")

    response = await api.get(f"/api/v1/alerts/{resolved['alert_id']}")

    assert response.status_code == 200
    body = response.json()
    transitions = body.pop("transitions")
    assert body == resolved
    assert [t["status"] for t in transitions] == ["open", "resolved"]
    assert transitions[0]["seq"] < transitions[1]["seq"]
    assert all(len(t["hash"]) == 64 for t in transitions)
    assert transitions[1]["prev_hash"] != "" and transitions[0]["hash"] != transitions[1]["hash"]


async def test_history_gives_each_days_figures(api: Api) -> None:
    response = await api.get(f"/api/v1/exporters/{A1}/history")

    assert response.status_code == 200
    body = response.json()
    assert body["exporter_id"] == A1
    days = sorted({r["day"] for r in body["items"]})
    assert days == [f"2026-03-0{d + 1}" for d in range(DAYS)]
    # per day: 3 market obligations in each market, plus the exporter-wide network size
    assert len(body["items"]) == DAYS * (3 * len(MARKETS[A1]) + 1)
    parts_ke = [r for r in body["items"] if r["obligation"] == "parts_inventory" and r["market"] == "KE"]
    assert all(r["met"] is (r["figure"]["rate"] >= 0.2) for r in parts_ke)


async def test_history_narrows_by_obligation_and_days(api: Api) -> None:
    response = await api.get(f"/api/v1/exporters/{A1}/history", obligation="network_size",
                             from_="2026-03-02", to="2026-03-03")

    assert response.status_code == 200
    rows = response.json()["items"]
    assert [(r["day"], r["market"], r["obligation"]) for r in rows] == [
        ("2026-03-02", "*", "network_size"), ("2026-03-03", "*", "network_size")]


async def test_the_dashboard_page_and_its_files_are_served_with_a_strict_policy(api: Api) -> None:
    page = await api.client.get("/")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("dashboard.js", "dashboard.css"):
        asset = await api.client.get(f"/static/{name}")
        assert asset.status_code == 200 and len(asset.content) > 1000
    # no asset from anywhere else: every reference in the page is local
    assert "http://" not in page.text and "https://" not in page.text
