"""The hash chain over each exporter's alert transitions.

Each transition's hash covers the previous one's, so a transition edited, removed or slipped
in afterwards breaks every hash after it; the chain head (last hash and count) kept apart
makes removing the last transitions show too. Anyone holding the rows can check them with
these functions alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def canonical_json(value: Any) -> str:
    """One text for one JSON value: keys sorted, no insignificant space, non-ASCII kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def transition_content(message: dict[str, Any]) -> dict[str, Any]:
    """What a transition's hash covers: the whole message as published (raised_at included),
    and its exporter, alert and status named apart."""
    return {"exporter_id": message["exporter_id"], "alert_id": message["alert_id"], "status": message["status"],
            "message": message}


def transition_hash(prev_hash: str, message: dict[str, Any]) -> str:
    """sha256 (hex) of the previous transition's hash ("" for an exporter's first) followed by
    the canonical JSON of this transition's content."""
    text = prev_hash + canonical_json(transition_content(message))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same_fact(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two alert messages say the same thing, when and by which clock they were raised
    aside: a republished message equal to the latest transition is a repeat, not a transition."""
    return canonical_json({**a, "raised_at": None, "clock": None}) == canonical_json({**b, "raised_at": None,
                                                                                        "clock": None})


class ChainCheck(BaseModel):
    """The result of checking one exporter's chain of alert transitions."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    transitions: int = Field(description="transitions found for the exporter")
    first_bad_seq: int | None = Field(
        default=None, description="seq of the first transition that does not verify (for a removed tail: the "
                                  "last seq the chain head names)")
    detail: str | None = Field(default=None, description="what is wrong, for a person")
