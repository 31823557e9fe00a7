"""JSON Schemas of every message, generated from the models and checked in under schemas/."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from monitor.contracts.events import OutletStatusEvent, PartsStockReport, ServiceTicketEvent
from monitor.contracts.outputs import ComplianceAlert, ComplianceSnapshot, Evaluation, RejectedMessage
from monitor.contracts.policy import PolicyFile
from monitor.contracts.registry import ExporterRegistration
from monitor.delivery.webhooks import AlertDelivery, WebhookEntry

MESSAGES: dict[str, type[BaseModel]] = {
    "ServiceTicketEvent": ServiceTicketEvent,
    "PartsStockReport": PartsStockReport,
    "OutletStatusEvent": OutletStatusEvent,
    "ExporterRegistration": ExporterRegistration,
    "ComplianceAlert": ComplianceAlert,
    "ComplianceSnapshot": ComplianceSnapshot,
    "RejectedMessage": RejectedMessage,
    "PolicyFile": PolicyFile,
    "Evaluation": Evaluation,
    "AlertDelivery": AlertDelivery,
    "WebhookEntry": WebhookEntry,
}


def rendered() -> dict[str, str]:
    """File name -> schema text, exactly as it should be on disk."""
    out = {}
    for name, model in MESSAGES.items():
        schema = model.model_json_schema(mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{name}.json", **schema}
        out[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def drift(directory: Path) -> list[str]:
    """Files under `directory` that differ from the models, are missing, or are left over."""
    expected = rendered()
    problems = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name}: differs from the model")
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            problems.append(f"{path.name}: no model produces it")
    return problems


def write(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(rendered())
