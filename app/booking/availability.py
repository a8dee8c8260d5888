"""The availability engine: which start times each technician can take on a local day.

Pure: no Flask, no database. Inputs are plain values (rules, schedules, busy intervals in
UTC), output is slots and, for the owner's explainer, the reason behind every candidate time.
DST-correct by construction: candidates are wall-clock times in the tenant's zone, each turned
into one UTC instant; durations and overlaps are computed in UTC (DESIGN §4).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC = UTC


@dataclass(frozen=True)
class Rules:
    time_zone: str
    lead_time: timedelta = timedelta(hours=2)
    horizon_days: int = 60
    buffer: timedelta = timedelta(minutes=15)
    step: timedelta = timedelta(minutes=30)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Busy:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    kind: str  # "booking", "day_off", "manual", "google"
    label: str = ""


@dataclass(frozen=True)
class Technician:
    id: uuid.UUID
    name: str
    # weekday (Monday=0) -> [(start_local, end_local), ...]
    hours: dict[int, list[tuple[time, time]]]
    busy: Sequence[Busy] = field(default_factory=tuple)
    position: int = 0


@dataclass(frozen=True)
class Candidate:
    technician_id: uuid.UUID
    start: datetime  # UTC
    local: datetime  # in the tenant's zone
    offered: bool
    reason: str


@dataclass(frozen=True)
class Slot:
    start: datetime  # UTC
    local: datetime
    technician_ids: tuple[uuid.UUID, ...]  # free technicians, best choice first


def to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """A local wall-clock time as a UTC instant. A time that does not exist (the hour
    skipped in spring) resolves forwards, as clocks do; a repeated hour takes its first pass."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def _overlap(a_start: datetime, a_end: datetime, b: Busy) -> bool:
    return a_start < b.end and b.start < a_end


def candidates(day: date, tech: Technician, rules: Rules, duration: timedelta, *, now: datetime) -> list[Candidate]:
    """Every candidate start on ``day`` for ``tech``, offered or not, with the reason."""
    tz = rules.tz
    out: list[Candidate] = []
    intervals = tech.hours.get(day.weekday(), [])
    earliest = now + rules.lead_time
    last_day = (now.astimezone(tz) + timedelta(days=rules.horizon_days)).date()
    # Only busy time near this day can clash: keeps a month's query linear in bookings.
    day_start, day_end = local_day_bounds(day, tz)
    reach = day_end + duration + rules.buffer
    busy = [b for b in tech.busy if b.end > day_start and b.start < reach]
    noon = to_utc(day, time(12), tz)
    day_off = next((b for b in busy if b.kind == "day_off" and b.start <= noon < b.end), None)
    seen: set[datetime] = set()
    for start_local, end_local in intervals:
        work_end = to_utc(day, end_local, tz)
        wall = datetime.combine(day, start_local)
        end_wall = datetime.combine(day, end_local)
        while wall < end_wall:
            start = to_utc(day, wall.time(), tz)
            wall += rules.step
            if start in seen:
                continue
            seen.add(start)
            end = start + duration
            local = start.astimezone(tz)
            if day_off is not None:
                reason, ok = f"Day off{': ' + day_off.label if day_off.label else ''}", False
            elif day > last_day:
                reason, ok = f"Beyond the booking horizon ({rules.horizon_days} days)", False
            elif start < now:
                reason, ok = "In the past", False
            elif start < earliest:
                reason, ok = f"Inside the lead time ({_fmt(rules.lead_time)} notice)", False
            elif end > work_end:
                reason, ok = "The job would run past the end of working hours", False
            else:
                clash = next((b for b in busy if _overlap(start, end + rules.buffer, b)), None)
                if clash is not None:
                    reason, ok = _clash_reason(clash, rules), False
                else:
                    reason, ok = "Offered", True
            out.append(Candidate(tech.id, start, local, ok, reason))
    return out


def _clash_reason(b: Busy, rules: Rules) -> str:
    what = {
        "booking": "Booked",
        "google": "Busy in Google Calendar",
        "manual": "Blocked time",
        "day_off": "Day off",
    }.get(b.kind, "Busy")
    label = f" ({b.label})" if b.label else ""
    return f"{what}{label}, including the {_fmt(rules.buffer)} buffer" if b.kind == "booking" else what + label


def _fmt(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} min"


def day_slots(
    day: date, techs: Iterable[Technician], rules: Rules, duration: timedelta, *, now: datetime
) -> list[Slot]:
    """Start times on ``day`` that at least one technician can take, with who is free,
    least-loaded first."""
    by_start: dict[datetime, list[Technician]] = {}
    techs = list(techs)
    for tech in techs:
        for c in candidates(day, tech, rules, duration, now=now):
            if c.offered:
                by_start.setdefault(c.start, []).append(tech)
    tz = rules.tz
    load = {t.id: _booked_minutes(t, day, tz) for t in techs}
    return [
        Slot(
            start,
            start.astimezone(tz),
            tuple(t.id for t in sorted(free, key=lambda t: (load[t.id], t.position, str(t.id)))),
        )
        for start, free in sorted(by_start.items())
    ]


def _booked_minutes(tech: Technician, day: date, tz: ZoneInfo) -> float:
    """Minutes booked on this local day (buffers included): spreads work across the team."""
    start, end = local_day_bounds(day, tz)
    return sum(
        (min(b.end, end) - max(b.start, start)).total_seconds() / 60
        for b in tech.busy
        if b.kind == "booking" and b.end > start and b.start < end
    )


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where a local day begins and ends (23 or 25 hours on DST days)."""
    return to_utc(day, time(0), tz), to_utc(day + timedelta(days=1), time(0), tz)
