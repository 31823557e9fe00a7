"""Alembic environment: migrates the connection `HistoryStore.open` hands over (config.attributes).

Offline mode (`alembic upgrade --sql`) prints the SQL for the URL set in the config instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from monitor.history.tables import Base

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # two processes opening a new store at once (a worker and the API) must not both create it
            connection.execute(text("SELECT pg_advisory_xact_lock(5170327001)"))
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
