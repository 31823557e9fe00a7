"""MONITOR_LOG_FORMAT: text lines with the ids as key=value, or one JSON object per line with time, level,
logger, message and the ids; a bad value is refused at start naming the variable."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

from monitor import logs
from tests.streaming import ROOT


def record(message: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("monitor.stream.worker", logging.INFO, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError("bad value")
        except ValueError:
            made.exc_info = sys.exc_info()
    made.__dict__.update(extra)
    return made


def test_a_text_line_ends_with_the_ids_it_carries() -> None:
    line = logs.TextFormatter().format(record("alert %s: %s", "open", "response_48h", alert_id="a-1",
                                              ticket_id="T-1001", market=None, subject="T-1001#1",
                                              exporter_id="EXP 1"))

    assert line.endswith(' INFO monitor.stream.worker: alert open: response_48h exporter_id="EXP 1" alert_id=a-1 '
                         'ticket_id=T-1001')


def test_a_json_line_is_one_object_with_the_fields_and_ids_present() -> None:
    line = logs.JsonFormatter().format(record("dead-lettered %s", "x", exc=True, topic="service-tickets",
                                              partition=3, offset=42, ticket_id="T-2002", market=None,
                                              unrelated="not written"))

    assert "\n" not in line
    document = json.loads(line)
    assert document["time"].endswith("Z") and document["level"] == "INFO"
    assert document["logger"] == "monitor.stream.worker" and document["message"] == "dead-lettered x"
    assert (document["topic"], document["partition"], document["offset"]) == ("service-tickets", 3, 42)
    assert document["ticket_id"] == "T-2002" and "market" not in document and "unrelated" not in document
    assert "ValueError: bad value" in document["exc_info"]


def test_configure_writes_every_record_in_the_chosen_format() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    root.handlers[:] = []
    try:
        logs.configure(logging.INFO, "json", stream)
        logging.getLogger("faust.worker").info("[^Worker]: Ready")
        logging.getLogger("aiokafka").debug("not at INFO")
        logs.configure(logging.DEBUG, "text", stream)  # again: it replaces its own handler
        logging.getLogger("aiokafka").debug("now at DEBUG", extra={"event_id": "e-1"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)

    first, second = stream.getvalue().splitlines()
    assert json.loads(first)["message"] == "[^Worker]: Ready"
    assert second.endswith("DEBUG aiokafka: now at DEBUG event_id=e-1")


def test_a_bad_log_format_is_refused_at_start_naming_the_variable() -> None:
    env = {**os.environ, "MONITOR_LOG_FORMAT": "xml"}
    result = subprocess.run([sys.executable, "-m", "monitor", "schemas", "--check"], env=env, capture_output=True,
                            text=True, cwd=ROOT, check=False)

    assert result.returncode == 2
    assert "MONITOR_LOG_FORMAT" in result.stderr and "'xml'" in result.stderr
