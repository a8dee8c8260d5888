"""Can a new job go into a technician's day, and at what added drive? Called for every candidate slot."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from app.routing.model import Location


@dataclass(frozen=True)
class Fixed:
    """An existing booking with fixed times."""

    id: str
    location: Location
    start: int
    end: int


def insertion_cost(
    durations: list[list[int]],
    *,
    home: int,
    home_end: int | None,
    shift_start: int,
    shift_end: int,
    stops: list[tuple[int, int, int]],
    new_point: int,
    start: int,
    end: int,
) -> int | None:
    """Added drive seconds if a job at `new_point` occupying [start, end) fits the day, else None.

    Indices point into `durations`. `stops` are the day's (point, start, end), sorted by start. The job fits
    when it overlaps no stop, the previous stop (or `home` at `shift_start`) reaches it by `start`, and after
    `end` the next stop (or `home_end` by `shift_end`; with None the day simply ends by `shift_end`) is still
    reached in time.
    """
    if start < shift_start or end > shift_end or end < start:
        return None
    i = bisect_left(stops, start, key=lambda s: s[1])
    if i > 0 and stops[i - 1][2] > start:  # the previous stop is still going
        return None
    if i < len(stops) and stops[i][1] < end:
        return None
    prev_point, prev_free = (stops[i - 1][0], stops[i - 1][2]) if i > 0 else (home, shift_start)
    to_new = durations[prev_point][new_point]
    if prev_free + to_new > start:
        return None
    if i < len(stops):
        next_point, next_due = stops[i][0], stops[i][1]
    elif home_end is not None:
        next_point, next_due = home_end, shift_end
    else:
        return to_new  # the day ends at this job
    from_new, direct = durations[new_point][next_point], durations[prev_point][next_point]
    if end + from_new > next_due:
        return None
    return to_new + from_new - direct
