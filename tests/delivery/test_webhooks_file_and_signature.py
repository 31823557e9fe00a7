"""The MONITOR_WEBHOOKS file (read, or refused naming file, field and reason) and the signature recipe
receivers follow (`verify_signature`, the README's Python lines, and openssl on the command line)."""
# ruff: noqa: S105, S106 - the secrets here are made up for the tests

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from monitor.cli import main
from monitor.config_files import ConfigFileError
from monitor.delivery.webhooks import headers_for, load_webhooks, sign, verify_signature
from tests.delivery.support import verify_as_documented

SECRET = "s3cret-0123456789abcdef"
BODY = b'{"delivery_id":"d-1","webhook_id":"hook-a1","alert":{"alert_id":"x"},"transition":{"seq":7,"hash":"ab"}}'


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "hook-a1", "url": "https://alerts.example.com/monitor", "secret": SECRET,
                            "exporters": ["EXP-A1"]}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def write(tmp_path: Path, entries: Any, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"webhooks{suffix}"
    path.write_text(json.dumps(entries) if suffix == ".json" else yaml.safe_dump(entries))
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_webhooks_file_is_read_with_secrets_from_the_file_or_the_environment(
        tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_A2_SECRET", "from-the-environment-42")
    path = write(tmp_path, [entry(), entry(id="hook-a2", url="http://127.0.0.1:8080/x", secret=None,
                                      secret_env="HOOK_A2_SECRET", exporters=["EXP-A2", "EXP-A3"],
                                      max_age_seconds=600)], suffix)
    first, second = load_webhooks(path)
    assert (first.id, first.url, first.secret, first.exporters, first.max_age_seconds) == (
        "hook-a1", "https://alerts.example.com/monitor", SECRET, frozenset({"EXP-A1"}), None)
    assert (second.secret, second.exporters, second.max_age_seconds) == (
        "from-the-environment-42", frozenset({"EXP-A2", "EXP-A3"}), 600)
    assert SECRET not in repr(first)  # never in a log line or a traceback


@pytest.mark.parametrize(("entries", "reason"), [
    ([entry(url="ftp://alerts.example.com/x")], "[0].url"),
    ([entry(secret="short")], "at least 16 characters"),
    ([entry(secret_env="SOME_VAR")], "exactly one of secret and secret_env"),
    ([entry(secret=None)], "exactly one of secret and secret_env"),
    ([entry(secret=None, secret_env="HOOK_NOT_SET_ANYWHERE")], "[0].secret_env names HOOK_NOT_SET_ANYWHERE, which is "
                                                               "not set"),
    ([entry(), entry(url="https://other.example.com/")], "[1].id 'hook-a1' is given twice"),
    ([entry(colour="blue")], "[0].colour is not a known field"),
    ([entry(exporters=[])], "[0].exporters"),
    ([entry(max_age_seconds=0)], "[0].max_age_seconds"),
    ([entry(id="a hook")], "[0].id"),
    ({"hooks": []}, "list"),
])
def test_a_bad_webhooks_file_is_refused_naming_the_file_field_and_reason(tmp_path: Path, entries: Any,
                                                                         reason: str) -> None:
    path = write(tmp_path, entries)
    with pytest.raises(ConfigFileError) as refused:
        load_webhooks(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert reason in str(refused.value)


def test_monitor_deliver_refuses_a_bad_file_and_a_missing_one_at_start(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = write(tmp_path, [entry(secret="short")])
    result = runner.invoke(main, ["deliver", "--webhooks", str(bad), "--web-port", "0"],
                           env={"MONITOR_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert f"{bad}: [0].secret" in result.output and "16 characters" in result.output
    result = runner.invoke(main, ["deliver"], env={"MONITOR_DATA_DIR": str(tmp_path), "MONITOR_WEBHOOKS": None})
    assert result.exit_code == 2 and "MONITOR_WEBHOOKS" in result.output
    result = runner.invoke(main, ["deliver", "--webhooks", str(write(tmp_path, [entry()]))],
                           env={"MONITOR_DATA_DIR": str(tmp_path), "MONITOR_WEBHOOK_TIMEOUT_SECONDS": "90"})
    assert result.exit_code == 2 and "MONITOR_WEBHOOK_LEASE_SECONDS" in result.output


def test_the_signature_verifies_with_the_secret_only_and_only_while_fresh() -> None:
    header = sign(SECRET, BODY)
    assert verify_signature(SECRET, header, BODY)
    assert verify_as_documented(SECRET, header, BODY)
    assert not verify_signature("another-secret-0123456", header, BODY)
    assert not verify_as_documented("another-secret-0123456", header, BODY)
    assert not verify_signature(SECRET, header, BODY.replace(b"7", b"8"))  # the body changed on the way
    stale = sign(SECRET, BODY, timestamp=int(time.time()) - 301)
    assert not verify_signature(SECRET, stale, BODY) and not verify_as_documented(SECRET, stale, BODY)
    # the timestamp is signed too: moving it forward breaks the signature
    _, v1 = stale.split(",")
    assert not verify_signature(SECRET, f"t={int(time.time())},{v1}", BODY)
    for malformed in ("", "v1=abc", "t=abc,v1=00", f"t={int(time.time())}", "garbage"):
        assert not verify_signature(SECRET, malformed, BODY)
    # a second v1 (a receiver rotating its secret accepts either)
    assert verify_signature(SECRET, f"{header},v1={'0' * 64}", BODY)


def test_each_attempt_carries_the_ids_and_a_fresh_signature() -> None:
    from monitor.delivery.webhooks import Webhook

    hook = Webhook(id="hook-a1", url="http://127.0.0.1:1/", secret=SECRET, exporters=frozenset({"EXP-A1"}))
    headers = headers_for(hook, "d-1", "EXP-A1/ticket 7 ü", BODY, timestamp=1_700_000_000)
    assert headers["Content-Type"] == "application/json"
    assert (headers["Monitor-Delivery-Id"], headers["Monitor-Webhook-Id"]) == ("d-1", "hook-a1")
    assert headers["Monitor-Alert-Id"] == "EXP-A1%2Fticket%207%20%C3%BC"  # percent-encoded: not plain ASCII
    assert headers["Monitor-Signature"].startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, headers["Monitor-Signature"], BODY, now=1_700_000_100)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command on this machine")
def test_the_openssl_one_liner_of_the_readme_computes_the_same_signature(tmp_path: Path) -> None:
    header = sign(SECRET, BODY)
    timestamp, expected = header.removeprefix("t=").split(",v1=")
    (tmp_path / "body.json").write_bytes(BODY)
    readme = """printf '%s.' "$T" | cat - body.json | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1"""
    line = subprocess.run(["sh", "-c", readme], cwd=tmp_path, env={"T": timestamp, "SECRET": SECRET,
                                                                  "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True).stdout
    assert line.strip() == expected
