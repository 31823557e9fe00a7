"""The FastAPI application: the /api/v1 routes, the dashboard, metrics and health checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import __version__
from monitor.api import problems, routes
from monitor.api.auth import TokenKeeper
from monitor.api.metrics import RequestMetrics
from monitor.api.models import Health, Readiness
from monitor.api.problems import PROBLEM_MEDIA_TYPE
from monitor.api.readiness import StoreHolder, broker_reachable
from monitor.api.settings import ApiSettings
from monitor.config_files import load_policy
from monitor.contracts.policy import DEFAULT_POLICY
from monitor.history.store import HistoryStore
from monitor.obligations.policy import PolicyBook

STATIC = Path(__file__).parent / "static"

# the dashboard loads nothing from anywhere else, and the browser is told to hold it to that
DASHBOARD_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                    "form-action 'none'")


class SecurityHeaders:
    """Headers every response carries: no sniffing, no framing, and API data never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith("/api/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                if private:  # figures and alerts of named exporters: no shared cache keeps them
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


def create_app(settings: ApiSettings | None = None, *, store: HistoryStore | None = None) -> FastAPI:
    """The API and dashboard for `settings` (default: the MONITOR_* environment).

    The history store is opened at `settings.store_url` when first needed (or `store`, already
    open, is used and left open). The token file and the policy file are read now (a bad one raises
    ConfigFileError naming the file, the field and the reason); the token file again whenever it changes.
    """
    settings = settings or ApiSettings()
    tokens = TokenKeeper(settings.tokens_path)
    tokens.load()
    holder = StoreHolder(settings.store_url, store)
    policy = PolicyBook(load_policy(settings.policy) if settings.policy else DEFAULT_POLICY)
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await holder.close()

    app = FastAPI(
        title="After-sales obligation monitor",
        version=__version__,
        description="Compliance figures, alerts, history and renewal assessments of EV exporters' overseas "
                    "after-sales networks. Every /api/v1 route needs `Authorization: Bearer <token>`; an "
                    "automaker's token sees only its own exporters and the distributors they authorised. "
                    "Errors are RFC 9457 problem documents (application/problem+json).",
        lifespan=lifespan, docs_url=None, redoc_url=None,  # their pages load scripts from a CDN
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.store = holder
    app.state.policy = policy
    problems.install(app)
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)

    @app.get("/", include_in_schema=True, response_class=FileResponse, summary="The regulators' dashboard",
             responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                              "description": "the dashboard page"}})
    async def dashboard() -> Response:
        """The dashboard page; it reads the API with the token given in the URL fragment (`/#token=…`)."""
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": DASHBOARD_POLICY})

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> dict[str, str]:
        """Always `ok` while the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, summary="Readiness: store and broker reachable",
             responses={503: {"model": Readiness, "description": "a dependency is unreachable"}})
    async def readyz(request: Request) -> Response:
        """200 when the history store answers and a broker accepts a connection, each within the
        configured timeout; else 503 with what failed."""
        timeout = settings.ready_timeout_seconds
        store_problem, broker_problem = await asyncio.gather(
            holder.check(timeout), broker_reachable(settings.kafka_bootstrap, timeout))
        checks = {"store": store_problem or "ok", "broker": broker_problem or "ok"}
        ready = store_problem is None and broker_problem is None
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition"}})
    async def prometheus_metrics() -> Response:
        """Request counts and latency by route template, and the process's own figures (the default registry)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error declared as the problem document it is."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            for status, answer in answers.items():
                if status.isdigit() and int(status) >= 400 and not (status == "503" and "Readiness" in str(answer)):
                    answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
                    answer["description"] = problems.KINDS.get(int(status), ("", answer.get("description", "")))[1]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if "Problem" not in schemas:
        schemas.update(_problem_schemas())
    app.openapi_schema = doc
    return doc


def _problem_schemas() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(problems.Problem, "serialization")], ref_template="#/components/schemas/{model}")
    return dict(top.get("$defs", {}))

