"""Parts inventory rate: OBLIGATIONS.md's worked example, the 20 % boundary, catalogues, undefined figures."""

from tests.scenario import alerts, evaluate, figure, registration, stock, ticket


def test_the_worked_example_compliant_then_breached() -> None:
    first = [stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 3), ("P2", 0)),
             stock("s2", "D2", "2026-03-01T11:00:00Z", ("P2", 1), ("P3", 2))]
    doc = evaluate(first)
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 3, "rate": 0.3, "compliant": True}

    later = [stock("s3", "D1", "2026-03-02T10:00:00Z", ("P1", 0)),
             stock("s4", "D2", "2026-03-02T11:00:00Z", ("P3", 0))]
    doc = evaluate(first + later)
    assert figure(doc)["parts_inventory"] == {"catalogue": 10, "stocked": 1, "rate": 0.1, "compliant": False}
    # before D1's first report (10:00) nothing was stocked: a breach from the monitoring start,
    # resolved when D2's report made it 3 of 10; the second breach opens at the report that took it to 1
    assert alerts(doc, "parts_inventory") == [
        ("breach", "KE", "resolved", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"),
        ("breach", "KE", "open", "2026-03-02T11:00:00Z", None),
    ]
    breach = [a for a in doc["alerts"] if a["obligation"] == "parts_inventory"][-1]
    assert breach["evidence"]["cause"]["event_id"] == "s4"
    assert breach["evidence"]["quantities"]["P2"] == 1
    assert breach["evidence"]["missing_parts"] == ["P1", "P10", "P3", "P4", "P5", "P6", "P7", "P8", "P9"]


def test_exactly_twenty_percent_is_compliant_and_one_part_less_is_not() -> None:
    two = [stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 1), ("P2", 1))]
    assert figure(evaluate(two))["parts_inventory"]["compliant"] is True
    one = [stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 1), ("P2", 0))]
    assert figure(evaluate(one))["parts_inventory"] == {"catalogue": 10, "stocked": 1, "rate": 0.1,
                                                        "compliant": False}


def test_parts_outside_the_catalogue_count_neither_way() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 1), ("X-1", 5), ("X-2", 5))])
    assert figure(doc)["parts_inventory"]["stocked"] == 1


def test_a_market_adds_its_own_parts_to_the_all_markets_list() -> None:
    registry = [registration(common_parts={"*": ["P1", "P2"], "NG": ["N1", "N2", "N3"]}, major=("KE", "NG"))]
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", ("N1", 1), market="NG")], registry=registry)
    assert figure(doc, "NG")["parts_inventory"] == {"catalogue": 5, "stocked": 1, "rate": 0.2, "compliant": True}
    assert figure(doc, "KE")["parts_inventory"] == {"catalogue": 2, "stocked": 0, "rate": 0.0, "compliant": False}


def test_stock_is_summed_over_a_markets_depots_and_the_latest_report_per_depot_wins() -> None:
    registry = [registration(common_parts={"*": ["P1"]})]
    events = [stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 1)),
              stock("s0", "D1", "2026-03-01T09:00:00Z", ("P1", 7)),  # older: does not replace s1
              stock("s2", "D1", "2026-03-01T12:00:00Z", ("P1", 0)),
              stock("s3", "D2", "2026-03-01T11:00:00Z", ("P1", 1))]
    doc = evaluate(events, registry=registry)
    assert figure(doc)["parts_inventory"]["stocked"] == 1  # D1 now 0, D2 1


def test_a_market_named_only_by_a_ticket_has_rate_zero_and_a_breach() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", market="NG")])
    assert figure(doc, "NG")["parts_inventory"] == {"catalogue": 10, "stocked": 0, "rate": 0.0, "compliant": False}
    assert ("breach", "NG", "open", "2026-03-01T10:00:00Z", None) in alerts(doc, "parts_inventory")


def test_an_unregistered_exporter_has_no_parts_figure() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 1), exporter="GHOST")])
    assert figure(doc, exporter="GHOST")["parts_inventory"] == {
        "catalogue": None, "stocked": None, "rate": None, "compliant": None}
    assert alerts(doc, "parts_inventory") == []


def test_an_empty_catalogue_is_undefined_and_reported() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", ("P1", 1))],
                   registry=[registration(common_parts={})])
    assert figure(doc)["parts_inventory"] == {"catalogue": 0, "stocked": 0, "rate": None, "compliant": None}
    assert [q["kind"] for q in doc["data_quality"]] == ["empty_catalogue"]
    assert alerts(doc, "parts_inventory") == []
