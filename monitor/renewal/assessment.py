"""Renewal assessment (OBLIGATIONS.md, "Renewal assessment"): a licence year, obligation by obligation.

Pure: it is given the exporter's alerts (each with its stored transitions), its daily figures,
the policy, the hash-chain check and "now", and reads nothing else: no store, no clock.

Readings where OBLIGATIONS.md is silent are stated in the field descriptions below and in
the README ("How the rules are read", Renewal assessment).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.contracts.outputs import AppliedParameter, AppliedPolicy, Obligation
from monitor.obligations.policy import PolicyBook, Thresholds
from monitor.obligations.timebase import DAY, Micros, to_datetime, to_micros, utc_midnight
from monitor.renewal.summary import summarise

Verdict = Literal["pass", "fail", "insufficient_data", "not_applicable"]
Overall = Literal["pass", "at_risk", "insufficient_data"]

# obligations judged by the share of days met, with their daily-figure name
_DAY_OBLIGATIONS = (Obligation.parts_inventory, Obligation.emergency_coverage, Obligation.network_size)
_ORDER = (Obligation.response_48h, *_DAY_OBLIGATIONS, Obligation.authorisation)
_RATIO_PARAMETER = "renewal.response_48h.min_ratio"
_SHARE_PARAMETER = "renewal.min_share_of_days_met"
_AUTHORISATION_RULE = "OBLIGATIONS.md, Renewal assessment: authorisation passes with no breach in the period"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdSource(_Model):
    """Where a verdict's threshold comes from, so a reviewer sees what it rests on."""

    parameter: str | None = Field(description="the policy parameter; null for authorisation, whose "
                                              "threshold (no breach) is the rule itself")
    policy_version: str | None = Field(description="the policy version the threshold was taken from")
    value: Any = Field(description="the parameter's value in that version")
    status: str | None = Field(description="official (read in the official text) or reported (read only in "
                                           "reports of it); null for authorisation")
    source: str = Field(description="the rule the threshold implements and where it was published")


class TransitionRecord(_Model):
    """One stored transition of an alert, as the history store's hash chain holds it."""

    seq: int | None
    status: str
    opened_at: datetime | None
    resolved_at: datetime | None
    raised_at: datetime | None = Field(description="when the monitor published this transition")
    hash: str | None = Field(description="sha256 of prev_hash and the transition's content")
    prev_hash: str | None


class BreachEvidence(_Model):
    """One breach that counts in the assessment, with what a reviewer needs to check it."""

    alert_id: str
    obligation: Obligation
    market: str | None
    subject: str
    opened_at: datetime = Field(description="event time the breach began")
    resolved_at: datetime | None = Field(
        description="event time it ended; null when still open at as_of (a resolution after as_of is not "
                    "yet known at as_of)")
    open_at_as_of: bool
    opened_in_period: bool = Field(
        description="false for a breach opened before the period and still open when it began: it counts "
                    "in days_in_breach but not in the number of breaches")
    days_in_breach: int = Field(description="UTC days of the assessed part of the period this breach touches")
    policy_version: str
    accountable: list[str]
    summary: str = Field(description="the evidence in one line, for tables")
    evidence: dict[str, Any] = Field(description="the alert's evidence as published")
    transitions: list[TransitionRecord] = Field(description="every stored transition, oldest first, with hashes")


class ObligationResult(_Model):
    """One obligation judged over the period."""

    obligation: Obligation
    measure: str = Field(description="what `figure` is: compliance_ratio (response_48h), share_of_days_met "
                                     "(parts_inventory, emergency_coverage, network_size) or breaches "
                                     "(authorisation)")
    figure: float | None = Field(
        description="response_48h: compliant / (compliant + breached) over the period, null with no "
                    "cycle; day obligations: days_met / days_considered, null with no day considered; "
                    "authorisation: the number of breaches opened in the period")
    threshold: float | None = Field(
        description="response_48h: the least compliance ratio that passes; day obligations: the least "
                    "share of days met that passes; authorisation: 0 (the most breaches that pass). Taken "
                    "from the policy version in force at the end of the assessed part of the period (its "
                    "last instant, or as_of before then): the renewal is judged at the period's end")
    threshold_source: ThresholdSource
    counts: dict[str, int] | None = Field(
        default=None, description="response_48h: cycles compliant, breached and withdrawn in the period")
    breaches: int = Field(description="breach alerts of this obligation opened in the period up to as_of, "
                                      "retracted ones aside (warnings are not breaches)")
    days_in_breach: int = Field(
        description="UTC days of the period, up to as_of, that intersect a breach's [opened_at, resolved_at "
                    "or as_of); authorisation alerts record facts and never resolve, so for authorisation "
                    "the days on which a breach was opened")
    days_considered: int = Field(
        description="UTC days of the period judged so far: every day that ended by as_of, plus the day of "
                    "as_of when a breach already touches it (it cannot be met whatever follows)")
    days_met: int | None = Field(
        description="day obligations: considered days the obligation held for the whole day, on the "
                    "record (observed all day, figure defined, no breach touching it); null otherwise")
    days_without_data: int | None = Field(
        description="day obligations: considered days without a breach on which the obligation was not on "
                    "the record for the whole day (before monitoring began, or the figure undefined); "
                    "null otherwise")
    verdict: Verdict = Field(
        description="response_48h: pass when figure ≥ threshold, fail below, insufficient_data with no "
                    "figure; day obligations: pass when days_met alone reach the threshold share of "
                    "days_considered, fail when they cannot even with every day without data counted as "
                    "met, insufficient_data in between or with no day considered; network_size: "
                    "not_applicable when the policy sets no minimum for the exporter's category; "
                    "authorisation: pass with no breach, fail with any")
    notes: list[str] = Field(default_factory=list, description="how the figures were read, in words")
    evidence: list[BreachEvidence] = Field(
        description="every breach counted in `breaches` or in `days_in_breach`, by opened_at")


class ChainStatus(_Model):
    """Whether the stored alert transitions are the ones published: the exporter's hash chain."""

    verified: bool
    transitions: int | None = Field(description="transitions in the exporter's chain")
    first_bad_seq: int | None = None
    detail: str | None = None


class RenewalAssessment(_Model):
    """An exporter's licence period judged for renewal (OBLIGATIONS.md, "Renewal assessment")."""

    exporter_id: str
    period: int = Field(description="the licence period: the calendar year, in UTC days")
    period_start: datetime = Field(description="00:00:00Z of 1 January of the period")
    period_end: datetime = Field(description="00:00:00Z of 1 January of the next year (exclusive)")
    as_of: datetime = Field(description="'now' of the assessment: nothing after it counts")
    complete: bool = Field(description="whether the period was over at as_of; before that every verdict is "
                                       "provisional, over the days so far")
    obligations: list[ObligationResult]
    overall: Overall = Field(
        description="pass when every applicable obligation passes; at_risk when any fails (a known failure "
                    "outweighs missing data elsewhere); insufficient_data when none fails but a figure is "
                    "undefined, when the period has not begun, or when the hash chain does not verify "
                    "(a record that cannot be shown intact supports no verdict)")
    reasons: list[str] = Field(description="why the overall verdict is what it is, in words")
    policy_versions: list[AppliedPolicy] = Field(
        description="every policy version in force during the assessed part of the period or applied by a "
                    "counted breach or figure, with each parameter's value, status and source")
    chain: ChainStatus


@dataclass(frozen=True, slots=True)
class _Window:
    """The assessed part of the period: [start, last], with `last` = min(period end, as_of)."""

    start: Micros
    end: Micros  # of the period, exclusive
    as_of: Micros
    first_day: date

    @property
    def last(self) -> Micros:
        return max(min(self.end, self.as_of), self.start)

    @property
    def days(self) -> int:
        return (self.end - self.start) // DAY

    @property
    def complete_days(self) -> int:
        """Days of the period that ended by as_of."""
        return (self.last - self.start) // DAY

    @property
    def partial_day(self) -> int | None:
        """Index of the day as_of falls in, when it is inside the period and not its midnight."""
        if self.as_of < self.start or self.as_of >= self.end or (self.as_of - self.start) % DAY == 0:
            return None
        return (self.as_of - self.start) // DAY

    def day_index(self, instant: Micros) -> int:
        return (instant - self.start) // DAY

    def date_of(self, index: int) -> date:
        return self.first_day + timedelta(days=index)


@dataclass(slots=True)
class _Breach:
    alert: Mapping[str, Any]
    opened: Micros
    resolved: Micros | None  # as known at as_of
    days: set[int] = field(default_factory=set)  # day indices of the period it touches


def assess(exporter_id: str, period: int, *, alerts: Sequence[Mapping[str, Any]], days: Sequence[Mapping[str, Any]],
           policy: PolicyBook, policies: Sequence[AppliedPolicy | Mapping[str, Any]], as_of: datetime,
           chain: Mapping[str, Any] | Any) -> RenewalAssessment:
    """Judge `exporter_id`'s licence period `period` (a calendar year, UTC days) as of `as_of`.

    `alerts` are ComplianceAlert documents in their latest status, each with a `transitions` list
    (the stored transitions: the message plus seq, hash, prev_hash); `days` are daily-figure rows
    (exporter_id, market, obligation, day, figure, met, met_all_day, first_as_of, last_as_of,
    policy_version) from before and during the period; `policies` are the policy versions the monitor
    recorded, listed as applied (thresholds come from `policy`; a recorded version that differs from
    the book's version of the same name is named in the reasons); `chain` is the hash-chain check
    (ok or verified, transitions, first_bad_seq, detail). Rows and alerts of other exporters are
    ignored. Times may be datetimes or RFC 3339 text. The same inputs always give the same result.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a UTC offset")
    first_day = date(period, 1, 1)
    window = _Window(start=utc_midnight(first_day), end=utc_midnight(date(period + 1, 1, 1)),
                     as_of=to_micros(as_of), first_day=first_day)
    rules = policy.at(max(min(window.end - 1, window.as_of), window.start))
    configured = _configured(policy)

    mine_alerts = [a for a in alerts if a.get("exporter_id", exporter_id) == exporter_id]
    mine_days = [r for r in days if r.get("exporter_id", exporter_id) == exporter_id]
    breaches = _breaches(mine_alerts, window)
    rows = _rows_by_obligation(mine_days, window)
    observed_from = _observed_from(mine_alerts, mine_days, window)

    results = []
    for obligation in _ORDER:
        mine = breaches.get(obligation, [])
        if obligation is Obligation.response_48h:
            results.append(_response(mine, rows.get(obligation, []), window, rules, configured))
        elif obligation is Obligation.authorisation:
            results.append(_authorisation(mine, window, rules, observed_from))
        else:
            results.append(_by_days(obligation, mine, rows.get(obligation, []), window, rules, configured,
                                    observed_from))

    chain_status = _chain(chain, mine_alerts)
    versions = set(policy.in_force_between(window.start, window.last))
    versions.update(b.alert.get("policy_version") or "" for group in breaches.values() for b in group)
    versions.update(r.get("policy_version") or "" for group in rows.values() for r in group
                    if window.start <= utc_midnight(r["_day"]) <= window.last)
    versions.discard("")
    recorded = _recorded(policies)
    policy_notes = [f"policy version {version} as the monitor recorded it differs from the configured one in "
                    f"{', '.join(differing)}; the thresholds here are the configured ones"
                    for version in sorted(versions)
                    if (differing := _differing(recorded.get(version), configured.get(version)))]
    overall, reasons = _overall(results, chain_status, window, policy_notes)
    return RenewalAssessment(
        exporter_id=exporter_id, period=period, period_start=to_datetime(window.start),
        period_end=to_datetime(window.end), as_of=as_of.astimezone(UTC), complete=window.as_of >= window.end,
        obligations=results, overall=overall, reasons=reasons,
        policy_versions=_applied(sorted(versions), recorded, configured), chain=chain_status,
    )


# ---- inputs ------------------------------------------------------------------------------------

def _micros(value: Any) -> Micros | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_micros(value)
    return to_micros(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _figure(row: Mapping[str, Any]) -> dict[str, Any]:
    figure = row.get("figure")
    if isinstance(figure, str | bytes):
        figure = json.loads(figure)
    return dict(figure or {})


def _breaches(alerts: Iterable[Mapping[str, Any]], window: _Window) -> dict[Obligation, list[_Breach]]:
    """Breach alerts known at as_of, retracted ones aside, by obligation, with the days they touch."""
    found: dict[Obligation, list[_Breach]] = defaultdict(list)
    for alert in alerts:
        if alert.get("severity") != "breach" or alert.get("status") == "retracted":
            continue  # a warning is not a breach; a retracted alert counts nowhere (OBLIGATIONS.md, Time)
        opened = _micros(alert["opened_at"])
        if opened is None or opened > window.as_of:
            continue  # not yet happened at as_of
        resolved = _micros(alert.get("resolved_at"))
        if resolved is not None and resolved > window.as_of:
            resolved = None  # its end is not yet known at as_of
        breach = _Breach(alert=alert, opened=opened, resolved=resolved)
        obligation = Obligation(alert["obligation"])
        if obligation is Obligation.authorisation:
            if window.start <= opened < window.end:
                breach.days = {window.day_index(opened)}
        else:
            breach.days = _touched(opened, resolved if resolved is not None else window.as_of, window)
        if breach.days or window.start <= opened < window.end:
            found[obligation].append(breach)
    for group in found.values():
        group.sort(key=lambda b: (b.opened, str(b.alert.get("alert_id"))))
    return found


def _touched(opened: Micros, ended: Micros, window: _Window) -> set[int]:
    """Day indices of the period, up to as_of, that intersect [opened, ended)."""
    start, stop = max(opened, window.start), min(ended, window.last)
    if start > stop or start >= window.end:
        return set()
    if start == stop:
        # an empty interval touches its day only when the breach itself begins there (opened at as_of)
        return {window.day_index(start)} if start == opened else set()
    return set(range(window.day_index(start), window.day_index(stop - 1) + 1))


def _rows_by_obligation(rows: Iterable[Mapping[str, Any]], window: _Window) -> dict[Obligation, list[dict[str, Any]]]:
    """Daily rows known at as_of, by obligation, each with its parsed `_day` and `_figure`, by day."""
    found: dict[Obligation, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        try:
            obligation = Obligation(row["obligation"])
        except ValueError:
            continue
        day = _date(row["day"])
        first = _micros(row.get("first_as_of"))
        if (first is not None and first > window.as_of) or utc_midnight(day) > window.as_of:
            continue  # recorded after as_of, or a day that had not begun
        found[obligation].append({**row, "_day": day, "_figure": _figure(row),
                                  "_first": first, "_last": _micros(row.get("last_as_of"))})
    for group in found.values():
        group.sort(key=lambda r: (r["_day"], str(r.get("market"))))
    return found


def _observed_from(alerts: Iterable[Mapping[str, Any]], rows: Iterable[Mapping[str, Any]],
                   window: _Window) -> Micros | None:
    """When monitoring of the exporter began, on the record: its first figure or alert."""
    # a row without its first instant proves only that the day's end was observed
    instants: list[Micros | None] = [
        _micros(r.get("first_as_of")) or utc_midnight(_date(r["day"])) + DAY - 1 for r in rows]
    instants += [_micros(a.get("opened_at")) for a in alerts if a.get("status") != "retracted"]
    known = [i for i in instants if i is not None and i <= window.as_of]
    return min(known) if known else None


# ---- policy ------------------------------------------------------------------------------------

def _configured(book: PolicyBook) -> dict[str, AppliedPolicy]:
    """Every version of the book, every parameter with its value, status and source."""
    return {
        v.version: AppliedPolicy(
            version=v.version, effective_from=v.effective_from.isoformat(),
            parameters={name: AppliedParameter(value=p.value, status=p.status.value, source=p.source)
                        for name, p in v.parameters.items()})
        for v in book.describe(t.version for t in [book.earliest(), *book.changes()])
    }


def _recorded(policies: Sequence[AppliedPolicy | Mapping[str, Any]]) -> dict[str, AppliedPolicy]:
    found = {}
    for entry in policies:
        applied = entry if isinstance(entry, AppliedPolicy) else AppliedPolicy.model_validate(entry)
        found[applied.version] = applied
    return found


def _differing(recorded: AppliedPolicy | None, configured: AppliedPolicy | None) -> list[str]:
    if recorded is None or configured is None:
        return []
    names = sorted(set(recorded.parameters) | set(configured.parameters))
    return [n for n in names if recorded.parameters.get(n) != configured.parameters.get(n)]


def _applied(versions: Iterable[str], recorded: Mapping[str, AppliedPolicy],
             configured: Mapping[str, AppliedPolicy]) -> list[AppliedPolicy]:
    # what the monitor recorded is what its workers applied to the alerts and figures
    applied = [recorded.get(v) or configured.get(v) or AppliedPolicy(version=v, effective_from="", parameters={})
               for v in versions]
    return sorted(applied, key=lambda p: (p.effective_from, p.version))


def _threshold(rules: Thresholds, parameter: str, configured: Mapping[str, AppliedPolicy]) -> ThresholdSource:
    value = rules.renewal_min_ratio if parameter == _RATIO_PARAMETER else rules.renewal_min_share_of_days
    version = configured.get(rules.version)
    described = version.parameters.get(parameter) if version else None
    return ThresholdSource(parameter=parameter, policy_version=rules.version, value=float(value),
                           status=described.status if described else None,
                           source=described.source if described else "policy version not described")


# ---- obligations -------------------------------------------------------------------------------

def _evidence(breaches: Iterable[_Breach], window: _Window) -> list[BreachEvidence]:
    found = []
    for breach in breaches:
        alert = breach.alert
        found.append(BreachEvidence(
            alert_id=str(alert["alert_id"]), obligation=Obligation(alert["obligation"]), market=alert.get("market"),
            subject=str(alert.get("subject", "")), opened_at=to_datetime(breach.opened),
            resolved_at=to_datetime(breach.resolved) if breach.resolved is not None else None,
            open_at_as_of=breach.resolved is None, opened_in_period=window.start <= breach.opened < window.end,
            days_in_breach=len(breach.days), policy_version=str(alert.get("policy_version", "")),
            accountable=list(alert.get("accountable") or [alert.get("exporter_id", "")]),
            summary=summarise(str(alert["obligation"]), alert.get("evidence") or {}),
            evidence=dict(alert.get("evidence") or {}),
            transitions=[TransitionRecord(
                seq=t.get("seq"), status=str(t.get("status", "")),
                opened_at=_moment(t.get("opened_at")), resolved_at=_moment(t.get("resolved_at")),
                raised_at=_moment(t.get("raised_at")), hash=t.get("hash"), prev_hash=t.get("prev_hash"),
            ) for t in sorted(alert.get("transitions") or [], key=lambda t: t.get("seq") or 0)],
        ))
    return found


def _moment(value: Any) -> datetime | None:
    instant = _micros(value)
    return to_datetime(instant) if instant is not None else None


def _considered(breach_days: set[int], window: _Window) -> list[int]:
    days = list(range(window.complete_days))
    partial = window.partial_day
    if partial is not None and partial in breach_days:
        days.append(partial)  # already not met, whatever the rest of the day brings
    return days


def _in_period(breaches: Iterable[_Breach], window: _Window) -> int:
    return sum(1 for b in breaches if window.start <= b.opened < window.end)


def _response(breaches: list[_Breach], rows: list[dict[str, Any]], window: _Window, rules: Thresholds,
              configured: Mapping[str, AppliedPolicy]) -> ObligationResult:
    """The period's compliance ratio from the cumulative daily response figures, per market."""
    notes = []
    by_market: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_market[str(row.get("market"))].append(row)
    totals = {"compliant": 0, "breached": 0, "withdrawn": 0}
    for market, market_rows in sorted(by_market.items()):
        before = [r for r in market_rows if r["_day"] < window.first_day]
        during = [r for r in market_rows if window.first_day <= r["_day"] < window.date_of(window.days)
                  and (r["_last"] is None or r["_last"] <= window.as_of)]
        if not during:
            continue  # nothing changed in the period in this market
        base, last = (before[-1]["_figure"] if before else {}), during[-1]["_figure"]
        for key in totals:
            change = int(last.get(key) or 0) - int(base.get(key) or 0)
            if change < 0:
                # late data re-judged cycles counted before the period; they are not this period's
                notes.append(f"{market}: {key} fell by {-change} against the end of the previous period "
                             "(late data re-judged earlier cycles); counted as 0")
                change = 0
            totals[key] += change
    judged = totals["compliant"] + totals["breached"]
    ratio = Fraction(totals["compliant"], judged) if judged else None
    threshold = _threshold(rules, _RATIO_PARAMETER, configured)
    if ratio is None:
        verdict: Verdict = "insufficient_data"
        notes.append("no ticket cycle with a known outcome in the period: the ratio is undefined")
    else:
        verdict = "pass" if ratio >= rules.renewal_min_ratio else "fail"
    notes.append("cycles are counted from the cumulative figures recorded each day: those whose outcome "
                 "became known between the end of the previous period and the last figure of this one")
    breach_days = set().union(*(b.days for b in breaches)) if breaches else set()
    return ObligationResult(
        obligation=Obligation.response_48h, measure="compliance_ratio",
        figure=float(ratio) if ratio is not None else None, threshold=threshold.value,
        threshold_source=threshold, counts=totals, breaches=_in_period(breaches, window),
        days_in_breach=len(breach_days), days_considered=len(_considered(breach_days, window)),
        days_met=None, days_without_data=None, verdict=verdict, notes=notes,
        evidence=_evidence(breaches, window),
    )


def _by_days(obligation: Obligation, breaches: list[_Breach], rows: list[dict[str, Any]], window: _Window,
             rules: Thresholds, configured: Mapping[str, AppliedPolicy],
             observed_from: Micros | None) -> ObligationResult:
    """The share of the period's days on which the obligation held all day, on the record."""
    notes: list[str] = []
    breach_days = set().union(*(b.days for b in breaches)) if breaches else set()
    considered = _considered(breach_days, window)
    defined, disagree, applicable, vacuous = _defined_days(obligation, rows, window)
    met = without_data = 0
    for index in considered:
        if index in breach_days:
            continue
        day_start = window.start + index * DAY
        if observed_from is None or observed_from > day_start or not defined.get(index, False):
            without_data += 1
        else:
            met += 1
    share_needed = rules.renewal_min_share_of_days
    threshold = _threshold(rules, _SHARE_PARAMETER, configured)
    total = len(considered)
    figure = Fraction(met, total) if total else None
    verdict: Verdict
    if obligation is Obligation.network_size and rows and not applicable:
        verdict = "not_applicable"
        notes.append("the policy sets no minimum number of outlets for the exporter's category")
    elif figure is None:
        verdict = "insufficient_data"
        notes.append("no day of the period has ended yet")
    elif figure >= share_needed:
        verdict = "pass"
    elif Fraction(met + without_data, total) < share_needed:
        verdict = "fail"
    else:
        verdict = "insufficient_data"
    if without_data:
        notes.append(f"{without_data} day(s) not on the record for the whole day (before monitoring began, "
                     "or the figure undefined) count neither as met nor as breached")
    unexplained = sorted(set(disagree) - breach_days)
    if unexplained:
        notes.append(f"the daily figures recorded the obligation unmet at some moment on {len(unexplained)} "
                     "day(s) no breach alert touches (an alert retracted by late data); those days count as met")
    if vacuous:
        notes.append("no registered major export market to cover")
    return ObligationResult(
        obligation=obligation, measure="share_of_days_met", figure=float(figure) if figure is not None else None,
        threshold=threshold.value, threshold_source=threshold, breaches=_in_period(breaches, window),
        days_in_breach=len(breach_days), days_considered=total,
        days_met=met, days_without_data=without_data, verdict=verdict, notes=notes,
        evidence=_evidence(breaches, window),
    )


def _defined_days(obligation: Obligation, rows: list[dict[str, Any]],
                  window: _Window) -> tuple[dict[int, bool], list[int], bool, bool]:
    """Per day index of the period: whether the obligation's figure was defined all day in every market
    it applied to; the days the figures show it unmet at some moment; whether it applied at all
    (network_size: a minimum set for the category); and whether coverage was vacuous (no major market).

    A day without a row carries the state of the market's last row before it (snapshots are
    published only when figures change); a market with no row yet is not yet in scope.
    """
    by_market: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_market[str(row.get("market"))].append(row)
    defined: dict[int, bool] = {}
    unmet: set[int] = set()
    applicable = False
    in_scope_days: dict[int, int] = defaultdict(int)

    def relevant(row: dict[str, Any]) -> bool:
        return obligation is not Obligation.emergency_coverage or row["_figure"].get("major_market", True) is not False

    def is_defined(row: dict[str, Any], whole_day: bool) -> bool:
        if obligation is Obligation.network_size and row["_figure"].get("required", 0) is None:
            return False
        return row.get("met") is not None and (not whole_day or row.get("met_all_day") is not None)

    last_day = min(window.complete_days, window.days - 1)
    for market_rows in by_market.values():
        by_day = {r["_day"]: r for r in market_rows}
        previous: dict[str, Any] | None = None
        for r in market_rows:
            if r["_day"] < window.first_day:
                previous = r
        for index in range(last_day + 1):
            today = by_day.get(window.date_of(index))
            current: dict[str, Any] | None = today or previous
            if current is None:
                continue  # the market is not in scope yet
            if not relevant(current):
                previous = current
                continue
            in_scope_days[index] += 1
            if obligation is Obligation.network_size and current["_figure"].get("required", 0) is not None:
                applicable = True
            if today is None:
                ok = is_defined(current, whole_day=False)
                if current.get("met") is False:
                    unmet.add(index)
            else:
                ok = is_defined(today, whole_day=True) and (previous is None or is_defined(previous, False))
                if today.get("met_all_day") is False or (previous is not None and previous.get("met") is False):
                    unmet.add(index)
            defined[index] = defined.get(index, True) and ok
            previous = today or previous
    vacuous = False
    if obligation is Obligation.emergency_coverage and by_market:
        # markets on the record, none of them major: nothing to cover on those days
        for index in range(last_day + 1):
            if index not in in_scope_days and any(r["_day"] <= window.date_of(index) for r in rows):
                defined[index] = True
                vacuous = True
    return defined, sorted(unmet), applicable, vacuous


def _authorisation(breaches: list[_Breach], window: _Window, rules: Thresholds,
                   observed_from: Micros | None) -> ObligationResult:
    opened = [b for b in breaches if window.start <= b.opened < window.end]
    notes = []
    verdict: Verdict
    if opened:
        verdict = "fail"
    elif observed_from is None or observed_from > window.last or window.as_of <= window.start:
        verdict = "insufficient_data"
        notes.append("the exporter was not yet monitored in the assessed part of the period, so the absence "
                     "of breaches shows nothing")
    else:
        verdict = "pass"
    days = {index for b in opened for index in b.days}
    source = ThresholdSource(parameter=None, policy_version=rules.version, value=0, status=None,
                             source=_AUTHORISATION_RULE)
    return ObligationResult(
        obligation=Obligation.authorisation, measure="breaches", figure=float(len(opened)), threshold=0,
        threshold_source=source, breaches=len(opened), days_in_breach=len(days),
        days_considered=len(_considered(days, window)), days_met=None, days_without_data=None,
        verdict=verdict, notes=notes, evidence=_evidence(opened, window),
    )


# ---- chain and overall -------------------------------------------------------------------------

def _chain(chain: Mapping[str, Any] | Any, alerts: Sequence[Mapping[str, Any]]) -> ChainStatus:
    def get(name: str) -> Any:
        return chain.get(name) if isinstance(chain, Mapping) else getattr(chain, name, None)

    verified = get("verified")
    if verified is None:
        verified = get("ok")
    count = get("transitions")
    status = ChainStatus(verified=bool(verified), transitions=count, first_bad_seq=get("first_bad_seq"),
                         detail=get("detail"))
    if status.verified and count is not None and alerts and all("transitions" in a for a in alerts):
        # the chain vouches for the transitions it holds; the evidence must be exactly those
        given = sum(len(a["transitions"]) for a in alerts)
        if given != count:
            return status.model_copy(update={
                "verified": False,
                "detail": f"the chain holds {count} transition(s) but the alerts read carry {given}"})
    return status


def _overall(results: list[ObligationResult], chain: ChainStatus, window: _Window,
             notes: list[str]) -> tuple[Overall, list[str]]:
    reasons: list[str] = []
    if window.as_of < window.start:
        return "insufficient_data", ["the period had not begun at as_of"]
    failed = [r for r in results if r.verdict == "fail"]
    undefined = [r for r in results if r.verdict == "insufficient_data"]
    for result in failed:
        reasons.append(f"{result.obligation.value} fails: {_figure_words(result)}")
    for result in undefined:
        reasons.append(f"{result.obligation.value} has insufficient data")
    overall: Overall
    if not chain.verified:
        overall = "insufficient_data"
        reasons.insert(0, "the hash chain of the exporter's alert transitions does not verify"
                       + (f": {chain.detail}" if chain.detail else ""))
    elif failed:
        overall = "at_risk"
    elif undefined:
        overall = "insufficient_data"
    else:
        overall = "pass"
        reasons.append("every applicable obligation passes")
    reasons.extend(notes)
    if window.as_of < window.end:
        reasons.append("provisional: the period was not over at as_of")
    return overall, reasons


def _figure_words(result: ObligationResult) -> str:
    if result.measure == "breaches":
        return f"{result.breaches} breach(es) in the period"
    if result.figure is None:
        return "no figure"
    name = "compliance ratio" if result.measure == "compliance_ratio" else "share of days met"
    return f"{name} {result.figure:.4f} below {result.threshold}"
