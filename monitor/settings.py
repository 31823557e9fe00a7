"""Configuration from environment variables (CONTRACT.md, Configuration); nothing else reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.config_files import EXAMPLES

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


class LogSettings(BaseSettings):
    """How a process logs: read alone by the command line's group callback, before the command
    reads (and perhaps refuses) its own settings."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_file=".env", extra="ignore", frozen=True)

    log_format: Literal["text", "json"] = Field(
        "text", description="text: one line per record with the ids as key=value; json: one JSON object per "
                            "line (time, level, logger, message, ids)")


class MonitorSettings(LogSettings):
    """Every setting has a default that works on one machine."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    # How every Kafka client of the monitor connects (monitor.kafka turns these into client options).
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="Kafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="Kafka sasl.mechanism with SASL_PLAINTEXT or SASL_SSL: PLAIN, SCRAM-SHA-256 or "
                             "SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(None, validate_default=True,
                                            description="SASL user name (required with SASL_*)")
    kafka_sasl_password: SecretStr | None = Field(None, validate_default=True,
                                                  description="SASL password (required with SASL_*)")
    kafka_ssl_cafile: FilePath | None = Field(
        None, description="PEM file of the CA certificates that signed the brokers' certificates, with SSL or "
                          "SASL_SSL; default the system's CA store")
    kafka_ssl_keyfile: FilePath | None = Field(
        None, description="PEM file of the client's private key (mutual TLS), with SSL or SASL_SSL")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted client key")
    kafka_ssl_certfile: FilePath | None = Field(
        None, validate_default=True,
        description="PEM file of the client's certificate (mutual TLS; with the key unless the key is in it)")
    topic_prefix: str = Field("aftersales.", description="prefix of every topic name")
    partitions: int = Field(8, ge=1, le=1024,
                            description="partitions of the topics the monitor creates; at most this many "
                                        "workers share the work")
    topic_replication: int = Field(1, ge=1, le=32767,
                                   description="replication factor of the topics the monitor creates (its own, "
                                               "and the workers' internal and changelog topics)")
    data_dir: Path = Field(Path("~/.local/share/aftersales-monitor").expanduser(),
                           description="where the embedded store and token file live")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default a SQLite file in data_dir")
    registry: Path = Field(EXAMPLES / "registry.yaml", description="exporter registry file (YAML or JSON)")
    policy: Path | None = Field(None, description="policy file (YAML or JSON); default the built-in policy")
    api_tokens: Path | None = Field(None, description="file of hashed API tokens")
    webhooks: Path | None = Field(None, description="automakers' alert webhooks file")

    # Validators name the setting at fault (the command line prefixes MONITOR_); they run in field
    # order, so each sees the security protocol, and the certificate sees the key before it.

    @field_validator("kafka_sasl_username")
    @classmethod
    def _username_with_sasl(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol")
        if protocol in _SASL and not value:
            raise ValueError(f"is required when MONITOR_KAFKA_SECURITY_PROTOCOL is {protocol}")
        if protocol is not None and protocol not in _SASL and value:
            raise ValueError(f"is set, but MONITOR_KAFKA_SECURITY_PROTOCOL is {protocol}, which sends no SASL "
                             "credentials (use SASL_PLAINTEXT or SASL_SSL)")
        return value

    @field_validator("kafka_sasl_password")
    @classmethod
    def _password_with_sasl(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # never refused for being set: the refusal would print the value it was given
        protocol = info.data.get("kafka_security_protocol")
        if protocol in _SASL and (value is None or not value.get_secret_value()):
            raise ValueError(f"is required when MONITOR_KAFKA_SECURITY_PROTOCOL is {protocol}")
        return value

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _ca_file_loads(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return value
        _needs_tls(info)
        import ssl

        try:
            ssl.create_default_context(cafile=str(value))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"is not a PEM file of CA certificates ({exc})") from None
        return value

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _key_with_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None:
            _needs_tls(info)
        return value

    @field_validator("kafka_ssl_certfile")
    @classmethod
    def _certificate_loads(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        keyfile = info.data.get("kafka_ssl_keyfile")
        if value is None:
            if keyfile is not None:
                raise ValueError("is required when MONITOR_KAFKA_SSL_KEYFILE is set")
            return value
        _needs_tls(info)
        import ssl

        password = info.data.get("kafka_ssl_key_password")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
                str(value), str(keyfile) if keyfile is not None else None,
                password.get_secret_value() if password is not None else None)
        except (ssl.SSLError, OSError) as exc:
            key = "MONITOR_KAFKA_SSL_KEYFILE" if keyfile is not None else "a key in the same file"
            raise ValueError(f"cannot be loaded with {key} ({exc})") from None
        return value


def _needs_tls(info: ValidationInfo) -> None:
    """Refuse a TLS file under a protocol that does not use TLS: it would be silently ignored."""
    protocol = info.data.get("kafka_security_protocol")
    if protocol is not None and protocol not in _TLS:
        raise ValueError(f"is set, but MONITOR_KAFKA_SECURITY_PROTOCOL is {protocol}, which does not use TLS "
                         "(use SSL or SASL_SSL)")
