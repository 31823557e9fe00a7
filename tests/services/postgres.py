"""PostgreSQL servers the tests start themselves: Debian's binaries, a data directory of their own.

`initdb` then `pg_ctl start` on a free loopback port, trust authentication for the `postgres`
role, fsync off; stopped by `pg_ctl stop` (which signals the server's own pid from its
postmaster.pid) and its directory removed. initdb refuses to run as root, so as root the
server runs as the `postgres` user, in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from monitor.embedded.broker import free_port

INSTALL_HINT = "apt-get install postgresql (or set MONITOR_TEST_POSTGRES to the DSN of a server)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here; the message says what to install."""


def server_binaries() -> Path:
    """The directory of initdb, pg_ctl and postgres; PostgresUnavailable when none is installed."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL_HINT}")


class OwnPostgres:
    """A PostgreSQL server in a data directory of its own, on a free port of 127.0.0.1."""

    def __init__(self, binaries: Path | None = None) -> None:
        self.binaries = binaries or server_binaries()
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no postgres user to run a server as "
                                          f"(initdb refuses root): {INSTALL_HINT}") from None
            os.chown(self.data, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.prefix, *command], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def init(self) -> OwnPostgres:
        self._run(str(self.binaries / "initdb"), "-D", str(self.data / "db"), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        return self

    def start(self) -> OwnPostgres:
        options = (f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run(str(self.binaries / "pg_ctl"), "start", "-w", "-t", "30", "-D", str(self.data / "db"),
                  "-l", str(self.data / "server.log"), "-o", options)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.binaries / "pg_ctl"), "stop", "-w", "-t", "30", "-m", mode, "-D", str(self.data / "db"))

    def remove(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)
