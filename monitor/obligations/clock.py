"""Each exporter's live clock (OBLIGATIONS.md, Time), so that late or replayed data does not
cry wolf and silence does not hide a breach.

The clock of an exporter runs on the wall clock while its data is current, or while it has
gone quiet (nothing received from it for `idle_after` while the worker has read all its
input); otherwise, while it delivers a backlog, on its own event time. It never moves back.

What "received" means is bounded by the worker's own input: while the worker is catching up,
an exporter's data is only known complete up to the event time every lagging input partition
has reached (`InputProgress.reached`), so its event time counts only up to there.

Plain Python with no wall clock of its own: the worker passes the wall-clock instant in.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.contracts.outputs import AlertClock, ClockState
from monitor.obligations.timebase import SECOND, Micros, stamp

MINUTE: Micros = 60 * SECOND

LAG_BOUND: Micros = 5 * MINUTE  # clock.lag_bound default
IDLE_AFTER: Micros = 5 * MINUTE  # clock.idle_after default


@dataclass(frozen=True, slots=True)
class InputProgress:
    """What a worker knows of its own reading, for the partition an exporter is on."""

    caught_up: bool  # it has read everything there is on its input partitions
    reached: Micros | None = None  # while catching up: the event time all its lagging inputs have passed


CAUGHT_UP = InputProgress(caught_up=True)


@dataclass(slots=True)
class ExporterClock:
    """The live clock of one exporter."""

    lag_bound: Micros = LAG_BOUND
    idle_after: Micros = IDLE_AFTER
    latest: Micros | None = None  # the latest occurred_at received
    received_at: Micros | None = None  # wall-clock instant of the last event received
    now: Micros = 0  # the clock: never moves back
    state: ClockState = ClockState.quiet
    wall: Micros = 0  # the wall-clock instant of the last `advance`

    def received(self, occurred_at: Micros, wall: Micros) -> None:
        """An event of the exporter, at `occurred_at`, was received at wall-clock `wall`."""
        if self.latest is None or occurred_at > self.latest:
            self.latest = occurred_at
        self.received_at = wall

    def known_until(self, progress: InputProgress) -> Micros | None:
        """How far the exporter's data surely reaches: its latest event time, no further than the
        worker's input has reached."""
        if self.latest is None or progress.reached is None:
            return self.latest
        return min(self.latest, progress.reached)

    def advance(self, wall: Micros, progress: InputProgress) -> Micros:
        """Move the clock for the wall-clock instant `wall`; returns the clock."""
        self.wall = wall
        known = self.known_until(progress)
        if known is not None and wall - known <= self.lag_bound:
            self.state, candidate = ClockState.current, wall
        elif progress.caught_up and (self.received_at is None or wall - self.received_at >= self.idle_after):
            self.state, candidate = ClockState.quiet, wall
        else:
            self.state, candidate = ClockState.backlog, known if known is not None else self.now
        self.now = max(self.now, candidate)
        return self.now

    def watermark(self, window: Micros, progress: InputProgress) -> Micros:
        """Up to when state events may be judged: `window` before the clock, and while a backlog
        is coming, before the data received (what is behind it may yet arrive). Once the worker
        has read all its input and nothing more came from the exporter for `window`, nothing of
        it is in flight: everything received may be judged."""
        if self.state is not ClockState.backlog:
            return self.now - window
        known = self.known_until(progress)
        reached = min(self.now, known if known is not None else self.now)
        settled = progress.caught_up and self.received_at is not None and self.wall - self.received_at >= window
        return reached if settled else reached - window

    @property
    def kind(self) -> AlertClock:
        return AlertClock.event_time if self.state is ClockState.backlog else AlertClock.wall_clock

    def raised_by(self, opened_at: Micros) -> AlertClock:
        """Which clock raises an alert that opened at `opened_at`: the exporter's own data when it
        reaches that instant, else the wall clock (inferred from silence)."""
        return AlertClock.event_time if self.latest is not None and opened_at <= self.latest else AlertClock.wall_clock

    def reported(self) -> tuple[ClockState, Micros | None]:
        """What a snapshot's freshness changes with: the clock's state, and the latest event time
        to the minute (finer moves are left to `lag_seconds` of the next snapshot)."""
        return self.state, None if self.latest is None else self.latest // MINUTE

    def freshness(self, wall: Micros) -> dict[str, object]:
        """The Freshness document (plain data) as of wall-clock `wall`."""
        return {"latest_event_at": None if self.latest is None else stamp(self.latest),
                "lag_seconds": None if self.latest is None else round(max(0, wall - self.latest) / SECOND, 3),
                "clock": self.kind.value, "state": self.state.value}
