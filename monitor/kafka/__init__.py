"""How the monitor's Kafka clients connect: bootstrap servers and security, from the settings.

One mapping, used wherever the code makes a Kafka client: the worker's Faust app and its own
short reads, the history sink, topic creation and the simulator's producer. The settings
(`MONITOR_KAFKA_SECURITY_PROTOCOL`, `MONITOR_KAFKA_SASL_*`, `MONITOR_KAFKA_SSL_*`) are checked
when they are read (`monitor.settings`), so a bad combination is refused at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from monitor.settings import MonitorSettings

class KafkaSettingRefused(RuntimeError):
    """The broker refuses one of the monitor's Kafka settings (not a fault that waiting cures);
    the message names the setting to change."""


# Where a client connects: the bootstrap servers alone ("host:port,host:port", plaintext), or the
# keyword arguments `kafka_client_options` gives (bootstrap servers and security).
KafkaTarget = str | Mapping[str, Any]


def kafka_ssl_context(settings: MonitorSettings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections, None for the others.

    Built by aiokafka's `create_ssl_context`: the brokers' certificates are verified, against
    MONITOR_KAFKA_SSL_CAFILE or else the system's CA store, host names included; the client's
    own certificate and key (MONITOR_KAFKA_SSL_CERTFILE, _KEYFILE, _KEY_PASSWORD) are
    presented when given (mutual TLS).
    """
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    def path(value: Any) -> str | None:
        return None if value is None else str(value)

    password = settings.kafka_ssl_key_password
    return create_ssl_context(cafile=path(settings.kafka_ssl_cafile), certfile=path(settings.kafka_ssl_certfile),
                              keyfile=path(settings.kafka_ssl_keyfile),
                              password=password.get_secret_value() if password is not None else None)


def kafka_security_options(settings: MonitorSettings) -> dict[str, Any]:
    """aiokafka's security keyword arguments (shared by AIOKafkaConsumer, AIOKafkaProducer,
    AIOKafkaAdminClient and `aiokafka.conn.create_conn`): `security_protocol` always, then
    `ssl_context` with SSL and SASL_SSL, and `sasl_mechanism`, `sasl_plain_username`,
    `sasl_plain_password` with SASL_PLAINTEXT and SASL_SSL (aiokafka takes SCRAM's user and
    password under the same names)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=password.get_secret_value() if password is not None else None)
    return options


# How old a long-lived consumer's cluster metadata may grow (aiokafka's default is 5 min). When a
# partition's leader moves while the consumer is looking up where to start reading it (after a
# rebalance during a broker failure), aiokafka 0.14 retries that lookup against the old leader
# without asking for new metadata, so the partition is not read until the metadata is next
# refreshed; the Java client refreshes at once (KAFKA-9535).
METADATA_MAX_AGE_MS = 10_000


def kafka_client_options(settings: MonitorSettings) -> dict[str, Any]:
    """The keyword arguments that connect an aiokafka client as the settings say:
    `bootstrap_servers` (MONITOR_KAFKA_BOOTSTRAP) and `kafka_security_options`."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **kafka_security_options(settings)}


def client_options(kafka: KafkaTarget) -> dict[str, Any]:
    """The aiokafka keyword arguments of `kafka`: bootstrap servers alone connect in plaintext;
    a mapping (from `kafka_client_options`) is copied as it is."""
    if isinstance(kafka, str):
        return {"bootstrap_servers": kafka}
    return dict(kafka)


def bootstrap_of(kafka: KafkaTarget) -> str:
    """The bootstrap servers of `kafka`, for messages and logs (never the credentials)."""
    return kafka if isinstance(kafka, str) else str(kafka["bootstrap_servers"])


def faust_broker_options(settings: MonitorSettings) -> dict[str, Any]:
    """Faust app settings for the same connection: `broker` (a kafka:// URL per bootstrap server)
    and `broker_credentials` (None for PLAINTEXT, `faust.SSLCredentials` for SSL,
    `faust.SASLCredentials` for SASL_PLAINTEXT, and for SASL_SSL with the TLS context).

    Faust hands these to every client it makes (consumer, producer, and the one that creates
    its internal and changelog topics) through its own aiokafka mapping, which gives the same
    keyword arguments as `kafka_security_options`.
    """
    import faust

    brokers = [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",") if server.strip()]
    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    credentials: Any = None
    if protocol == "SSL":
        credentials = faust.SSLCredentials(context)
    elif protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password
        credentials = faust.SASLCredentials(
            username=settings.kafka_sasl_username, password=password.get_secret_value() if password else None,
            ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
    return {"broker": brokers, "broker_credentials": credentials}
