"""Registry and policy files (YAML or JSON): read, validated, or refused with file, field, reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from monitor.contracts.errors import explain
from monitor.contracts.policy import PolicyFile
from monitor.contracts.registry import ExporterRegistration

EXAMPLES = Path(__file__).parent / "examples"
T = TypeVar("T")

_REGISTRY = TypeAdapter(list[ExporterRegistration])


class _DatesAsText(yaml.SafeLoader):
    """YAML without implicit timestamps: dates reach the models as text, so a bad one
    (2026-13-01) is refused by validation with its field, not by the YAML parser."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ConfigFileError(ValueError):
    """A registry or policy file that cannot be used; says which file, which field, and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_config_file(path: Path) -> Any:
    """The content of a YAML or JSON file (JSON when its name ends in .json); ConfigFileError (the
    file and the reason) when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(path, f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigFileError(path, "is not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_DatesAsText)  # noqa: S506 - a SafeLoader subclass
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigFileError(path, f"is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                                    f"{exc}") from None


def read_entries(path: Path, key: str, entries: TypeAdapter[list[T]]) -> list[T]:
    """The entries of a file holding a list of them, or {key: [...]}, validated by `entries`;
    ConfigFileError naming the file, the field and the reason when it cannot be read or is invalid."""
    data = read_config_file(path)
    if isinstance(data, dict) and key in data:
        data = data[key]
    try:
        return entries.validate_python(data)
    except ValidationError as exc:
        reason, _ = explain(exc)
        raise ConfigFileError(path, reason) from None


def load_registry(path: Path) -> dict[str, ExporterRegistration]:
    """Exporters by id, from a list of ExporterRegistration (or {"exporters": [...]})."""
    registrations = read_entries(path, "exporters", _REGISTRY)
    seen: dict[str, ExporterRegistration] = {}
    for index, registration in enumerate(registrations):
        if registration.exporter_id in seen:
            raise ConfigFileError(path, f"[{index}].exporter_id {registration.exporter_id!r} is registered twice")
        seen[registration.exporter_id] = registration
    return seen


def load_policy(path: Path) -> PolicyFile:
    """Policy versions from a file holding one version or a list of them."""
    data = read_config_file(path)
    if isinstance(data, dict):
        data = [data]
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        reason, _ = explain(exc)
        raise ConfigFileError(path, reason) from None
