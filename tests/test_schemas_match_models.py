"""The checked-in JSON Schemas are exactly what the models generate."""

from pathlib import Path

from monitor import schemas

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    assert schemas.drift(SCHEMAS) == []


def test_a_changed_schema_file_is_reported(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    target = tmp_path / "ServiceTicketEvent.json"
    target.write_text(target.read_text().replace('"vin"', '"vehicle"'))
    (tmp_path / "Stray.json").write_text("{}")
    assert schemas.drift(tmp_path) == [
        "ServiceTicketEvent.json: differs from the model",
        "Stray.json: no model produces it",
    ]
