"""Alembic migrations of the history store; `HistoryStore.open` applies them."""
