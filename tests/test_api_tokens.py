"""API tokens (CONTRACT.md, HTTP API roles): created once, stored as hashes, refused when the file is bad,
and resolved to the exporters the holder may see (OBLIGATIONS.md, "Who answers for what")."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.access.tokens import (
    TOKEN_PREFIX,
    Principal,
    TokenBook,
    TokenRefused,
    TokenRole,
    create_token,
    token_hash,
)
from monitor.config_files import ConfigFileError
from monitor.contracts.registry import ExporterRegistration
from tests.builders import registration

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ANY_ID = "00000000"


def _registry(*entries: dict[str, Any]) -> dict[str, ExporterRegistration]:
    return {e["exporter_id"]: ExporterRegistration.model_validate(e) for e in entries}


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def _entry(**changes: Any) -> dict[str, Any]:
    entry = {"id": "0a1b2c3d", "sha256": token_hash("mon_x"), "role": "automaker", "exporters": ["EXP-1"],
             "created_at": "2026-03-01T10:00:00Z"}
    entry.update(changes)
    return entry


# ---- creating --------------------------------------------------------------------------------

def test_a_created_token_authenticates_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tokens.json"
    token = create_token(path, "automaker", ["EXP-1", "EXP-2"], now=NOW)

    assert token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + 43  # 32 bytes, base64url
    text = path.read_text()
    assert token not in text and token[len(TOKEN_PREFIX):] not in text
    stored = json.loads(text)["tokens"]
    assert stored == [{"id": stored[0]["id"], "sha256": token_hash(token), "role": "automaker",
                       "exporters": ["EXP-1", "EXP-2"], "created_at": "2026-03-01T10:00:00Z"}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    principal = TokenBook.load(path).authenticate(token)
    assert principal == Principal(role=TokenRole.automaker, exporters=frozenset({"EXP-1", "EXP-2"}),
                                  token_id=stored[0]["id"])


def test_tokens_accumulate_with_distinct_ids_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens = [create_token(path, "regulator", now=NOW), create_token(path, "reviewer", now=NOW),
              create_token(path, "automaker", ["EXP-1"], now=NOW)]
    book = TokenBook.load(path)
    assert len(book) == 3 and len(set(tokens)) == 3
    assert len({e.id for e in book.entries}) == 3
    roles = [book.authenticate(t).role for t in tokens]  # type: ignore[union-attr]
    assert roles == [TokenRole.regulator, TokenRole.reviewer, TokenRole.automaker]


def test_concurrent_creation_loses_no_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    made: list[str] = []

    def make() -> None:
        made.append(create_token(path, "regulator", now=NOW))

    threads = [threading.Thread(target=make) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    book = TokenBook.load(path)
    assert len(book) == 12
    assert all(book.authenticate(token) is not None for token in made)
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]  # no temporary file left behind


@pytest.mark.parametrize(("role", "exporters", "reason"), [
    ("automaker", [], "an automaker token must name at least one exporter id"),
    ("regulator", ["EXP-1"], "a regulator token sees every exporter and names none"),
    ("reviewer", ["EXP-1"], "a reviewer token sees every exporter and names none"),
    ("automaker", ["EXP-1", "EXP-1"], "exporter ids named twice: EXP-1"),
    ("admin", [], "unknown role 'admin'"),
])
def test_a_grant_that_does_not_fit_the_role_is_refused(tmp_path: Path, role: str, exporters: list[str],
                                                       reason: str) -> None:
    path = tmp_path / "tokens.json"
    with pytest.raises(TokenRefused, match=reason):
        create_token(path, role, exporters, now=NOW)
    assert not path.exists()


def test_creating_into_a_bad_file_refuses_and_leaves_it_untouched(tmp_path: Path) -> None:
    path = _write(tmp_path / "tokens.json", {"tokens": [_entry(role="root")]})
    before = path.read_bytes()
    with pytest.raises(ConfigFileError):
        create_token(path, "regulator", now=NOW)
    assert path.read_bytes() == before


# ---- authenticating --------------------------------------------------------------------------

def test_unknown_tokens_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = create_token(path, "regulator", now=NOW)
    book = TokenBook.load(path)
    assert book.authenticate(token + "x") is None
    assert book.authenticate(token[:-1]) is None
    assert book.authenticate("") is None
    assert book.authenticate(token_hash(token)) is None  # the stored hash is not itself a token
    assert TokenBook().authenticate(token) is None


def test_a_missing_file_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ConfigFileError) as caught:
        TokenBook.load(path)
    assert str(caught.value) == f"{path}: does not exist; create a token with `monitor token create`"
    assert len(TokenBook.load(path, missing_ok=True)) == 0


# ---- bad files: the file, the field and the reason ---------------------------------------------

@pytest.mark.parametrize(("document", "reason"), [
    ("not json", "is not valid JSON"),
    ([], 'must be a JSON object: {"tokens": [...]}'),
    ({}, "tokens is required"),
    ({"tokens": [_entry(role="root")]}, "tokens[0].role input should be 'regulator', 'reviewer' or 'automaker'"),
    ({"tokens": [_entry(sha256="abc")]}, "tokens[0].sha256 string should match pattern"),
    ({"tokens": [_entry(id="XYZ")]}, "tokens[0].id string should match pattern"),
    ({"tokens": [_entry(exporters=[])]}, "tokens[0] an automaker token must name at least one exporter id"),
    ({"tokens": [_entry(role="reviewer")]}, "tokens[0] a reviewer token sees every exporter and names none"),
    ({"tokens": [_entry(created_at="2026-03-01T10:00:00")]}, "tokens[0].created_at must carry a UTC offset"),
    ({"tokens": [_entry(**{"secret": "mon_x"})]}, "tokens[0].secret is not a known field"),
    ({"tokens": [_entry(), _entry(sha256=token_hash("mon_y"))]}, "tokens[1].id repeats that of tokens[0]"),
    ({"tokens": [_entry(), _entry(id="99999999")]}, "tokens[1].sha256 repeats that of tokens[0]"),
])
def test_a_bad_token_file_is_refused_naming_file_field_and_reason(tmp_path: Path, document: Any,
                                                                  reason: str) -> None:
    path = tmp_path / "tokens.json"
    if isinstance(document, str):
        path.write_text(document)
        path.chmod(0o600)
    else:
        _write(path, document)
    with pytest.raises(ConfigFileError) as caught:
        TokenBook.load(path)
    assert caught.value.path == path
    assert reason in str(caught.value), str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_token_file_others_may_write_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "tokens.json", {"tokens": [_entry()]})
    path.chmod(0o666)
    with pytest.raises(ConfigFileError, match=r"writable by other users \(mode 0666\)"):
        TokenBook.load(path)


# ---- who sees what -----------------------------------------------------------------------------

REGISTRY = _registry(
    registration("AUTO-A"),
    registration("AUTO-B"),
    registration("DIST-A", role="authorised_distributor", authorised_by=("AUTO-A",)),
    registration("DIST-AB", role="authorised_distributor", authorised_by=("AUTO-A", "AUTO-B")),
    registration("DIST-B", role="authorised_distributor", authorised_by=("AUTO-B",)),
    # an automaker's registration naming AUTO-A in authorised_by grants AUTO-A nothing
    registration("AUTO-C", authorised_by=("AUTO-A",)),
)


def test_regulators_and_reviewers_see_everything() -> None:
    for role in (TokenRole.regulator, TokenRole.reviewer):
        principal = Principal(role=role, exporters=frozenset(), token_id=ANY_ID)
        assert principal.visible(REGISTRY) is None
        assert principal.may_see("ANYONE", REGISTRY)


def test_an_automaker_sees_its_own_and_the_distributors_it_authorised() -> None:
    a = Principal(role=TokenRole.automaker, exporters=frozenset({"AUTO-A"}), token_id=ANY_ID)
    assert a.visible(REGISTRY) == {"AUTO-A", "DIST-A", "DIST-AB"}
    assert not a.may_see("AUTO-B", REGISTRY)
    assert not a.may_see("DIST-B", REGISTRY)
    assert not a.may_see("AUTO-C", REGISTRY)
    b = Principal(role=TokenRole.automaker, exporters=frozenset({"AUTO-B", "UNREGISTERED"}), token_id=ANY_ID)
    assert b.visible(REGISTRY) == {"AUTO-B", "UNREGISTERED", "DIST-AB", "DIST-B"}
    assert a.visible({}) == {"AUTO-A"}


_ids = st.sampled_from([f"E{i}" for i in range(8)])


@st.composite
def _registries(draw: st.DrawFn) -> dict[str, ExporterRegistration]:
    ids = draw(st.lists(_ids, unique=True, max_size=8))
    entries = []
    for exporter_id in ids:
        distributor = draw(st.booleans())
        authorised_by = draw(st.lists(_ids, min_size=1 if distributor else 0, max_size=3, unique=True))
        entries.append(registration(exporter_id, role="authorised_distributor" if distributor else "automaker",
                                    authorised_by=tuple(authorised_by)))
    return _registry(*entries)


@given(registry=_registries(), own=st.frozensets(_ids, min_size=1, max_size=3))
def test_an_automaker_never_sees_an_exporter_neither_its_own_nor_authorised_by_it(
        registry: dict[str, ExporterRegistration], own: frozenset[str]) -> None:
    visible = Principal(role=TokenRole.automaker, exporters=own, token_id=ANY_ID).visible(registry)
    assert visible is not None
    assert own <= visible
    for exporter_id in visible - own:
        entry = registry[exporter_id]
        assert entry.role.value == "authorised_distributor"
        assert own & set(entry.authorised_by)
    for exporter_id, entry in registry.items():
        if entry.role.value == "authorised_distributor" and own & set(entry.authorised_by):
            assert exporter_id in visible
