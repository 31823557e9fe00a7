"""`monitor evaluate` as a person or a script runs it: files in, a document or a table out."""

import json
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from monitor.batch.evaluate import evaluate_records
from monitor.cli import main
from tests.scenario import outlet, registration, stock, ticket, utc

EVENTS = [ticket("e1", "opened", "2026-03-01T10:00:00Z"), ticket("e2", "responded", "2026-03-03T10:00:01Z"),
          stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 2), ("P2", 1)),
          outlet("o1", "O1", "2026-03-01T09:00:00Z")]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    events = tmp_path / "events.jsonl"
    lines = [orjson.dumps(e) for e in EVENTS]
    lines.insert(2, b'{"topic": "service-tickets", "event_id": "bad"}')
    events.write_bytes(b"\n".join(lines) + b"\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump([registration()]))
    return {"events": events, "registry": registry, "dir": tmp_path}


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_json_output_is_the_evaluation_document(files: dict[str, Path]) -> None:
    code, out, _ = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    expected = evaluate_records(EVENTS, registry=[registration()])
    assert doc["figures"] == expected["figures"] and doc["alerts"] == expected["alerts"]
    assert doc["rejected"] == [{"source": "events.jsonl:3", "reason": doc["rejected"][0]["reason"]}]
    assert "ticket_id is required" in doc["rejected"][0]["reason"]


def test_as_of_limits_what_has_happened(files: dict[str, Path]) -> None:
    code, out, _ = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]), "--format", "json",
                        "--as-of", "2026-03-02T00:00:00Z")
    assert code == 0
    doc = json.loads(out)
    assert doc["as_of"] == "2026-03-02T00:00:00Z"
    assert doc["figures"][0]["response_48h"]["pending"] == 1
    assert doc == evaluate_records(EVENTS, registry=[registration()], as_of=utc("2026-03-02T00:00:00Z")) | {
        "rejected": doc["rejected"]}


def test_from_and_to_select_cycles_by_start(files: dict[str, Path]) -> None:
    code, out, _ = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]), "--format", "json",
                        "--from", "2026-03-02", "--to", "2026-03-31")
    assert code == 0
    assert json.loads(out)["figures"][0]["response_48h"]["breached"] == 0
    code, out, _ = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]), "--format", "json",
                        "--to", "2026-03-01")
    assert json.loads(out)["figures"][0]["response_48h"]["breached"] == 1


def test_the_table_is_for_a_person(files: dict[str, Path]) -> None:
    code, out, _ = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]))
    assert code == 0
    for words in ("Compliance by exporter and market", "EXP-1", "KE", "BREACH", "1 rejected line",
                  "events.jsonl:3"):
        assert words in out


def test_a_naive_as_of_is_refused(files: dict[str, Path]) -> None:
    code, _, err = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]),
                        "--as-of", "2026-03-02T00:00:00")
    assert code == 2
    assert "has no UTC offset" in err


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r[0]["licence"].update(valid_to="2026-13-01"), "[0].licence.valid_to"),
    (lambda r: r[0]["brands"][0].update(wmi=["LGO"]),
     "[0].brands[0].wmi[0] must be 3 characters of digits and capital letters except I, O and Q"),
    (lambda r: r[0].update(major_markets=["Kenya"]), "[0].major_markets[0]"),
    (lambda r: r.append(dict(r[0])), "[1].exporter_id 'EXP-1' is registered twice"),
    (lambda r: r[0].update(role="authorised_distributor"), "must name the automakers in authorised_by"),
])
def test_a_bad_registry_file_is_refused_with_file_field_and_reason(files: dict[str, Path], change: object,
                                                                    words: str) -> None:
    registry = [registration()]
    change(registry)  # type: ignore[operator]
    path = files["dir"] / "bad-registry.yaml"
    path.write_text(yaml.safe_dump(registry))
    code, out, err = _run("evaluate", str(files["events"]), "--registry", str(path))
    assert code == 2
    assert out == ""
    assert str(path) in err and words in err


@pytest.mark.parametrize(("parameters", "words"), [
    ({"parts_inventory.min_rat": {"value": 0.2, "status": "official", "source": "x"}},
     "unknown parameter 'parts_inventory.min_rat'"),
    ({"parts_inventory.min_rate": {"value": 1.5, "status": "official", "source": "x"}},
     "parts_inventory.min_rate: input should be less than or equal to 1 (got 1.5)"),
    ({"parts_inventory.min_rate": {"value": 0.2, "status": "rumoured", "source": "x"}}, "status"),
    ({"response_48h.warn_at_hours": {"value": 50, "status": "official", "source": "x"}},
     "must be less than response_48h.deadline_hours"),
])
def test_a_bad_policy_file_is_refused_with_file_field_and_reason(files: dict[str, Path], parameters: dict,
                                                                  words: str) -> None:
    path = files["dir"] / "policy.json"
    path.write_text(json.dumps([{"version": "X", "effective_from": "2026-01-01", "parameters": parameters}]))
    code, _, err = _run("evaluate", str(files["events"]), "--registry", str(files["registry"]),
                          "--policy", str(path))
    assert code == 2
    assert str(path) in err and words in err


def test_a_registry_that_is_not_yaml_is_refused(files: dict[str, Path]) -> None:
    path = files["dir"] / "broken.yaml"
    path.write_text("- exporter_id: [unclosed\n")
    code, _, err = _run("evaluate", str(files["events"]), "--registry", str(path))
    assert code == 2
    assert "is not valid YAML" in err
