"""What `monitor evaluate` refuses before doing any work, beyond field errors in the files."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from monitor.cli import main
from tests.builders import registration


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("")
    return path


def test_a_naive_as_of_is_refused(tmp_path: Path) -> None:
    code, _, err = _run("evaluate", str(_events(tmp_path)), "--as-of", "2026-03-02T00:00:00")
    assert code == 2
    assert "has no UTC offset" in err


def test_an_exporter_registered_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump([registration(), registration()]))
    code, out, err = _run("evaluate", str(_events(tmp_path)), "--registry", str(path))
    assert (code, out) == (2, "")
    assert f"{path}: [1].exporter_id 'EXP-1' is registered twice" in err


def test_a_distributor_without_authorising_automakers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump([registration(role="authorised_distributor")]))
    code, _, err = _run("evaluate", str(_events(tmp_path)), "--registry", str(path))
    assert code == 2
    assert "must name the automakers in authorised_by" in err


def test_a_registry_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("- exporter_id: [unclosed\n")
    code, _, err = _run("evaluate", str(_events(tmp_path)), "--registry", str(path))
    assert code == 2
    assert f"{path}: is not valid YAML" in err


def test_a_warning_at_or_after_the_deadline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump([{"version": "X", "effective_from": "2026-01-01", "parameters": {
        "response_48h.warn_at_hours": {"value": 48, "status": "official", "source": "s"}}}]))
    code, _, err = _run("evaluate", str(_events(tmp_path)), "--policy", str(path))
    assert code == 2
    assert "response_48h.warn_at_hours (48.0) must be less than response_48h.deadline_hours (48)" in err
