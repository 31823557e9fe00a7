"""The renewal assessment as JSON, CSV or a printable HTML page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any, Literal

from monitor.renewal.assessment import BreachEvidence, ObligationResult, RenewalAssessment

Format = Literal["json", "csv", "html"]
FORMATS: tuple[Format, ...] = ("json", "csv", "html")
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}

CSV_COLUMNS = (
    "row", "exporter_id", "period", "as_of", "overall", "chain_verified", "obligation", "verdict", "measure",
    "figure", "threshold", "threshold_parameter", "threshold_policy_version", "threshold_status",
    "threshold_source", "breaches", "days_in_breach", "days_considered", "days_met", "days_without_data",
    "alert_id", "market", "subject", "opened_at", "resolved_at", "open_at_as_of", "opened_in_period",
    "policy_version", "transitions", "last_hash", "evidence",
)


def render(assessment: RenewalAssessment, output_format: Format) -> str:
    """The assessment in `output_format` (json, csv or html); MEDIA_TYPES gives its media type."""
    if output_format == "json":
        return to_json(assessment)
    if output_format == "csv":
        return to_csv(assessment)
    if output_format == "html":
        return to_html(assessment)
    raise ValueError(f"unknown format {output_format!r}; one of {', '.join(FORMATS)}")


def to_json(assessment: RenewalAssessment) -> str:
    """The model as indented JSON (the same document the API returns), ending in a newline."""
    return assessment.model_dump_json(indent=2) + "\n"


# ---- CSV ---------------------------------------------------------------------------------------

def to_csv(assessment: RenewalAssessment) -> str:
    """RFC 4180 CSV (CRLF line ends, a header row): one row per obligation (`row` = obligation), then
    one per breach of the evidence (`row` = breach) with its evidence summary.

    Every row repeats the exporter, period, as_of, overall verdict and whether the chain verified,
    so a row read alone still says what it belongs to. A text cell that a spreadsheet would run
    as a formula (starting with =, +, -, @, tab or CR) is prefixed with an apostrophe: subjects
    and evidence come from exporters' own data.
    """
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    common = {"exporter_id": assessment.exporter_id, "period": assessment.period,
              "as_of": _stamp(assessment.as_of), "overall": assessment.overall,
              "chain_verified": assessment.chain.verified}
    for result in assessment.obligations:
        writer.writerow(_safe({**common, **_obligation_cells(result), "row": "obligation"}))
    for result in assessment.obligations:
        for breach in result.evidence:
            writer.writerow(_safe({**common, **_breach_cells(result, breach), "row": "breach"}))
    return buffer.getvalue()


def _obligation_cells(result: ObligationResult) -> dict[str, Any]:
    source = result.threshold_source
    return {
        "obligation": result.obligation.value, "verdict": result.verdict, "measure": result.measure,
        "figure": result.figure, "threshold": result.threshold, "threshold_parameter": source.parameter,
        "threshold_policy_version": source.policy_version, "threshold_status": source.status,
        "threshold_source": source.source, "breaches": result.breaches, "days_in_breach": result.days_in_breach,
        "days_considered": result.days_considered, "days_met": result.days_met,
        "days_without_data": result.days_without_data,
    }


def _breach_cells(result: ObligationResult, breach: BreachEvidence) -> dict[str, Any]:
    return {
        "obligation": result.obligation.value, "days_in_breach": breach.days_in_breach,
        "alert_id": breach.alert_id, "market": breach.market, "subject": breach.subject,
        "opened_at": _stamp(breach.opened_at), "resolved_at": _stamp(breach.resolved_at),
        "open_at_as_of": breach.open_at_as_of, "opened_in_period": breach.opened_in_period,
        "policy_version": breach.policy_version, "transitions": len(breach.transitions),
        "last_hash": breach.transitions[-1].hash if breach.transitions else None, "evidence": breach.summary,
    }


def _safe(cells: dict[str, Any]) -> dict[str, Any]:
    return {name: _cell(value) for name, value in cells.items()}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


# ---- HTML --------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 10.5pt/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
       margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.75rem 0 .5rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; margin: .25rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .45rem; text-align: left; vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.meta { color: #57606a; margin: 0 0 1rem; }
.verdict { display: inline-block; padding: .05rem .5rem; border-radius: .25rem; font-weight: 700;
           border: 1px solid currentColor; }
.pass { color: #1a7f37; } .fail, .at_risk { color: #cf222e; }
.insufficient_data { color: #9a6700; } .not_applicable { color: #57606a; }
.overall { font-size: 1.2rem; margin: .5rem 0 1rem; }
.hash { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .8em; word-break: break-all; }
.small { font-size: .88em; color: #57606a; }
ul { margin: .25rem 0 .75rem; padding-left: 1.25rem; }
@page { size: A4; margin: 16mm 14mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9pt; }
  h2 { break-after: avoid; }
  tr, .breach { break-inside: avoid; }
  thead { display: table-header-group; }
  .verdict { border-width: 1.5px; }
}
"""


def to_html(assessment: RenewalAssessment) -> str:
    """A self-contained printable page: inline CSS with print rules, no script, no external asset.

    Every value shown is HTML-escaped, so exporter-supplied text (subjects, evidence) cannot
    inject markup.
    """
    a = assessment
    title = f"Renewal assessment {a.exporter_id} {a.period}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # nothing may be loaded from anywhere: the page stands alone, printed or archived
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Renewal assessment: {_e(a.exporter_id)}</h1>",
        f'<p class="meta">Licence period {_e(a.period)} (UTC days {_e(_stamp(a.period_start))} to '
        f"{_e(_stamp(a.period_end))}, end exclusive) · as of {_e(_stamp(a.as_of))} · "
        f"{'period complete' if a.complete else 'period not over: provisional'}</p>",
        f'<p class="overall">Overall: {_verdict(a.overall)}</p>',
        _list(a.reasons),
        "<h2>Obligations</h2>",
        _obligations_table(a.obligations),
    ]
    for result in a.obligations:
        if result.notes:
            parts.append(f"<h3>{_e(result.obligation.value)}: how the figures were read</h3>")
            parts.append(_list(result.notes))
    parts.append("<h2>Breaches and their evidence</h2>")
    breaches = [(r, b) for r in a.obligations for b in r.evidence]
    if not breaches:
        parts.append("<p>No breach counts in this period.</p>")
    for result, breach in breaches:
        parts.append(_breach_section(result, breach))
    parts += [
        "<h2>Integrity of the record</h2>",
        f"<p>Hash chain of the exporter's alert transitions: "
        f"{_verdict('pass') if a.chain.verified else _verdict('fail')} "
        f"{'verified' if a.chain.verified else 'does not verify'}"
        f"{_e(f' · {a.chain.transitions} transitions') if a.chain.transitions is not None else ''}"
        f"{_e(f' · first bad seq {a.chain.first_bad_seq}') if a.chain.first_bad_seq is not None else ''}"
        f"{_e(f' · {a.chain.detail}') if a.chain.detail else ''}</p>",
        "<h2>Policy versions applied</h2>",
        _policies(a),
        f'<p class="small">Generated for {_e(a.exporter_id)}, period {_e(a.period)}, as of '
        f"{_e(_stamp(a.as_of))}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _verdict(verdict: str) -> str:
    return f'<span class="verdict {_e(verdict)}">{_e(verdict.replace("_", " "))}</span>'


def _list(items: Iterable[str]) -> str:
    lines = [f"<li>{_e(item)}</li>" for item in items]
    return f"<ul>{''.join(lines)}</ul>" if lines else ""


def _number(value: float | None, measure: str) -> str:
    if value is None:
        return "—"
    if measure == "breaches":
        return f"{value:g}"
    return f"{value * 100:.2f} %"


def _obligations_table(results: Iterable[ObligationResult]) -> str:
    rows = []
    for r in results:
        source = r.threshold_source
        origin = (f"{source.parameter} = {source.value} ({source.status}, version {source.policy_version})"
                  if source.parameter else source.source)
        days = (f"{r.days_met} met, {r.days_without_data} without data, of {r.days_considered}"
                if r.days_met is not None else f"{r.days_considered} considered")
        rows.append(
            "<tr>"
            f"<td>{_e(r.obligation.value)}</td><td>{_verdict(r.verdict)}</td>"
            f'<td class="num">{_e(_number(r.figure, r.measure))}</td>'
            f'<td class="num">{_e(_number(r.threshold, r.measure))}</td>'
            f'<td class="num">{_e(r.breaches)}</td><td class="num">{_e(r.days_in_breach)}</td>'
            f"<td>{_e(days)}</td>"
            f'<td class="small">{_e(origin)}<br>{_e(source.source) if source.parameter else ""}</td>'
            "</tr>")
    return ("<table><thead><tr><th>Obligation</th><th>Verdict</th><th>Figure</th><th>Threshold</th>"
            "<th>Breaches</th><th>Days in breach</th><th>Days</th><th>Threshold source</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _breach_section(result: ObligationResult, b: BreachEvidence) -> str:
    transitions = "".join(
        f"<tr><td class=\"num\">{_e(t.seq)}</td><td>{_e(t.status)}</td><td>{_e(_stamp(t.raised_at))}</td>"
        f"<td>{_e(_stamp(t.resolved_at))}</td><td class=\"hash\">{_e(t.prev_hash or '—')}</td>"
        f"<td class=\"hash\">{_e(t.hash)}</td></tr>"
        for t in b.transitions)
    carried = "" if b.opened_in_period else " (opened before the period; its days in the period count)"
    return (
        '<div class="breach">'
        f"<h3>{_e(result.obligation.value)} · {_e(b.subject)}{_e(f' · {b.market}' if b.market else '')}</h3>"
        "<table><tbody>"
        f"<tr><th>Alert</th><td class=\"hash\">{_e(b.alert_id)}</td></tr>"
        f"<tr><th>Opened</th><td>{_e(_stamp(b.opened_at))}{_e(carried)}</td></tr>"
        f"<tr><th>Resolved</th><td>{_e(_stamp(b.resolved_at) or 'open at as_of')}</td></tr>"
        f"<tr><th>Days in breach</th><td>{_e(b.days_in_breach)}</td></tr>"
        f"<tr><th>Policy version</th><td>{_e(b.policy_version)}</td></tr>"
        f"<tr><th>Answerable</th><td>{_e(', '.join(b.accountable))}</td></tr>"
        f"<tr><th>Evidence</th><td>{_e(b.summary)}</td></tr>"
        "</tbody></table>"
        + (("<table><thead><tr><th>Seq</th><th>Status</th><th>Raised</th><th>Resolved</th><th>Previous hash</th>"
            f"<th>Hash</th></tr></thead><tbody>{transitions}</tbody></table>") if transitions else "")
        + "</div>")


def _policies(a: RenewalAssessment) -> str:
    if not a.policy_versions:
        return "<p>None recorded.</p>"
    sections = []
    for policy in a.policy_versions:
        rows = "".join(
            f"<tr><td>{_e(name)}</td><td>{_e(parameter.value)}</td><td>{_e(parameter.status)}</td>"
            f"<td class=\"small\">{_e(parameter.source)}</td></tr>"
            for name, parameter in sorted(policy.parameters.items()))
        sections.append(
            f"<h3>Version {_e(policy.version)}, in force from {_e(policy.effective_from or 'unknown')}</h3>"
            "<table><thead><tr><th>Parameter</th><th>Value</th><th>Status</th><th>Source</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")
    return "".join(sections)
