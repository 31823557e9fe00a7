"""Settings of a stream worker: MONITOR_* environment variables, each with a working default."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from monitor.settings import MonitorSettings


class WorkerSettings(MonitorSettings):
    """What a `monitor worker` process needs beyond the common settings.

    The Kafka timeouts default to values that make a worker join its group and start
    processing within a few seconds on the embedded broker; on a real cluster the
    Kafka defaults (session 45 s, rebalance 60 s) may suit better.
    """

    app_id: str = Field("aftersales-monitor", description="consumer group and changelog topic prefix")
    web_host: str = Field("127.0.0.1", description="where /metrics and /healthz are served")
    web_port: int = Field(6066, ge=0, le=65535, description="port of /metrics and /healthz (0: any free port)")
    reorder_window_seconds: float = Field(
        2.0, ge=0, description="how long state events wait for earlier ones before they are judged "
                               "(later ones are still placed exactly, at a higher cost)")
    tick_seconds: float = Field(0.1, gt=0, description="how often deadlines and state changes are judged")
    snapshot_seconds: float = Field(1.0, gt=0, description="how often changed figures are published")
    catch_up_lag: int = Field(1000, ge=0,
                              description="consumer lag (messages, over its input partitions) above which a "
                                          "worker is catching up on a backlog: no exporter counts as quiet "
                                          "meanwhile")
    clock_lag_bound_seconds: float = Field(
        300.0, ge=0, description="an exporter whose latest event is at most this far behind the wall clock runs on "
                                 "the wall clock (OBLIGATIONS.md, Time: clock.lag_bound)")
    clock_idle_after_seconds: float = Field(
        300.0, ge=0, description="an exporter that sent nothing for this long, while the worker has read all its "
                                 "input, is quiet and runs on the wall clock (clock.idle_after)")
    checkpoint_seconds: float = Field(
        10.0, gt=0, description="how often each changed exporter's state is checkpointed to the worker's table; "
                                "a worker taking over judges again only the input since the last checkpoint")
    horizon_hours: float = Field(168.0, gt=0,
                                 description="how far back late state events can still re-judge history")
    as_of: AwareDatetime | None = Field(None, description="a fixed 'now' (replays and tests); default the "
                                                          "wall clock")
    intake_batch: int = Field(2000, ge=1, description="input messages routed per envelope round")
    intake_linger_seconds: float = Field(0.02, gt=0, description="longest wait to fill an envelope round")
    # a consumer-group join waits about half the session timeout on the embedded broker
    session_timeout_seconds: float = Field(6.0, gt=0, description="Kafka consumer session timeout")
    heartbeat_seconds: float = Field(0.5, gt=0, description="Kafka consumer heartbeat interval")
    rebalance_timeout_seconds: float = Field(3.0, gt=0, description="Kafka consumer rebalance timeout")
    instance_id: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$",
        description="a stable name of this worker (its host or pod name): started again under the same name "
                    "after a crash, it takes its partitions back at once instead of waiting for its former "
                    "session to expire (Kafka static membership, group.instance.id, in each of its consumer "
                    "groups); two running workers must never share one. Unset: dynamic membership")
    metrics_max_series: int = Field(
        5000, ge=0, description="exporter x market pairs whose live compliance gauges one worker exports on "
                                "/metrics (5 series per pair, and 1 per exporter); pairs past it are counted "
                                "in monitor_compliance_series_dropped_total instead")
    deadletter_check_seconds: float = Field(
        15.0, gt=0, description="how often the worker reads how many messages the dead-letter topic holds "
                                "(monitor_deadletter_messages)")
