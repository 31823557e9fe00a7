"""Reading input messages: where each one goes, and why one is refused.

The intake stage only needs an input message's exporter (to route it) and its event time
(to know how far each input partition has got); both are read cheaply, and full validation
against the contract happens once, in the judging stage. A message that cannot even be
routed is validated in full here, so its dead-letter reason names the problem.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from monitor.contracts.errors import explain
from monitor.contracts.events import OutletStatusEvent, PartsStockReport, ServiceTicketEvent
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.engine import InputEvent
from monitor.obligations.timebase import Micros, to_micros

EVENT_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "service-tickets": TypeAdapter(ServiceTicketEvent),
    "parts-stock": TypeAdapter(PartsStockReport),
    "outlet-status": TypeAdapter(OutletStatusEvent),
    "registry": TypeAdapter(ExporterRegistration),
}

def peek(value: bytes) -> tuple[str | None, Micros | None]:
    """The exporter and event time of an input message, read cheaply for routing; (None, None)
    when it is not a JSON object with an exporter_id (it is then validated in full, and refused)."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(record, dict):
        return None, None
    exporter = record.get("exporter_id")
    if not isinstance(exporter, str) or not exporter.strip():
        return None, None
    occurred = record.get("occurred_at")
    at = None
    if isinstance(occurred, str):
        try:
            moment = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
            at = to_micros(moment) if moment.tzinfo is not None else None
        except ValueError:
            at = None
    return exporter.strip(), at


def why_refused(topic: str, value: bytes) -> tuple[str, list[dict[str, Any]]] | None:
    """The reason a message of `topic` cannot be used, or None when it is valid."""
    try:
        EVENT_ADAPTERS[topic].validate_json(value)
    except ValidationError as exc:
        return explain(exc)
    return None


# the `reason` label of monitor_events_rejected_total: a fixed vocabulary, never the free text of a
# problem (which can quote what was given, and so would grow a series per bad value)
_REASON_KINDS = {
    "is required": "missing_field",
    "is not valid JSON": "not_json",
    "must be a JSON object": "not_an_object",
    "is not a known field": "unknown_field",
}
REASON_KINDS = frozenset({*_REASON_KINDS.values(), "naive_timestamp", "bad_format", "unknown_topic",
                          "invalid_value", "invalid"})


def reason_kind(errors: list[dict[str, Any]]) -> str:
    """A bounded label for metrics (one of REASON_KINDS): the kind of the first problem, not its text."""
    if not errors:
        return "invalid"
    problem = str(errors[0].get("problem", ""))
    field = str(errors[0].get("field", ""))
    if problem in _REASON_KINDS:
        return _REASON_KINDS[problem]
    if problem.startswith("must carry a UTC offset"):
        return "naive_timestamp"
    if problem.startswith("must be") and ("characters" in problem or "ISO 3166" in problem):
        return "bad_format"
    if field == "topic":
        return "unknown_topic"
    return "invalid_value"


def valid_event(topic: str, value: bytes) -> InputEvent | None:
    """The event a message of `topic` holds, or None when it is not valid (it was dead-lettered
    when first read)."""
    try:
        event: InputEvent = EVENT_ADAPTERS[topic].validate_json(value)
    except ValidationError:
        return None
    return event
