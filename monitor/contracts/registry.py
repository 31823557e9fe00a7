"""Exporter registrations: who may export what, where, and which parts count."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from monitor.contracts.common import Identifier, InputMessage, Market, _known_market

Wmi = Annotated[
    str,
    StringConstraints(pattern=r"^[A-HJ-NPR-Z0-9]{3}$"),
    Field(description="World manufacturer identifier: the first three characters of a VIN"),
]

ALL_MARKETS = "*"


class Role(StrEnum):
    automaker = "automaker"
    authorised_distributor = "authorised_distributor"


class Brand(InputMessage):
    name: Identifier
    wmi: Annotated[list[Wmi], Field(min_length=1)]


class Licence(InputMessage):
    """Licence dates are calendar dates of the issuing authority (UTC+08:00), both inclusive."""

    number: Identifier
    valid_from: date
    valid_to: date

    @model_validator(mode="after")
    def _ordered(self) -> Licence:
        if self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


class ExporterRegistration(InputMessage):
    """One exporter as registered with the licensing authority; key `exporter_id`."""

    exporter_id: Identifier
    name: str = ""
    role: Role
    category: Annotated[str, StringConstraints(min_length=1, max_length=10, strip_whitespace=True)]
    authorised_by: list[Identifier] = Field(
        default_factory=list,
        description="for distributors: the exporter ids of the automakers that authorised it",
    )
    brands: list[Brand] = Field(default_factory=list)
    licence: Licence | None = None
    major_markets: list[Market] = Field(default_factory=list)
    common_parts: dict[str, list[Identifier]] = Field(
        default_factory=dict,
        description='common-malfunction part numbers: "*" for every market, a market code for '
        "parts that market adds",
    )

    @field_validator("common_parts")
    @classmethod
    def _catalogue_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key in value:
            if key != ALL_MARKETS:
                try:
                    _known_market(key)
                except ValueError as exc:
                    raise ValueError(f'key {key!r}: must be "*" or a market code ({exc})') from None
        return value

    @model_validator(mode="after")
    def _distributor_named_by_automaker(self) -> ExporterRegistration:
        if self.role is Role.authorised_distributor and not self.authorised_by:
            raise ValueError("an authorised_distributor must name the automakers in authorised_by")
        return self

    def wmis(self) -> frozenset[str]:
        return frozenset(w for brand in self.brands for w in brand.wmi)

    def catalogue(self, market: str) -> frozenset[str]:
        """The market's common-malfunction parts: the all-markets list plus the market's own."""
        return frozenset(self.common_parts.get(ALL_MARKETS, ())) | frozenset(
            self.common_parts.get(market, ())
        )
