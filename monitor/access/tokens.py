"""API tokens: created once, stored only as hashes, resolved to who is asking and what they may see.

The token file (JSON, `MONITOR_API_TOKENS`, default `<data_dir>/tokens.json`):

    {"tokens": [{"id": "1a2b3c4d", "sha256": "<hex of sha256(token)>", "role": "automaker",
                 "exporters": ["EXP-001"], "created_at": "2026-03-01T10:00:00Z"}]}

A token is `mon_` followed by 32 random bytes, URL-safe base64; only its SHA-256 is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from monitor.config_files import ConfigFileError
from monitor.contracts.common import Identifier
from monitor.contracts.errors import explain
from monitor.contracts.registry import ExporterRegistration
from monitor.contracts.registry import Role as ExporterRole
from monitor.settings import MonitorSettings

TOKEN_PREFIX = "mon_"  # noqa: S105 - the visible prefix of every token, not a secret
_TOKEN_BYTES = 32


class TokenRole(StrEnum):
    regulator = "regulator"  # everything
    reviewer = "reviewer"  # everything, read-only history and reports
    automaker = "automaker"  # its own exporters and the distributors they authorised


class TokenRefused(ValueError):
    """A token that cannot be created as asked (a role and exporters that do not go together)."""


class TokenEntry(BaseModel):
    """One stored token: its id, the hash of its secret, and what it grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}$"),
                  Field(description="8 lower-case hex digits; names the token in logs, never the secret")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$"),
                      Field(description="lower-case hex SHA-256 of the token's UTF-8 text")]
    role: TokenRole
    exporters: list[Identifier] = Field(
        default_factory=list, description="automaker: the exporter ids it answers for (at least one); "
        "other roles: none")
    created_at: AwareDatetime

    @model_validator(mode="after")
    def _exporters_fit_role(self) -> TokenEntry:
        _check_grant(self.role, self.exporters)
        return self


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry]

    @model_validator(mode="after")
    def _distinct(self) -> TokenFile:
        for attr in ("id", "sha256"):
            values = [getattr(entry, attr) for entry in self.tokens]
            for index, value in enumerate(values):
                if value in values[:index]:
                    raise ValueError(f"tokens[{index}].{attr} repeats that of tokens[{values.index(value)}]")
        return self


def _check_grant(role: TokenRole, exporters: Sequence[str]) -> None:
    if role is TokenRole.automaker and not exporters:
        raise TokenRefused("an automaker token must name at least one exporter id")
    if role is not TokenRole.automaker and exporters:
        raise TokenRefused(f"a {role.value} token sees every exporter and names none")
    repeated = sorted({e for e in exporters if exporters.count(e) > 1})
    if repeated:
        raise TokenRefused(f"exporter ids named twice: {', '.join(repeated)}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the role of the token presented and the exporters it names."""

    role: TokenRole
    exporters: frozenset[str]
    token_id: str

    def visible(self, registrations: Mapping[str, ExporterRegistration]) -> set[str] | None:
        """The exporter ids this principal may see; None means every exporter.

        Regulators and reviewers see all. An automaker sees the ids on its token plus every
        registered authorised distributor whose `authorised_by` names one of them
        (OBLIGATIONS.md, "Who answers for what"); nothing else, however the registry reads.
        """
        if self.role is not TokenRole.automaker:
            return None
        seen = set(self.exporters)
        for registration in registrations.values():
            if (registration.role is ExporterRole.authorised_distributor
                    and not self.exporters.isdisjoint(registration.authorised_by)):
                seen.add(registration.exporter_id)
        return seen

    def may_see(self, exporter_id: str, registrations: Mapping[str, ExporterRegistration]) -> bool:
        """Whether `exporter_id` is among what `visible` grants."""
        visible = self.visible(registrations)
        return visible is None or exporter_id in visible


def tokens_file(settings: MonitorSettings) -> Path:
    """Where the token file is: MONITOR_API_TOKENS, else `tokens.json` in the data directory."""
    return settings.api_tokens if settings.api_tokens is not None else settings.data_dir / "tokens.json"


def token_hash(token: str) -> str:
    """Lower-case hex SHA-256 of the token's UTF-8 text: all the token file ever holds of it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenBook:
    """The tokens of one token file, for authenticating requests."""

    def __init__(self, entries: Iterable[TokenEntry] = (), path: Path | None = None) -> None:
        self.entries: tuple[TokenEntry, ...] = tuple(entries)
        self.path = path

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> TokenBook:
        """The tokens in `path`, validated whole.

        Refuses (ConfigFileError naming the file, the field and the reason) a file that is not
        JSON, has an unknown or malformed field, repeats an id or hash, gives a role exporters
        it may not have, or that other users may write to (whoever can write it can grant
        themselves access). A missing file is refused too, unless `missing_ok`, which gives an
        empty book (every token is then refused).
        """
        path = Path(path)
        try:
            status = path.stat()
        except FileNotFoundError:
            if missing_ok:
                return cls((), path)
            raise ConfigFileError(path, "does not exist; create a token with `monitor token create`") from None
        except OSError as exc:
            raise ConfigFileError(path, f"cannot be read ({exc.strerror})") from None
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigFileError(path, f"is writable by other users (mode {stat.S_IMODE(status.st_mode):04o}); "
                                        f"anyone who can write it can grant themselves access: chmod 600 it")
        try:
            data: Any = json.loads(path.read_bytes())
        except OSError as exc:
            raise ConfigFileError(path, f"cannot be read ({exc.strerror})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigFileError(path, f"is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigFileError(path, 'must be a JSON object: {"tokens": [...]}')
        try:
            parsed = TokenFile.model_validate(data)
        except ValidationError as exc:
            reason, _ = explain(exc)
            raise ConfigFileError(path, reason) from None
        return cls(parsed.tokens, path)

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a presented token, or None when no stored hash matches.

        Hashes are compared in constant time, and against every entry, so neither the time
        taken nor an early exit tells how close a guess came or where a match sits.
        """
        presented = token_hash(token).encode("ascii")
        found: TokenEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(presented, entry.sha256.encode("ascii")):
                found = entry
        if found is None:
            return None
        return Principal(role=found.role, exporters=frozenset(found.exporters), token_id=found.id)


def create_token(path: Path, role: TokenRole | str, exporters: Iterable[str] = (), *,
                 now: datetime | None = None) -> str:
    """Add a new token to the token file at `path` and return it; only its hash is stored.

    The file (and its directory) is created when missing; it is rewritten atomically with
    mode 0600 under a lock on its directory, so concurrent calls lose no token. An automaker
    token must name at least one exporter id; other roles name none (TokenRefused). An
    existing file that is not a valid token file is refused (ConfigFileError) and left as it is.
    Prints nothing: the caller shows the token once.
    """
    path = Path(path)
    try:
        role = TokenRole(role)
    except ValueError:
        raise TokenRefused(f"unknown role {role!r}; one of {', '.join(r.value for r in TokenRole)}") from None
    names = [e.strip() for e in exporters]
    _check_grant(role, names)
    created = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(path.parent):
        book = TokenBook.load(path, missing_ok=True)
        ids = {entry.id for entry in book.entries}
        token_id = secrets.token_hex(4)
        while token_id in ids:
            token_id = secrets.token_hex(4)
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        try:
            entry = TokenEntry(id=token_id, sha256=token_hash(token), role=role, exporters=names,
                               created_at=created)
        except ValidationError as exc:
            raise TokenRefused(explain(exc)[0]) from None
        document = TokenFile(tokens=[*book.entries, entry]).model_dump(mode="json")
        _write_atomically(path, json.dumps(document, indent=2).encode("utf-8") + b"\n")
    return token


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # The lock is on the directory, not a lock file, so nothing is left lying around.
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomically(path: Path, data: bytes) -> None:
    # mkstemp creates the file 0600 before anything is written, so no reader ever sees it
    # with wider permissions; os.replace makes the new content appear whole or not at all.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
