"""Settings of a `monitor api` process: the common MONITOR_* variables plus where it listens."""

from __future__ import annotations

from pathlib import Path

from pydantic import AwareDatetime, Field

from monitor.settings import MonitorSettings


class ApiSettings(MonitorSettings):
    """What the HTTP API needs beyond the common settings; every field has a working default."""

    api_host: str = Field("127.0.0.1", description="interface `monitor api` listens on")
    api_port: int = Field(8000, ge=0, le=65535, description="port `monitor api` listens on (0: any free port)")
    ready_timeout_seconds: float = Field(1.0, gt=0, le=30,
                                         description="how long /readyz waits for the broker and the store")
    as_of: AwareDatetime | None = Field(None, description="a fixed 'now' for renewal assessments (replays, "
                                                          "tests); default the wall clock")

    @property
    def tokens_path(self) -> Path:
        """The token file: MONITOR_API_TOKENS, else `tokens.json` in the data directory."""
        return self.api_tokens if self.api_tokens is not None else self.data_dir / "tokens.json"

    @property
    def store_url(self) -> str:
        """The history store's URL: MONITOR_DATABASE_URL, else a SQLite file in the data directory."""
        from monitor.history.store import history_url

        return history_url(self)
