"""Field types shared by every message: markets, VINs, aware timestamps."""

from __future__ import annotations

from typing import Annotated

import pycountry
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

_ISO_3166_ALPHA2 = frozenset(country.alpha_2 for country in pycountry.countries)


def _known_market(code: str) -> str:
    if code not in _ISO_3166_ALPHA2:
        raise ValueError(f"'{code}' is not an ISO 3166-1 alpha-2 country code")
    return code


Market = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    AfterValidator(_known_market),
    Field(description="ISO 3166-1 alpha-2 country code, upper case", examples=["KE"]),
]

Vin = Annotated[
    str,
    StringConstraints(pattern=r"^[A-HJ-NPR-Z0-9]{17}$"),
    Field(
        description="Vehicle identification number: 17 characters of the ISO 3779 alphabet "
        "(digits and capital letters except I, O and Q)",
        examples=["LGXCE4CB5N0012345"],
    ),
]

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]

EventTime = Annotated[
    AwareDatetime,
    Field(description="RFC 3339 timestamp with an offset; naive timestamps are rejected"),
]


class InputMessage(BaseModel):
    """Inputs ignore unknown fields (forward compatibility) and are immutable once read."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class OutputMessage(BaseModel):
    """Outputs are produced by the monitor; an unknown field there is a bug."""

    model_config = ConfigDict(extra="forbid", frozen=True)
