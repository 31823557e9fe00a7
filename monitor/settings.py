"""Configuration from environment variables (CONTRACT.md, Configuration); nothing else reads them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.config_files import EXAMPLES


class MonitorSettings(BaseSettings):
    """Every setting has a default that works on one machine."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    topic_prefix: str = Field("aftersales.", description="prefix of every topic name")
    data_dir: Path = Field(Path("~/.local/share/aftersales-monitor").expanduser(),
                           description="where the embedded store and token file live")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default a SQLite file in data_dir")
    registry: Path = Field(EXAMPLES / "registry.yaml", description="exporter registry file (YAML or JSON)")
    policy: Path | None = Field(None, description="policy file (YAML or JSON); default the built-in policy")
    api_tokens: Path | None = Field(None, description="file of hashed API tokens")
    webhooks: Path | None = Field(None, description="automakers' alert webhooks file")
