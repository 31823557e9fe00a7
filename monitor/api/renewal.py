"""The renewal assessment over HTTP: its inputs read from the store, and the format the caller accepts."""

from __future__ import annotations

from monitor.api.problems import ProblemError
from monitor.renewal.from_store import assessment_from_store
from monitor.renewal.render import MEDIA_TYPES, Format

__all__ = ["OFFERED", "assessment_from_store", "media_type", "negotiate"]

OFFERED: dict[str, Format] = {"application/json": "json", "text/csv": "csv", "text/html": "html"}


def negotiate(accept: str | None) -> Format:
    """The format the Accept header prefers among JSON, CSV and HTML (JSON when it names none in
    particular); a 406 problem when it accepts none of them.

    A wildcard ranks below a type named outright at the same quality, so a browser's
    `text/html,…,*/*;q=0.8` gets the page and a client sending nothing gets JSON.
    """
    if not accept or not accept.strip():
        return "json"
    best: tuple[float, int, int] | None = None
    chosen: Format | None = None
    for position, item in enumerate(accept.split(",")):
        media, *parameters = (part.strip() for part in item.split(";"))
        media = media.lower()
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media in OFFERED:
            candidate, specific = OFFERED[media], 2
        elif media == "text/*":
            candidate, specific = "html", 1
        elif media in ("*/*", "application/*"):
            candidate, specific = "json", 0
        else:
            continue
        rank = (quality, specific, -position)
        if best is None or rank > best:
            best, chosen = rank, candidate
    if chosen is None:
        raise ProblemError(406, f"the renewal assessment is available as {', '.join(OFFERED)}; "
                                f"the Accept header ({accept[:200]}) allows none of them")
    return chosen


def media_type(output_format: Format) -> str:
    """The Content-Type of an assessment rendered in `output_format`."""
    return MEDIA_TYPES[output_format]
