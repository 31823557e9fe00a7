"""How every `monitor` command logs: one line per record, plain text or a JSON object, with the ids that matter.

Code logs with the standard `logging` module, in plain words, and passes the ids a record is
about as `extra={...}` under the keys of `ID_FIELDS` (and, where they help, `CONTEXT_FIELDS`).
`MONITOR_LOG_FORMAT` chooses how they are written to standard error:

- `text` (default): `2026-03-01 10:00:00,123 INFO monitor.stream.worker: message key=value …`, the ids
  present appended as ` key=value`;
- `json`: one JSON object per line (python-json-logger) with `time` (UTC, RFC 3339), `level`,
  `logger`, `message`, the ids and context fields present, and `exc_info` for an exception, so
  `jq 'select(.ticket_id == "T-1001")'` follows one ticket through every process.

`configure` is called once, by the command line's group callback, before any command runs;
the worker keeps it (Faust is told not to set up logging of its own).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["text", "json"]

# the ids that let one follow an exporter, a ticket, an alert or a delivery through the logs
ID_FIELDS = ("exporter_id", "market", "alert_id", "ticket_id", "event_id", "webhook_id", "delivery_id",
             "obligation")
# what else a record may carry as `extra`, written in JSON only (the text line says it in words)
CONTEXT_FIELDS = ("topic", "partition", "offset", "reason", "status", "severity", "subject", "type")
_JSON_FIELDS = ID_FIELDS + CONTEXT_FIELDS

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _shown(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, then ` key=value` for each id the record carries."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = record.__dict__
        ids = "".join(f" {key}={_shown(fields[key])}" for key in ID_FIELDS if fields.get(key) is not None)
        return line + ids


class JsonFormatter(OrjsonFormatter):
    """One JSON object per record: time, level, logger, message, then the ids and context present.

    Only the known fields of `extra` are written, so a library's own extras never change the
    shape of a line; a record whose message is a dict (structured by intent) keeps its keys.
    """

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        fields = record.__dict__
        for key in _JSON_FIELDS:
            value = fields.get(key)
            if value is not None:
                log_data[key] = value
        for key, value in message_dict.items():  # exc_info and stack_info, or a dict message's keys
            if value is not None:
                log_data.setdefault(key, value)


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of `log_format`: `TextFormatter` or `JsonFormatter`."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _MonitorHandler(logging.StreamHandler):
    """The handler `configure` installs, told apart from handlers the host process installed."""


def writes_json() -> bool:
    """Whether this process's log lines are JSON objects (`configure` installed the json format),
    so a command's own status lines must be log records too, to keep every line JSON."""
    return any(isinstance(h, _MonitorHandler) and isinstance(h.formatter, JsonFormatter)
               for h in logging.getLogger().handlers)


def configure(level: int, log_format: LogFormat, stream: IO[str] | None = None) -> None:
    """Send every log record at `level` or above to `stream` (standard error) in `log_format`.

    Called once per process, before anything logs; called again, it replaces its own handler.
    Python's warnings are routed through logging, so in JSON every line written is a JSON
    object. A process whose logging was set up by its host before (a test runner calling the
    command line in-process) is left as it is, as `logging.basicConfig` would.
    """
    root = logging.getLogger()
    if any(not isinstance(h, _MonitorHandler) for h in root.handlers):
        return
    handler = _MonitorHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def ids_of_alert(message: dict[str, Any]) -> dict[str, Any]:
    """The log fields of a ComplianceAlert message: its ids, and the ticket it is about (a
    response cycle `T-1001#1`, or the ticket an authorisation alert names in its evidence)."""
    evidence = message.get("evidence") or {}
    ticket_id = evidence.get("ticket_id") if isinstance(evidence, dict) else None
    if ticket_id is None and message.get("obligation") == "response_48h":
        ticket_id = str(message.get("subject", "")).rsplit("#", 1)[0] or None
    return {"alert_id": message.get("alert_id"), "exporter_id": message.get("exporter_id"),
            "market": message.get("market"), "obligation": message.get("obligation"),
            "severity": message.get("severity"), "status": message.get("status"), "subject": message.get("subject"),
            "ticket_id": ticket_id}
