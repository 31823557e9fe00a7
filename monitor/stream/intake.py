"""Reading input messages: where each one goes, and why one is refused.

The intake stage only needs an input message's exporter (to route it) and its event time
(to know how far each input partition has got); both are read cheaply, and full validation
against the contract happens once, in the judging stage. A message that cannot even be
routed is validated in full here, so its dead-letter reason names the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from monitor.contracts.errors import explain
from monitor.contracts.events import OutletStatusEvent, PartsStockReport, ServiceTicketEvent
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.engine import InputEvent
from monitor.obligations.timebase import Micros, to_micros

Partition = tuple[str, int]  # an input partition: (short topic name, partition number)

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


def input_progress(lag: dict[Partition, int], latest: dict[Partition, Micros], routed_at: dict[Partition, float], *,
                   unread: bool, catch_up_lag: int, settle: float | None, now: float,
                   caught_up_at: float | None = None,
                   true_end: Mapping[Partition, bool] | None = None) -> tuple[Micros | None, bool]:
    """How far event time has surely got on an intake's input partitions, and whether it is
    catching up on a backlog: the latest event time of the partitions still holding unread
    messages (everything older has been forwarded, each partition being about in event-time
    order), 0 while a partition holding records has delivered none (it may hold any event
    time), None when every partition has been read to its end.

    `lag` is each partition's messages past the last one routed, by the end its broker
    reported; `routed_at` when it last delivered (a monotonic clock, as `now`). A broker that
    reports ends short (the embedded one: the start of the last record batch, `settle` set)
    may still have the rest of that batch to deliver, days of event time on a quiet topic: there,
    while a backlog is read and for `settle` seconds after (`caught_up_at`: when it last stopped
    catching up, None while it is or before its first stamp), a partition at its reported end
    counts as read to its end only once its true end is known to be reached (`true_end`: True
    for a partition whose last batch, read directly, ends where its routing has got, False for
    one whose last batch holds records not routed yet), else, not known, once it has also
    delivered nothing for `settle` seconds: the clock must not pass event times it has yet to
    deliver. Live, when a backlog is long over, a late message holds nobody's clock.
    """
    behind = [tp for tp, waiting in lag.items() if waiting > 0]
    catching_up = unread or sum(lag[tp] for tp in behind) > catch_up_lag
    if settle is not None and (catching_up or caught_up_at is None or now - caught_up_at < settle):
        ends = true_end or {}
        behind += [tp for tp, waiting in lag.items() if waiting <= 0
                   and (not ends[tp] if tp in ends else routed_at.get(tp, 0.0) > now - settle)]
    known = [latest[tp] for tp in behind if tp in latest]
    return (0 if unread else min(known) if known else None), catching_up


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
