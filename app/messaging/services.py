"""Texts with customers through Twilio (DESIGN §9, RELIABILITY §5).

Outbound texts are an outbox: a ``messages`` row is written in the transaction that makes the text
due (with a ``dedupe_key`` such as ``confirmation:<booking>`` that the database keeps unique, so
a text exists once however often its cause runs), and a job sends it after commit. Twilio has no
idempotency keys, so the job marks the row ``sending`` and commits before the API call; a retry
that finds ``sending`` asks Twilio whether that text already went out before sending again (J2).
A sweep re-queues rows that Redis lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.messaging.models import STATUS_RANK, Message

log = logging.getLogger(__name__)

STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
START_WORDS = {"start", "yes", "unstop"}
OPTED_OUT = 21610  # Twilio: "Attempt to send to unsubscribed recipient"
MAX_ATTEMPTS = 5  # RQ retries plus sweeps; then the owner sees "failed" instead of an endless loop


def _now() -> datetime:
    return datetime.now(UTC)


def client():
    """The official SDK; ``TWILIO_API_BASE`` sends it to the local stand-in (its docstring has
    the recipe: Twilio's documented extension point is a custom http_client)."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    app = current_app._get_current_object()
    cached = app.extensions.get("twilio_client")
    if cached is not None:
        return cached
    sid, token, base = app.config["TWILIO_ACCOUNT_SID"], app.config["TWILIO_AUTH_TOKEN"], app.config["TWILIO_API_BASE"]
    if base:

        class BaseUrlHttpClient(TwilioHttpClient):
            def request(self, method, url, *args, **kwargs):
                parts = urlsplit(url)
                if (parts.hostname or "").endswith("twilio.com"):
                    url = base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
                return super().request(method, url, *args, **kwargs)

        http = BaseUrlHttpClient(timeout=10)
        if http.session is not None:
            http.session.trust_env = False
    else:
        http = TwilioHttpClient(timeout=10)
    # The SDK logs every request with its headers at INFO; our own log lines say what was sent.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    made = Client(sid, token, http_client=http)
    app.extensions["twilio_client"] = made
    return made


def texts_enabled(tenant) -> bool:
    return bool(tenant.sms_number and current_app.config.get("TWILIO_ACCOUNT_SID"))


# The outbox ----------------------------------------------------------------------------------------


def queue_text(
    tenant,
    customer,
    kind: str,
    body: str,
    *,
    booking_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
    sent_by: uuid.UUID | None = None,
    links: Iterable = (),
) -> Message | None:
    """Put a text in the outbox (sent by a job after commit). None when the business has no
    number, the customer no mobile or they opted out, or the same dedupe key was queued before.
    Each of ``links`` (values put in ``body``) that is a page of the business's own site is
    replaced by a short link, so the text fits in fewer segments (app/links/services.py)."""
    if not texts_enabled(tenant) or customer is None or not customer.phone or not customer.reachable:
        return None  # (not reachable: anonymised, or asked to be deleted)
    if customer.sms_opted_out_at is not None and kind != "reply":
        return None
    if sms_left(tenant) <= 0:
        raise QuotaReached(sms_quota_text(tenant))

    def text(body: str) -> Message:
        return Message(
            tenant_id=tenant.id,
            customer_id=customer.id,
            booking_id=booking_id,
            direction="out",
            kind=kind,
            body=body[:1600],
            to_addr=customer.phone,
            from_addr=tenant.sms_number,
            status="queued",
            dedupe_key=dedupe_key,
            sent_by=sent_by,
        )

    if not links:
        return _into_outbox(text(body), send=True)
    from app.links.services import shorten_in

    # The short links and the outbox row stand or fall together: a text whose dedupe key was used
    # before (send_pay_link runs again per Stripe event; two sweeps racing) leaves no short link behind.
    savepoint = db.session.begin_nested()
    try:
        message = _into_outbox(text(shorten_in(tenant, body, links)), send=True)
    except BaseException:
        savepoint.rollback()
        raise
    if message is None:
        savepoint.rollback()
    else:
        savepoint.commit()
    return message


class QuotaReached(Exception):
    """The business has used this month's texts (its plan's allowance)."""


def month_start(tenant, now: datetime | None = None) -> datetime:
    """The start of the business's current month, in its own time zone (as a UTC instant)."""
    from zoneinfo import ZoneInfo

    local = (now or _now()).astimezone(ZoneInfo(tenant.time_zone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def sms_used(tenant, now: datetime | None = None) -> int:
    """Texts this month that went (or are going) out; skipped and failed ones don't count."""
    return db.session.scalar(
        db.select(db.func.count())
        .select_from(Message)
        .where(
            Message.tenant_id == tenant.id,
            Message.direction == "out",
            Message.channel == "sms",
            Message.status.not_in(("skipped", "failed")),
            Message.created_at >= month_start(tenant, now),
        )
    )


def sms_allowance(tenant) -> int:
    from tenants.plans import get_plan

    return get_plan(tenant.plan).sms_per_month


def sms_left(tenant) -> int:
    """Texts left this month. Takes a per-business transaction lock first, so two texts queued at
    once can't both take the last one."""
    db.session.execute(
        db.text("SELECT pg_advisory_xact_lock(hashtextextended('sms-quota:' || :t, 0))"), {"t": str(tenant.id)}
    )
    return sms_allowance(tenant) - sms_used(tenant)


def sms_quota_text(tenant) -> str:
    return (
        f"You've sent all {sms_allowance(tenant):,} texts your plan includes this month. "
        "Automatic messages go by e-mail until the 1st; upgrade under Plan to keep texting."
    )


def send(message_id: uuid.UUID) -> str:
    """The job: send one queued text (or e-mail), once."""
    from twilio.base.exceptions import TwilioRestException

    from tenants.context import current_tenant_id

    tid = current_tenant_id()
    message = db.session.scalar(
        db.select(Message).where(Message.tenant_id == tid, Message.id == message_id).with_for_update()
    )
    if message is None or message.status not in ("queued", "sending"):
        return message.status if message else "missing"
    from app.customers.models import Customer

    customer = db.session.get(Customer, (tid, message.customer_id)) if message.customer_id else None
    if message.status == "sending" and message.sent_at and message.sent_at > _now() - timedelta(minutes=2):
        # Another run may still be talking to Twilio or the mail server: come back later rather
        # than risk a double (a run that *knows* it failed puts the row back to "queued").
        raise RuntimeError("message is being sent by another job; retry later")
    if customer is not None and not customer.reachable:
        message.status, message.error_message = "skipped", "The customer asked to be deleted."
        return message.status
    if message.channel == "email":
        return _send_email(message)
    if customer is not None and customer.sms_opted_out_at is not None and message.kind != "reply":
        message.status, message.error_message = "skipped", "The customer opted out of texts (STOP)."
        return message.status
    if message.status == "sending" and _already_sent(message):
        return message.status
    if message.attempts >= MAX_ATTEMPTS:
        message.status, message.error_message = "failed", "Gave up after several attempts; Twilio kept failing."
        return message.status
    message.status, message.sent_at = "sending", _now()
    message.attempts += 1
    db.session.commit()  # a crash during the call leaves "sending": the retry checks before resending
    from app.urls import app_url

    try:
        sent = client().messages.create(
            to=message.to_addr,
            from_=message.from_addr,
            body=message.body,
            status_callback=app_url("/webhooks/twilio/status"),
        )
    except TwilioRestException as exc:
        message.error_code, message.error_message = str(exc.code or exc.status), (exc.msg or "")[:300]
        if exc.code == OPTED_OUT:
            message.status = "skipped"
            if customer is not None and customer.sms_opted_out_at is None:
                customer.sms_opted_out_at = _now()
            return message.status
        if exc.status and 400 <= exc.status < 500 and exc.status != 429:
            message.status = "failed"  # bad number, not ours...: retrying won't help; the owner sees why
            return message.status
        if exc.status == 429:
            # Rate limited: Twilio took nothing, so back to "queued" and RQ's retry sends it.
            message.status = "queued"
            db.session.commit()
        # A 5xx (or a timeout) is ambiguous, Twilio may have sent it: the row stays "sending" and
        # the retry asks Twilio before sending again.
        raise
    message.provider_sid = sent.sid
    message.status, message.status_at = "sent", _now()
    return message.status


def _already_sent(message: Message) -> bool:
    """Did an earlier attempt reach Twilio before it died? Look for the same text to the same
    number since that attempt started, and adopt it."""
    since = (message.sent_at or message.created_at) - timedelta(minutes=1)
    # If Twilio can't be asked, this raises and the job retries later: never send blind twice.
    recent = client().messages.list(to=message.to_addr, from_=message.from_addr, date_sent_after=since, limit=50)
    match = next((m for m in recent if (m.body or "") == message.body), None)
    if match is None:
        return False
    message.provider_sid, message.status, message.status_at = match.sid, "sent", _now()
    return True


def queued_ids(older_than: timedelta = timedelta(minutes=2)) -> list[uuid.UUID]:
    # A "sending" row is only picked up once its attempt is surely over (the API call times out
    # in 10 s), so a sweep never races a job that is still talking to Twilio.
    cutoff = _now() - older_than
    return list(
        db.session.scalars(
            db.select(Message.id).where(
                ((Message.status == "queued") & (Message.created_at <= cutoff))
                | ((Message.status == "sending") & (Message.sent_at <= cutoff))
            )
        )
    )


# Webhooks ----------------------------------------------------------------------------------------


def record_inbound(tenant, params: dict) -> Message | None:
    """An inbound text, threaded to the customer with that number in this business (W3); STOP and
    START mirrored onto the customer. A duplicate webhook (same MessageSid) changes nothing (W4)."""
    from sqlalchemy.dialects.postgresql import insert

    from app.customers.services import find_by_phone

    sender = params.get("From", "")
    body = (params.get("Body") or "").strip() or "(empty message)"
    customer = find_by_phone(sender)
    inserted = db.session.execute(
        insert(Message)
        .values(
            tenant_id=tenant.id,
            id=uuid.uuid4(),
            customer_id=customer.id if customer else None,
            direction="in",
            kind="inbound",
            body=body[:1600],
            to_addr=params.get("To", ""),
            from_addr=sender,
            status="received",
            provider_sid=params.get("MessageSid"),
            status_at=_now(),
        )
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "provider_sid"], index_where=Message.provider_sid.is_not(None)
        )
        .returning(Message.id)
    ).scalar()
    if inserted is None:
        return None
    word = body.lower().strip(" .!")
    if customer is not None and word in STOP_WORDS:
        customer.sms_opted_out_at = _now()
    elif customer is not None and word in START_WORDS:
        customer.sms_opted_out_at = None
    db.session.flush()
    return db.session.get(Message, (tenant.id, inserted))


def record_status(params: dict) -> str | None:
    """A status callback: move forward only (a late "sent" never undoes "delivered", W4)."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid:
        return None
    message = db.session.scalar(db.select(Message).where(Message.provider_sid == sid).with_for_update())
    if message is None or status not in STATUS_RANK:
        return None
    if STATUS_RANK[status] > STATUS_RANK.get(message.status, 0):
        message.status, message.status_at = status, _now()
        if params.get("ErrorCode"):
            message.error_code = params["ErrorCode"]
        if params.get("ErrorCode") == str(OPTED_OUT) and message.customer_id:
            from app.customers.models import Customer

            customer = db.session.get(Customer, (message.tenant_id, message.customer_id))
            if customer is not None:
                customer.sms_opted_out_at = customer.sms_opted_out_at or _now()
    db.session.flush()
    return message.status


# What we text, and when ---------------------------------------------------------------------------


def _booking_values(tenant, booking) -> dict[str, str]:
    from zoneinfo import ZoneInfo

    from app.booking.tokens import make_manage_token
    from app.urls import site_url
    from app.web.filters import clock, local_long

    tz = ZoneInfo(tenant.time_zone)
    return {
        "when": local_long(booking.starts_at, tenant),
        "time": clock(booking.starts_at.astimezone(tz)),
        "service": ", ".join(i.name for i in booking.items),
        "address": booking.address.one_line if booking.address else "",
        "reference": booking.reference,
        "manage_link": site_url(
            tenant.subdomain, f"/b/{make_manage_token(tenant.id, booking.id, booking.token_version)}"
        ),
        "arrival_window": (
            f"We arrive within {booking.arrival_window_min} minutes of that time." if booking.arrival_window_min else ""
        ),
    }


def booking_confirmed(booking) -> Message | None:
    """The confirmation (text, else e-mail), with the manage-my-booking link."""
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, booking.tenant_id)
    return notify(
        tenant,
        booking.customer,
        "confirmation",
        _booking_values(tenant, booking),
        booking_id=booking.id,
        dedupe_key=f"confirmation:{booking.id}",
    )


def queue_reminders(tenant, *, now: datetime) -> int:
    """Day-before reminders: once the business's local clock passes its reminder hour, every
    confirmed booking of tomorrow (local) gets one reminder (the dedupe key makes re-runs free)."""
    from zoneinfo import ZoneInfo

    from app.booking.availability import local_day_bounds
    from app.booking.models import Booking

    tz = ZoneInfo(tenant.time_zone)
    local = now.astimezone(tz)
    if local.hour < tenant.reminder_hour:
        return 0
    start, end = local_day_bounds(local.date() + timedelta(days=1), tz)
    due = db.session.scalars(
        db.select(Booking)
        .where(Booking.status == "confirmed", Booking.starts_at >= start, Booking.starts_at < end)
        .order_by(Booking.starts_at)
    )
    made = 0
    for booking in due:
        made += bool(
            notify(
                tenant,
                booking.customer,
                "reminder",
                _booking_values(tenant, booking),
                booking_id=booking.id,
                # Per date: a booking moved after its reminder gets one for its new day.
                dedupe_key=f"reminder:{booking.id}:{booking.starts_at.astimezone(tz).date().isoformat()}",
            )
        )
    return made


PAYMENT_REMINDER_DAYS = (7, 14)


def queue_payment_reminders(tenant, *, now: datetime) -> int:
    """7 and 14 days after a finished job that still has money owing, a reminder with the pay link
    (once each; a job found late gets only the reminder for its age, never both at once)."""
    from app.booking.models import Booking
    from app.catalog.services import format_money as money
    from app.payments import services as payments
    from app.payments.tokens import make_pay_token
    from app.urls import site_url

    finished = db.func.coalesce(Booking.finished_at, Booking.ends_at)
    candidates = db.session.scalars(
        db.select(Booking)
        .where(
            Booking.status == "completed",
            Booking.payment_status.in_(("unpaid", "partly_paid", "action_required", "failed")),
            finished <= now - timedelta(days=PAYMENT_REMINDER_DAYS[0]),
            finished > now - timedelta(days=PAYMENT_REMINDER_DAYS[-1] + 7),
        )
        .order_by(finished)
    )
    made = 0
    for booking in candidates:
        age = now - (booking.finished_at or booking.ends_at)
        step = max(d for d in PAYMENT_REMINDER_DAYS if age >= timedelta(days=d))
        # What was never paid: refunds (a goodwill gesture) don't make the customer owe it back.
        paid = sum(p.amount_cents for p in payments.payments_for(booking) if p.status == "succeeded")
        due = booking.price_cents - paid
        if due <= 0:
            continue
        link = site_url(tenant.subdomain, f"/pay/{make_pay_token(tenant.id, booking.id)}")
        made += bool(
            notify(
                tenant,
                booking.customer,
                "payment_reminder",
                {
                    "amount": money(due, booking.currency),
                    "reference": booking.reference,
                    "pay_link": link,
                    "service": ", ".join(i.name for i in booking.items),
                },
                booking_id=booking.id,
                dedupe_key=f"payment_reminder:{booking.id}:{step}",
            )
        )
    return made


def notify(
    tenant,
    customer,
    kind: str,
    values: dict[str, str],
    *,
    booking_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> Message | None:
    """An automatic message of ``kind`` (see ``templating.KINDS``) in the owner's wording: by text
    when we can, else by e-mail (no mobile, opted out of texts, texts off, or the month's texts used
    up). Once per ``dedupe_key`` whichever way it went. When neither way reaches the customer, a
    ``skipped`` row says why, so the owner sees it instead of wondering."""
    from app.messaging import templating

    if customer is None or not customer.reachable:  # anonymised, or asked to be deleted
        return None
    values = {"business": tenant.name, "customer_first_name": _first_name(customer), **values}
    body = templating.render(tenant.id, kind, values)
    if dedupe_key and _exists(dedupe_key):
        return None
    reason = _why_no_text(tenant, customer)
    if reason is None:
        try:
            # Texts carry short links (one segment, not two); the e-mail below keeps the full ones.
            return queue_text(
                tenant, customer, kind, body, booking_id=booking_id, dedupe_key=dedupe_key, links=values.values()
            )
        except QuotaReached as exc:
            reason = str(exc)
    if customer.email:
        return queue_email(
            tenant,
            customer,
            kind,
            templating.subject(kind, values),
            body,
            booking_id=booking_id,
            dedupe_key=dedupe_key,
        )
    return _skipped(tenant, customer, kind, body, booking_id, dedupe_key, reason + " There is no e-mail either.")


def _why_no_text(tenant, customer) -> str | None:
    if not texts_enabled(tenant):
        return "Texts are off (no Twilio number under Integrations)."
    if not customer.phone:
        return "The customer has no mobile number."
    if customer.sms_opted_out_at is not None:
        return "The customer opted out of texts (STOP)."
    return None


def _exists(dedupe_key: str) -> bool:
    return db.session.scalar(db.select(Message.id).where(Message.dedupe_key == dedupe_key).limit(1)) is not None


def _skipped(tenant, customer, kind, body, booking_id, dedupe_key, reason: str) -> Message | None:
    message = Message(
        tenant_id=tenant.id,
        customer_id=customer.id,
        booking_id=booking_id,
        direction="out",
        channel="sms",
        kind=kind,
        body=body[:1600],
        to_addr=customer.phone or customer.email or "-",
        from_addr=tenant.sms_number,
        status="skipped",
        error_message=reason[:300],
        dedupe_key=dedupe_key,
    )
    return _into_outbox(message, send=False)


def queue_email(
    tenant,
    customer,
    kind: str,
    subject: str,
    body: str,
    *,
    booking_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> Message | None:
    """Put an e-mail in the outbox (same rules as texts: once per dedupe key, sent after commit)."""
    if customer is None or not customer.email or not customer.reachable:
        return None
    message = Message(
        tenant_id=tenant.id,
        customer_id=customer.id,
        booking_id=booking_id,
        direction="out",
        channel="email",
        kind=kind,
        subject=subject[:200],
        body=body[:20000],
        to_addr=customer.email,
        from_addr=tenant.contact_email,
        status="queued",
        dedupe_key=dedupe_key,
    )
    return _into_outbox(message, send=True)


def _send_email(message: Message) -> str:
    """E-mail has no way to ask "did that go?", so only a crash mid-send means at-least-once: the
    row stays ``sending`` and is sent again once that attempt is two minutes old (a rare duplicate
    e-mail beats a lost one). A refused address is final; a server error puts the row back to
    ``queued`` for the retry."""
    import smtplib

    from flask import render_template

    from app.mail import send_email
    from tenants.models import Tenant

    if message.attempts >= MAX_ATTEMPTS:
        message.status, message.error_message = (
            "failed",
            "Gave up after several attempts; the mail server kept failing.",
        )
        return message.status
    message.status, message.sent_at = "sending", _now()
    message.attempts += 1
    db.session.commit()
    tenant = db.session.get(Tenant, message.tenant_id)
    text = render_template("email/notification.txt", tenant=tenant, body=message.body)
    try:
        message.provider_sid = send_email(
            message.to_addr, message.subject or tenant.name, text, reply_to=tenant.contact_email
        )
    except smtplib.SMTPRecipientsRefused as exc:
        message.status, message.error_message = "failed", f"The mail server refused the address: {exc}"[:300]
        return message.status
    except (smtplib.SMTPException, OSError) as exc:
        # The server answered with an error or couldn't be reached: nothing was accepted, so the
        # row goes back to "queued" for the retry.
        message.status, message.error_message = "queued", f"{type(exc).__name__}: {exc}"[:300]
        db.session.commit()
        raise
    message.status, message.status_at = "sent", _now()
    return message.status


def _into_outbox(message: Message, *, send: bool) -> Message | None:
    """Insert an outbox row (texts, e-mails and ``skipped`` notes alike); None when its dedupe key
    was used before. With ``send``, its job is queued after the commit."""
    try:
        with db.session.begin_nested():
            db.session.add(message)
            db.session.flush()
    except IntegrityError as exc:
        if not _is_duplicate(exc):
            raise
        return None  # already queued (or sent) for this cause
    if send:
        from app.jobs import after_commit
        from app.messaging.jobs import send_text

        after_commit(send_text.enqueue, message.tenant_id, message.id)
    return message


def _is_duplicate(exc: IntegrityError) -> bool:
    """The outbox's sent-marker (one message per dedupe key) said no; any other violation is a bug
    to surface, not a message to drop silently."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == "uq_messages_dedupe"


def _first_name(customer) -> str:
    return ((customer.name or "").split() or ["there"])[0] if customer is not None else "there"
