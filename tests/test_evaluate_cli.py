"""`monitor evaluate FILE... --registry R [--policy P] [--as-of T] [--from T] [--to T] [--format json|table]`.

CONTRACT.md, Command line and "Registry and policy files": a bad registry or policy file is refused
at start with the file, the field and the reason; a bad event line is listed in `rejected` with its
file and line number and the rest still count.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from monitor.cli import main
from tests.builders import outlet, registration, stock, ticket, utc

GOOD = [
    ticket("e1", "opened", "2026-03-01T10:00:00Z"),                         # EXP-1 KE: deadline 03-03 10:00Z
    ticket("e2", "responded", "2026-03-03T10:00:01Z"),                      # 1 s late: breached
    stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 2, "P2": 1}),           # 2 of P1..P10: rate 0.2
    outlet("o1", "O-NG-1", "2026-03-03T09:00:00Z", exporter="EXP-2", market="NG"),
]
BAD_LINE = '{"topic": "service-tickets", "event_id": "bad", "type": "opened"}'
REGISTRY = [registration("EXP-1"), registration("EXP-2", major=("NG",))]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """events.jsonl (a bad line at line 3) and registry.yaml, in the current directory."""
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps(e) for e in GOOD]
    lines.insert(2, BAD_LINE)
    Path("events.jsonl").write_text("\n".join(lines) + "\n")
    Path("registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    return tmp_path


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["evaluate", *args])


def _json(*args: str) -> dict[str, Any]:
    result = _run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _figure(doc: dict[str, Any], exporter: str, market: str) -> dict[str, Any]:
    return next(f for f in doc["figures"] if f["exporter_id"] == exporter and f["market"] == market)


def test_json_output_is_the_document_of_evaluate_records(workdir: Path) -> None:
    from monitor.batch.evaluate import evaluate_records

    doc = _json("events.jsonl", "--registry", "registry.yaml")
    expected = evaluate_records(GOOD, registry=REGISTRY)
    assert {k: v for k, v in doc.items() if k != "rejected"} == {
        k: v for k, v in expected.items() if k != "rejected"}
    # and by hand: as_of is the latest occurred_at; EXP-1 in KE answered one second late
    assert doc["as_of"] == "2026-03-03T10:00:01Z"
    ke = _figure(doc, "EXP-1", "KE")
    assert (ke["response_48h"]["compliant"], ke["response_48h"]["breached"]) == (0, 1)
    assert ke["parts_inventory"] == {"catalogue": 10, "stocked": 2, "rate": 0.2, "compliant": True}
    assert _figure(doc, "EXP-2", "NG")["emergency_coverage"]["active_outlets"] == 1
    breaches = [(a["exporter_id"], a["subject"], a["opened_at"]) for a in doc["alerts"]
                if a["obligation"] == "response_48h" and a["severity"] == "breach"]
    assert breaches == [("EXP-1", "T-1#1", "2026-03-03T10:00:00Z")]


def test_a_bad_line_is_reported_by_file_and_line(workdir: Path) -> None:
    doc = _json("events.jsonl", "--registry", "registry.yaml")
    assert [r["source"] for r in doc["rejected"]] == ["events.jsonl:3"]
    reason = doc["rejected"][0]["reason"]
    for field in ("ticket_id", "exporter_id", "market", "vin", "occurred_at"):
        assert field in reason


def test_several_files_are_read_and_each_bad_line_names_its_file(workdir: Path) -> None:
    Path("more.jsonl").write_text(json.dumps({**GOOD[0], "event_id": "x1", "ticket_id": "T-2",
                                              "occurred_at": "2026-03-02T10:00:00"}) + "\n"
                                  + json.dumps({**GOOD[0], "event_id": "x2", "ticket_id": "T-3"}) + "\n")
    doc = _json("events.jsonl", "more.jsonl", "--registry", "registry.yaml")
    assert [r["source"] for r in doc["rejected"]] == ["events.jsonl:3", "more.jsonl:1"]
    # T-3 (opened 03-01 10:00Z, never answered) is breached at 03-03 10:00Z, before as_of 03-03 10:00:01Z
    ke = _figure(doc, "EXP-1", "KE")
    assert (ke["response_48h"]["compliant"], ke["response_48h"]["breached"]) == (0, 2)


def test_a_json_registry_file_gives_the_same_document(workdir: Path) -> None:
    Path("registry.json").write_text(json.dumps(REGISTRY))
    assert _json("events.jsonl", "--registry", "registry.json") == _json("events.jsonl", "--registry",
                                                                         "registry.yaml")


def test_the_table_is_readable_by_a_person(workdir: Path) -> None:
    result = _run("events.jsonl", "--registry", "registry.yaml", "--format", "table")
    assert result.exit_code == 0, result.output
    for words in ("EXP-1", "EXP-2", "KE", "NG", "events.jsonl:3"):
        assert words in result.stdout
    assert not result.stdout.lstrip().startswith("{")  # a table, not the JSON document


def test_table_is_the_default_format(workdir: Path) -> None:
    result = _run("events.jsonl", "--registry", "registry.yaml")
    assert result.exit_code == 0, result.output
    assert "EXP-1" in result.stdout and not result.stdout.lstrip().startswith("{")


def test_as_of_limits_what_has_happened(workdir: Path) -> None:
    # 2026-03-02T00:00:00+03:00 is 03-01 21:00Z: the ticket is 11 h old (pending), the NG outlet not yet heard
    doc = _json("events.jsonl", "--registry", "registry.yaml", "--as-of", "2026-03-02T00:00:00+03:00")
    assert doc["as_of"] == "2026-03-01T21:00:00Z"
    ke = _figure(doc, "EXP-1", "KE")
    assert {k: ke["response_48h"][k] for k in ("compliant", "breached", "pending")} == {
        "compliant": 0, "breached": 0, "pending": 1}
    assert ke["parts_inventory"]["stocked"] == 2
    assert _figure(doc, "EXP-2", "NG")["emergency_coverage"]["active_outlets"] == 0
    assert [a for a in doc["alerts"] if a["obligation"] == "response_48h"] == []

    from monitor.batch.evaluate import evaluate_records

    expected = evaluate_records(GOOD, registry=REGISTRY, as_of=utc("2026-03-01T21:00:00Z"))
    assert {k: v for k, v in doc.items() if k != "rejected"} == {
        k: v for k, v in expected.items() if k != "rejected"}


def test_from_and_to_select_cycles_by_start(workdir: Path) -> None:
    later = _json("events.jsonl", "--registry", "registry.yaml", "--from", "2026-03-02T00:00:00Z")
    assert _figure(later, "EXP-1", "KE")["response_48h"]["breached"] == 0
    # a bare date for --to is the whole of that UTC day: the cycle started 03-01 10:00Z is in
    through = _json("events.jsonl", "--registry", "registry.yaml", "--to", "2026-03-01")
    assert _figure(through, "EXP-1", "KE")["response_48h"]["breached"] == 1
    before = _json("events.jsonl", "--registry", "registry.yaml", "--to", "2026-03-01T09:59:59Z")
    assert _figure(before, "EXP-1", "KE")["response_48h"]["breached"] == 0


# --- bad registry and policy files ------------------------------------------------------------------

def _refused(result: Result, *words: str) -> None:
    assert result.exit_code != 0
    assert '"figures"' not in result.stdout  # refused before any work
    text = result.output + (result.stderr or "")
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def _registry_with(change: dict[str, Any], licence: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    bad = registration("EXP-1") | change
    if licence:
        bad["licence"] = bad["licence"] | licence
    return [bad, registration("EXP-2", major=("NG",))]


@pytest.mark.parametrize(("registry", "field"), [
    (_registry_with({}, {"valid_to": "2026-13-01"}), "licence.valid_to"),
    (_registry_with({}, {"valid_from": "2026-01-32"}), "licence.valid_from"),
    (_registry_with({"brands": [{"name": "B", "wmi": ["LGO"]}]}), "wmi"),
    (_registry_with({"major_markets": ["Kenya"]}), "major_markets"),
    (_registry_with({"role": "importer"}), "role"),
], ids=["month-13", "day-32", "wmi-with-O", "market-name", "role"])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_bad_registry_file_is_refused_naming_file_and_field(workdir: Path, registry: list, field: str,
                                                              suffix: str) -> None:
    path = f"bad-registry{suffix}"
    Path(path).write_text(json.dumps(registry) if suffix == ".json" else yaml.safe_dump(registry))
    _refused(_run("events.jsonl", "--registry", path, "--format", "json"), path, field)


def test_a_hand_written_yaml_registry_with_an_impossible_date_is_refused_naming_the_field(workdir: Path) -> None:
    # how a person writes it: an unquoted date, which YAML itself reads as a date
    Path("typed-registry.yaml").write_text(
        "- exporter_id: EXP-1\n"
        "  role: automaker\n"
        "  category: II\n"
        "  brands: [{name: Volta, wmi: [LGX]}]\n"
        "  licence: {number: LIC-1, valid_from: 2026-01-01, valid_to: 2026-13-01}\n"
        "  major_markets: [KE]\n"
        "  common_parts: {'*': [P1, P2]}\n")
    _refused(_run("events.jsonl", "--registry", "typed-registry.yaml", "--format", "json"),
             "typed-registry.yaml", "valid_to")


def test_a_hand_written_yaml_registry_that_is_valid_is_accepted(workdir: Path) -> None:
    Path("typed-registry.yaml").write_text(
        "- exporter_id: EXP-1\n"
        "  role: automaker\n"
        "  category: II\n"
        "  brands: [{name: Volta, wmi: [LGX]}]\n"
        "  licence: {number: LIC-1, valid_from: 2026-01-01, valid_to: 2026-12-31}\n"
        "  major_markets: [KE]\n"
        "  common_parts: {'*': [P1, P2]}\n")
    doc = _json("events.jsonl", "--registry", "typed-registry.yaml")
    # catalogue P1, P2 both stocked
    assert _figure(doc, "EXP-1", "KE")["parts_inventory"] == {"catalogue": 2, "stocked": 2, "rate": 1.0,
                                                              "compliant": True}


def _param(value: Any) -> dict[str, Any]:
    return {"value": value, "status": "official", "source": "amended rules"}


@pytest.mark.parametrize(("version", "words"), [
    ({"version": "X", "effective_from": "2026-01-01", "parameters": {"parts_inventory.min_rat": _param(0.2)}},
     ["parts_inventory.min_rat", "unknown"]),
    ({"version": "X", "effective_from": "2026-01-01", "parameters": {"parts_inventory.min_rate": _param(1.5)}},
     ["parts_inventory.min_rate", "1.5"]),
    ({"version": "X", "effective_from": "2026-01-01",
      "parameters": {"response_48h.deadline_hours": _param(-4)}}, ["response_48h.deadline_hours", "-4"]),
    ({"version": "X", "effective_from": "2026-02-30"}, ["effective_from"]),
    ({"version": "X", "effective_from": "2026-01-01",
      "parameters": {"parts_inventory.min_rate": {"value": 0.2, "status": "rumoured", "source": "x"}}},
     ["status"]),
], ids=["unknown-name", "min-rate-1.5", "negative-deadline", "bad-date", "bad-status"])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_bad_policy_file_is_refused_naming_file_and_field(workdir: Path, version: dict, words: list[str],
                                                            suffix: str) -> None:
    path = f"bad-policy{suffix}"
    Path(path).write_text(json.dumps([version]) if suffix == ".json" else yaml.safe_dump([version]))
    _refused(_run("events.jsonl", "--registry", "registry.yaml", "--policy", path, "--format", "json"),
             path, *words)


def test_a_good_policy_file_changes_the_verdict(workdir: Path) -> None:
    # a 49-hour deadline makes the answer at 48 h + 1 s compliant
    Path("policy.yaml").write_text(yaml.safe_dump([{
        "version": "2026.9", "effective_from": "2026-01-01",
        "parameters": {"response_48h.deadline_hours": _param(49)}}]))
    doc = _json("events.jsonl", "--registry", "registry.yaml", "--policy", "policy.yaml")
    assert doc["policy_versions"] == ["2026.9"]
    ke = _figure(doc, "EXP-1", "KE")
    assert (ke["response_48h"]["compliant"], ke["response_48h"]["breached"]) == (1, 0)
