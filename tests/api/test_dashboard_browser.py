"""The dashboard in a real headless Chromium, against a real uvicorn serving the test network.

It loads without console errors, shows the figures the API gives, picks up a newly raised alert
without a reload, and shows an automaker nothing of other exporters, not even in what it fetches.
A screenshot is saved to artifacts/dashboard.png.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from monitor.api import create_app
from monitor.history.store import HistoryStore
from tests.api.conftest import Filled, LiveServer, PortThatAccepts, Tokens, settings_for
from tests.api.network import A1, A2, ALL, SEES, alert, at, source
from tests.services.required import needs

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
MARKET_OBLIGATIONS = ("response_48h", "parts_inventory", "emergency_coverage")

pytestmark = [pytest.mark.heavy, needs(CHROMIUM.exists(), f"no Chromium at {CHROMIUM} to drive the dashboard with "
                                       "(apt-get install chromium)")]


@dataclass
class Site:
    url: str
    store_url: str
    tokens: Tokens

    def api(self, path: str, who: str = "regulator", **params: Any) -> Any:
        token = self.tokens.of(who)
        response = httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def site(filled: Filled, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The app on a real uvicorn over a private copy of the test store (the tests add alerts to it)."""
    mine = filled.copy(tmp_path_factory.mktemp("dashboard-store"))
    with PortThatAccepts() as bootstrap, \
            LiveServer(create_app(settings_for(mine.url, tokens, kafka_bootstrap=bootstrap))) as live:
        yield Site(live.url, mine.url, tokens)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Visit:
    page: Any
    console_errors: list[str]
    responses: list[tuple[str, int, str]]  # url, status, body of every response the page received


@pytest.fixture
def visit(browser: Any) -> Iterator[Any]:
    contexts = []

    def open_page(url: str, *, wait_for_data: bool = True) -> Visit:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page, [], [])
        page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.console_errors.append(str(e)))

        def keep(response: Any) -> None:
            try:
                body = response.text()
            except Exception:  # a body the browser did not keep (a redirect, an aborted request)
                body = ""
            seen.responses.append((response.url, response.status, body))

        page.on("response", keep)
        page.goto(url)
        if wait_for_data:
            page.wait_for_selector('[data-testid="status"][data-updated]', timeout=15000)
        return seen

    yield open_page
    for context in contexts:
        context.close()


def _shown_states(page: Any) -> dict[tuple[str, str, str], dict[str, str]]:
    badges = page.eval_on_selector_all('[data-testid="state"]', "els => els.map(e => ({...e.dataset}))")
    return {(b["exporter"], b["market"], b["obligation"]): b for b in badges}


def _expected_states(snapshots: list[dict], alerts: list[dict]) -> dict[tuple[str, str, str], str]:
    """Each obligation's state at a glance, worked out here independently of the page's script."""

    def by_alert(exporter: str, market: str | None, obligation: str) -> str | None:
        here = [a for a in alerts if a["exporter_id"] == exporter and a["obligation"] == obligation
                and (market is None or a["market"] == market)]
        if any(a["severity"] == "breach" for a in here):
            return "breached"
        return "at_risk" if here else None

    def verdict(flag: bool | None) -> str:
        return "no_data" if flag is None else "met" if flag else "breached"

    expected: dict[tuple[str, str, str], str] = {}
    latest: dict[str, dict] = {}
    for s in snapshots:
        exporter, market = s["exporter_id"], s["market"]
        figure = s["response_48h"]
        from_figures = {
            "response_48h": "met" if figure["compliant"] + figure["breached"] else "no_data",
            "parts_inventory": verdict(s["parts_inventory"]["compliant"]),
            "emergency_coverage": verdict(s["emergency_coverage"]["covered"])
            if s["emergency_coverage"]["major_market"] else "no_data",
        }
        for obligation in MARKET_OBLIGATIONS:
            expected[(exporter, market, obligation)] = (by_alert(exporter, market, obligation)
                                                        or from_figures[obligation])
        if exporter not in latest or s["as_of"] > latest[exporter]["as_of"]:
            latest[exporter] = s
    for exporter, s in latest.items():
        expected[(exporter, "*", "network_size")] = (by_alert(exporter, None, "network_size")
                                                     or verdict(s["network_size"]["compliant"]))
        expected[(exporter, "*", "authorisation")] = by_alert(exporter, None, "authorisation") or "met"
    return expected


def _open_alerts(site: Site, who: str = "regulator") -> list[dict]:
    return site.api("/api/v1/alerts", who, status="open", limit=1000)["items"]


def test_the_regulators_view_shows_what_the_api_gives(site: Site, visit: Any) -> None:
    seen = visit(f"{site.url}/#token={site.tokens.regulator}")
    page = seen.page

    # the token left the address bar and stays for this tab only
    assert "#token" not in page.url and site.tokens.regulator not in page.url
    assert page.evaluate("sessionStorage.getItem('aftersales-monitor.token')") == site.tokens.regulator

    snapshots = site.api("/api/v1/compliance")["items"]
    alerts = _open_alerts(site)
    shown = _shown_states(page)
    expected = _expected_states(snapshots, alerts)
    assert {key: badge["state"] for key, badge in shown.items()} == expected
    assert {"met", "at_risk", "breached", "no_data"} <= set(expected.values())
    for s in snapshots:
        ratio = shown[(s["exporter_id"], s["market"], "response_48h")]["value"]
        assert float(ratio) == s["response_48h"]["ratio"]
        rate = shown[(s["exporter_id"], s["market"], "parts_inventory")]["value"]
        assert (float(rate) if rate else None) == s["parts_inventory"]["rate"]

    # beside each exporter, how current its data is: "no breaches" is never shown for "no data"
    latest: dict[str, dict[str, Any]] = {}
    for s in snapshots:
        if s["exporter_id"] not in latest or s["as_of"] > latest[s["exporter_id"]]["as_of"]:
            latest[s["exporter_id"]] = s
    notes = dict(page.eval_on_selector_all('[data-testid="grid-row"]', """rows => rows.map(r => {
        const note = r.querySelector('[data-testid="freshness"]');
        return [r.dataset.exporter, [note.className, note.textContent]]; })"""))
    wording = {"current": r"data current", "backlog": r"data \d+ (s|min|h|d) behind",
               "quiet": r"quiet for \d+ (s|min|h|d)", "no_data": r"no data yet"}
    for exporter, (classes, text) in notes.items():
        freshness = latest[exporter].get("freshness") if exporter in latest else None
        state = freshness["state"] if freshness else "no_data"
        assert classes.split() == ["freshness", state], exporter
        assert re.fullmatch(wording[state], text), (exporter, text)
    assert {c.split()[1] for c, _ in notes.values()} == set(wording)

    rows = page.eval_on_selector_all('[data-testid="alert-row"]', "els => els.map(e => e.dataset.alertId)")
    assert sorted(rows) == sorted(a["alert_id"] for a in alerts)
    assert page.inner_text('[data-testid="count-exporters"]') == str(len(ALL))
    assert page.inner_text('[data-testid="count-breaches"]') == str(sum(a["severity"] == "breach" for a in alerts))
    assert page.inner_text('[data-testid="count-warnings"]') == str(sum(a["severity"] == "warning" for a in alerts))

    # the selected exporter's history: one mark per stored day of each obligation judged by the day,
    # and the response ratio as a line per market
    selected = page.inner_text('[data-testid="selected-exporter"]')
    history = site.api(f"/api/v1/exporters/{selected}/history")["items"]
    by_day = [r for r in history if r["obligation"] != "response_48h"]
    days = page.eval_on_selector_all('[data-testid="day"]', "els => els.map(e => ({...e.dataset}))")
    assert len(days) == len(by_day)
    assert {(d["day"], d["obligation"], d["market"], d["met"]) for d in days} == {
        (r["day"], r["obligation"], r["market"], str(r["met_all_day"]).lower() if r["met_all_day"] is not None
         else "null") for r in by_day}
    assert page.locator('[data-testid="ratio-line"]').count() == len(
        {r["market"] for r in history if r["obligation"] == "response_48h"})

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    assert seen.console_errors == []


def test_choosing_an_exporter_draws_its_history(site: Site, visit: Any) -> None:
    page = visit(f"{site.url}/#token={site.tokens.regulator}").page

    page.select_option('[data-testid="exporter-select"]', A2)

    # the page forbids script evaluation (its Content-Security-Policy), so the waits are by locator
    expect(page.locator('[data-testid="selected-exporter"]')).to_have_text(A2)
    history = site.api(f"/api/v1/exporters/{A2}/history")["items"]
    expect(page.locator('[data-testid="day"]')).to_have_count(sum(r["obligation"] != "response_48h" for r in history))
    lines = page.locator('[data-testid="ratio-line"]')
    expect(lines).to_have_count(1)
    assert lines.get_attribute("data-market") == "TH"
    expect(page.locator(f'[data-testid="grid-row"][data-exporter="{A2}"]')).to_have_class("selected")


def test_a_newly_raised_alert_appears_without_reloading(site: Site, visit: Any) -> None:
    page = visit(f"{site.url}/#token={site.tokens.regulator}").page
    page.evaluate("window.notReloaded = true")
    raised = alert(A1, "response_48h", "T-NEW-1#1", market="NG", opened=at(5, 9))

    async def write() -> None:
        store = await HistoryStore.open(site.store_url)
        try:
            assert await store.record_alert(raised, source("aftersales.alerts"))
        finally:
            await store.close()

    # Playwright's sync API keeps a loop of its own running in this thread
    with ThreadPoolExecutor(1) as apart:
        apart.submit(asyncio.run, write()).result()

    row = page.wait_for_selector(f'[data-testid="alert-row"][data-alert-id="{raised["alert_id"]}"]', timeout=10000)
    assert "T-NEW-1#1" in row.inner_text()
    badge = page.locator(f'[data-testid="state"][data-exporter="{A1}"][data-market="NG"]'
                         '[data-obligation="response_48h"]')
    assert badge.get_attribute("data-state") == "breached"
    assert page.evaluate("window.notReloaded") is True


def test_an_automakers_view_holds_nothing_of_other_exporters(site: Site, visit: Any) -> None:
    seen = visit(f"{site.url}/#token={site.tokens.automaker[A2]}")
    page = seen.page
    page.wait_for_selector('[data-testid="day"]')  # its history too has been fetched and drawn
    others = [e for e in ALL if e not in SEES[A2]]

    text = page.inner_text("body")
    assert not [e for e in others if e in text]
    rows = page.eval_on_selector_all('[data-testid="grid-row"]', "els => els.map(e => e.dataset.exporter)")
    assert set(rows) == SEES[A2]
    options = page.eval_on_selector_all('[data-testid="exporter-select"] option', "els => els.map(e => e.value)")
    assert set(options) == SEES[A2]
    fetched = [(url, body) for url, _, body in seen.responses if "/api/" in url]
    assert fetched, "the page fetched nothing from the API"
    for url, body in fetched:
        assert not [e for e in others if e in body], url
    assert not [e for e in others if e in page.content()]
    assert seen.console_errors == []


def test_without_a_token_the_page_says_how_to_give_one(site: Site, visit: Any) -> None:
    page = visit(f"{site.url}/", wait_for_data=False).page

    message = page.wait_for_selector('[data-testid="token-message"]:not([hidden])')
    assert "No API token" in message.inner_text() and "#token=" in message.inner_text()
    assert page.locator('[data-testid="dashboard"]').is_hidden()


def test_a_refused_token_is_said_plainly_and_forgotten(site: Site, visit: Any) -> None:
    page = visit(f"{site.url}/#token=mon_not-a-real-token", wait_for_data=False).page

    message = page.wait_for_selector('[data-testid="token-message"]:not([hidden])')
    assert "refused" in message.inner_text()
    assert page.evaluate("sessionStorage.getItem('aftersales-monitor.token')") is None
    assert page.locator('[data-testid="dashboard"]').is_hidden()

