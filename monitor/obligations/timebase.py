"""Instants as integer microseconds since the Unix epoch, UTC.

Integers keep deadline arithmetic exact (48:00:00 against 48:00:00.000001) and make
state cheap to store and compare.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

Micros = int

SECOND: Micros = 1_000_000
HOUR: Micros = 3600 * SECOND
DAY: Micros = 24 * HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


def to_micros(moment: datetime) -> Micros:
    """Exact microseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every instant must carry an offset")
    return (moment - _EPOCH) // _ONE_MICROSECOND


def to_datetime(instant: Micros) -> datetime:
    return _EPOCH + timedelta(microseconds=instant)


def hours(instant_span: Micros) -> float:
    return instant_span / HOUR


def utc_midnight(day: date) -> Micros:
    return to_micros(datetime.combine(day, time(0), tzinfo=UTC))


def licence_window(valid_from: date, valid_to: date) -> tuple[Micros, Micros]:
    """[start, end) of a licence whose dates are inclusive calendar dates in UTC+08:00."""
    start = datetime.combine(valid_from, time(0), tzinfo=CHINA_STANDARD_TIME)
    end = datetime.combine(valid_to + timedelta(days=1), time(0), tzinfo=CHINA_STANDARD_TIME)
    return to_micros(start), to_micros(end)


def stamp(instant: Micros) -> str:
    """RFC 3339 in UTC with a Z, as every output shows time."""
    return to_datetime(instant).isoformat().replace("+00:00", "Z")
