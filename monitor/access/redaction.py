"""Taking the exporters a reader may not see out of a document, wherever it names them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

REDACTED_LISTS = ("accountable", "authorised_by")  # the fields of our documents that name other exporters


def redacted(doc: Any, visible: Collection[str] | None) -> Any:
    """`doc` with every exporter id not in `visible` taken out of the lists that name exporters
    (`accountable`, `authorised_by`, at any depth); `visible` None leaves it whole.

    A distributor's alert is accountable to each automaker that authorised it; one of those
    automakers sees the alert but must not learn which other automakers stand behind it.
    """
    if visible is None:
        return doc
    if isinstance(doc, Mapping):
        return {key: ([e for e in value if e in visible] if key in REDACTED_LISTS and isinstance(value, list)
                      else redacted(value, visible)) for key, value in doc.items()}
    if isinstance(doc, list):
        return [redacted(item, visible) for item in doc]
    return doc


def named_exporters(doc: Any) -> set[str]:
    """Every exporter id the redactable lists of `doc` name, at any depth."""
    found: set[str] = set()
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            if key in REDACTED_LISTS and isinstance(value, list):
                found.update(e for e in value if isinstance(e, str))
            else:
                found |= named_exporters(value)
    elif isinstance(doc, list):
        for item in doc:
            found |= named_exporters(item)
    return found
