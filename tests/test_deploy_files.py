"""Every file under deploy/ checked by a real tool for its format, and against the code it deploys.

hadolint (the Dockerfile), yamllint (every YAML file), check-jsonschema with the compose
specification's schema (docker-compose.yml), kubernetes-validate (the Kubernetes manifests,
strict, for Kubernetes KUBERNETES_VERSION), promtool (Prometheus configuration, alert rules, their
unit tests, and every PromQL expression of the Grafana dashboard). Beyond the formats: every
metric and label the rules and the dashboard use is one the code exports, and every MONITOR_*
setting the files give is one the code reads, with a value it accepts.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promtool import PROMTOOL, needs_promtool

pytestmark = pytest.mark.heavy  # runs promtool over deploy/'s Prometheus files

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
RULES = DEPLOY / "prometheus" / "rules" / "monitor.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "rules" / "monitor.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "monitor.json"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES_VERSION = "1.31.0"
JOBS = {"monitor-worker", "monitor-api", "monitor-deliver"}  # the agreed Prometheus job names



def _tool(name: str) -> str:
    """A command-line tool of the test extra, installed beside this Python."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300,
                            check=False, cwd=ROOT)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _yaml_documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document is not None]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _resources() -> Iterator[dict[str, Any]]:
    for path in _manifests():
        yield from _yaml_documents(path)


def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


# ---- the image ---------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    _run(_tool("hadolint"), "--no-color", "--failure-threshold", "info", DEPLOY / "Dockerfile")


def test_the_image_runs_the_monitor_as_a_non_root_user_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.split(r"(?m)^FROM ", text)[1:]
    assert len(stages) >= 2, "multi-stage: a builder and a runtime"
    runtime = stages[-1]
    users = re.findall(r"(?m)^USER (\S+)", runtime)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert re.search(r"(?m)^HEALTHCHECK .*\n?.*/healthz", runtime), "a HEALTHCHECK asking /healthz"
    assert re.search(r'(?m)^ENTRYPOINT \["monitor"\]', runtime)
    assert "COPY --from=builder /opt/monitor /opt/monitor" in runtime  # only the venv
    assert "[embedded]" not in text and "calfkit" not in text, "the embedded broker stays out of the image"
    # the build context keeps what the builder copies
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    copied = {part for line in re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", text) for part in line.split()}
    assert copied == {"pyproject.toml", "README.md", "monitor"}
    assert ignore[ignore.index("*") + 1:][:3] == ["!pyproject.toml", "!README.md", "!monitor/"]


# ---- YAML ----------------------------------------------------------------------------------------


def test_every_yaml_file_passes_yamllint() -> None:
    yamllint = _tool("yamllint")
    listed = _run(yamllint, "-c", DEPLOY / ".yamllint", "--list-files", DEPLOY).stdout.split()
    expected = {p for pattern in ("*.yml", "*.yaml") for p in DEPLOY.rglob(pattern)}
    assert {Path(p).resolve() for p in listed} >= expected
    _run(yamllint, "-c", DEPLOY / ".yamllint", "--strict", "-f", "parsable", DEPLOY)


def test_the_compose_file_follows_the_compose_specification() -> None:
    _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE)


def test_the_compose_file_runs_the_whole_system() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["worker"]["deploy"]["replicas"] == 3
    assert int(services["worker"]["environment"]["MONITOR_PARTITIONS"]) >= 3
    for name in ("worker", "api", "deliver"):
        assert services[name]["command"][0] == name
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["environment"]["MONITOR_DATABASE_URL"].startswith("postgresql+asyncpg://")
    for name in ("kafka", "postgres", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    # the image's own health check asks the port each process serves /healthz on
    assert {services[n]["environment"]["HEALTH_PORT"] for n in ("worker", "api", "deliver")} == {
        "6066", "8000", "6067"}
    mounts = {volume.split(":")[1] for volume in services["prometheus"]["volumes"] if volume.startswith("./")}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/rules"} <= mounts


# ---- Kubernetes ---------------------------------------------------------------------------------


def test_the_kubernetes_manifests_validate() -> None:
    _run(_tool("kubernetes-validate"), "--kubernetes-version", KUBERNETES_VERSION, "--strict", *_manifests())


def test_the_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(p.name for p in _manifests())


def test_the_deployments_are_locked_down_probed_and_sized() -> None:
    deployments = {r["metadata"]["name"]: r for r in _resources() if r["kind"] == "Deployment"}
    assert set(deployments) == {"monitor-worker", "monitor-api", "monitor-deliver"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports[container["livenessProbe"]["httpGet"]["port"]] == int(
                {e["name"]: e["value"] for e in container["env"]}["HEALTH_PORT"]), name
            mounted = {m["mountPath"] for m in container["volumeMounts"]}
            # writable, as the root file system is not
            assert {"/var/lib/monitor", "/tmp"} <= mounted, name  # noqa: S108 - paths in the pod
    api = deployments["monitor-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    settings = next(r for r in _resources() if r["kind"] == "ConfigMap" and r["metadata"]["name"] == "monitor-settings")
    assert deployments["monitor-worker"]["spec"]["replicas"] <= int(settings["data"]["MONITOR_PARTITIONS"])
    budgets = {r["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for r in _resources()
               if r["kind"] == "PodDisruptionBudget"}
    assert "monitor-worker" in budgets


# ---- settings the files give ------------------------------------------------------------------------


def _settings_classes() -> list[type]:
    from monitor.api.settings import ApiSettings
    from monitor.delivery.settings import DeliverySettings
    from monitor.settings import MonitorSettings
    from monitor.stream.settings import WorkerSettings

    return [MonitorSettings, WorkerSettings, ApiSettings, DeliverySettings]


def _known_variables() -> set[str]:
    return {f"MONITOR_{field.upper()}" for cls in _settings_classes() for field in cls.model_fields}  # type: ignore[attr-defined]


def _variables_given() -> dict[str, set[str]]:
    """Every MONITOR_* variable the deploy files set, with the files that set it."""
    given: dict[str, set[str]] = {}
    for path in [DEPLOY / "Dockerfile", COMPOSE, *K8S.glob("*.yaml")]:
        for name in re.findall(r"\b(MONITOR_[A-Z0-9_]+)\b", path.read_text(encoding="utf-8")):
            given.setdefault(name, set()).add(path.name)
    return given


def test_every_setting_the_files_give_is_one_the_monitor_reads() -> None:
    unknown = {name: files for name, files in _variables_given().items() if name not in _known_variables()}
    assert not unknown


def test_the_settings_of_compose_and_kubernetes_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    def settle(variables: dict[str, str]) -> None:
        for name in list(os.environ):
            if name.startswith("MONITOR_"):
                monkeypatch.delenv(name)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        for cls in _settings_classes():
            cls()  # refuses a bad value, naming it

    monkeypatch.chdir(tmp_path)  # no .env file
    services = _compose()["services"]
    for name in ("worker", "api", "deliver"):
        settle({k: str(v) for k, v in services[name]["environment"].items()})
    by_name = {r["metadata"]["name"]: r for r in _resources() if r["kind"] in ("ConfigMap", "Secret")}
    settle({**by_name["monitor-settings"]["data"], **by_name["monitor-secrets"]["stringData"]})


def test_the_webhooks_files_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from monitor.delivery.webhooks import load_webhooks

    assert load_webhooks(DEPLOY / "config" / "webhooks.yaml") == []
    by_name = {r["metadata"]["name"]: r for r in _resources() if r["kind"] in ("ConfigMap", "Secret")}
    for name, value in by_name["monitor-secrets"]["stringData"].items():
        monkeypatch.setenv(name, value)
    example = tmp_path / "webhooks.yaml"
    example.write_text(by_name["monitor-files"]["data"]["webhooks.yaml"], encoding="utf-8")
    assert [w.id for w in load_webhooks(example)] == ["example-automaker"]


# ---- Prometheus ------------------------------------------------------------------------------------


@needs_promtool
def test_the_prometheus_configuration_passes_promtool() -> None:
    output = _run(PROMTOOL or "promtool", "check", "config", PROMETHEUS_CONFIG).stdout
    assert "monitor.rules.yml" in output, "the configuration loads the alert rules"


def test_the_scrape_jobs_are_the_agreed_ones() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) >= JOBS
    ports = {name: {c["port"] for c in jobs[name]["dns_sd_configs"]} for name in JOBS}
    assert ports == {"monitor-worker": {6066}, "monitor-api": {8000}, "monitor-deliver": {6067}}
    # each job discovers a compose service by its name
    assert {c["names"][0] for name in JOBS for c in jobs[name]["dns_sd_configs"]} <= set(_compose()["services"])


@needs_promtool
def test_the_alert_rules_pass_promtool() -> None:
    _run(PROMTOOL or "promtool", "check", "rules", RULES)


@needs_promtool
def test_the_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in _run(PROMTOOL or "promtool", "test", "rules", RULE_TESTS).stdout


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def test_every_alert_is_tested_firing_and_not_firing_and_explained() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test["alert_rule_test"]]
    names = {rule["alert"] for rule in _alerts()}
    assert names >= {"ObligationNotMet", "ConsumerLagHigh", "DeadLetterRateHigh", "WebhookDeliveryExpired",
                     "WebhookAttemptsFailing", "WebhookOutboxGrowing", "WorkerDown", "WorkersAbsent",
                     "HistoryStoreDown"}
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown not firing"
    severities = {rule["labels"]["severity"] for rule in _alerts() if rule["alert"] == "ObligationNotMet"}
    assert severities == {"critical", "warning"}  # severity by obligation
    for rule in _alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert set(re.findall(r'job="([^"]+)"', rule["expr"])) <= JOBS, rule["alert"]


# ---- Grafana -----------------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title and ref, PromQL with Grafana's interval variables given values) of every target."""
    values = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}
    queries = []
    for panel in _panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in values.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a variable promtool cannot check"
            queries.append((f"{panel['title']} [{target['refId']}]", expr))
    return queries


def test_the_dashboard_and_its_provisioning_fit_together() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    datasources = _yaml_documents(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[0]
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].split("//")[1].split(":")[0] in _compose()["services"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    providers = _yaml_documents(DEPLOY / "grafana" / "provisioning" / "dashboards" / "monitor.yml")[0]
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    grafana = _compose()["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


@needs_promtool
def test_every_dashboard_query_passes_promtool(tmp_path: Path) -> None:
    queries = _dashboard_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    output = _run(PROMTOOL or "promtool", "check", "rules", path).stdout
    assert f"{len(queries)} rules found" in output


# ---- names against the code -------------------------------------------------------------------------


def _exported() -> dict[str, set[str]]:
    """Every sample name the monitor's processes expose (counters' _total, histograms' _bucket, ...),
    with its label names: the collectors that the code's modules register in prometheus_client's
    default registry, which every process's /metrics serves."""
    from prometheus_client import REGISTRY

    for path in sorted((ROOT / "monitor").rglob("*.py")):
        if path.name == "__main__.py" or "migrations" in path.parts:
            continue
        if "prometheus_client" in path.read_text(encoding="utf-8"):
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    exported: dict[str, set[str]] = {"up": {"job", "instance"}}  # Prometheus's own, per target
    for collector, names in list(REGISTRY._collector_to_names.items()):
        labels = set(getattr(collector, "_labelnames", ())) | {"job", "instance"}
        for name in names:
            exported[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return exported


def _used() -> list[tuple[str, str]]:
    """(where, PromQL) of every expression of the alert rules and the dashboard."""
    return [(f"rule {rule['alert']}", rule["expr"]) for rule in _alerts()] + [
        (f"panel {where}", expr) for where, expr in _dashboard_queries()]


def test_every_metric_and_label_used_is_one_the_code_exports() -> None:
    exported = _exported()
    problems = []
    for where, expr in _used():
        metrics = re.findall(r"\b(monitor_[a-z0-9_]+|up)\b(?!\s*\()", expr)
        assert metrics, f"{where}: no metric"
        for metric in metrics:
            if metric not in exported:
                problems.append(f"{where}: {metric} is not exported")
        allowed = set().union(*(exported.get(m, set()) for m in metrics))
        labels = re.findall(r"[{,]\s*([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", expr)
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            labels += [label.strip() for label in group.split(",") if label.strip()]
        problems += [f"{where}: label {label} is not one of {sorted(allowed)}" for label in labels
                     if label not in allowed]
    assert not problems, "\n".join(problems)


def test_the_dashboard_shows_what_operators_need() -> None:
    shown = " ".join(expr for _, expr in _dashboard_queries())
    for metric in ("monitor_events_consumed_total", "monitor_events_rejected_total",
                   "monitor_alert_transitions_total", "monitor_compliance_met",
                   "monitor_event_processing_lag_seconds_bucket", "monitor_deadline_lag_seconds_bucket",
                   "monitor_consumer_lag_messages", "monitor_deadletter_messages", "monitor_webhook_outbox_pending",
                   "monitor_webhook_attempts_total", "monitor_history_write_seconds_bucket",
                   "monitor_api_requests_total", "monitor_api_request_duration_seconds_bucket"):
        assert metric in shown, metric
    tables = [p for p in _panels() if p["type"] == "table"]
    assert any("monitor_compliance_met == 0" in t["targets"][0]["expr"] for t in tables), "a table of what is not met"
