"""The batch shell: event files in, every figure and alert out, no broker needed.

Lines are validated against the contracts, de-duplicated by event_id, sorted by event
time and fed to the same obligation core the stream worker uses, one instant at a time.
A bad line is reported with its file and line number and never stops the run.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.contracts.errors import explain
from monitor.contracts.lines import EVENT_LINE, RegistryLine
from monitor.contracts.policy import DEFAULT_POLICY, PolicyFile
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.alerts import AlertRecord
from monitor.obligations.engine import ComplianceEngine, InputEvent, Judgement
from monitor.obligations.policy import PolicyBook
from monitor.obligations.quality import Finding
from monitor.obligations.timebase import Micros, stamp, to_micros

Progress = Callable[[int, int], None]  # (bytes read so far, total bytes)
RegistryInput = Mapping[str, ExporterRegistration] | Iterable[ExporterRegistration | Mapping[str, Any]]


@dataclass
class Intake:
    """Validated events, de-duplicated by event_id; registrations; rejected lines."""

    events: dict[str, tuple[Micros, InputEvent]] = field(default_factory=dict)
    registrations: dict[str, ExporterRegistration] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def reject(self, source: str, exc: ValidationError) -> None:
        reason, _ = explain(exc, skip_tag=True)
        self.rejected.append({"source": source, "reason": reason})

    def take(self, message: Any, source: tuple[str, int]) -> None:
        """Keep a validated message; `source` is (file, line number), for reports."""
        if isinstance(message, RegistryLine):
            # the registry topic is compacted by exporter_id: the latest registration wins
            self.registrations[message.exporter_id] = ExporterRegistration.model_validate(
                message.model_dump(exclude={"topic"}))
            return
        at = to_micros(message.occurred_at)
        known = self.events.get(message.event_id)
        if known is None:
            self.events[message.event_id] = (at, message)
        elif known[1] != message:
            keep, drop = sorted([known, (at, message)], key=lambda e: (e[0], e[1].model_dump_json()))
            self.events[message.event_id] = keep
            self.findings.append(Finding(
                "conflicting_duplicate", message.exporter_id, message.event_id,
                f"two different messages share event_id {message.event_id!r}; kept the one at "
                f"{stamp(keep[0])}, set aside the one at {stamp(drop[0])} ({source[0]}:{source[1]})",
                [message.event_id]))


@contextmanager
def _batch_memory() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch builds up millions of acyclic objects.

    Every collection would walk all of them again; they are freed by reference counting.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _registry(registry: RegistryInput) -> dict[str, ExporterRegistration]:
    if isinstance(registry, Mapping):
        return dict(registry)
    result = {}
    for entry in registry:
        registration = entry if isinstance(entry, ExporterRegistration) else ExporterRegistration.model_validate(entry)
        result[registration.exporter_id] = registration
    return result


def evaluate_files(
    paths: Sequence[Path], *, registry: RegistryInput, policy: PolicyFile | None = None,
    as_of: datetime | None = None, window_from: datetime | None = None, window_to: datetime | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The `evaluate --format json` document for JSON-lines event files."""
    intake = Intake()
    validate = EVENT_LINE.validate_json
    total = sum(p.stat().st_size for p in paths)
    done = 0
    with _batch_memory():
        for path in paths:
            with path.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if number % 100_000 == 0 and progress is not None:
                        progress(done + handle.tell(), total)
                    try:
                        message = validate(raw)
                    except ValidationError as exc:
                        if raw.strip():
                            intake.reject(f"{path.name}:{number}", exc)
                        continue
                    intake.take(message, (path.name, number))
            done += path.stat().st_size
        if progress is not None:
            progress(done, total)
        return _conclude(intake, registry, policy, as_of, window_from, window_to)


def evaluate_records(
    records: Iterable[Mapping[str, Any]], *, registry: RegistryInput = (), policy: PolicyFile | None = None,
    as_of: datetime | None = None, window_from: datetime | None = None, window_to: datetime | None = None,
) -> dict[str, Any]:
    """The same document for records already decoded (each an input event plus its "topic")."""
    intake = Intake()
    for number, record in enumerate(records, start=1):
        try:
            message = EVENT_LINE.validate_python(record)
        except ValidationError as exc:
            intake.reject(f"<records>:{number}", exc)
            continue
        intake.take(message, ("<records>", number))
    return _conclude(intake, registry, policy, as_of, window_from, window_to)


def _conclude(intake: Intake, registry: RegistryInput, policy: PolicyFile | None, as_of: datetime | None,
              window_from: datetime | None, window_to: datetime | None) -> dict[str, Any]:
    registrations = {**_registry(registry), **intake.registrations}
    book = PolicyBook(policy or DEFAULT_POLICY)
    engine = ComplianceEngine(registrations, book)
    timeline = sorted(intake.events.values(), key=lambda e: (e[0], e[1].event_id))
    now = to_micros(as_of) if as_of is not None else (timeline[-1][0] if timeline else None)
    for at, group in itertools.groupby(timeline, key=lambda e: e[0]):
        if now is not None and at > now:
            break  # not yet happened at "now"
        engine.apply_instant(at, [event for _, event in group])
    window = (to_micros(window_from) if window_from else None, to_micros(window_to) if window_to else None)
    judgement = engine.judge(now if now is not None else 0, window)
    return document(judgement, book, as_of_known=now is not None, rejected=intake.rejected,
                    findings=intake.findings)


def alert_message(alert: AlertRecord, judgement: Judgement, raised_at: datetime | None = None) -> dict[str, Any]:
    """An alert as the ComplianceAlert message (plain JSON data), in its status at the judgement's time."""
    status = alert.status_at(judgement.as_of)
    return {
        "alert_id": alert.alert_id, "exporter_id": alert.exporter_id, "market": alert.market,
        "obligation": alert.obligation.value, "severity": alert.severity.value, "status": status,
        "subject": alert.subject, "opened_at": stamp(alert.opened_at),
        "resolved_at": stamp(alert.resolved_at) if status == "resolved" and alert.resolved_at is not None else None,
        "raised_at": None if raised_at is None else stamp(to_micros(raised_at)),
        "renewal_relevant": alert.renewal_relevant, "policy_version": alert.policy_version,
        "accountable": judgement.accountable.get(alert.exporter_id, [alert.exporter_id]),
        "evidence": alert.evidence,
    }


def document(judgement: Judgement, book: PolicyBook, *, as_of_known: bool, rejected: list[dict[str, str]],
             findings: list[Finding]) -> dict[str, Any]:
    """The evaluation as the JSON document of CONTRACT.md (the Evaluation model's shape)."""
    issues = [*findings, *judgement.findings]
    return {
        "as_of": stamp(judgement.as_of) if as_of_known else None,
        "policy_versions": judgement.policy_versions,
        "policies": [{"version": v.version, "effective_from": v.effective_from.isoformat(),
                      "parameters": {name: p.model_dump(mode="json") for name, p in v.parameters.items()}}
                     for v in book.describe(judgement.policy_versions)],
        "figures": judgement.figures,
        "exporters": judgement.exporters,
        "alerts": [alert_message(alert, judgement) for alert in judgement.alerts],
        "rejected": rejected,
        "data_quality": [{"kind": f.kind, "exporter_id": f.exporter_id, "subject": f.subject, "detail": f.detail,
                          "event_ids": f.event_ids} for f in issues],
    }
