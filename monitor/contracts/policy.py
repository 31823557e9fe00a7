"""Policy files: every threshold and window of OBLIGATIONS.md, versioned, with its source.

A policy file holds one or more versions. A parameter a version leaves out keeps
its default; an unknown parameter name is refused, so a typo cannot silently
leave a default in force.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter, field_validator, model_validator

RULES_2026 = "export licence rules for pure electric passenger vehicles, in force 2026-01-01"


class SourceStatus(StrEnum):
    official = "official"  # read in the official text
    reported = "reported"  # read only in reports of the text


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Any
    status: SourceStatus
    source: Annotated[str, Field(min_length=1)]


_Positive = TypeAdapter(Annotated[float, Field(gt=0)])
_Share = TypeAdapter(Annotated[float, Field(ge=0, le=1)])
_Units = TypeAdapter(Annotated[int, Field(ge=1)])
_OutletMinimums = TypeAdapter(dict[Annotated[str, Field(min_length=1)], Annotated[int, Field(ge=0)]])

# name -> (how its value is checked, default parameter)
PARAMETERS: dict[str, tuple[TypeAdapter[Any], Parameter]] = {
    "response_48h.deadline_hours": (
        _Positive,
        Parameter(value=48, status=SourceStatus.reported,
                  source=f"{RULES_2026}: maintenance response time shall not exceed 48 hours"),
    ),
    "response_48h.warn_at_hours": (
        _Positive,
        Parameter(value=36, status=SourceStatus.reported,
                  source="monitor default: at-risk warning 12 hours before the 48-hour deadline"),
    ),
    "parts_inventory.min_rate": (
        _Share,
        Parameter(value=0.20, status=SourceStatus.reported,
                  source=f"{RULES_2026}: parts inventory rate not less than 20 % for common-malfunction parts"),
    ),
    "parts_inventory.min_quantity": (
        _Units,
        Parameter(value=1, status=SourceStatus.reported,
                  source="monitor default: one unit on hand counts a part as stocked"),
    ),
    "outlets.stale_after_hours": (
        _Positive,
        Parameter(value=24, status=SourceStatus.reported,
                  source="monitor default: an outlet silent for 24 hours cannot be relied on for 24-hour rescue"),
    ),
    "network_size.min_outlets": (
        _OutletMinimums,
        Parameter(value={"I": 51}, status=SourceStatus.reported,
                  source=f"{RULES_2026}: Category I enterprises keep more than 50 overseas service outlets"),
    ),
    "renewal.response_48h.min_ratio": (
        _Share,
        Parameter(value=0.95, status=SourceStatus.reported,
                  source="monitor default: 95 % of the period's ticket cycles answered within the deadline"),
    ),
    "renewal.min_share_of_days_met": (
        _Share,
        Parameter(value=0.95, status=SourceStatus.reported,
                  source="monitor default: the obligation held on 95 % of the period's days"),
    ),
}


class PolicyVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1)]
    effective_from: date = Field(description="UTC calendar date from which this version applies")
    parameters: dict[str, Parameter] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _known_and_well_typed(cls, parameters: dict[str, Parameter]) -> dict[str, Parameter]:
        checked = {}
        for name, parameter in parameters.items():
            if name not in PARAMETERS:
                known = ", ".join(sorted(PARAMETERS))
                raise ValueError(f"unknown parameter {name!r}; known parameters: {known}")
            adapter, _ = PARAMETERS[name]
            try:
                value = adapter.validate_python(parameter.value)
            except Exception as exc:  # pydantic's ValidationError, re-worded with the name
                messages = [str(err["msg"]) for err in getattr(exc, "errors", lambda: [])()] or [str(exc)]
                reason = "; ".join(m[:1].lower() + m[1:] for m in messages)
                raise ValueError(f"{name}: {reason} (got {parameter.value!r})") from None
            checked[name] = parameter.model_copy(update={"value": value})
        return checked

    def resolved(self) -> dict[str, Parameter]:
        """Every parameter, with the defaults for those this version leaves out."""
        return {name: self.parameters.get(name, default) for name, (_, default) in PARAMETERS.items()}

    @model_validator(mode="after")
    def _warning_before_deadline(self) -> PolicyVersion:
        params = self.resolved()
        warn = params["response_48h.warn_at_hours"].value
        deadline = params["response_48h.deadline_hours"].value
        if warn >= deadline:
            raise ValueError(
                f"response_48h.warn_at_hours ({warn}) must be less than "
                f"response_48h.deadline_hours ({deadline})"
            )
        return self


class PolicyFile(RootModel[list[PolicyVersion]]):
    root: Annotated[list[PolicyVersion], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self) -> PolicyFile:
        for attr in ("version", "effective_from"):
            values = [getattr(v, attr) for v in self.root]
            dupes = sorted({str(v) for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"two versions share {attr} {', '.join(dupes)}")
        return self


DEFAULT_POLICY = PolicyFile([PolicyVersion(version="2026.1", effective_from=date(2026, 1, 1))])
