"""Settings of webhook delivery: MONITOR_WEBHOOK_* and MONITOR_DELIVER_* variables, each with a working default."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from monitor.settings import MonitorSettings


class DeliverySettings(MonitorSettings):
    """How deliverers send (`monitor deliver`, or a worker's own deliverer)."""

    webhook_max_age_seconds: float = Field(86400.0, gt=0, description="a delivery not made by this age is given "
                                                                      "up (expired), unless its webhook says "
                                                                      "otherwise (max_age_seconds)")
    webhook_backoff_initial_seconds: float = Field(1.0, gt=0, description="pause after the first failed attempt")
    webhook_backoff_max_seconds: float = Field(600.0, gt=0, description="longest pause between attempts")
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=300, description="time limit of one attempt (connect, "
                                                                            "send, answer)")
    webhook_lease_seconds: float = Field(60.0, gt=0, description="how long a deliverer holds a delivery it is "
                                                                 "sending; another may take it over afterwards")
    webhook_concurrency: int = Field(16, ge=1, le=1024, description="most requests in flight per deliverer")
    webhook_poll_seconds: float = Field(0.5, gt=0, le=60, description="how often the outbox is looked at for due "
                                                                      "deliveries")
    webhook_retention_days: float = Field(90.0, ge=0, description="settled deliveries (delivered or expired) are "
                                                                  "deleted from the outbox this many days after "
                                                                  "their last attempt; 0 keeps them for good")
    deliver_web_host: str = Field("127.0.0.1", description="where `monitor deliver` serves /metrics and /healthz")
    deliver_web_port: int = Field(6067, ge=0, le=65535, description="port of `monitor deliver`'s /metrics and "
                                                                    "/healthz (0: any free port)")

    @field_validator("webhook_backoff_max_seconds")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("webhook_backoff_initial_seconds")
        if initial is not None and value < initial:
            raise ValueError(f"must not be below MONITOR_WEBHOOK_BACKOFF_INITIAL_SECONDS ({initial:g})")
        return value

    @field_validator("webhook_lease_seconds")
    @classmethod
    def _lease_outlasts_attempt(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("webhook_timeout_seconds")
        if timeout is not None and value <= timeout:
            # a lease that ends while its request may still be answered lets another deliverer send it too
            raise ValueError(f"must be longer than MONITOR_WEBHOOK_TIMEOUT_SECONDS ({timeout:g})")
        return value
