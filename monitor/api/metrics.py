"""Prometheus metrics of the API: requests and their latency by route template.

They live in prometheus_client's default registry, with the process's own figures, and
`/metrics` serves that registry. Several apps in one process (tests) share the counts.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram, disable_created_metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"  # every path no route knows shares one label, so scanners cannot grow the series

disable_created_metrics()  # as the worker: no `_created` series, which Prometheus would store for nothing

REQUESTS = Counter("monitor_api_requests_total",
                   "HTTP requests answered, by method, route template and status code (requests)",
                   ["method", "route", "status"])
LATENCY = Histogram("monitor_api_request_duration_seconds",
                    "Time from receiving an HTTP request to the end of its answer, by method and route template "
                    "(seconds)", ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))


class RequestMetrics:
    """ASGI middleware counting each HTTP request under the template of the route that answered it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what a crash before the response started amounts to

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            # the router writes the matched route into the scope it was given, which is this one
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "GET")
            REQUESTS.labels(method, template, str(status[0])).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
