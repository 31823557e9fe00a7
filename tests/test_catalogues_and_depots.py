"""Which parts count where, and how depots' reports add up."""

from tests.builders import evaluate, figure, registration, stock


def test_a_market_adds_its_own_parts_to_the_all_markets_list() -> None:
    registry = [registration(major=("KE", "NG"), parts={"*": ["P1", "P2"], "NG": ["N1", "N2", "N3"]})]
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", {"N1": 1}, market="NG")], registry=registry)
    assert figure(doc, "NG")["parts_inventory"] == {"catalogue": 5, "stocked": 1, "rate": 0.2, "compliant": True}
    assert figure(doc, "KE")["parts_inventory"] == {"catalogue": 2, "stocked": 0, "rate": 0.0, "compliant": False}


def test_the_latest_report_of_each_depot_counts_whatever_the_arrival_order() -> None:
    registry = [registration(parts={"*": ["P1"]})]
    events = [stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 1}),
              stock("s0", "D1", "2026-03-01T09:00:00Z", {"P1": 7}),  # older, arrives later: replaces nothing
              stock("s2", "D1", "2026-03-01T12:00:00Z", {"P1": 0}),
              stock("s3", "D2", "2026-03-01T11:00:00Z", {"P1": 1})]
    assert figure(evaluate(events, registry=registry))["parts_inventory"]["stocked"] == 1  # D1 0 + D2 1
    without_d2 = [e for e in events if e["depot_id"] == "D1"]
    assert figure(evaluate(without_d2, registry=registry))["parts_inventory"]["stocked"] == 0


def test_parts_outside_the_catalogue_count_neither_way() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 1, "X-1": 5, "X-2": 5})])
    assert figure(doc)["parts_inventory"]["stocked"] == 1


def test_an_empty_catalogue_makes_the_rate_undefined_and_is_reported() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 1})], registry=[registration(parts={})])
    assert figure(doc)["parts_inventory"] == {"catalogue": 0, "stocked": 0, "rate": None, "compliant": None}
    assert [q["kind"] for q in doc["data_quality"]] == ["empty_catalogue"]
    assert not [a for a in doc["alerts"] if a["obligation"] == "parts_inventory"]
