"""Data-quality findings: inconsistent input that is kept and reported, never dropped."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    exporter_id: str | None
    subject: str
    detail: str
    event_ids: list[str] = field(default_factory=list)
