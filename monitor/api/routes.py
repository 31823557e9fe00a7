"""The /api/v1 routes: compliance, alerts, exporters, history and renewal, each for its caller only.

Every route authenticates the bearer token, works out which exporters the caller may see
(OBLIGATIONS.md, "Who answers for what") and reads the history store restricted to them. An
exporter the caller may not see answers exactly like one that does not exist, so a 404 never
tells an automaker that some other exporter is there.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BeforeValidator
from starlette.responses import Response

from monitor.access.redaction import redacted
from monitor.access.tokens import Principal
from monitor.api.auth import Caller, authenticated
from monitor.api.models import (
    AlertDetail,
    AlertPage,
    ComplianceList,
    DeliveryPage,
    ExporterList,
    History,
)
from monitor.api.problems import InvalidParameter, ProblemError, not_found, problem_responses
from monitor.api.readiness import StoreHolder
from monitor.api.renewal import assessment_from_store, media_type, negotiate
from monitor.api.settings import ApiSettings
from monitor.contracts.outputs import AlertStatus, Obligation
from monitor.delivery.outbox import Outbox, decode_delivery_cursor
from monitor.history.store import HistoryStore, decode_cursor
from monitor.renewal.assessment import RenewalAssessment
from monitor.renewal.render import render

router = APIRouter(prefix="/api/v1", responses=problem_responses(401, 422, 503))

# no identifier holds a NUL character (PostgreSQL text cannot), so one in a request is refused up front
IDENTIFIER = r"^[^\x00]+$"
ExporterId = Annotated[str, Query(min_length=1, max_length=200, pattern=IDENTIFIER,
                                  description="an exporter id, e.g. EXP-001")]
ExporterInPath = Annotated[str, Path(min_length=1, max_length=200, pattern=IDENTIFIER, description="an exporter id")]
AlertInPath = Annotated[str, Path(min_length=1, max_length=200, pattern=IDENTIFIER, description="an alert id")]
MarketCode = Annotated[str, Query(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 market code, e.g. KE")]


def _written_out(pattern: str, what: str) -> Any:
    # pydantic also reads numbers as Unix timestamps; the API takes only the written-out form it documents
    shape = re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not shape.match(value):
            raise ValueError(f"must be {what}")
        return value

    return BeforeValidator(check)


Instant = Annotated[AwareDatetime, _written_out(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}",
                                                "an RFC 3339 timestamp with an offset, e.g. 2026-03-01T10:00:00Z")]
Day = Annotated[date, _written_out(r"^\d{4}-\d{2}-\d{2}$", "a date, YYYY-MM-DD")]


async def store_of(request: Request) -> HistoryStore:
    """The app's open history store (503 problem while it cannot be opened)."""
    holder: StoreHolder = request.app.state.store
    return await holder.get()


Store = Annotated[HistoryStore, Depends(store_of)]


def _query_names(request: Request) -> frozenset[str]:
    """The query parameters the OpenAPI document gives the request's route."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    operation = request.app.openapi().get("paths", {}).get(path, {}).get(request.method.lower(), {})
    return frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")


def refuse_unknown_parameters(request: Request) -> None:
    """A 422 problem for a query parameter the route does not take, or one given more than once.

    A misspelt filter (`?exporter_id=` for `?exporter=`) would otherwise be ignored, and the
    answer would silently hold everything the filter was meant to leave out; a filter given
    twice (`?alert=a&alert=b`) would silently keep only its last value.
    """
    known = _query_names(request)
    takes = ", ".join(sorted(known)) or "none"
    reasons = {name: f"not a parameter of this route (it takes: {takes})"
               for name in sorted(set(request.query_params) - known)}
    names = [name for name, _ in request.query_params.multi_items()]
    reasons.update({name: "given more than once (every filter takes one value)"
                    for name in sorted(set(names) & known) if names.count(name) > 1})
    if reasons:
        raise ProblemError(422, "; ".join(f"query.{name}: {reason}" for name, reason in reasons.items()),
                           invalid=[InvalidParameter(parameter=f"query.{name}", reason=reason)
                                    for name, reason in reasons.items()])


async def caller_of(request: Request, principal: Annotated[Principal, Depends(authenticated)],
                    store: Store) -> Caller:
    """The authenticated caller with the exporters it may see, per the store's registrations; a
    422 problem for a query parameter the route does not take."""
    refuse_unknown_parameters(request)
    visible = principal.visible(await store.registrations())
    return Caller(principal, frozenset(visible) if visible is not None else None)


CallerDep = Annotated[Caller, Depends(caller_of)]


def limited(doc: Any, caller: Caller) -> Any:
    """`doc` with every exporter id the caller may not see taken out of the lists that name exporters.

    A distributor's alert is accountable to each automaker that authorised it; one of those
    automakers sees the alert but must not learn which other automakers stand behind it.
    """
    return redacted(doc, caller.visible)


async def exporter_in_view(store: HistoryStore, caller: Caller, exporter_id: str) -> str:
    """The exporter id when it exists and the caller may see it; else the one 404 for both cases."""
    if not caller.may_see(exporter_id) or exporter_id not in set(await store.exporters()):
        raise not_found(f"exporter {exporter_id!r}")
    return exporter_id


def _scope(caller: Caller) -> set[str] | None:
    return set(caller.visible) if caller.visible is not None else None


@router.get("/exporters", response_model=ExporterList, summary="Exporters the caller may see")
async def list_exporters(caller: CallerDep, store: Store) -> dict[str, Any]:
    """Every exporter with any data or registration that the caller may see, by id, with its registration."""
    registrations = await store.registrations()
    items = []
    for exporter_id in sorted(set(await store.exporters())):
        if caller.may_see(exporter_id):
            registration = registrations.get(exporter_id)
            doc = registration.model_dump(mode="json") if registration is not None else None
            items.append({"exporter_id": exporter_id, "registration": limited(doc, caller)})
    return {"items": items}


@router.get("/compliance", response_model=ComplianceList, summary="Live figures per exporter and market",
            responses=problem_responses(404))
async def compliance(caller: CallerDep, store: Store, exporter: ExporterId | None = None,
                     market: MarketCode | None = None) -> dict[str, Any]:
    """The latest compliance snapshot of each exporter and market the caller may see, narrowed by the
    filters. Naming an exporter that does not exist or that the caller may not see is a 404."""
    if exporter is not None:
        await exporter_in_view(store, caller, exporter)
    items = await store.compliance(exporters=_scope(caller), exporter=exporter, market=market)
    return {"items": limited(items, caller)}


@router.get("/alerts", response_model=AlertPage, summary="Alerts, paginated", responses=problem_responses(404))
async def alerts(
    caller: CallerDep, store: Store,
    exporter: ExporterId | None = None,
    market: MarketCode | None = None,
    obligation: Annotated[Obligation | None, Query(description="only alerts of this obligation")] = None,
    status: Annotated[AlertStatus | None, Query(description="only alerts in this status now")] = None,
    since: Annotated[Instant | None, Query(
        description="only alerts whose latest transition is at or after this instant (RFC 3339 with an "
                    "offset); the transition's raised_at, or opened_at when it has none")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="most alerts on one page")] = 100,
    cursor: Annotated[str | None, Query(max_length=1000, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    """Alerts of the exporters the caller may see, in their latest status, ordered by opened_at then
    alert_id, one page at a time. Naming an exporter the caller may not see is a 404."""
    if since is not None:
        try:
            since = since.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last instant a datetime holds
            raise ProblemError(422, f"query.since: {since.isoformat()} is out of range in UTC", invalid=[
                InvalidParameter(parameter="query.since", reason="out of range in UTC",
                                 given=since.isoformat())]) from None
    if cursor is not None:
        _check_cursor(cursor)
    if exporter is not None:
        await exporter_in_view(store, caller, exporter)
    items, following = await store.alerts(
        exporters=_scope(caller), exporter=exporter, market=market,
        obligation=obligation.value if obligation else None, status=status.value if status else None,
        since=since, limit=limit, after=cursor)
    return {"items": limited(items, caller), "next": following}


def _check_cursor(cursor: str) -> None:
    """A 422 problem for a cursor that is not one this API gave."""
    try:
        _, alert_id = decode_cursor(cursor)
        if "\x00" in alert_id:
            raise ValueError("an alert id holds no NUL character")
    except (ValueError, OverflowError) as exc:
        raise ProblemError(422, f"query.cursor: not a cursor this API gave ({exc})", invalid=[
            InvalidParameter(parameter="query.cursor", reason="not a cursor this API gave", given=cursor)]) from None


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="One alert with its transitions",
            responses=problem_responses(404))
async def alert_detail(alert_id: AlertInPath, caller: CallerDep, store: Store) -> dict[str, Any]:
    """The alert in its latest status with every transition stored for it (oldest first, each with
    its hash-chain links); 404 when no such alert exists or it is of an exporter the caller may not see."""
    transitions = await store.transitions(alert_id)
    if not transitions or not caller.may_see(str(transitions[-1]["exporter_id"])):
        raise not_found(f"alert {alert_id!r}")
    latest = {k: v for k, v in transitions[-1].items() if k not in ("seq", "hash", "prev_hash")}
    return limited({**latest, "transitions": transitions}, caller)


@router.get("/exporters/{exporter_id}/history", response_model=History, summary="Daily figures over time",
            responses=problem_responses(404))
async def history(
    exporter_id: ExporterInPath, caller: CallerDep, store: Store,
    obligation: Annotated[Obligation | None, Query(description="only this obligation")] = None,
    start: Annotated[Day | None, Query(alias="from", description="first UTC day (YYYY-MM-DD), inclusive")] = None,
    end: Annotated[Day | None, Query(alias="to", description="last UTC day (YYYY-MM-DD), inclusive")] = None,
) -> dict[str, Any]:
    """Each UTC day's figures of the exporter per obligation and market, from `from` to `to`
    (both inclusive); 404 for an exporter that does not exist or that the caller may not see."""
    if start is not None and end is not None and end < start:
        raise ProblemError(422, f"query.to: {end} is before query.from {start}", invalid=[
            InvalidParameter(parameter="query.to", reason=f"is before query.from ({start})", given=str(end))])
    await exporter_in_view(store, caller, exporter_id)
    rows = await store.history(exporter_id, obligation=obligation.value if obligation else None,
                               start=start, end=end)
    return {"exporter_id": exporter_id, "items": limited(rows, caller)}


RENEWAL_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {"description": "the renewal assessment: JSON (the model below), CSV (one row per obligation, then one "
                         "per breach) or a printable, self-contained HTML page, as the Accept header asks",
          "content": {"text/csv": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}}},
}


@router.get("/exporters/{exporter_id}/renewal", response_model=RenewalAssessment, summary="Renewal assessment",
            responses={**RENEWAL_FORMATS, **problem_responses(404, 406)})
async def renewal(
    exporter_id: ExporterInPath, request: Request, caller: CallerDep, store: Store,
    period: Annotated[int, Query(ge=2000, le=2100, description="the licence period: a calendar year (UTC days)")],
) -> Response:
    """The exporter's licence year judged for renewal (OBLIGATIONS.md, "Renewal assessment"): per
    obligation the figure, threshold, breaches, days in breach and verdict, the evidence of each
    breach with its hash-chained transitions, and the overall verdict. `Accept: text/csv` or
    `text/html` give the same as CSV or a printable page. 404 for an exporter that does not exist
    or that the caller may not see."""
    output_format = negotiate(request.headers.get("accept"))
    await exporter_in_view(store, caller, exporter_id)
    settings: ApiSettings = request.app.state.settings
    assessment = await assessment_from_store(store, exporter_id, period, policy=request.app.state.policy,
                                             as_of=settings.as_of or datetime.now(UTC))
    if caller.visible is not None:
        assessment = RenewalAssessment.model_validate(limited(assessment.model_dump(mode="json"), caller))
    body = render(assessment, output_format)
    headers = {"Vary": "Accept"}
    if output_format != "json":
        disposition = "attachment" if output_format == "csv" else "inline"
        headers["Content-Disposition"] = f'{disposition}; filename="renewal-{_safe_name(exporter_id)}-{period}.' \
                                         f'{output_format}"'
    return Response(body, media_type=media_type(output_format), headers=headers)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100]


WebhookInQuery = Annotated[str, Query(min_length=1, max_length=100, pattern=IDENTIFIER,
                                      description="a webhook id (as in the MONITOR_WEBHOOKS file)")]
AlertInQuery = Annotated[str, Query(min_length=1, max_length=200, pattern=IDENTIFIER, description="an alert id")]


@router.get("/webhooks/deliveries", response_model=DeliveryPage, summary="Webhook deliveries, paginated",
            responses=problem_responses(404))
async def webhook_deliveries(
    caller: CallerDep, store: Store,
    webhook: WebhookInQuery | None = None,
    status: Annotated[Literal["pending", "delivered", "expired"] | None, Query(
        description="only deliveries in this status")] = None,
    alert: AlertInQuery | None = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="most deliveries on one page")] = 100,
    cursor: Annotated[str | None, Query(max_length=1000, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    """Deliveries of alert transitions to the automakers' webhooks, with their status, attempts and
    last error (failed and expired ones included), in the order the transitions were stored. An
    automaker sees the deliveries to webhooks that name one of its token's exporters, of alerts of
    exporters it may see; naming a webhook that does not exist or that it may not see is a 404."""
    if cursor is not None:
        try:
            decode_delivery_cursor(cursor)
        except ValueError as exc:
            raise ProblemError(422, f"query.cursor: {exc}", invalid=[
                InvalidParameter(parameter="query.cursor", reason="not a cursor this API gave",
                                 given=cursor)]) from None
    outbox = Outbox(store)
    configured = await outbox.webhooks()
    if caller.visible is None:
        allowed: set[str] | None = None
    else:
        mine = caller.principal.exporters
        allowed = {webhook_id for webhook_id, exporters in configured.items() if not exporters.isdisjoint(mine)}
    if webhook is not None and (webhook not in configured or (allowed is not None and webhook not in allowed)):
        raise not_found(f"webhook {webhook!r}")
    items, following = await outbox.deliveries(webhooks=allowed, exporters=_scope(caller), webhook=webhook,
                                                status=status, alert=alert, limit=limit, after=cursor)
    return {"items": items, "next": following}
