"""Faust's table manager, without the second it waits before it looks at the tables.

Faust's `TableManager.on_start` sleeps a second, for tables declared after the app starts,
before it registers the tables' changelogs; the consumer subscribes only once they are
registered. A stage's tables are all declared before its app starts (`StreamWorker._build_app`),
so the second was spent on every start of each stage: one more second before a worker, or
the one taking over from it, judged anything.
"""

from __future__ import annotations

from faust.tables import TableManager


class DeclaredTableManager(TableManager):
    """The table manager of an app whose tables are declared before it starts."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()
