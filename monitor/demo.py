"""`monitor demo`: the whole system on one machine, and a live view of what it does.

It starts the embedded broker, a worker (with its history sink) and the HTTP API with the
dashboard as child processes (stopped by their own pids), makes a regulator token for the
dashboard, produces a simulated exporter network's history and then its present in real
time, and watches the alerts, compliance and dead-letter topics the way any consumer would.
It also plays one automaker's side of the webhooks: a receiver on loopback, registered in a
webhooks file the worker's deliverer reads, that checks the signature of every delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from monitor.embedded.broker import EmbeddedBroker, free_port
from monitor.simulation.network import NetworkSpec
from monitor.simulation.produce import ProduceStats, SimulationPlan, period_ending_today, produce
from monitor.stream.topics import TopicNames, ensure_topics

log = logging.getLogger(__name__)

OBLIGATIONS = ("response_48h", "parts_inventory", "emergency_coverage", "network_size", "authorisation")


@dataclass
class DemoOptions:
    broker_port: int | None = None  # None: 9092 when free, else any free port
    web_port: int | None = None
    api_port: int | None = None  # None: 8000 when free, else any free port
    seed: int = 2026
    exporters: int = 5
    days: int = 30
    rate: float = 2000.0
    duration: float | None = None  # seconds; None: until Ctrl-C
    plain: bool = False  # a line every few seconds instead of a screen refreshed in place
    workdir: Path = field(default_factory=lambda: Path.cwd() / ".monitor-demo")


@dataclass
class View:
    """What the demo has seen on the output topics."""

    produced: ProduceStats | None = None
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # alert_id -> latest message
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # exporter:market -> snapshot
    dead_letters: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    hook: DemoReceiver | None = None

    def by_obligation(self) -> dict[str, Counter[str]]:
        counts: dict[str, Counter[str]] = {name: Counter() for name in OBLIGATIONS}
        for message in self.alerts.values():
            counts[message["obligation"]][f"{message['severity']}:{message['status']}"] += 1
        return counts


class DemoReceiver:
    """One automaker's webhook endpoint, on loopback: counts the deliveries it gets and checks each
    signature as the README tells receivers to (`monitor.delivery.webhooks.verify_signature`)."""

    def __init__(self, exporter_id: str, secret: str) -> None:
        self.exporter_id = exporter_id
        self.secret = secret
        self.received = 0
        self.deliveries: set[str] = set()  # distinct delivery ids: deliveries come at least once
        self.badly_signed = 0
        self.url: str | None = None
        self._runner: Any = None

    async def start(self) -> str:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def _receive(self, request: Any) -> Any:
        from aiohttp import web

        from monitor.delivery.webhooks import verify_signature

        body = await request.read()
        self.received += 1
        if not verify_signature(self.secret, request.headers.get("Monitor-Signature", ""), body):
            self.badly_signed += 1
            return web.Response(status=401, text="bad signature")
        self.deliveries.add(request.headers.get("Monitor-Delivery-Id", ""))
        return web.Response(status=204)

    def summary(self) -> str:
        signed = "all signed" if not self.badly_signed else f"{self.badly_signed} badly signed"
        return f"webhook of {self.exporter_id}: {len(self.deliveries)} deliveries received, {signed}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Demo:
    """Starts everything, shows it, and stops everything it started."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.view = View()
        self.stop = asyncio.Event()
        self.broker: EmbeddedBroker | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log: IO[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.api_log: IO[bytes] | None = None
        self.dashboard_url: str | None = None
        self.names = TopicNames.of("aftersales.")

    async def run(self) -> int:
        options = self.options
        options.workdir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop.set)
        try:
            bootstrap = await asyncio.to_thread(self._start_broker)
            await ensure_topics(bootstrap, self.names)
            web_port = options.web_port or free_port()
            await self._start_receiver()
            self._start_worker(bootstrap, web_port)
            self.console.print(f"worker started (pid {self.worker.pid if self.worker else '?'}); its metrics: "
                               f"http://127.0.0.1:{web_port}/metrics, its log: {options.workdir / 'worker.log'}")
            await asyncio.to_thread(self._start_api, bootstrap)
            self.console.print(f"API and dashboard started (pid {self.api.pid if self.api else '?'}); its log: "
                               f"{options.workdir / 'api.log'}")
            self.console.print(f"dashboard (regulator token): {self.dashboard_url}", highlight=False,
                               soft_wrap=True)
            self.console.print("Ctrl-C stops everything.")
            return await self._watch(bootstrap)
        finally:
            await asyncio.to_thread(self._shutdown)
            if self.view.hook is not None:
                await self.view.hook.stop()

    async def _start_receiver(self) -> None:
        """The webhook endpoint of the automaker that authorised a distributor (else the first one),
        and the webhooks file naming it, for the worker's deliverer."""
        import secrets

        import yaml

        from monitor.simulation.network import registrations

        options = self.options
        network = registrations(NetworkSpec(seed=options.seed, exporters=options.exporters, days=options.days))
        automakers = [r["exporter_id"] for r in network if r["role"] == "automaker"]
        authorising = [a for r in network for a in r["authorised_by"]]
        if not automakers:
            return
        exporter = authorising[0] if authorising else automakers[0]
        hook = DemoReceiver(exporter, secrets.token_urlsafe(32))
        url = await hook.start()
        path = options.workdir.resolve() / "webhooks.yaml"
        path.write_text(yaml.safe_dump([{"id": f"demo-{exporter.lower()}", "url": url, "secret": hook.secret,
                                         "exporters": [exporter]}]), encoding="utf-8")
        path.chmod(0o600)
        self.view.hook = hook
        self.console.print(f"webhook receiver of {exporter} listening on {url} (deliveries signed, checked)")

    def _start_broker(self) -> str:
        port = self.options.broker_port
        if port is None:
            port = 9092 if _port_free(9092) else free_port()
        self.broker = EmbeddedBroker(port=port, log_path=self.options.workdir / "broker.log")
        self.broker.start()
        self.console.print(f"embedded broker listening on {self.broker.bootstrap} (pid {self.broker.pid})")
        return self.broker.bootstrap

    def _environment(self, bootstrap: str) -> dict[str, str]:
        """What the demo's processes share: the broker, the topics, the history store and tokens."""
        workdir = self.options.workdir.resolve()
        # the embedded broker is one plaintext node: a real cluster's security and replication do not apply
        inherited = {name: value for name, value in os.environ.items()
                     if not name.startswith(("MONITOR_KAFKA_SASL_", "MONITOR_KAFKA_SSL_"))}
        return {**inherited, "MONITOR_KAFKA_BOOTSTRAP": bootstrap, "MONITOR_TOPIC_PREFIX": self.names.prefix,
                "MONITOR_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "MONITOR_TOPIC_REPLICATION": "1",
                "MONITOR_DATA_DIR": str(workdir), "MONITOR_API_TOKENS": str(workdir / "tokens.json")}

    def _start_api(self, bootstrap: str) -> None:
        """The HTTP API and dashboard, once it answers; and a regulator token to open it with."""
        from monitor.access.tokens import create_token

        token = create_token(self.options.workdir.resolve() / "tokens.json", "regulator")
        port = self.options.api_port
        if port is None:
            port = 8000 if _port_free(8000) else free_port()
        self.api_log = (self.options.workdir / "api.log").open("ab")
        self.api = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "monitor", "api", "--port", str(port)], env=self._environment(bootstrap),
            stdout=self.api_log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.api.poll() is None:
            if not _port_free(port):
                break
            time.sleep(0.1)
        if self.api.poll() is not None:
            raise RuntimeError(f"the API stopped at start (exit {self.api.returncode}); see "
                               f"{self.options.workdir / 'api.log'}")
        self.dashboard_url = f"http://127.0.0.1:{port}/#token={token}"

    def _start_worker(self, bootstrap: str, web_port: int) -> None:
        env = {**self._environment(bootstrap), "MONITOR_WEB_PORT": str(web_port)}
        env.pop("MONITOR_WEBHOOKS", None)
        if self.view.hook is not None:  # the worker's deliverer sends to the demo's receiver
            env["MONITOR_WEBHOOKS"] = str(self.options.workdir.resolve() / "webhooks.yaml")
        self.worker_log = (self.options.workdir / "worker.log").open("ab")
        self.worker = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "monitor", "worker"], env=env, stdout=self.worker_log,
            stderr=subprocess.STDOUT, start_new_session=True)

    async def _watch(self, bootstrap: str) -> int:
        options = self.options
        spec = NetworkSpec(seed=options.seed, exporters=options.exporters, days=options.days,
                           start=period_ending_today(options.days))
        plan = SimulationPlan(spec=spec, rate=options.rate or None, live=True)

        def progress(stats: ProduceStats) -> None:
            self.view.produced = stats

        producer = asyncio.create_task(produce(plan, bootstrap, self.names.prefix, progress=progress,
                                               stop=self.stop))
        reader = asyncio.create_task(self._read_outputs(bootstrap))
        started = time.monotonic()
        try:
            if options.plain:
                while not self._finished(started):
                    self.console.print(self._line(), highlight=False, soft_wrap=True)
                    await self._wait(5.0)
            else:
                with Live(self._screen(), console=self.console, refresh_per_second=2, transient=False) as live:
                    while not self._finished(started):
                        live.update(self._screen())
                        await self._wait(0.5)
            self.stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                self.view.produced = await producer
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self.console.print(self._line(), highlight=False, soft_wrap=True)
        return 0

    def _finished(self, started: float) -> bool:
        if self.stop.is_set():
            return True
        if self.worker is not None and self.worker.poll() is not None:
            self.console.print(f"[red]the worker stopped (exit {self.worker.returncode}); see "
                               f"{self.options.workdir / 'worker.log'}[/red]")
            return True
        return self.options.duration is not None and time.monotonic() - started >= self.options.duration

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _read_outputs(self, bootstrap: str) -> None:
        from aiokafka import AIOKafkaConsumer

        names = self.names
        consumer = AIOKafkaConsumer(names.alerts, names.compliance, names.deadletter, bootstrap_servers=bootstrap,
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            async for record in consumer:
                document = orjson.loads(record.value or b"{}")
                if record.topic == names.alerts:
                    self.view.alerts[document["alert_id"]] = document
                    self.view.recent.appendleft(document)
                elif record.topic == names.compliance:
                    self.view.figures[(record.key or b"").decode()] = document
                else:
                    self.view.dead_letters += 1
                    self.view.reasons[document.get("reason", "")[:60]] += 1
        finally:
            await consumer.stop()

    # ---- what a person sees -------------------------------------------------------------------

    def _line(self) -> str:
        produced = self.view.produced
        sent = produced.produced if produced else 0
        reached = produced.last_occurred_at if produced and produced.last_occurred_at else "-"
        counts = self.view.by_obligation()
        opened = {name: sum(v for k, v in c.items() if k.endswith(":open")) for name, c in counts.items()}
        summary = ", ".join(f"{name} {opened[name]}" for name in OBLIGATIONS)
        hook = f"; {self.view.hook.summary()}" if self.view.hook is not None else ""
        return (f"events in {sent:,} (simulated time {reached}); dead-lettered {self.view.dead_letters}; "
                f"open alerts: {summary}{hook}")

    def _screen(self) -> Group:
        produced = self.view.produced
        head = Table.grid(padding=(0, 2))
        head.add_row("events produced", f"{produced.produced:,}" if produced else "0",
                     "rate", f"{produced.events_per_second:,.0f}/s" if produced else "-",
                     "simulated time", str(produced.last_occurred_at or "-") if produced else "-",
                     "dead-lettered", f"{self.view.dead_letters:,}")
        alerts = Table(title="alerts by obligation", expand=True)
        for column in ("obligation", "warnings open", "breaches open", "resolved", "retracted"):
            alerts.add_column(column, justify="right" if column != "obligation" else "left")
        for name, counts in self.view.by_obligation().items():
            resolved = counts["warning:resolved"] + counts["breach:resolved"]
            retracted = counts["warning:retracted"] + counts["breach:retracted"]
            alerts.add_row(name, str(counts["warning:open"]), str(counts["breach:open"]), str(resolved),
                           str(retracted))
        figures = Table(title="live figures (exporter × market)", expand=True)
        for column in ("exporter", "market", "48 h ratio", "pending", "parts rate", "rescue outlets", "network"):
            figures.add_column(column)
        for key in sorted(self.view.figures)[:18]:
            snapshot = self.view.figures[key]
            response, parts = snapshot["response_48h"], snapshot["parts_inventory"]
            coverage, network = snapshot["emergency_coverage"], snapshot["network_size"]
            figures.add_row(
                snapshot["exporter_id"], snapshot["market"],
                "-" if response["ratio"] is None else f"{response['ratio']:.3f}", str(response["pending"]),
                "-" if parts["rate"] is None else f"{parts['rate']:.2f}",
                f"{coverage['rescue_outlets']}" + ("" if coverage["covered"] else " (uncovered)"),
                f"{network['active_outlets']}/{network['required'] or '-'}")
        recent = Table(title="latest alert transitions", expand=True)
        for column in ("raised", "exporter", "market", "obligation", "severity", "status", "subject"):
            recent.add_column(column)
        for message in self.view.recent:
            recent.add_row(str(message.get("raised_at", ""))[11:19], message["exporter_id"],
                           message.get("market") or "-", message["obligation"], message["severity"],
                           message["status"], message["subject"][:28])
        if self.view.hook is not None:
            head.add_row("webhook", self.view.hook.summary())
        if self.dashboard_url:
            head.add_row("dashboard", self.dashboard_url)
        return Group(Panel(head, title="aftersales monitor demo (Ctrl-C stops)"), alerts, figures, recent)

    # ---- stopping -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        for name, process in (("API", self.api), ("worker", self.worker)):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    log.warning("%s %d did not stop in 20 s; killing it", name, process.pid)
                    process.kill()
                    process.wait()
        for opened in (self.api_log, self.worker_log):
            if opened is not None:
                opened.close()
        if self.broker is not None:
            self.broker.stop()
        self.console.print("stopped: API, worker and broker are down")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo until Ctrl-C (or `options.duration`); returns the exit status."""
    return asyncio.run(Demo(options, console or Console()).run())
