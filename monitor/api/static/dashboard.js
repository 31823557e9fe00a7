// The regulators' dashboard: reads the monitor's API with the caller's token and redraws itself
// every 2 s. Everything shown comes from /api/v1; nothing is loaded from anywhere else.
"use strict";

(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = "aftersales-monitor.token";
  const MARKET_OBLIGATIONS = [
    ["response_48h", "R", "48-hour response"],
    ["parts_inventory", "P", "parts inventory"],
    ["emergency_coverage", "E", "emergency rescue coverage"],
  ];
  const EXPORTER_OBLIGATIONS = [
    ["network_size", "N", "network size"],
    ["authorisation", "A", "authorisation"],
  ];
  const SHORT = Object.fromEntries([...MARKET_OBLIGATIONS, ...EXPORTER_OBLIGATIONS].map(([o, s]) => [o, s]));
  const MARK = { met: "✓", at_risk: "!", breached: "✗", no_data: "–" };
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const state = { token: null, selected: null, timer: null, busy: false, stopped: false, knownAlerts: null };

  // ---- token: from the URL fragment once, then from this tab's session storage ----------------

  function takeTokenFromFragment() {
    const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (match) {
      const token = decodeURIComponent(match[1]).trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      // the token stays out of the address bar, history and anything copied from it
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showTokenProblem(text) {
    const box = $("token-message");
    box.replaceChildren();
    const lead = document.createElement("strong");
    lead.textContent = text;
    const how = document.createElement("p");
    how.append("Open this page as ");
    const example = document.createElement("code");
    example.textContent = `${window.location.origin}/#token=YOUR_TOKEN`;
    how.append(example, "; make a token with ");
    const command = document.createElement("code");
    command.textContent = "monitor token create --role regulator";
    how.append(command, ".");
    box.append(lead, how);
    box.hidden = false;
    $("dashboard").hidden = true;
    $("status").textContent = "no data: " + text.toLowerCase();
  }

  // ---- API -------------------------------------------------------------------------------------

  class Refused extends Error {}

  async function api(path, accept = "application/json") {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: accept },
      cache: "no-store",
    });
    if (response.status === 401) throw new Refused("The API refused this token.");
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not a problem document */ }
      throw new Error(`${path}: ${response.status} ${detail}`);
    }
    return accept === "application/json" ? response.json() : response.blob();
  }

  async function openAlerts() {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 50; page += 1) {
      const query = new URLSearchParams({ status: "open", limit: "1000" });
      if (cursor) query.set("cursor", cursor);
      const body = await api(`/api/v1/alerts?${query}`);
      items.push(...body.items);
      cursor = body.next;
      if (!cursor) break;
    }
    return items;
  }

  // ---- what each cell shows -------------------------------------------------------------------

  function percent(value) {
    return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;
  }

  // an open breach wins over an open warning, which wins over what the latest figures say
  function judged(alertsHere, obligation) {
    const mine = alertsHere.filter((a) => a.obligation === obligation);
    if (mine.some((a) => a.severity === "breach")) return "breached";
    if (mine.some((a) => a.severity === "warning")) return "at_risk";
    return null;
  }

  function marketBadge(snapshot, obligation, alertsHere) {
    const byAlert = judged(alertsHere, obligation);
    if (!snapshot) return { state: byAlert || "no_data", text: "", value: "", why: "no figures for this market" };
    if (obligation === "response_48h") {
      const f = snapshot.response_48h;
      const counted = f.compliant + f.breached;
      const text = counted ? percent(f.ratio) : "–";
      const why = `${f.compliant} compliant, ${f.breached} breached, ${f.pending} pending, ${f.withdrawn} withdrawn`;
      return { state: byAlert || (counted ? "met" : "no_data"), text, value: f.ratio ?? "", why };
    }
    if (obligation === "parts_inventory") {
      const f = snapshot.parts_inventory;
      const fromFigure = f.compliant === null ? "no_data" : f.compliant ? "met" : "breached";
      const why = f.catalogue === null ? "no catalogue (unregistered exporter)"
        : `${f.stocked} of ${f.catalogue} common parts in stock`;
      return { state: byAlert || fromFigure, text: percent(f.rate), value: f.rate ?? "", why };
    }
    const f = snapshot.emergency_coverage;
    if (!f.major_market) {
      return { state: byAlert || "no_data", text: "n/a", value: "", why: "not a major market: not judged" };
    }
    return {
      state: byAlert || (f.covered ? "met" : "breached"),
      text: `${f.rescue_outlets}/${f.active_outlets}`,
      value: f.rescue_outlets,
      why: `${f.rescue_outlets} rescue outlets of ${f.active_outlets} active`,
    };
  }

  function exporterBadge(latest, obligation, alertsHere) {
    const byAlert = judged(alertsHere, obligation);
    if (!latest) return { state: byAlert || "no_data", text: "", value: "", why: "no figures yet" };
    if (obligation === "network_size") {
      const f = latest.network_size;
      const fromFigure = f.compliant === null ? "no_data" : f.compliant ? "met" : "breached";
      const required = f.required === null ? "no minimum" : f.required;
      return { state: byAlert || fromFigure, text: `${f.active_outlets}/${required}`, value: f.active_outlets,
        why: `${f.active_outlets} active outlets; required ${required}` };
    }
    const open = alertsHere.filter((a) => a.obligation === obligation).length;
    return { state: byAlert || "met", text: open ? String(open) : "", value: open,
      why: open ? `${open} open authorisation breach(es)` : "no open authorisation breach" };
  }

  function badge(exporter, market, obligation, shown) {
    const el = document.createElement("span");
    el.className = `badge ${shown.state}`;
    el.dataset.testid = "state";
    el.dataset.exporter = exporter;
    el.dataset.market = market;
    el.dataset.obligation = obligation;
    el.dataset.state = shown.state;
    el.dataset.value = String(shown.value);
    el.title = `${obligation}: ${shown.state.replace("_", " ")} — ${shown.why}`;
    el.textContent = `${MARK[shown.state]} ${SHORT[obligation]}${shown.text ? " " + shown.text : ""}`;
    return el;
  }

  // ---- drawing ---------------------------------------------------------------------------------

  function drawGrid(exporters, snapshots, alerts) {
    const visibleIds = new Set(exporters.map((e) => e.exporter_id));
    for (const s of snapshots) visibleIds.add(s.exporter_id);
    const ids = [...visibleIds].sort();
    const markets = new Set(snapshots.map((s) => s.market));
    for (const e of exporters) for (const m of (e.registration?.major_markets || [])) markets.add(m);
    const marketList = [...markets].sort();

    const head = document.createElement("tr");
    for (const title of ["Exporter", "Exporter-wide", ...marketList]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = title;
      head.append(th);
    }
    $("grid-head").replaceChildren(head);

    const rows = [];
    for (const id of ids) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "grid-row";
      tr.dataset.exporter = id;
      if (id === state.selected) tr.className = "selected";
      const th = document.createElement("th");
      th.scope = "row";
      const pick = document.createElement("button");
      pick.type = "button";
      pick.textContent = id;
      pick.title = `show the history of ${id}`;
      pick.addEventListener("click", () => select(id));
      th.append(pick);
      const registration = exporters.find((e) => e.exporter_id === id)?.registration;
      if (registration?.name) {
        const note = document.createElement("span");
        note.className = "market-note";
        note.textContent = registration.name;
        th.append(note);
      }
      const mine = snapshots.filter((s) => s.exporter_id === id);
      const latest = mine.reduce((a, b) => (!a || b.as_of > a.as_of ? b : a), null);
      th.append(freshnessNote(latest));
      tr.append(th);

      const myAlerts = alerts.filter((a) => a.exporter_id === id);
      const wide = document.createElement("td");
      wide.dataset.testid = "cell";
      wide.dataset.exporter = id;
      wide.dataset.market = "*";
      for (const [obligation] of EXPORTER_OBLIGATIONS) {
        wide.append(badge(id, "*", obligation, exporterBadge(latest, obligation, myAlerts)));
      }
      tr.append(wide);

      const major = new Set(registration?.major_markets || []);
      for (const market of marketList) {
        const td = document.createElement("td");
        const snapshot = mine.find((s) => s.market === market);
        const here = myAlerts.filter((a) => a.market === market);
        if (!snapshot && !major.has(market) && !here.length) {
          td.className = "absent";
          td.title = `${id} has no figures in ${market}`;
          tr.append(td);
          continue;
        }
        td.dataset.testid = "cell";
        td.dataset.exporter = id;
        td.dataset.market = market;
        for (const [obligation] of MARKET_OBLIGATIONS) {
          td.append(badge(id, market, obligation, marketBadge(snapshot, obligation, here)));
        }
        tr.append(td);
      }
      rows.push(tr);
    }
    $("grid-body").replaceChildren(...rows);
    $("grid-empty").hidden = rows.length > 0;
    return ids;
  }

  // how current an exporter's data is, so that "no breaches" is never read into "no data"
  function freshnessNote(latest) {
    const note = document.createElement("span");
    note.dataset.testid = "freshness";
    const f = latest?.freshness;
    const state = !f || !f.latest_event_at ? "no_data" : f.state;
    note.className = `freshness ${state}`;
    const age = f?.latest_event_at ? duration((Date.now() - Date.parse(f.latest_event_at)) / 1000) : "";
    note.textContent = {
      no_data: "no data yet",
      current: "data current",
      backlog: `data ${age} behind`,
      quiet: `quiet for ${age}`,
    }[state] || state;
    note.title = f?.latest_event_at
      ? `latest event ${f.latest_event_at}; figures run on the ${f.clock === "event_time" ? "exporter's own event time" : "wall clock"}`
      : "no event received from this exporter";
    return note;
  }

  function duration(seconds) {
    const s = Math.max(0, seconds);
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }

  function stamp(text) {
    return text ? text.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "Z") : "–";
  }

  function drawAlerts(alerts) {
    const sorted = [...alerts].sort((a, b) =>
      (b.raised_at || b.opened_at).localeCompare(a.raised_at || a.opened_at) || a.alert_id.localeCompare(b.alert_id));
    const rows = sorted.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.testid = "alert-row";
      tr.dataset.alertId = a.alert_id;
      tr.dataset.exporter = a.exporter_id;
      tr.className = a.severity + (state.knownAlerts && !state.knownAlerts.has(a.alert_id) ? " fresh" : "");
      const cells = [a.exporter_id, a.market || "all", a.obligation, a.severity, a.subject,
        stamp(a.opened_at), stamp(a.raised_at)];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    state.knownAlerts = new Set(alerts.map((a) => a.alert_id));
    $("alerts-body").replaceChildren(...rows);
    $("alerts-empty").hidden = rows.length > 0;
  }

  function svg(tag, attributes, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawHistory(rows) {
    const box = $("history-chart");
    $("history-empty").hidden = rows.length > 0;
    if (!rows.length) {
      box.replaceChildren();
      return;
    }
    const days = [...new Set(rows.map((r) => r.day))].sort();
    const index = new Map(days.map((d, i) => [d, i]));
    const left = 200;
    const width = Math.max(520, (box.clientWidth || 900) - 24);
    const step = (width - left - 20) / Math.max(days.length, 1);
    const x = (day) => left + index.get(day) * step + step / 2;
    const lineTop = 28;
    const lineHeight = 130;
    const response = rows.filter((r) => r.obligation === "response_48h" && r.figure && r.figure.ratio !== null
      && r.figure.ratio !== undefined);
    // the axis starts just below the lowest ratio, so differences near 100 % stay visible
    const lowest = Math.min(1, ...response.map((r) => r.figure.ratio));
    const floor = Math.max(0, Math.min(0.9, Math.floor((lowest - 0.05) * 10) / 10));
    const y = (ratio) => lineTop + (1 - (ratio - floor) / (1 - floor)) * lineHeight;

    // the response obligation is judged over a period, never day by day: it is the line above
    const daily = rows.filter((r) => r.obligation !== "response_48h");
    const strips = [...new Set(daily.map((r) => `${r.obligation}|${r.market}`))].sort();
    const stripTop = lineTop + lineHeight + 48;
    const stripHeight = 14;
    const height = stripTop + strips.length * (stripHeight + 4) + 24;

    const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "daily figures of the selected exporter" });
    chart.dataset.testid = "history-svg";
    chart.append(svg("text", { x: 4, y: 16, class: "title" }, "48-hour response: compliance ratio per market"));
    for (const ratio of [floor, (floor + 1) / 2, 1]) {
      chart.append(svg("line", { x1: left, x2: width - 20, y1: y(ratio), y2: y(ratio), stroke: "#d8dde5" }));
      chart.append(svg("text", { x: left - 8, y: y(ratio) + 4, "text-anchor": "end" },
        `${Math.round(ratio * 100)} %`));
    }
    const palette = ["#1f4fa3", "#b3261e", "#1b7f3b", "#9a5b00", "#6b3fa0", "#00738a", "#8a1c7c", "#4b5563"];
    const byMarket = new Map();
    for (const r of response) {
      if (!byMarket.has(r.market)) byMarket.set(r.market, []);
      byMarket.get(r.market).push(r);
    }
    [...byMarket.keys()].sort().forEach((market, i) => {
      const points = byMarket.get(market).sort((a, b) => a.day.localeCompare(b.day));
      const colour = palette[i % palette.length];
      const path = points.map((p, k) => `${k ? "L" : "M"}${x(p.day).toFixed(1)},${y(p.figure.ratio).toFixed(1)}`);
      const line = svg("path", { d: path.join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
      line.dataset.testid = "ratio-line";
      line.dataset.market = market;
      chart.append(line);
      for (const p of points) {
        const dot = svg("circle", { cx: x(p.day), cy: y(p.figure.ratio), r: 2.5, fill: colour });
        dot.append(svg("title", {}, `${market} ${p.day}: ${percent(p.figure.ratio)}`));
        chart.append(dot);
      }
      chart.append(svg("text", { x: left + i * 70, y: lineTop + lineHeight + 18, fill: colour }, `— ${market}`));
    });

    chart.append(svg("text", { x: 4, y: stripTop - 10, class: "title" },
      "Met all day? (green: yes, red: no, grey: undefined)"));
    const fills = { true: "#1b7f3b", false: "#b3261e", null: "#c7ccd4" };
    strips.forEach((key, i) => {
      const [obligation, market] = key.split("|");
      const top = stripTop + i * (stripHeight + 4);
      chart.append(svg("text", { x: left - 8, y: top + stripHeight - 3, "text-anchor": "end" },
        `${obligation} · ${market === "*" ? "all" : market}`));
      for (const r of daily.filter((row) => row.obligation === obligation && row.market === market)) {
        const met = r.met_all_day === undefined ? null : r.met_all_day;
        const cell = svg("rect", { x: x(r.day) - step / 2 + 1, y: top, width: Math.max(step - 2, 1),
          height: stripHeight, fill: fills[String(met)] });
        cell.dataset.testid = "day";
        cell.dataset.day = r.day;
        cell.dataset.obligation = obligation;
        cell.dataset.market = market;
        cell.dataset.met = String(met);
        cell.append(svg("title", {}, `${obligation} ${market} ${r.day}: ${met === null ? "undefined" : met ? "met" : "not met"}`));
        chart.append(cell);
      }
    });
    const axis = stripTop + strips.length * (stripHeight + 4) + 14;
    chart.append(svg("text", { x: left, y: axis }, days[0]));
    chart.append(svg("text", { x: width - 20, y: axis, "text-anchor": "end" }, days[days.length - 1]));
    box.replaceChildren(chart);
  }

  function drawSelector(ids) {
    const select = $("exporter-select");
    const current = [...select.options].map((o) => o.value).join("|");
    if (current !== ids.join("|")) {
      select.replaceChildren(...ids.map((id) => new Option(id, id)));
    }
    select.value = state.selected || "";
    $("selected-exporter").textContent = state.selected || "–";
  }

  // ---- the loop --------------------------------------------------------------------------------

  async function refresh() {
    if (state.busy || state.stopped) return;
    state.busy = true;
    try {
      const [exporters, compliance, alerts] = await Promise.all([
        api("/api/v1/exporters"), api("/api/v1/compliance"), openAlerts(),
      ]);
      const snapshots = compliance.items;
      $("token-message").hidden = true;
      $("dashboard").hidden = false; // shown before drawing, so the chart can take the width it has
      const ids = drawGrid(exporters.items, snapshots, alerts);
      if (!state.selected || !ids.includes(state.selected)) state.selected = ids[0] || null;
      drawSelector(ids);
      drawAlerts(alerts);
      $("count-exporters").textContent = String(ids.length);
      $("count-breaches").textContent = String(alerts.filter((a) => a.severity === "breach").length);
      $("count-warnings").textContent = String(alerts.filter((a) => a.severity === "warning").length);
      if (state.selected) {
        const history = await api(`/api/v1/exporters/${encodeURIComponent(state.selected)}/history`);
        if (history.exporter_id === state.selected) drawHistory(history.items);
      } else {
        drawHistory([]);
      }
      $("status").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
      $("status").dataset.updated = String(Date.now());
    } catch (error) {
      if (error instanceof Refused) {
        sessionStorage.removeItem(TOKEN_KEY);
        state.stopped = true;
        showTokenProblem("The API refused this token (unknown, revoked or mistyped).");
      } else {
        $("status").textContent = `cannot refresh (${error.message}); retrying`;
      }
    } finally {
      state.busy = false;
    }
  }

  function select(id) {
    state.selected = id;
    for (const row of document.querySelectorAll('[data-testid="grid-row"]')) {
      row.className = row.dataset.exporter === id ? "selected" : "";
    }
    $("selected-exporter").textContent = id;
    $("exporter-select").value = id;
    refresh();
  }

  async function downloadRenewal() {
    const message = $("renewal-message");
    const period = $("renewal-period").value;
    const accept = $("renewal-format").value;
    if (!state.selected || !/^\d{4}$/.test(period)) {
      message.textContent = "choose an exporter and a year";
      return;
    }
    message.textContent = "preparing…";
    try {
      const path = `/api/v1/exporters/${encodeURIComponent(state.selected)}/renewal?period=${period}`;
      let blob = await api(path, accept);
      if (accept === "application/json") {
        blob = new Blob([JSON.stringify(blob, null, 2)], { type: "application/json" });
      }
      const extension = { "text/html": "html", "text/csv": "csv", "application/json": "json" }[accept];
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `renewal-${state.selected}-${period}.${extension}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      message.textContent = `saved ${link.download}`;
    } catch (error) {
      message.textContent = error instanceof Refused ? "the token was refused" : error.message;
    }
  }

  function start() {
    state.token = takeTokenFromFragment();
    state.stopped = false;
    $("renewal-period").value = String(new Date().getUTCFullYear());
    if (!state.token) {
      showTokenProblem("No API token given.");
      return;
    }
    refresh();
    if (state.timer === null) state.timer = setInterval(refresh, POLL_MS);
  }

  window.addEventListener("hashchange", start);
  document.addEventListener("DOMContentLoaded", () => {
    $("exporter-select").addEventListener("change", (event) => select(event.target.value));
    $("renewal-download").addEventListener("click", downloadRenewal);
    start();
  });
})();
