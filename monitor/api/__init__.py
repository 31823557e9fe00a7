"""The HTTP API and the regulators' dashboard (CONTRACT.md, HTTP API)."""

from monitor.api.app import create_app
from monitor.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
