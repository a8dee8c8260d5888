"""Travel times and distances between points, behind one small interface.

`Haversine` needs no network and is the default. `OsrmTable` and `MapboxMatrix` ask a road network;
they raise `TravelUnavailable` when the service can't answer, so the caller can say so (or fall back).
`Cached` keeps whole matrices in any get/set store (a redis.Redis fits) so a day is asked for once.
"""

from __future__ import annotations

import hashlib
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

from app.routing.model import Location

Matrix = list[list[int]]

# A pair the road network can't connect (OSRM/Mapbox answer null): far beyond any shift, so never planned.
UNREACHABLE = 10_000_000


class TravelUnavailable(Exception):
    """The travel service could not give a matrix (network error, bad status or bad answer)."""


class TravelProvider(Protocol):
    def matrix(self, points: list[Location]) -> tuple[Matrix, Matrix]:
        """Durations in seconds and distances in metres, from every point to every point."""
        ...


class Haversine:
    """Great-circle distance × a detour factor, driven at an average speed."""

    EARTH_RADIUS_M = 6_371_008.8

    def __init__(self, detour_factor: float = 1.3, speed_kmh: float = 40.0) -> None:
        if detour_factor <= 0 or speed_kmh <= 0:
            raise ValueError("detour factor and speed must be positive")
        self.detour_factor = detour_factor
        self.speed_ms = speed_kmh / 3.6

    def metres(self, a: Location, b: Location) -> float:
        """Straight-line (great-circle) distance."""
        p1, p2 = math.radians(a.lat), math.radians(b.lat)
        dp, dl = p2 - p1, math.radians(b.lng - a.lng)
        h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * self.EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))

    def matrix(self, points: list[Location]) -> tuple[Matrix, Matrix]:
        n = len(points)
        durations = [[0] * n for _ in range(n)]
        distances = [[0] * n for _ in range(n)]
        for i in range(n):
            for j in range(i + 1, n):
                road = self.metres(points[i], points[j]) * self.detour_factor
                distances[i][j] = distances[j][i] = round(road)
                durations[i][j] = durations[j][i] = round(road / self.speed_ms)
        return durations, distances


def _get_json(url: str, timeout_s: float) -> Any:
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "fieldday-routing"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:  # HTTPError is a URLError
        raise TravelUnavailable(f"travel service unreachable: {exc}") from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise TravelUnavailable("travel service sent a malformed answer") from exc


def _table(data: Any, key: str, rows: int, cols: int) -> Matrix:
    table = data.get(key) if isinstance(data, dict) else None
    if (
        not isinstance(table, list)
        or len(table) != rows
        or any(not isinstance(r, list) or len(r) != cols for r in table)
    ):
        raise TravelUnavailable(f"travel service answer has no {rows}×{cols} '{key}' table")
    try:
        return [[UNREACHABLE if v is None else round(float(v)) for v in row] for row in table]
    except (TypeError, ValueError) as exc:
        raise TravelUnavailable(f"travel service answer has a bad value in '{key}'") from exc


def _coords(points: list[Location]) -> str:
    return ";".join(f"{p.lng:.6f},{p.lat:.6f}" for p in points)


class OsrmTable:
    """OSRM's table service: GET {base}/table/v1/driving/{lng,lat;...}?annotations=duration,distance."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, profile: str = "driving") -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.profile = profile

    def matrix(self, points: list[Location]) -> tuple[Matrix, Matrix]:
        n = len(points)
        if n == 0:
            return [], []
        url = f"{self.base_url}/table/v1/{self.profile}/{_coords(points)}?annotations=duration,distance"
        data = _get_json(url, self.timeout_s)
        if not isinstance(data, dict) or data.get("code") != "Ok":
            code = data.get("code") if isinstance(data, dict) else None
            raise TravelUnavailable(f"OSRM answered {code!r}")
        return _table(data, "durations", n, n), _table(data, "distances", n, n)


class MapboxMatrix:
    """Mapbox Matrix API. It takes at most 25 coordinates a request, so bigger matrices go in blocks."""

    BASE_URL = "https://api.mapbox.com/directions-matrix/v1/mapbox"
    MAX_COORDINATES = 25

    def __init__(
        self, token: str, *, timeout_s: float = 10.0, profile: str = "driving", base_url: str | None = None
    ) -> None:
        if not token:
            raise ValueError("Mapbox needs an access token")
        self.token = token
        self.timeout_s = timeout_s
        self.profile = profile
        self.base_url = (base_url or self.BASE_URL).rstrip("/")

    def _block(self, sources: list[Location], targets: list[Location], same: bool) -> tuple[Matrix, Matrix]:
        coords = sources if same else sources + targets
        query = {"annotations": "duration,distance", "access_token": self.token}
        if not same:
            query["sources"] = ";".join(str(i) for i in range(len(sources)))
            query["destinations"] = ";".join(str(len(sources) + i) for i in range(len(targets)))
        url = f"{self.base_url}/{self.profile}/{_coords(coords)}?{urllib.parse.urlencode(query)}"
        data = _get_json(url, self.timeout_s)
        if not isinstance(data, dict) or data.get("code") != "Ok":
            code = data.get("code") if isinstance(data, dict) else None
            raise TravelUnavailable(f"Mapbox answered {code!r}")
        return (
            _table(data, "durations", len(sources), len(targets)),
            _table(data, "distances", len(sources), len(targets)),
        )

    def matrix(self, points: list[Location]) -> tuple[Matrix, Matrix]:
        n = len(points)
        if n <= self.MAX_COORDINATES:
            return self._block(points, points, same=True) if n else ([], [])
        size = self.MAX_COORDINATES // 2  # two blocks per request
        durations = [[0] * n for _ in range(n)]
        distances = [[0] * n for _ in range(n)]
        starts = range(0, n, size)
        for a in starts:
            for b in starts:
                src, dst = points[a : a + size], points[b : b + size]
                dur, dist = self._block(src, dst, same=a == b)
                for i, (drow, mrow) in enumerate(zip(dur, dist, strict=True)):
                    durations[a + i][b : b + len(dst)] = drow
                    distances[a + i][b : b + len(dst)] = mrow
        return durations, distances


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ex: int | None = None) -> Any: ...


class Cached:
    """Keeps whole matrices in `store`, keyed by a hash of the provider and the rounded points."""

    def __init__(self, provider: TravelProvider, store: Store, key_prefix: str, ttl_s: int = 86_400) -> None:
        self.provider = provider
        self.store = store
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s

    def key(self, points: list[Location]) -> str:
        # ~1 m rounding: a re-geocoded pin that barely moved still hits.
        text = type(self.provider).__name__ + "|" + ";".join(f"{p.lat:.5f},{p.lng:.5f}" for p in points)
        return f"{self.key_prefix}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    def matrix(self, points: list[Location]) -> tuple[Matrix, Matrix]:
        key = self.key(points)
        raw = self.store.get(key)
        if raw is not None:
            try:
                durations, distances = json.loads(raw)
                return durations, distances
            except ValueError:
                pass  # a damaged entry is asked for again and overwritten
        durations, distances = self.provider.matrix(points)
        self.store.set(key, json.dumps([durations, distances], separators=(",", ":")).encode(), ex=self.ttl_s)
        return durations, distances


def get_provider(config: dict[str, Any]) -> TravelProvider:
    """The provider the configuration names: ROUTING_PROVIDER haversine (default), osrm or mapbox."""
    name = (config.get("ROUTING_PROVIDER") or "haversine").lower()
    timeout_s = float(config.get("ROUTING_TIMEOUT_S") or 10.0)
    if name == "haversine":
        return Haversine(float(config.get("ROUTING_DETOUR") or 1.3), float(config.get("ROUTING_SPEED_KMH") or 40.0))
    if name == "osrm":
        if not config.get("ROUTING_OSRM_URL"):
            raise ValueError("ROUTING_PROVIDER=osrm needs ROUTING_OSRM_URL")
        return OsrmTable(config["ROUTING_OSRM_URL"], timeout_s=timeout_s)
    if name == "mapbox":
        if not config.get("MAPBOX_TOKEN"):
            raise ValueError("ROUTING_PROVIDER=mapbox needs MAPBOX_TOKEN")
        return MapboxMatrix(config["MAPBOX_TOKEN"], timeout_s=timeout_s)
    raise ValueError(f"unknown ROUTING_PROVIDER {name!r}: use haversine, osrm or mapbox")
