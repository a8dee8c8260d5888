"""Geocoding behind a small interface (DESIGN §10).

Production plugs in Mapbox or Nominatim; demo data and tests use the offline gazetteer of
real Austin, TX streets below, so addresses land on real coordinates with no network.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Place:
    line1: str
    city: str | None
    region: str | None
    postal_code: str | None
    lat: float
    lng: float

    def as_dict(self) -> dict:
        return {
            "line1": self.line1,
            "city": self.city,
            "region": self.region,
            "postal_code": self.postal_code,
            "lat": self.lat,
            "lng": self.lng,
        }


class Geocoder(Protocol):
    def geocode(self, query: str) -> Place | None: ...


# Real Austin streets with a point on each (WGS84). Enough for a believable demo metro.
AUSTIN_STREETS: dict[str, tuple[float, float]] = {
    "congress ave": (30.2690, -97.7428),
    "s congress ave": (30.2455, -97.7503),
    "n lamar blvd": (30.2860, -97.7512),
    "s lamar blvd": (30.2530, -97.7646),
    "guadalupe st": (30.2880, -97.7418),
    "e 6th st": (30.2671, -97.7355),
    "w 6th st": (30.2700, -97.7500),
    "riverside dr": (30.2455, -97.7290),
    "burnet rd": (30.3390, -97.7385),
    "airport blvd": (30.3105, -97.7098),
    "manor rd": (30.2855, -97.7050),
    "e cesar chavez st": (30.2598, -97.7290),
    "barton springs rd": (30.2625, -97.7640),
    "s 1st st": (30.2405, -97.7560),
    "william cannon dr": (30.1955, -97.8190),
    "slaughter ln": (30.1750, -97.8300),
    "parmer ln": (30.4205, -97.7000),
    "anderson ln": (30.3555, -97.7250),
    "koenig ln": (30.3255, -97.7200),
    "w 45th st": (30.3100, -97.7390),
    "w 38th st": (30.3025, -97.7420),
    "enfield rd": (30.2870, -97.7605),
    "windsor rd": (30.2955, -97.7655),
    "exposition blvd": (30.2955, -97.7705),
    "bee caves rd": (30.2755, -97.8000),
    "brodie ln": (30.2105, -97.8300),
    "menchaca rd": (30.2105, -97.7900),
    "oltorf st": (30.2405, -97.7400),
    "pleasant valley rd": (30.2405, -97.7150),
    "springdale rd": (30.2805, -97.6900),
    "mueller blvd": (30.2990, -97.7050),
    "dean keeton st": (30.2885, -97.7350),
    "red river st": (30.2755, -97.7350),
    "rainey st": (30.2585, -97.7390),
    "duval st": (30.3005, -97.7250),
    "speedway": (30.2950, -97.7370),
    "cameron rd": (30.3305, -97.6900),
    "research blvd": (30.3805, -97.7350),
    "great hills trl": (30.4050, -97.7500),
    "escarpment blvd": (30.2005, -97.8650),
}

SUFFIXES = {
    "avenue": "ave",
    "av": "ave",
    "street": "st",
    "boulevard": "blvd",
    "drive": "dr",
    "road": "rd",
    "lane": "ln",
    "trail": "trl",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}


def _normalise(text: str) -> str:
    words = re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()
    return " ".join(SUFFIXES.get(w, w) for w in words)


class OfflineGazetteer:
    """Matches '<number> <street>[, Austin[, TX]]' against the street list."""

    def geocode(self, query: str) -> Place | None:
        text = (query or "").strip()
        if not text:
            return None
        first = text.split(",")[0]
        match = re.match(r"^\s*(\d{1,6})\s+(.+)$", first)
        if not match:
            return None
        number, street = match.group(1), _normalise(match.group(2))
        point = AUSTIN_STREETS.get(street)
        if point is None:
            # "Congress" or "Lamar Blvd": unique partial matches are fine.
            hits = [k for k in AUSTIN_STREETS if street and (k.endswith(street) or street in k.split(" ", 1)[-1])]
            if len(hits) != 1:
                return None
            street = hits[0]
            point = AUSTIN_STREETS[street]
        # Spread house numbers along the street deterministically (within ~600 m).
        h = int(hashlib.sha256(f"{number} {street}".encode()).hexdigest()[:8], 16)
        dlat = ((h % 1000) / 1000 - 0.5) * 0.01
        dlng = (((h // 1000) % 1000) / 1000 - 0.5) * 0.01
        pretty = " ".join(w.upper() if len(w) == 1 else w.capitalize() for w in street.split())
        return Place(f"{number} {pretty}", "Austin", "TX", None, round(point[0] + dlat, 6), round(point[1] + dlng, 6))


def get_geocoder() -> Geocoder:
    return OfflineGazetteer()
