"""Database faults in the middle of a booking (RELIABILITY §9 F1 and F3): the customer gets a 503
with Retry-After, nothing is half-written, no lock lingers, and the next request works."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import event

from tests.helpers import Visitor


def two_days_out(hour: int, tz: str = "America/New_York") -> datetime:
    local = (datetime.now(ZoneInfo(tz)) + timedelta(days=2)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def owner_api(app, t) -> Visitor:
    v = Visitor(app.test_client(), "app.localhost")
    v.login(t.owner.email, t.owner.password)
    v.csrf = v.dashboard_token()
    return v


def post_booking(v: Visitor, f, starts_at: datetime, phone: str):
    body = {
        "package_id": str(f.wash),
        "size_class": "sedan",
        "technician_id": str(f.techs[0]),
        "starts_at": starts_at.isoformat(),
        "customer": {"name": "Fault Tester", "phone": phone},
        "address": "1100 Congress Ave",
    }
    return v.client.post("/api/v1/bookings", base_url=v.base, json=body, headers={"X-CSRFToken": v.csrf})


@contextlib.contextmanager
def before_insert_into_bookings(engine, action):
    """Run ``action(connection)`` just before the booking row is inserted (customer already written)."""
    fired = []

    def hook(conn, cursor, statement, parameters, context, executemany):
        if not fired and statement.lstrip().upper().startswith("INSERT INTO BOOKINGS"):
            fired.append(True)
            action(conn)

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield fired
    finally:
        event.remove(engine, "before_cursor_execute", hook)


def counts(superuser_conn, tenant_id, phone: str) -> tuple[int, int]:
    bookings = superuser_conn.execute("SELECT count(*) FROM bookings WHERE tenant_id = %s", (tenant_id,)).fetchone()[0]
    customers = superuser_conn.execute(
        "SELECT count(*) FROM customers WHERE tenant_id = %s AND phone = %s", (tenant_id, phone)
    ).fetchone()[0]
    return bookings, customers


def test_f1_connection_killed_mid_booking_gives_503_and_nothing_half_written(
    app, make_tenant, seed_booking, superuser_conn
):
    from app.extensions import db

    t = make_tenant()
    f = seed_booking(t)
    v = owner_api(app, t)

    def terminate(conn):
        pid = conn.connection.dbapi_connection.info.backend_pid
        superuser_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with app.app_context(), before_insert_into_bookings(db.engine, terminate) as fired:
        r = post_booking(v, f, two_days_out(10), "+15125550901")
    assert fired, "the booking never reached its INSERT"
    assert r.status_code == 503, r.get_data(as_text=True)
    assert int(r.headers["Retry-After"]) > 0
    assert r.get_json()["error"]["code"] == "unavailable"
    assert counts(superuser_conn, t.id, "+15125550901") == (0, 0)  # neither booking nor its new customer

    # The pool drops the dead connection (pre-ping); the retry succeeds.
    again = post_booking(v, f, two_days_out(10), "+15125550901")
    assert again.status_code == 201, again.get_data(as_text=True)
    assert counts(superuser_conn, t.id, "+15125550901") == (1, 1)


def test_f3_lock_wait_over_lock_timeout_gives_503_and_leaves_no_locks(app, make_tenant, seed_booking, services):
    t = make_tenant()
    f = seed_booking(t)
    v = owner_api(app, t)
    starts_at = two_days_out(11)
    day = starts_at.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    key = f"booking:{t.id}:{f.techs[0]}:{day}"
    holder = psycopg.connect(services.pg.superuser_url("fieldday"))
    try:
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))  # held until rollback
        began = time.monotonic()
        r = post_booking(v, f, starts_at, "+15125550902")
        waited = time.monotonic() - began
    finally:
        holder.rollback()
        holder.close()
    assert r.status_code == 503, r.get_data(as_text=True)
    assert int(r.headers["Retry-After"]) > 0
    assert waited >= app.config["DB_LOCK_TIMEOUT_MS"] / 1000 * 0.9
    with psycopg.connect(services.pg.superuser_url("fieldday"), autocommit=True) as check:
        assert counts(check, t.id, "+15125550902") == (0, 0)
        lingering = check.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE a.usename = 'fieldday_app' AND l.locktype = 'advisory'"
        ).fetchone()[0]
        assert lingering == 0
        idle_in_tx = check.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'fieldday_app' AND state LIKE 'idle in transaction%'"
        ).fetchone()[0]
        assert idle_in_tx == 0
    assert post_booking(v, f, starts_at, "+15125550902").status_code == 201


def test_f3_statement_over_statement_timeout_gives_503_and_rolls_back(services, smtp_server, make_tenant, seed_booking):
    """A separate app with a 300 ms statement_timeout; a slow statement slipped in before the insert."""
    from app import create_app
    from app.config import TestConfig
    from app.extensions import db

    slow = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
            "REDIS_URL": services.redis.url,
            "RATELIMIT_STORAGE_URI": services.redis.url,
            "SMTP_PORT": smtp_server.port,
            "DB_STATEMENT_TIMEOUT_MS": 300,
        },
    )
    t = make_tenant()
    f = seed_booking(t)
    v = owner_api(slow, t)

    def stall(conn):
        conn.exec_driver_sql("SELECT pg_sleep(2)")

    try:
        with slow.app_context(), before_insert_into_bookings(db.engine, stall) as fired:
            r = post_booking(v, f, two_days_out(12), "+15125550903")
        assert fired
        assert r.status_code == 503, r.get_data(as_text=True)
        assert int(r.headers["Retry-After"]) > 0
        with psycopg.connect(services.pg.superuser_url("fieldday"), autocommit=True) as check:
            assert counts(check, t.id, "+15125550903") == (0, 0)
        assert post_booking(v, f, two_days_out(12), "+15125550903").status_code == 201
    finally:
        with slow.app_context():
            db.engine.dispose()
