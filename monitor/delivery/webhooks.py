"""Automakers' alert webhooks: the MONITOR_WEBHOOKS file, the message each receives, and its signature.

The file (YAML or JSON) is a list of webhooks:

    - id: acme-alerts                      # unique; names the webhook in deliveries, logs and metrics
      url: https://alerts.acme.example/monitor
      secret_env: ACME_WEBHOOK_SECRET      # or `secret: "..."` (at least 16 characters)
      exporters: [EXP-001]                 # the automaker's exporter ids
      max_age_seconds: 86400               # optional: give up on a delivery this old

Each webhook receives every alert transition of its exporters and of the authorised
distributors that name one of them in `authorised_by`, as an `AlertDelivery` JSON body,
signed with HMAC-SHA256 over "<unix seconds>.<body>" (`sign`, `verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.config_files import ConfigFileError, read_entries
from monitor.contracts.common import Identifier
from monitor.contracts.outputs import ComplianceAlert

SIGNATURE_HEADER = "Monitor-Signature"
DELIVERY_ID_HEADER = "Monitor-Delivery-Id"
ALERT_ID_HEADER = "Monitor-Alert-Id"
WEBHOOK_ID_HEADER = "Monitor-Webhook-Id"
MIN_SECRET_LENGTH = 16
DEFAULT_TOLERANCE_SECONDS = 300

EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


# ---- the file ------------------------------------------------------------------------------------------


class WebhookEntry(BaseModel):
    """One webhook as written in the MONITOR_WEBHOOKS file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"),
                  Field(description="unique; letters, digits, '.', '_' and '-', at most 100 characters")]
    url: HttpUrl = Field(description="where alert transitions are POSTed (http or https)")
    secret: SecretStr | None = Field(None, description=f"the signing secret, at least {MIN_SECRET_LENGTH} "
                                                       "characters; or give secret_env")
    secret_env: EnvironmentName | None = Field(None, description="an environment variable holding the secret "
                                                                 "(e.g. from a Kubernetes secret)")
    exporters: list[Identifier] = Field(min_length=1, description="the automaker's exporter ids")
    max_age_seconds: float | None = Field(None, gt=0, description="a delivery not made by this age is given up "
                                                                  "(expired); default MONITOR_WEBHOOK_MAX_AGE_SECONDS")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return secret

    @field_validator("exporters")
    @classmethod
    def _distinct(cls, exporters: list[str]) -> list[str]:
        repeated = sorted({e for e in exporters if exporters.count(e) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(repeated)} twice")
        return exporters

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookEntry:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret and secret_env")
        return self


_ENTRIES = TypeAdapter(list[WebhookEntry])


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook ready to use: its secret resolved."""

    id: str
    url: str
    secret: str
    exporters: frozenset[str]
    max_age_seconds: float | None = None

    def __repr__(self) -> str:  # never the secret, in logs or tracebacks
        return f"Webhook(id={self.id!r}, url={self.url!r}, exporters={sorted(self.exporters)!r})"


class _SecretsFromEnvironment(BaseSettings):
    """The environment variables that `secret_env` names (and a `.env` file, as for every setting)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True, frozen=True)


def _environment_secrets(names: Sequence[str]) -> dict[str, str | None]:
    fields: dict[str, Any] = {f"secret_{index}": (SecretStr | None, Field(None, validation_alias=name))
                              for index, name in enumerate(names)}
    model = create_model("WebhookSecrets", __base__=_SecretsFromEnvironment, **fields)
    values = model()
    found: dict[str, str | None] = {}
    for index, name in enumerate(names):
        value = getattr(values, f"secret_{index}")
        found[name] = value.get_secret_value() if value is not None else None
    return found


def load_webhooks(path: Path) -> list[Webhook]:
    """The webhooks of a MONITOR_WEBHOOKS file (YAML or JSON: a list, or {"webhooks": [...]}).

    Refuses (ConfigFileError naming the file, the field and the reason) a file that cannot be
    read or parsed, an unknown or malformed field, a URL that is not http(s), a missing or
    short secret, an environment variable named by `secret_env` that is not set, and an id
    given twice.
    """
    entries = read_entries(path, "webhooks", _ENTRIES)
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.id in seen:
            raise ConfigFileError(path, f"[{index}].id {entry.id!r} is given twice (also [{seen[entry.id]}])")
        seen[entry.id] = index
    secrets = _environment_secrets([e.secret_env for e in entries if e.secret_env is not None])
    webhooks = []
    for index, entry in enumerate(entries):
        if entry.secret_env is not None:
            secret = secrets.get(entry.secret_env)
            if secret is None:
                raise ConfigFileError(path, f"[{index}].secret_env names {entry.secret_env}, which is not set in "
                                            "the environment")
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigFileError(path, f"[{index}].secret_env: the secret in {entry.secret_env} is shorter "
                                            f"than {MIN_SECRET_LENGTH} characters")
        else:
            assert entry.secret is not None  # noqa: S101 - the model requires one of the two
            secret = entry.secret.get_secret_value()
        webhooks.append(Webhook(id=entry.id, url=str(entry.url), secret=secret, exporters=frozenset(entry.exporters),
                                max_age_seconds=entry.max_age_seconds))
    return webhooks


# ---- the message ---------------------------------------------------------------------------------------


class TransitionReference(BaseModel):
    """Which stored transition a delivery carries: its place in the history store's log and its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(description="the transition's position in the history store's append-only log; "
                                 "increases with every transition of an alert")
    hash: str = Field(description="sha256 hex of the transition in its exporter's hash chain")


class AlertDelivery(BaseModel):
    """The JSON body POSTed to a webhook: one alert transition.

    Sent at least once: the same `delivery_id` may arrive more than once (de-duplicate on it).
    The transitions of one alert arrive in order (increasing `transition.seq`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_id: str = Field(description="unique per webhook and transition; the same on every attempt")
    webhook_id: str
    alert: ComplianceAlert = Field(description="the alert message as published; `accountable` names only "
                                               "exporters the webhook's automaker may see")
    transition: TransitionReference


# ---- the signature -------------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of "<timestamp>." + body."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The Monitor-Signature header value for `body` now (or at `timestamp`, Unix seconds):
    `t=<timestamp>,v1=<signature>`."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={signature(secret, moment, body)}"


_PART = re.compile(r"^\s*([a-z0-9]+)=([^,\s]*)\s*$")


def verify_signature(secret: str, header: str, body: bytes, tolerance: float = DEFAULT_TOLERANCE_SECONDS,
                     now: float | None = None) -> bool:
    """Whether a Monitor-Signature header value signs `body` (the raw bytes received) with `secret`,
    at a time within `tolerance` seconds of `now` (default the clock).

    The header is `t=<unix seconds>,v1=<hex>`; several `v1` entries may be given (any one
    matching suffices) and unknown entries are ignored. Compares in constant time.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        match = _PART.match(part)
        if match is None:
            return False
        name, value = match.groups()
        if name == "t":
            if not value.isdigit():
                return False
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).encode("ascii")
    return any(hmac.compare_digest(expected, c.encode("ascii", "replace")) for c in candidates)


def headers_for(webhook: Webhook, delivery_id: str, alert_id: str, body: bytes,
                timestamp: int | None = None) -> dict[str, str]:
    """Every header of one attempt: the signature (fresh timestamp), the ids, the content type."""
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(webhook.secret, body, timestamp),
            DELIVERY_ID_HEADER: delivery_id, ALERT_ID_HEADER: header_safe(alert_id), WEBHOOK_ID_HEADER: webhook.id}


def header_safe(text: str) -> str:
    """`text` as a header value: unchanged when it is printable ASCII, else percent-encoded (UTF-8)."""
    if text.isascii() and text.isprintable() and text == text.strip() and "%" not in text:
        return text
    return quote(text, safe="")


def by_id(webhooks: Sequence[Webhook]) -> Mapping[str, Webhook]:
    return {w.id: w for w in webhooks}
