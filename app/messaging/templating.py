"""The words of every automatic message, which the owner may rewrite (Messages → Templates).

A template is plain text with ``{variable}`` placeholders; each kind has its own variables. An
owner's version is checked when saved (an unknown variable or a stray brace is refused with the
list of what is allowed), so a template that renders at send time is never a surprise. The same
text goes by SMS, or by e-mail when the customer has no mobile or opted out of texts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from app.extensions import db

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
MAX_LENGTH = 1000


class TemplateError(ValueError):
    """An owner's template we can't render; the message says what to change."""


@dataclass(frozen=True)
class Kind:
    label: str
    when: str  # when it goes out, for the editor
    subject: str  # the e-mail subject line ({business} allowed)
    default: str
    variables: tuple[str, ...]


COMMON = ("business", "customer_first_name")

KINDS: dict[str, Kind] = {
    "confirmation": Kind(
        "Booking confirmation",
        "As soon as a booking is confirmed.",
        "{business}: your booking is confirmed",
        "{business}: you're booked for {when} ({service}). To move or cancel: {manage_link}",
        COMMON + ("when", "service", "address", "reference", "manage_link"),
    ),
    "reminder": Kind(
        "Day-before reminder",
        "The day before, at the hour you choose in Integrations.",
        "{business}: see you tomorrow",
        "{business}: a reminder that we'll see you tomorrow at {time} ({address}). To move or cancel: {manage_link}",
        COMMON + ("when", "time", "service", "address", "reference", "manage_link", "arrival_window"),
    ),
    "on_my_way": Kind(
        "On my way",
        "When the technician taps “On my way”.",
        "{business}: we're on the way",
        "{business}: {technician} is on the way, arriving about {eta}.",
        COMMON + ("technician", "eta", "address", "reference"),
    ),
    "eta_changed": Kind(
        "Arrival time changed",
        "When an earlier job runs long and the expected arrival moves by 15 minutes or more.",
        "{business}: new arrival time",
        "{business}: {technician} now expects to arrive about {eta} (we said {previous_eta}). Sorry for the change.",
        COMMON + ("technician", "eta", "previous_eta", "address", "reference"),
    ),
    "payment_reminder": Kind(
        "Payment reminder",
        "7 and 14 days after a finished job that still has money owing.",
        "{business}: payment reminder for booking {reference}",
        "{business}: a friendly reminder that {amount} is still due for booking {reference}. "
        "Pay securely here: {pay_link}",
        COMMON + ("amount", "reference", "pay_link", "service"),
    ),
    "review_request": Kind(
        "Review request",
        "After a job is marked complete (every customer, happy or not).",
        "{business}: how did we do?",
        "{business}: thanks for choosing us, {customer_first_name}! How did we do? It takes a minute: {review_link}",
        COMMON + ("review_link", "service", "reference"),
    ),
    "quote_sent": Kind(
        "Quote sent",
        "When you send a quote (each new version too).",
        "{business}: your quote {quote_number}",
        "{business}: your quote {quote_number} is ready ({amount}). See it, pick a time and book: {quote_link}",
        COMMON + ("quote_number", "amount", "quote_link", "expires"),
    ),
    "quote_expiring": Kind(
        "Quote expiring",
        "Two days before a quote the customer hasn't answered expires.",
        "{business}: your quote {quote_number} expires {expires}",
        "{business}: a reminder that your quote {quote_number} ({amount}) expires {expires}. Book here: {quote_link}",
        COMMON + ("quote_number", "amount", "quote_link", "expires"),
    ),
}

# What the preview fills in: realistic values, so the owner sees the length a customer will get
# (plain ASCII: an ellipsis here would wrongly force UCS-2). The full signed links are what e-mails
# carry; the dashboard's preview puts the business's short link in every ``*_link`` (texts carry
# those: app/links/services.py), so keep link variables named ``..._link``.
_TOKEN = "eyJ0IjoiNGQ5YzFmMmUtOGI3YS00ZDNjLWE5ZTItMWY2YjNjNGQ1ZTZmIiwiYiI6IjdhOGI5YzBkIn0.awRNog.q0dNZNWLhM6gXlpgJ4AY"
SAMPLE = {
    "business": "Acme Mobile Detailing",
    "customer_first_name": "Jordan",
    "when": "Tue Nov 24, 9:00 AM",
    "time": "9:00 AM",
    "service": "Full detail",
    "address": "1200 Main St, Austin",
    "reference": "FD-7K2Q9",
    "manage_link": "https://acme.fieldday.app/b/" + _TOKEN,
    "arrival_window": "We arrive within 60 minutes of that time.",
    "technician": "Sam",
    "eta": "10:40 AM",
    "previous_eta": "10:15 AM",
    "amount": "$120.00",
    "pay_link": "https://acme.fieldday.app/pay/" + _TOKEN[:90],
    "review_link": "https://acme.fieldday.app/review/" + _TOKEN[:90],
    "quote_number": "Q-12",
    "quote_link": "https://acme.fieldday.app/q/" + _TOKEN[:90],
    "expires": "Dec 23",
}


def placeholders(body: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(body)]


def check(kind: str, body: str) -> str:
    """An owner's template, tidied, or TemplateError saying exactly what is wrong."""
    spec = KINDS.get(kind)
    if spec is None:
        raise TemplateError("There is no such message.")
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise TemplateError("The message can't be empty.")
    if len(body) > MAX_LENGTH:
        raise TemplateError(f"Keep it under {MAX_LENGTH} characters (it has {len(body)}).")
    allowed = ", ".join("{" + v + "}" for v in spec.variables)
    unknown = [name for name in placeholders(body) if name not in spec.variables]
    if unknown:
        raise TemplateError(f"Unknown variable {{{unknown[0]}}}. You can use {allowed}.")
    leftover = PLACEHOLDER.sub("", body)
    if "{" in leftover or "}" in leftover:
        raise TemplateError(f"A brace is not closed: write variables as {{name}}. You can use {allowed}.")
    return body


def fill(body: str, values: dict[str, str]) -> str:
    """Put the values in. A variable with no value this time (no arrival window...) disappears with
    the spaces before it; the owner's own spacing and punctuation are left as written."""

    def value(m: re.Match) -> str:
        return str(values.get(m.group(2)) or "") and m.group(1) + str(values.get(m.group(2)))

    return re.sub(r"([ \t]*)\{([^{}]*)\}", value, body).strip()


def body_for(tenant_id: uuid.UUID, kind: str) -> str:
    """The owner's version of a message, else ours."""
    from app.messaging.models import MessageTemplate

    row = db.session.get(MessageTemplate, (tenant_id, kind))
    return row.body if row is not None else KINDS[kind].default


def render(tenant_id: uuid.UUID, kind: str, values: dict[str, str]) -> str:
    body = body_for(tenant_id, kind)
    try:
        check(kind, body)
    except TemplateError:
        body = KINDS[kind].default  # a template that no longer checks (a variable we retired) never blocks a text
    text = fill(body, values)
    if not text:  # an owner's template made only of variables that are empty this time
        text = fill(KINDS[kind].default, values)
    return text


def subject(kind: str, values: dict[str, str]) -> str:
    return fill(KINDS[kind].subject, values)


def preview(kind: str, body: str) -> str:
    """The template with sample values (raises TemplateError like ``check``)."""
    return fill(check(kind, body), SAMPLE)


# GSM 03.38: the basic alphabet (one unit each) and its extension table (two units each).
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> tuple[int, int]:
    """(characters, SMS segments) as a carrier counts them: 160/153 units per segment when every
    character is in the GSM alphabet (extension characters such as € take two), else UCS-2 at 70/67
    UTF-16 units (an emoji takes two)."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return len(text), (1 if units <= single else -(-units // multi))


def save(tenant_id: uuid.UUID, kind: str, body: str, *, user_id: uuid.UUID | None) -> str:
    """Store the owner's version (checked); saving our default text removes the override."""
    from app.messaging.models import MessageTemplate

    body = check(kind, body)
    row = db.session.get(MessageTemplate, (tenant_id, kind))
    if body == KINDS[kind].default:
        if row is not None:
            db.session.delete(row)
        db.session.flush()
        return body
    if row is None:
        row = MessageTemplate(tenant_id=tenant_id, kind=kind, body=body)
        db.session.add(row)
    row.body, row.updated_at, row.updated_by = body, datetime.now(UTC), user_id
    db.session.flush()
    return body


def reset(tenant_id: uuid.UUID, kind: str) -> None:
    from app.messaging.models import MessageTemplate

    row = db.session.get(MessageTemplate, (tenant_id, kind))
    if row is not None:
        db.session.delete(row)
        db.session.flush()
