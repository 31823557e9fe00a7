"""Databases for the webhook tests: the history tests' SQLite file per test and PostgreSQL database per session."""

from tests.history.conftest import postgres_url, store_url

__all__ = ["postgres_url", "store_url"]
