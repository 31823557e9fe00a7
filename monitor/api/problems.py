"""Every error the API answers is an RFC 9457 problem document (`application/problem+json`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:aftersales-monitor:problem:"

# a stable type and title for each status the API gives; the detail says what happened
KINDS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    422: ("invalid-parameter", "Invalid request parameter"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


class InvalidParameter(BaseModel):
    """One parameter that was refused, and why."""

    parameter: str = Field(description="where it was given and its name, e.g. `query.since`")
    reason: str
    given: Any = Field(None, description="the value as given, when there was one")


class Problem(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = Field(description="a URI naming the kind of problem; stable, not dereferenceable")
    title: str = Field(description="a short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong with this request, for a person")
    invalid_parameters: list[InvalidParameter] | None = Field(
        None, description="422 only: each refused parameter with the reason")


class ProblemError(Exception):
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None,
                 invalid: Sequence[InvalidParameter] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.invalid = list(invalid) if invalid is not None else None


def problem_response(status: int, detail: str, *, headers: Mapping[str, str] | None = None,
                     invalid: Sequence[InvalidParameter] | None = None) -> Response:
    """A problem document with the type and title of `status` and the given detail."""
    slug, title = KINDS.get(status, ("error", "Error"))
    body: dict[str, Any] = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    if invalid is not None:
        body["invalid_parameters"] = [p.model_dump(mode="json", exclude_none=True) for p in invalid]
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def not_found(what: str) -> ProblemError:
    """The one 404 for an exporter or alert that does not exist or that the caller may not see."""
    return ProblemError(404, f"no {what}")


def _describe_location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_problem(exc: RequestValidationError) -> Response:
    invalid: list[InvalidParameter] = []
    for error in exc.errors():
        loc = error.get("loc", ())
        reason = str(error.get("msg", "is not valid"))
        ctx = error.get("ctx") or {}
        if error.get("type") == "missing":
            reason = "is required"
        elif "expected" in ctx and "Input should be" not in reason:
            reason = f"{reason} (expected {ctx['expected']})"
        given = error.get("input") if error.get("type") != "missing" else None
        if not isinstance(given, str | int | float | bool | type(None)):
            given = None  # a whole body or header set says nothing useful
        invalid.append(InvalidParameter(parameter=_describe_location(loc), reason=reason, given=given))
    detail = "; ".join(
        f"{p.parameter}: {p.reason}" + (f" (got {p.given!r})" if p.given is not None else "") for p in invalid
    ) or "the request is not valid"
    return problem_response(422, detail, invalid=invalid)


def install(app: FastAPI) -> None:
    """Make every error of `app` a problem document: raised ones, validation, unknown routes, crashes."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)  # noqa: S101 - registered for this class only
        return problem_response(exc.status, exc.detail, headers=exc.headers, invalid=exc.invalid)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class only
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else KINDS.get(exc.status_code, ("", ""))[1]
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(exc.status_code, detail, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class only
        return _validation_problem(exc)

    async def on_store_down(request: Request, exc: Exception) -> Response:
        # an unreachable database is a state of the deployment, not a bug: 503 tells clients to retry
        log.warning("history store unavailable during %s %s: %s", request.method, request.url.path, exc)
        return problem_response(503, "the history store is unavailable; try again shortly",
                                headers={"Retry-After": "5"})

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return problem_response(500, f"an unexpected error occurred ({type(exc).__name__}); it has been logged")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(OperationalError, on_store_down)
    app.add_exception_handler(InterfaceError, on_store_down)
    app.add_exception_handler(ConnectionError, on_store_down)
    app.add_exception_handler(Exception, on_crash)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses, each a problem document."""
    return {status: {"model": Problem, "description": KINDS[status][1]} for status in statuses}
