"""The live compliance gauges a worker exports: one set per exporter and market it judges, set from the
snapshots it publishes, removed when the exporter's partition moves to another worker, and never more
than MONITOR_METRICS_MAX_SERIES exporter-market pairs (the others counted, and logged once)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.stream.metrics import ComplianceSeries


def series_on(registry: CollectorRegistry, max_pairs: int) -> ComplianceSeries:
    """The worker's gauges, in a registry of the test's own."""
    pair = ["exporter", "market"]
    return ComplianceSeries(
        max_pairs,
        ratio=Gauge("monitor_compliance_response_ratio", "r", pair, registry=registry),
        rate=Gauge("monitor_compliance_parts_inventory_rate", "p", pair, registry=registry),
        rescue=Gauge("monitor_compliance_rescue_outlets", "o", pair, registry=registry),
        met=Gauge("monitor_compliance_met", "m", [*pair, "obligation"], registry=registry),
        dropped=Counter("monitor_compliance_series_dropped_total", "d", registry=registry))


def exported(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect()
            for s in family.samples if s.name.startswith("monitor_compliance_") and not s.name.endswith("_created")}


def snapshot(exporter: str, market: str, *, ratio: float | None = 0.75, rate: float | None = 0.3,
             rescue: int = 2, major: bool = True, network: bool | None = False) -> dict[str, Any]:
    return {"exporter_id": exporter, "market": market,
            "response_48h": {"compliant": 3, "breached": 1, "withdrawn": 0, "pending": 0, "ratio": ratio,
                             "p50_hours": 10.0, "p95_hours": 40.0},
            "parts_inventory": {"catalogue": 10, "stocked": 3, "rate": rate,
                                "compliant": None if rate is None else rate >= 0.2},
            "emergency_coverage": {"active_outlets": 4, "rescue_outlets": rescue, "covered": rescue > 0,
                                   "major_market": major},
            "network_size": {"active_outlets": 12, "required": 51, "compliant": network},
            "as_of": "2026-03-01T10:00:00Z", "policy_version": "2026.1"}


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_a_snapshot_sets_each_figure_of_its_exporter_and_market() -> None:
    registry = CollectorRegistry()
    series = series_on(registry, 10)

    assert series.update(snapshot("EXP-001", "KE"))

    pair = {"exporter": "EXP-001", "market": "KE"}
    assert exported(registry) == {
        key("monitor_compliance_response_ratio", **pair): 0.75,
        key("monitor_compliance_parts_inventory_rate", **pair): 0.3,
        key("monitor_compliance_rescue_outlets", **pair): 2.0,
        key("monitor_compliance_met", **pair, obligation="parts_inventory"): 1.0,
        key("monitor_compliance_met", **pair, obligation="emergency_coverage"): 1.0,
        key("monitor_compliance_met", exporter="EXP-001", market="all", obligation="network_size"): 0.0,
        key("monitor_compliance_series_dropped_total"): 0.0,
    }


def test_an_undefined_figure_has_no_series_rather_than_a_stale_one() -> None:
    registry = CollectorRegistry()
    series = series_on(registry, 10)
    series.update(snapshot("EXP-001", "NG"))

    series.update(snapshot("EXP-001", "NG", ratio=None, rate=None, major=False, network=None))

    names = {(name, dict(labels).get("obligation")) for name, labels in exported(registry)}
    assert ("monitor_compliance_response_ratio", None) not in names
    assert ("monitor_compliance_parts_inventory_rate", None) not in names
    assert ("monitor_compliance_met", "parts_inventory") not in names
    assert ("monitor_compliance_met", "emergency_coverage") not in names, "coverage is required in major markets only"
    assert ("monitor_compliance_met", "network_size") not in names
    assert ("monitor_compliance_rescue_outlets", None) in names


def test_an_exporter_that_moves_to_another_worker_loses_all_its_series() -> None:
    registry = CollectorRegistry()
    series = series_on(registry, 10)
    for exporter, market in (("EXP-001", "KE"), ("EXP-001", "EG"), ("EXP-002", "KE")):
        series.update(snapshot(exporter, market))

    series.drop(["EXP-001"])

    assert {dict(labels).get("exporter") for _, labels in exported(registry)} == {"EXP-002", None}
    assert series.pairs == 1


def test_pairs_past_the_bound_are_not_exported_but_counted_once_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    series = series_on(registry, 2)
    caplog.set_level(logging.WARNING, logger="monitor.stream.metrics")

    accepted = [series.update(snapshot(e, m)) for e, m in
                (("EXP-001", "KE"), ("EXP-001", "EG"), ("EXP-002", "KE"), ("EXP-002", "KE"), ("EXP-003", "NG"))]
    series.update(snapshot("EXP-001", "KE", ratio=0.5))  # an admitted pair is still updated

    assert accepted == [True, True, False, False, False]
    figures = exported(registry)
    assert {dict(labels).get("exporter") for _, labels in figures} == {"EXP-001", None}
    assert figures[key("monitor_compliance_response_ratio", exporter="EXP-001", market="KE")] == 0.5
    assert figures[key("monitor_compliance_series_dropped_total")] == 2, "EXP-002:KE and EXP-003:NG, once each"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MONITOR_METRICS_MAX_SERIES" in warnings[0].getMessage()
    assert warnings[0].__dict__["exporter_id"] == "EXP-002"

    series.drop(["EXP-001"])  # room again: a refused pair is admitted at its next snapshot
    assert series.update(snapshot("EXP-002", "KE"))
    assert key("monitor_compliance_rescue_outlets", exporter="EXP-002", market="KE") in exported(registry)
