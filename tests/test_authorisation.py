"""Who may export: registration, licence validity in China Standard Time, brands by VIN."""

from tests.scenario import evaluate, outlet, registration, ticket


def _authorisation(doc: dict) -> list[tuple[str | None, str, str]]:
    return [(a["market"], a["subject"], a["opened_at"]) for a in doc["alerts"] if a["obligation"] == "authorisation"]


def test_the_licence_is_valid_from_its_first_day_in_china_standard_time() -> None:
    assert _authorisation(evaluate([outlet("o1", "O1", "2025-12-31T23:59:59+08:00")])) == [
        (None, "licence:LIC-1:not_yet_valid", "2025-12-31T15:59:59Z")]
    assert _authorisation(evaluate([outlet("o1", "O1", "2026-01-01T00:00:00+08:00")])) == []


def test_the_licence_is_valid_through_its_last_day_in_china_standard_time() -> None:
    assert _authorisation(evaluate([outlet("o1", "O1", "2026-12-31T23:59:59+08:00")])) == []
    assert _authorisation(evaluate([outlet("o1", "O1", "2027-01-01T00:00:00+08:00")])) == [
        (None, "licence:LIC-1:expired", "2026-12-31T16:00:00Z")]


def test_an_unregistered_exporter_raises_one_alert_at_its_first_event() -> None:
    doc = evaluate([outlet("o2", "O1", "2026-03-02T10:00:00Z", exporter="GHOST"),
                    outlet("o1", "O1", "2026-03-01T10:00:00Z", exporter="GHOST")])
    assert _authorisation(doc) == [(None, "registration", "2026-03-01T10:00:00Z")]
    alert = next(a for a in doc["alerts"] if a["obligation"] == "authorisation")
    assert (alert["severity"], alert["status"], alert["renewal_relevant"]) == ("breach", "open", True)
    assert alert["evidence"]["first_event"]["event_id"] == "o1"


def test_a_vin_of_a_brand_the_exporter_may_not_export_is_flagged_per_ticket() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", vin="WVWZZZ1JZXW000001"),
                    ticket("e2", "responded", "2026-03-01T11:00:00Z", vin="WVWZZZ1JZXW000001")])
    assert _authorisation(doc) == [("KE", "T-1/WVWZZZ1JZXW000001", "2026-03-01T10:00:00Z")]


def test_a_distributor_may_export_the_brands_of_the_automakers_that_authorised_it() -> None:
    automaker = registration("AUTO-1")
    distributor = registration("DIST-1", role="authorised_distributor", authorised_by=["AUTO-1"], brands=[])
    other = registration("DIST-2", role="authorised_distributor", authorised_by=["NOBODY"], brands=[])
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", exporter="DIST-1"),
                    ticket("e2", "opened", "2026-03-01T10:00:00Z", exporter="DIST-2", ticket_id="T-2")],
                   registry=[automaker, distributor, other])
    assert [(a["exporter_id"], a["subject"]) for a in doc["alerts"] if a["obligation"] == "authorisation"] == [
        ("DIST-2", "T-2/LGXCE4CB5N0012345")]
