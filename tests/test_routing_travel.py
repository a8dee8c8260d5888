"""Road-matrix clients against a local HTTP stand-in (no app, database or outside network)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from app.routing import Haversine, Location, MapboxMatrix, OsrmTable, TravelUnavailable, get_provider
from app.routing.travel import UNREACHABLE


def point(k: int) -> Location:
    """Point number k; the stand-in reads k back from the latitude."""
    return Location(30.2 + k / 1000, -97.7)


def number(coord: str) -> int:
    lng, lat = coord.split(",")
    return round((float(lat) - 30.2) * 1000)


class StandIn(BaseHTTPRequestHandler):
    """OSRM's table service and Mapbox's matrix, answering |k_a - k_b| × 10 s and × 100 m."""

    mode = "good"
    requests: list[str] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        mode = type(self).mode
        if mode == "slow":
            time.sleep(1.0)
        if mode == "500":
            return self.answer(500, b'{"code": "InternalError"}')
        if mode == "garbage":
            return self.answer(200, b"<html>not json")
        coords = [number(c) for c in url.path.rsplit("/", 1)[1].split(";")]
        sources = [int(i) for i in query["sources"][0].split(";")] if "sources" in query else range(len(coords))
        targets = (
            [int(i) for i in query["destinations"][0].split(";")] if "destinations" in query else range(len(coords))
        )
        durations = [[abs(coords[a] - coords[b]) * 10 for b in targets] for a in sources]
        distances = [[abs(coords[a] - coords[b]) * 100.4 for b in targets] for a in sources]
        if mode == "null":
            durations[0][-1] = None
        if mode == "short":
            durations = durations[:-1]
        if mode == "noroute":
            return self.answer(200, json.dumps({"code": "NoTable"}).encode())
        self.answer(200, json.dumps({"code": "Ok", "durations": durations, "distances": distances}).encode())

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def standin() -> Iterator[str]:
    StandIn.mode, StandIn.requests = "good", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def expected(ks: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    return (
        [[abs(a - b) * 10 for b in ks] for a in ks],
        [[round(abs(a - b) * 100.4) for b in ks] for a in ks],
    )


def test_osrm_good_answer(standin):
    durations, distances = OsrmTable(standin, timeout_s=2).matrix([point(0), point(3), point(7)])
    assert (durations, distances) == expected([0, 3, 7])
    (path,) = StandIn.requests
    assert path.startswith("/table/v1/driving/-97.700000,30.200000;-97.700000,30.203000;")
    assert path.endswith("?annotations=duration,distance")


def test_osrm_unroutable_pair_is_unreachable_not_an_error(standin):
    StandIn.mode = "null"
    durations, _ = OsrmTable(standin).matrix([point(0), point(1)])
    assert durations[0][1] == UNREACHABLE


@pytest.mark.parametrize("mode", ["500", "garbage", "noroute", "short"])
def test_osrm_errors_raise_travel_unavailable(standin, mode):
    StandIn.mode = mode
    with pytest.raises(TravelUnavailable):
        OsrmTable(standin, timeout_s=2).matrix([point(0), point(1)])


def test_osrm_timeout_raises_travel_unavailable(standin):
    StandIn.mode = "slow"
    began = time.monotonic()
    with pytest.raises(TravelUnavailable):
        OsrmTable(standin, timeout_s=0.2).matrix([point(0), point(1)])
    assert time.monotonic() - began < 0.9


def test_osrm_nobody_listening_raises_travel_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: connection refused
    with pytest.raises(TravelUnavailable):
        OsrmTable(f"http://127.0.0.1:{port}", timeout_s=1).matrix([point(0), point(1)])


def test_mapbox_chunks_big_matrices_within_25_coordinates(standin):
    ks = list(range(30))
    durations, distances = MapboxMatrix("tok", base_url=standin).matrix([point(k) for k in ks])
    assert (durations, distances) == expected(ks)
    assert len(StandIn.requests) == 9  # blocks of 12: 3 × 3
    for path in StandIn.requests:
        coords = urlsplit(path).path.rsplit("/", 1)[1].split(";")
        assert len(coords) <= 25
        assert parse_qs(urlsplit(path).query)["access_token"] == ["tok"]


def test_mapbox_small_matrix_in_one_request(standin):
    assert MapboxMatrix("tok", base_url=standin).matrix([point(1), point(4)]) == expected([1, 4])
    assert len(StandIn.requests) == 1 and "sources" not in StandIn.requests[0]


def test_get_provider_reads_the_configuration():
    default = get_provider({})
    assert isinstance(default, Haversine) and default.detour_factor == 1.3
    assert get_provider({"ROUTING_PROVIDER": "haversine", "ROUTING_DETOUR": "1.5"}).detour_factor == 1.5
    assert isinstance(get_provider({"ROUTING_PROVIDER": "osrm", "ROUTING_OSRM_URL": "http://osrm:5000"}), OsrmTable)
    assert isinstance(get_provider({"ROUTING_PROVIDER": "mapbox", "MAPBOX_TOKEN": "pk.x"}), MapboxMatrix)
    with pytest.raises(ValueError, match="ROUTING_OSRM_URL"):
        get_provider({"ROUTING_PROVIDER": "osrm"})
    with pytest.raises(ValueError, match="MAPBOX_TOKEN"):
        get_provider({"ROUTING_PROVIDER": "mapbox"})
    with pytest.raises(ValueError, match="unknown ROUTING_PROVIDER"):
        get_provider({"ROUTING_PROVIDER": "google"})
