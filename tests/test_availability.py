"""The availability engine on its own (pure), including DST days (RELIABILITY D6)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from app.booking import availability as av

UTC = UTC
NY = "America/New_York"
HOURLY = av.Rules(NY, lead_time=timedelta(0), horizon_days=365, buffer=timedelta(0), step=timedelta(hours=1))


def tech(hours=None, busy=()):
    every_day = {d: [(time(9), time(17))] for d in range(7)}
    return av.Technician(uuid.uuid4(), "T", hours or every_day, tuple(busy))


def test_d6_spring_forward_day_has_eight_hourly_slots_in_edt():
    day = date(2026, 3, 8)  # US clocks go 02:00 → 03:00
    slots = av.day_slots(day, [tech()], HOURLY, timedelta(hours=1), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert [s.local.hour for s in slots] == list(range(9, 17))
    assert slots[0].start == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert all((b.start - a.start) == timedelta(hours=1) for a, b in zip(slots, slots[1:], strict=False))


def test_d6_fall_back_day_has_eight_hourly_slots_in_est():
    day = date(2026, 11, 1)  # US clocks go 02:00 → 01:00
    slots = av.day_slots(day, [tech()], HOURLY, timedelta(hours=1), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert [s.local.hour for s in slots] == list(range(9, 17))
    assert slots[0].start == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 09:00 EST


def test_d6_busy_blocks_are_compared_in_utc():
    # A Google event 13:00–14:00Z on the spring-forward day is 09:00–10:00 EDT.
    busy = [av.Busy(datetime(2026, 3, 8, 13, tzinfo=UTC), datetime(2026, 3, 8, 14, tzinfo=UTC), "google", "Dentist")]
    slots = av.day_slots(
        date(2026, 3, 8), [tech(busy=busy)], HOURLY, timedelta(hours=1), now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert [s.local.hour for s in slots] == list(range(10, 17))


def test_night_shift_across_the_skipped_hour_counts_real_time():
    hours = {6: [(time(0), time(5))]}  # Sunday 2026-03-08, 00:00–05:00 local is only 4 real hours
    rules = av.Rules(NY, lead_time=timedelta(0), buffer=timedelta(0), step=timedelta(hours=1), horizon_days=365)
    slots = av.day_slots(
        date(2026, 3, 8), [tech(hours)], rules, timedelta(hours=1), now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    starts = [s.start for s in slots]
    assert len(starts) == len(set(starts)) == 4  # 00, 01, 03, 04 local (02:00 does not exist)
    assert [s.local.hour for s in slots] == [0, 1, 3, 4]


def test_buffer_lead_time_and_explanations():
    day = date(2026, 6, 10)
    # Booked 12:00–13:00 EDT; its stored interval carries the 30-minute buffer (to 13:30).
    booked = av.Busy(
        datetime(2026, 6, 10, 16, tzinfo=UTC), datetime(2026, 6, 10, 17, 30, tzinfo=UTC), "booking", "ABC123"
    )
    t = tech(busy=[booked])
    rules = av.Rules(NY, lead_time=timedelta(hours=2), buffer=timedelta(minutes=30), step=timedelta(minutes=30))
    now = datetime(2026, 6, 10, 11, 30, tzinfo=UTC)  # 07:30 EDT: lead time ends 09:30
    result = {c.local.strftime("%H:%M"): c for c in av.candidates(day, t, rules, timedelta(hours=1), now=now)}
    assert result["09:00"].offered is False and "lead time" in result["09:00"].reason
    assert result["09:30"].offered is True
    assert result["10:30"].offered is True  # ends 11:30, +30 min buffer = 12:00: touches, no overlap
    assert result["11:00"].offered is False and "Booked (ABC123)" in result["11:00"].reason
    assert result["13:00"].offered is False  # inside the booking's own buffer
    assert result["13:30"].offered is True
    assert result["16:30"].offered is False and "end of working hours" in result["16:30"].reason
    assert result["16:00"].offered is True


def test_day_off_and_horizon():
    day = date(2026, 6, 10)
    off = av.Busy(datetime(2026, 6, 10, 4, tzinfo=UTC), datetime(2026, 6, 11, 4, tzinfo=UTC), "day_off", "Vacation")
    c = av.candidates(day, tech(busy=[off]), HOURLY, timedelta(hours=1), now=datetime(2026, 6, 1, tzinfo=UTC))
    assert c and all(not x.offered and "Vacation" in x.reason for x in c)
    near = av.Rules(NY, horizon_days=5)
    c = av.candidates(day, tech(), near, timedelta(hours=1), now=datetime(2026, 6, 1, tzinfo=UTC))
    assert all("horizon" in x.reason for x in c)


def test_least_loaded_technician_first():
    def job(hour, hours):
        return av.Busy(
            datetime(2026, 6, 10, hour, tzinfo=UTC), datetime(2026, 6, 10, hour + hours, tzinfo=UTC), "booking"
        )

    yesterday = av.Busy(datetime(2026, 6, 9, 13, tzinfo=UTC), datetime(2026, 6, 9, 20, tzinfo=UTC), "booking")
    a = av.Technician(uuid.uuid4(), "A", {2: [(time(9), time(17))]}, (job(18, 2),))  # 2 h booked today
    b = av.Technician(uuid.uuid4(), "B", {2: [(time(9), time(17))]}, (job(19, 1), yesterday))  # 1 h today
    slots = av.day_slots(date(2026, 6, 10), [a, b], HOURLY, timedelta(hours=1), now=datetime(2026, 6, 1, tzinfo=UTC))
    assert slots[0].technician_ids == (b.id, a.id)  # yesterday's long day doesn't count against B
