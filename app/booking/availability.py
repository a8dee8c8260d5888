"""The availability engine: which start times each technician can take on a local day.

Pure: no Flask, no database. Inputs are plain values (rules, schedules, busy intervals in
UTC), output is slots and, for the owner's explainer, the reason behind every candidate time.
DST-correct by construction: candidates are wall-clock times in the tenant's zone, each turned
into one UTC instant; durations and overlaps are computed in UTC (DESIGN §4).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
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


Point = tuple[float, float]  # (lat, lng)
# Drive time in seconds between two points (a travel provider's matrix, looked up).
Drive = Callable[[Point, Point], int]


@dataclass(frozen=True)
class Busy:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive (a booking's end includes its buffer)
    kind: str  # "booking", "day_off", "manual", "google"
    label: str = ""
    point: Point | None = None  # where a booking is: route-aware slots drive from and to it


@dataclass(frozen=True)
class Technician:
    id: uuid.UUID
    name: str
    # weekday (Monday=0) -> [(start_local, end_local), ...]
    hours: dict[int, list[tuple[time, time]]]
    busy: Sequence[Busy] = field(default_factory=tuple)
    position: int = 0
    home: Point | None = None  # where the day starts when there is no earlier job


@dataclass(frozen=True)
class Candidate:
    technician_id: uuid.UUID
    start: datetime  # UTC
    local: datetime  # in the tenant's zone
    offered: bool
    reason: str
    added_drive_s: int | None = None  # route-aware: extra driving this job adds to the day


@dataclass(frozen=True)
class Slot:
    start: datetime  # UTC
    local: datetime
    technician_ids: tuple[uuid.UUID, ...]  # free technicians, best choice first
    added_drive_s: tuple[int | None, ...] = ()  # aligned with technician_ids


def to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """A local wall-clock time as a UTC instant. A time that does not exist (the hour
    skipped in spring) resolves forwards, as clocks do; a repeated hour takes its first pass."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def _overlap(a_start: datetime, a_end: datetime, b: Busy) -> bool:
    return a_start < b.end and b.start < a_end


def candidates(
    day: date,
    tech: Technician,
    rules: Rules,
    duration: timedelta,
    *,
    now: datetime,
    place: Point | None = None,
    drive: Drive | None = None,
) -> list[Candidate]:
    """Every candidate start on ``day`` for ``tech``, offered or not, with the reason. With a
    ``place`` and a ``drive`` function the check is route-aware: the technician must be able to
    drive there from the job before (or from home at the start of the shift) and on to the job
    after, and each offered time carries the drive minutes it adds to the day (DESIGN §5, §8)."""
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
    jobs = sorted((b for b in busy if b.kind == "booking"), key=lambda b: b.start)
    seen: set[datetime] = set()
    for start_local, end_local in intervals:
        work_start = to_utc(day, start_local, tz)
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
            added = None
            if ok and place is not None and drive is not None:
                added, why = _insertion(tech, jobs, place, drive, start, end + rules.buffer, work_start, tz)
                if added is None:
                    reason, ok = why, False
                else:
                    reason = f"Offered: adds {round(added / 60)} min of driving"
            out.append(Candidate(tech.id, start, local, ok, reason, added))
    return out


def _insertion(
    tech: Technician,
    jobs: list[Busy],
    place: Point,
    drive: Drive,
    start: datetime,
    end: datetime,
    work_start: datetime,
    tz: ZoneInfo,
) -> tuple[int | None, str]:
    """Can the technician reach ``place`` by ``start`` and the next job after ``end``? Returns
    the added drive seconds (or None and the reason)."""
    before = next((b for b in reversed(jobs) if b.end <= start), None)
    after = next((b for b in jobs if b.start >= end), None)
    origin = before.point if before is not None else tech.home
    ready = before.end if before is not None else work_start
    to_here = drive(origin, place) if origin is not None else 0
    if ready + timedelta(seconds=to_here) > start:
        where = f"the {clock_label(before.start, tz)} job" if before is not None else "home at the start of the day"
        return None, f"Can't get there in time from {where} ({round(to_here / 60)} min drive)"
    onward = drive(place, after.point) if after is not None and after.point is not None else 0
    if after is not None and end + timedelta(seconds=onward) > after.start:
        return None, f"Wouldn't reach the {clock_label(after.start, tz)} job after ({round(onward / 60)} min drive)"
    skipped = drive(origin, after.point) if origin is not None and after is not None and after.point else 0
    return max(0, to_here + onward - skipped), "Offered"


def clock_label(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%-I:%M %p").replace("AM", "am").replace("PM", "pm")


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
    day: date,
    techs: Iterable[Technician],
    rules: Rules,
    duration: timedelta,
    *,
    now: datetime,
    place: Point | None = None,
    drive: Drive | None = None,
) -> list[Slot]:
    """Start times on ``day`` that at least one technician can take, with who is free: the one
    whose day it costs the fewest added drive minutes first (route-aware), then the least loaded."""
    by_start: dict[datetime, list[tuple[Technician, int | None]]] = {}
    techs = list(techs)
    for tech in techs:
        for c in candidates(day, tech, rules, duration, now=now, place=place, drive=drive):
            if c.offered:
                by_start.setdefault(c.start, []).append((tech, c.added_drive_s))
    tz = rules.tz
    load = {t.id: _booked_minutes(t, day, tz) for t in techs}
    slots = []
    for start, free in sorted(by_start.items()):
        ranked = sorted(free, key=lambda f: (f[1] or 0, load[f[0].id], f[0].position, str(f[0].id)))
        slots.append(
            Slot(start, start.astimezone(tz), tuple(t.id for t, _ in ranked), tuple(added for _, added in ranked))
        )
    return slots


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
