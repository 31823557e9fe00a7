"""`monitor token create --role ROLE [--exporter ID]...` (CONTRACT.md, Command line): the token printed
once, only its hash stored, a grant that does not fit the role refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.access.tokens import TokenBook, TokenRole
from monitor.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_API_TOKENS", raising=False)
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["token", "create", *args])


def test_the_token_is_printed_once_and_only_its_hash_is_stored(data_dir: Path) -> None:
    result = _run("--role", "automaker", "--exporter", "EXP-001", "--exporter", "EXP-002")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("mon_")
    path = data_dir / "tokens.json"
    assert f"stored as a hash in {path}; it is shown only now" in result.stderr
    assert "(automaker for EXP-001, EXP-002)" in result.stderr
    assert token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    principal = TokenBook.load(path).authenticate(token)
    assert principal is not None and principal.role is TokenRole.automaker
    assert principal.exporters == {"EXP-001", "EXP-002"}
    assert f"token {principal.token_id} " in result.stderr


def test_the_token_file_can_be_named(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "elsewhere" / "api-tokens.json"
    assert _run("--role", "regulator", "--tokens-file", str(chosen)).exit_code == 0
    monkeypatch.setenv("MONITOR_API_TOKENS", str(tmp_path / "env-tokens.json"))
    assert _run("--role", "reviewer").exit_code == 0
    assert [e.role for e in TokenBook.load(chosen).entries] == [TokenRole.regulator]
    assert [e.role for e in TokenBook.load(tmp_path / "env-tokens.json").entries] == [TokenRole.reviewer]
    assert not (data_dir / "tokens.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "automaker"], "an automaker token must name at least one exporter id"),
    (["--role", "regulator", "--exporter", "EXP-001"], "a regulator token sees every exporter and names none"),
    (["--role", "reviewer", "--exporter", "EXP-001"], "a reviewer token sees every exporter and names none"),
    (["--role", "admin"], "'admin' is not one of 'regulator', 'reviewer', 'automaker'"),
    ([], "Missing option '--role'"),
])
def test_a_grant_that_does_not_fit_the_role_is_refused(data_dir: Path, args: list[str], message: str) -> None:
    result = _run(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert message in result.stderr
    assert not (data_dir / "tokens.json").exists()


def test_a_bad_token_file_is_refused_and_kept(data_dir: Path) -> None:
    data_dir.mkdir()
    path = data_dir / "tokens.json"
    path.write_text(json.dumps({"tokens": [{"id": "x"}]}))
    path.chmod(0o600)
    result = _run("--role", "regulator")
    assert (result.exit_code, result.stdout) == (2, "")
    assert f"{path}: tokens[0].id string should match pattern" in result.stderr
    assert json.loads(path.read_text()) == {"tokens": [{"id": "x"}]}


def test_an_exporter_missing_from_the_registry_file_is_noted(data_dir: Path) -> None:
    result = _run("--role", "automaker", "--exporter", "EXP-001", "--exporter", "NOBODY")
    assert result.exit_code == 0
    assert "note: NOBODY not in the registry file" in result.stderr
    assert "EXP-001" not in result.stderr.split("note:")[1]


def test_help_explains_roles_and_storage() -> None:
    result = CliRunner().invoke(main, ["token", "create", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for phrase in ("print it, once", "Only its SHA-256 is kept", "mode 0600", "automaker: only the exporters named",
                   "Required (at least one) for --role automaker", "refused for the other roles"):
        assert phrase in text, phrase
