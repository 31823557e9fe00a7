"""The batch shell: event files in, every figure and alert out, no broker needed.

Lines are validated against the contracts, de-duplicated, sorted by event time and fed
to the same obligation core the stream worker uses, one instant at a time. A bad line is
reported with its file and line number and never stops the run.

Exporters never affect each other's figures, so a large input is split by exporter over
several processes, each judging its share with its own engine, and the shares are merged
into one document; the result is the same for any number of processes.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from monitor.contracts.errors import explain
from monitor.contracts.lines import EVENT_LINE, RegistryLine
from monitor.contracts.policy import DEFAULT_POLICY, PolicyFile
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.engine import ComplianceEngine, InputEvent
from monitor.obligations.policy import PolicyBook
from monitor.obligations.quality import Finding
from monitor.obligations.timebase import Micros, stamp, to_micros

Progress = Callable[[int, int], None]  # (bytes read so far, total bytes)
RegistryInput = Mapping[str, ExporterRegistration] | Iterable[ExporterRegistration | Mapping[str, Any]]
Window = tuple[Micros | None, Micros | None]

PARALLEL_FROM_BYTES = 16_000_000  # smaller inputs are judged in this process


@dataclass
class Intake:
    """Validated events, de-duplicated; registrations; rejected lines.

    Duplicates are recognised by event_id within one exporter's events (a redelivered
    event always carries its exporter), which is also what a worker that owns an
    exporter's partition can check.
    """

    sources: Sequence[str]
    events: dict[tuple[str, str], tuple[Micros, InputEvent]] = field(default_factory=dict)
    registrations: dict[str, ExporterRegistration] = field(default_factory=dict)
    rejected: list[tuple[tuple[int, int], dict[str, str]]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def source(self, file_index: int, number: int) -> str:
        return f"{self.sources[file_index]}:{number}"

    def line(self, file_index: int, number: int, raw: bytes, validate: Callable[[bytes], Any]) -> None:
        try:
            message = validate(raw)
        except ValidationError as exc:
            if raw.strip():
                reason, _ = explain(exc, skip_tag=True)
                self.rejected.append(((file_index, number), {"source": self.source(file_index, number),
                                                             "reason": reason}))
            return
        self.take(message, file_index, number)

    def take(self, message: Any, file_index: int, number: int) -> None:
        if isinstance(message, RegistryLine):
            # the registry topic is compacted by exporter_id: the latest registration wins
            self.registrations[message.exporter_id] = ExporterRegistration.model_validate(
                message.model_dump(exclude={"topic"}))
            return
        at = to_micros(message.occurred_at)
        key = (message.exporter_id, message.event_id)
        known = self.events.get(key)
        if known is None:
            self.events[key] = (at, message)
        elif known[1] != message:
            # the copy that sorts first is kept whatever the arrival order; every other copy is set
            # aside once, and the finding describes that copy by content (positions depend on arrival)
            arriving = (at, message)
            if (at, message.model_dump_json()) < (known[0], known[1].model_dump_json()):
                drop, self.events[key] = known, arriving
            else:
                drop = arriving
            self.findings.append(Finding(
                "conflicting_duplicate", message.exporter_id, message.event_id,
                f"a different message with event_id {message.event_id!r} and occurred_at {stamp(drop[0])} was "
                f"set aside: {drop[1].model_dump_json(exclude={'topic'})}",
                [message.event_id]))

    def latest(self) -> Micros | None:
        return max((at for at, _ in self.events.values()), default=None)


@dataclass
class Share:
    """What one partition concluded, with the keys that order the merged document."""

    figures: list[dict[str, Any]]
    exporters: list[dict[str, Any]]
    alerts: list[tuple[tuple[Any, ...], dict[str, Any]]]
    rejected: list[tuple[tuple[int, int], dict[str, str]]]
    findings: list[dict[str, Any]]
    versions: set[str]


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


def _judge_share(intake: Intake, registry: dict[str, ExporterRegistration], policy: PolicyFile, now: Micros | None,
                 window: Window, owns: Callable[[str], bool] | None) -> Share:
    registrations = {**registry, **intake.registrations}
    engine = ComplianceEngine(registrations, PolicyBook(policy), owns=owns)
    # by event time only: the engine orders the events of one instant itself
    timeline = sorted(intake.events.values(), key=lambda e: e[0])
    for at, group in itertools.groupby(timeline, key=lambda e: e[0]):
        if now is not None and at > now:
            break  # not yet happened at "now"
        engine.apply_instant(at, [event for _, event in group])
    judgement = engine.judge(now if now is not None else 0, window)
    return Share(
        figures=judgement.figures,
        exporters=judgement.exporters,
        alerts=[((a.opened_at, a.exporter_id, a.obligation.value, a.subject, a.severity.value),
                 a.message(judgement.as_of, judgement.accountable.get(a.exporter_id, [a.exporter_id])))
                for a in judgement.alerts],
        rejected=intake.rejected,
        findings=[_finding(f) for f in (*intake.findings, *judgement.findings)],
        versions=set(judgement.policy_versions),
    )


def _merge(shares: Sequence[Share], policy: PolicyFile, now: Micros | None) -> dict[str, Any]:
    """One document from the partitions' shares, ordered as a single process would order it."""
    versions = sorted(set().union(*(s.versions for s in shares)))
    book = PolicyBook(policy)
    return {
        "as_of": stamp(now) if now is not None else None,
        "policy_versions": versions,
        "policies": [{"version": v.version, "effective_from": v.effective_from.isoformat(),
                      "parameters": {name: p.model_dump(mode="json") for name, p in v.parameters.items()}}
                     for v in book.describe(versions)],
        "figures": sorted((f for s in shares for f in s.figures), key=lambda f: (f["exporter_id"], f["market"])),
        "exporters": sorted((e for s in shares for e in s.exporters), key=lambda e: e["exporter_id"]),
        "alerts": [a for _, a in sorted((a for s in shares for a in s.alerts), key=lambda a: a[0])],
        # a bad registration line reaches every partition: report it once
        "rejected": [r for _, r in sorted({key: r for s in shares for key, r in s.rejected}.items())],
        "data_quality": sorted((f for s in shares for f in s.findings), key=lambda f: (
            f["kind"], f["exporter_id"] or "", f["subject"], f["event_ids"], f["detail"])),
    }


def _finding(finding: Finding) -> dict[str, Any]:
    return {"kind": finding.kind, "exporter_id": finding.exporter_id, "subject": finding.subject,
            "detail": finding.detail, "event_ids": finding.event_ids}


def _window(window_from: datetime | None, window_to: datetime | None) -> Window:
    return (to_micros(window_from) if window_from else None, to_micros(window_to) if window_to else None)


def evaluate_records(
    records: Iterable[Mapping[str, Any]], *, registry: RegistryInput = (), policy: PolicyFile | None = None,
    as_of: datetime | None = None, window_from: datetime | None = None, window_to: datetime | None = None,
) -> dict[str, Any]:
    """The `evaluate --format json` document for records already decoded (each an input event
    plus its "topic"); rejected records are reported as `<records>:N`."""
    intake = Intake(["<records>"])
    for number, record in enumerate(records, start=1):
        try:
            message = EVENT_LINE.validate_python(record)
        except ValidationError as exc:
            reason, _ = explain(exc, skip_tag=True)
            intake.rejected.append(((0, number), {"source": intake.source(0, number), "reason": reason}))
            continue
        intake.take(message, 0, number)
    policy = policy or DEFAULT_POLICY
    now = to_micros(as_of) if as_of is not None else intake.latest()
    share = _judge_share(intake, _registry(registry), policy, now, _window(window_from, window_to), None)
    return _merge([share], policy, now)


def _read(paths: Sequence[Path], progress: Progress | None) -> Iterator[tuple[int, int, bytes]]:
    total = sum(p.stat().st_size for p in paths)
    done = 0
    for index, path in enumerate(paths):
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if progress is not None and number % 100_000 == 0:
                    progress(done + handle.tell(), total)
                yield index, number, raw
        done += path.stat().st_size
    if progress is not None:
        progress(done, total)


def evaluate_files(
    paths: Sequence[Path], *, registry: RegistryInput, policy: PolicyFile | None = None,
    as_of: datetime | None = None, window_from: datetime | None = None, window_to: datetime | None = None,
    progress: Progress | None = None, processes: int | None = None,
) -> dict[str, Any]:
    """The `evaluate --format json` document for JSON-lines event files.

    `processes`: how many processes judge partitions of the input (default: one per
    core for inputs over 16 MB, else this process alone). The result does not depend on it.
    """
    policy = policy or DEFAULT_POLICY
    registrations = _registry(registry)
    window = _window(window_from, window_to)
    sources = [p.name for p in paths]
    if processes is None:
        large = sum(p.stat().st_size for p in paths) >= PARALLEL_FROM_BYTES
        processes = min(os.cpu_count() or 1, 8) if large else 1
    if processes <= 1:
        intake = Intake(sources)
        validate = EVENT_LINE.validate_json
        with _batch_memory():
            for file_index, number, raw in _read(paths, progress):
                intake.line(file_index, number, raw, validate)
            now = to_micros(as_of) if as_of is not None else intake.latest()
            return _merge([_judge_share(intake, registrations, policy, now, window, None)], policy, now)
    return _evaluate_partitioned(paths, sources, registrations, policy, as_of, window, progress, processes)


def _evaluate_partitioned(paths: Sequence[Path], sources: list[str], registry: dict[str, ExporterRegistration],
                          policy: PolicyFile, as_of: datetime | None, window: Window, progress: Progress | None,
                          count: int) -> dict[str, Any]:
    """Each partition process reads the files itself and keeps the lines of its own exporters,
    so no line crosses between processes; they agree on "now" and return their shares."""
    context: Any = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    pipes, workers = [], []
    for index in range(count):
        ours, theirs = context.Pipe()
        worker = context.Process(target=_partition_worker, name=f"evaluate-partition-{index}",
                                 args=(theirs, index, count, list(paths), sources, registry, policy, window),
                                 daemon=True)
        worker.start()
        theirs.close()
        pipes.append(ours)
        workers.append(worker)
    try:
        while (message := pipes[0].recv())[0] == "progress":  # the first partition reports reading progress
            if progress is not None:
                progress(message[1], message[2])
        latest = [message[1]] + [pipe.recv()[1] for pipe in pipes[1:]]
        now = to_micros(as_of) if as_of is not None else max((t for t in latest if t is not None), default=None)
        for pipe in pipes:
            pipe.send(now)
        shares = [pipe.recv() for pipe in pipes]
    except (BrokenPipeError, EOFError):
        for worker in workers:
            worker.join(timeout=5)
        codes = ", ".join(f"{w.name} exit code {w.exitcode}" for w in workers if w.exitcode)
        raise RuntimeError(f"a partition process stopped before finishing ({codes or 'no exit code'})") from None
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    return _merge(shares, policy, now)


_KEY = b'"exporter_id"'


def _exporter_of(raw: bytes) -> str | None:
    """The exporter id of a plain event line found without parsing it, or None when the line
    needs a real parse (a registration, the key twice, an escape, no string value)."""
    start = raw.find(_KEY)
    if start < 0 or raw.find(_KEY, start + len(_KEY)) >= 0 or b'"registry"' in raw:
        return None
    colon = raw.find(b":", start + len(_KEY))
    opening = raw.find(b'"', colon + 1)
    if colon < 0 or opening < 0 or raw[colon + 1 : opening].strip():
        return None
    closing = raw.find(b'"', opening + 1)
    value = raw[opening + 1 : closing]
    if closing < 0 or b"\\" in value:
        return None
    try:
        return value.decode().strip()
    except UnicodeDecodeError:
        return None


class _Assignment:
    """Which partition owns each exporter: round-robin in order of first appearance.

    Every partition process reads the same lines in the same order, so all of them come to
    the same assignment without exchanging a word; exporters known only from the registry
    are dealt out after the last line, in id order.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.owner: dict[str, int] = {}

    def of_line(self, raw: bytes) -> int | None:
        """A line's partition; None for a registration (every partition keeps those); the
        first for a line that is not a JSON object with an exporter (it is rejected there)."""
        exporter = _exporter_of(raw)
        if exporter is not None:
            return self.of_exporter(exporter)
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 0
        if not isinstance(record, dict):
            return 0
        if record.get("topic") == "registry":
            return None
        exporter = record.get("exporter_id")
        return self.of_exporter(exporter.strip()) if isinstance(exporter, str) else 0

    def of_exporter(self, exporter_id: str) -> int:
        owner = self.owner.get(exporter_id)
        if owner is None:
            owner = self.owner[exporter_id] = len(self.owner) % self.count
        return owner


def _partition_worker(pipe: Connection, index: int, count: int, paths: list[Path], sources: list[str],
                      registry: dict[str, ExporterRegistration], policy: PolicyFile, window: Window) -> None:
    intake = Intake(sources)
    validate = EVENT_LINE.validate_json
    assignment = _Assignment(count)
    report = None
    if index == 0:
        def report(done: int, total: int) -> None:
            pipe.send(("progress", done, total))
    with _batch_memory():
        for file_index, number, raw in _read(paths, report):
            owner = assignment.of_line(raw)
            if owner is None or owner == index:
                intake.line(file_index, number, raw, validate)
        pipe.send(("latest", intake.latest()))
        now = pipe.recv()
        for exporter_id in sorted({*registry, *intake.registrations}):
            assignment.of_exporter(exporter_id)
        share = _judge_share(intake, registry, policy, now, window,
                             owns=lambda exporter_id: assignment.of_exporter(exporter_id) == index)
        pipe.send(share)
    pipe.close()
