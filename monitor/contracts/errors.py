"""Validation errors in plain words: which field, what was wrong, what was given."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_PATTERN_MEANING = {
    "vin": "must be 17 characters of digits and capital letters except I, O and Q",
    "market": "must be an ISO 3166-1 alpha-2 country code in capitals, like KE",
    "major_markets": "must be ISO 3166-1 alpha-2 country codes in capitals, like KE",
    "wmi": "must be 3 characters of digits and capital letters except I, O and Q",
}

_TYPE_MEANING = {
    "missing": "is required",
    "timezone_aware": "must carry a UTC offset (RFC 3339, like 2026-03-01T10:00:00+03:00)",
    "json_invalid": "is not valid JSON",
    "extra_forbidden": "is not a known field",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "union_tag_not_found": "must be present: one of service-tickets, parts-stock, outlet-status, registry",
    "union_tag_invalid": "must be one of service-tickets, parts-stock, outlet-status, registry",
}


# a value given that is longer than this is cut in the one-line reason (the errors keep it whole,
# and a dead letter the input too): a megabyte-long event_id made a megabyte-long log line
SHOWN_CHARACTERS = 80


def shown(given: Any) -> str:
    """`given` as the one-line reason quotes it: its repr, cut after SHOWN_CHARACTERS with its length."""
    text = repr(given)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}… ({len(str(given)):,} characters)"


def field_path(loc: tuple[int | str, ...], skip_tag: bool = False) -> str:
    parts = list(loc[1:] if skip_tag and loc else loc)
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _words(error: Any) -> str:
    kind = error["type"]
    loc = [p for p in error["loc"] if isinstance(p, str)]
    name = loc[-1] if loc else ""
    if kind == "string_pattern_mismatch":
        meaning = _PATTERN_MEANING.get(name) or next(
            (_PATTERN_MEANING[p] for p in reversed(loc) if p in _PATTERN_MEANING), None)
        if meaning:
            return meaning
    if kind in _TYPE_MEANING:
        return _TYPE_MEANING[kind]
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else kind


def explain(exc: ValidationError, *, skip_tag: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """A one-line reason naming each bad field, and the errors as plain data.

    `skip_tag` drops the first location element (the discriminator value of a tagged union).
    """
    errors = []
    for error in exc.errors(include_url=False):
        path = field_path(tuple(error["loc"]), skip_tag=skip_tag and error["type"] != "union_tag_invalid")
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            path = "topic"
        given = error.get("ctx", {}).get("tag") if error["type"] == "union_tag_invalid" else error.get("input")
        entry: dict[str, Any] = {"field": path or "the line", "problem": _words(error)}
        if error["type"] not in ("missing", "json_invalid") and isinstance(given, str | int | float | bool):
            entry["given"] = given
        errors.append(entry)
    reason = "; ".join(
        f"{e['field']} {e['problem']}" + (f" (got {shown(e['given'])})" if "given" in e else "") for e in errors
    )
    return reason, errors
