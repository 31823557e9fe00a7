"""The three input events exporters' systems produce (CONTRACT.md, Kafka topics)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from monitor.contracts.common import EventTime, Identifier, InputMessage, Market, Vin


class TicketEventType(StrEnum):
    opened = "opened"
    responded = "responded"
    resolved = "resolved"
    reopened = "reopened"
    cancelled = "cancelled"


class OutletStatus(StrEnum):
    operational = "operational"
    suspended = "suspended"
    closed = "closed"


class Capability(StrEnum):
    maintenance = "maintenance"
    emergency_rescue_24h = "emergency_rescue_24h"


class ServiceTicketEvent(InputMessage):
    """One step in the life of a maintenance ticket; key `ticket_id`."""

    event_id: Identifier
    type: TicketEventType
    ticket_id: Identifier
    exporter_id: Identifier
    market: Market
    vin: Vin
    outlet_id: Identifier | None = None
    occurred_at: EventTime


class StockLine(InputMessage):
    part_number: Identifier
    quantity_on_hand: Annotated[int, Field(ge=0, description="units on hand; never negative")]


class PartsStockReport(InputMessage):
    """A depot's quantities on hand for the parts it lists; key `depot_id`.

    Parts it does not list keep their last reported quantity.
    """

    event_id: Identifier
    exporter_id: Identifier
    market: Market
    depot_id: Identifier
    lines: Annotated[list[StockLine], Field(min_length=1, max_length=100_000)]
    occurred_at: EventTime


class OutletStatusEvent(InputMessage):
    """An outlet's status and capabilities; also its heartbeat. Key `outlet_id`."""

    event_id: Identifier
    exporter_id: Identifier
    outlet_id: Identifier
    market: Market
    status: OutletStatus
    capabilities: list[Capability] = Field(default_factory=list)
    occurred_at: EventTime


InputEvent = ServiceTicketEvent | PartsStockReport | OutletStatusEvent
