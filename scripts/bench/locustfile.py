"""Locust load for the booking sites (issue 11): anonymous customers across many tenants.

Driven by scripts/bench/load.py, which builds the tenants, serves the app with gunicorn on
loopback and passes them in FIELDDAY_BENCH_TENANTS (a JSON file). Requests go to 127.0.0.1 with a
``Host: <subdomain>.localhost:PORT`` header (glibc here does not resolve *.localhost, DESIGN §2).

Three kinds of visitor, each paced with constant_throughput so the total rate is fixed:
  Browser   the home page, the brand stylesheet, the service picker (one request per task)
  Shopper   the time page for a chosen day: the availability (slot) query (one request per task)
  Booker    the whole booking flow, service -> address -> time -> details -> review (9 requests)
A 409 "that time was just taken" while booking is a correct answer under load, not an error.
"""

from __future__ import annotations

import json
import os
import random
import re
from datetime import date, timedelta
from pathlib import Path

from locust import HttpUser, constant_throughput, task

TENANTS = json.loads(Path(os.environ["FIELDDAY_BENCH_TENANTS"]).read_text())
PORT = os.environ["FIELDDAY_BENCH_PORT"]
RATE = float(os.environ.get("FIELDDAY_BENCH_RATE_PER_USER", "1"))
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
SLOT = re.compile(r'name="starts_at" value="([^"]+)"')
STREETS = ["Congress Ave", "N Lamar Blvd", "Guadalupe St", "Burnet Rd", "Manor Rd", "E 6th St"]


def host(tenant: dict) -> dict:
    return {"Host": f"{tenant['subdomain']}.localhost:{PORT}"}


def csrf(html: str) -> str:
    m = CSRF.search(html)
    return (m.group(1) or m.group(2)) if m else ""


class SiteUser(HttpUser):
    abstract = True

    def on_start(self) -> None:
        # A visitor stays on one business (its cookies are that site's); many visitors, many tenants.
        self.tenant = random.choice(TENANTS)
        self.headers = host(self.tenant)

    def get(self, path: str, name: str):
        return self.client.get(path, headers=self.headers, name=name)

    def post(self, path: str, data: dict, name: str, **kw):
        return self.client.post(path, data=data, headers=self.headers, name=name, allow_redirects=False, **kw)

    def start_draft(self) -> str:
        """Pick a service and an address; returns the CSRF token of this site's session."""
        token = csrf(self.get("/book", "GET /book").text)
        package = random.choice(self.tenant["packages"])
        self.post(
            "/book",
            {"csrf_token": token, "package_id": package, "size_class": "sedan", "make": "Honda", "model": "Civic"},
            "POST /book",
        )
        address = {"csrf_token": token, "address": f"{random.randint(100, 3000)} {random.choice(STREETS)}"}
        self.post("/book/address", address, "POST /book/address (pin)")
        self.post("/book/address", address, "POST /book/address (confirm)")
        return token


class Browser(SiteUser):
    weight = 6
    wait_time = constant_throughput(RATE)

    @task(3)
    def home(self):
        self.get("/", "GET /")

    @task(1)
    def brand(self):
        self.get("/brand.css", "GET /brand.css")

    @task(2)
    def services(self):
        self.get("/book", "GET /book")


class Shopper(SiteUser):
    weight = 3
    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        super().on_start()
        self.start_draft()

    @task
    def slots_for_a_day(self):
        day = date.today() + timedelta(days=random.randint(1, 13))
        self.get(f"/book/time?day={day.isoformat()}", "GET /book/time?day (slots)")


class Booker(SiteUser):
    weight = 1
    wait_time = constant_throughput(RATE / 9)  # one flow is 9 requests

    @task
    def book(self):
        self.tenant = random.choice(TENANTS)
        self.headers = host(self.tenant)
        self.client.cookies.clear()
        token = self.start_draft()
        page = self.get("/book/time", "GET /book/time (slots)").text
        slots = SLOT.findall(page)
        if not slots:
            return
        self.post("/book/time", {"csrf_token": token, "starts_at": random.choice(slots)}, "POST /book/time")
        n = random.randint(1000, 9999)
        details = {"csrf_token": token, "name": f"Load Test {n}", "phone": f"+1512555{n}", "email": f"c{n}@load.test"}
        self.post("/book/details", details, "POST /book/details")
        with self.post("/book/review", {"csrf_token": token}, "POST /book/review", catch_response=True) as r:
            if r.status_code == 302 and "/b/" in r.headers.get("Location", ""):
                r.success()
            elif r.status_code == 409:
                r.success()  # the slot went to someone else a moment ago: the right answer
            else:
                r.failure(f"booking answered {r.status_code}")
