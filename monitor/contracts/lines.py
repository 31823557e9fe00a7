"""Lines of an events file for `monitor evaluate`: an input message plus the topic it belongs to."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from monitor.contracts.events import OutletStatusEvent, PartsStockReport, ServiceTicketEvent
from monitor.contracts.registry import ExporterRegistration

TOPICS = ("service-tickets", "parts-stock", "outlet-status", "registry")


class TicketLine(ServiceTicketEvent):
    topic: Literal["service-tickets"]


class StockLine(PartsStockReport):
    topic: Literal["parts-stock"]


class OutletLine(OutletStatusEvent):
    topic: Literal["outlet-status"]


class RegistryLine(ExporterRegistration):
    topic: Literal["registry"]


EventLine = Annotated[TicketLine | StockLine | OutletLine | RegistryLine, Field(discriminator="topic")]
EVENT_LINE: TypeAdapter[TicketLine | StockLine | OutletLine | RegistryLine] = TypeAdapter(EventLine)
