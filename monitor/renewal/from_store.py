"""The renewal assessment's inputs read from the history store (for the API and `monitor report`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from monitor.history.store import HistoryStore
from monitor.obligations.policy import PolicyBook
from monitor.renewal.assessment import RenewalAssessment, assess

PAGE = 1000  # alerts read per query


async def assessment_from_store(store: HistoryStore, exporter_id: str, period: int, *, policy: PolicyBook,
                                as_of: datetime) -> RenewalAssessment:
    """The renewal assessment of `exporter_id` for licence year `period` as of `as_of`, from what the
    store holds: every alert of the exporter with its transitions (so the hash chain can vouch for
    the evidence), its daily figures up to the end of the period, the recorded policy versions and
    the check of its hash chain."""
    alerts: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.alerts(exporters=None, exporter=exporter_id, limit=PAGE, after=cursor)
        alerts.extend(page)
        if cursor is None:
            break
    with_transitions = [{**alert, "transitions": await store.transitions(alert["alert_id"])} for alert in alerts]
    days = await store.history(exporter_id, end=date(period, 12, 31))
    return assess(exporter_id, period, alerts=with_transitions, days=days, policy=policy,
                  policies=await store.policies(), as_of=as_of, chain=await store.verify_chain(exporter_id))
