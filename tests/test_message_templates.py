"""Owner-editable message templates (issue 7): the editor at /messages/templates checks every save
(an unknown variable or a stray brace is refused with the list of allowed ones), the next message
goes out in the owner's words, each business sees only its own wording, technicians are refused,
and the preview follows the typing in a real browser."""

from __future__ import annotations

import html
import re

import pytest
from playwright.sync_api import expect

from tests.helpers import csrf_from
from tests.pages import screenshot
from tests.test_messages import texting

PAGE = "/messages/templates"
MINE = "Hi {customer_first_name}! {business} has you down for {when} ({service}). Change it: {manage_link}"


def owner_of(visitor, t):
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    return v


def save(v, kind: str, body: str, **extra):
    token = csrf_from(v.get(PAGE).get_data(as_text=True))
    return v.post(f"{PAGE}/{kind}", {"body": body, "csrf_token": token, **extra})


def text_of(r) -> str:
    return html.unescape(r.get_data(as_text=True))


def stored(app, t) -> dict[str, str]:
    from app.extensions import db
    from app.messaging.models import MessageTemplate
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        out = {row.kind: row.body for row in db.session.scalars(db.select(MessageTemplate))}
        db.session.rollback()
        return out


def audit_actions(app, t) -> list[str]:
    from app.audit.models import AuditEntry
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        out = list(
            db.session.scalars(
                db.select(AuditEntry.action)
                .where(AuditEntry.subject_type == "message_template")
                .order_by(AuditEntry.created_at)
            )
        )
        db.session.rollback()
        return out


def textarea(page_html: str, kind: str) -> str:
    match = re.search(rf'data-testid="body-{kind}">(.*?)</textarea>', page_html, re.S)
    assert match, f"no textarea for {kind}"
    return html.unescape(match.group(1))


@pytest.fixture
def flushed_queues(app):
    """Jobs queued by a booking here must not be picked up by another test's worker."""
    from app.extensions import get_redis

    yield
    with app.app_context():
        get_redis().flushdb()


# --- templating: check, fill, preview, sms_segments ----------------------------------------------


def test_check_accepts_known_variables_and_tidies():
    from app.messaging.templating import check

    assert check("confirmation", "  {business}: see you {when}\r\n") == "{business}: see you {when}"


@pytest.mark.parametrize(
    ("kind", "body", "says"),
    [
        ("confirmation", "See you {when} for {price}", "Unknown variable {price}. You can use {business}"),
        ("on_my_way", "{technician} arrives {when}", "Unknown variable {when}"),  # not a variable of this kind
        ("confirmation", "Hi {business", "A brace is not closed"),
        ("confirmation", "Hi business}", "A brace is not closed"),
        ("confirmation", "   ", "can't be empty"),
        ("confirmation", "x" * 1001, "under 1000 characters (it has 1001)"),
        ("no_such_kind", "Hi", "no such message"),
    ],
)
def test_check_refuses_with_a_clear_message(kind, body, says):
    from app.messaging.templating import TemplateError, check

    with pytest.raises(TemplateError) as exc:
        check(kind, body)
    assert says in str(exc.value)


def test_unknown_variable_message_lists_every_allowed_one():
    from app.messaging.templating import KINDS, TemplateError, check

    with pytest.raises(TemplateError) as exc:
        check("payment_reminder", "{price} due")
    for name in KINDS["payment_reminder"].variables:
        assert "{" + name + "}" in str(exc.value)


def test_fill_leaves_no_gap_for_a_missing_value():
    from app.messaging.templating import fill

    assert fill("{business}: arriving {eta}. Thanks!", {"business": "Acme"}) == "Acme: arriving. Thanks!"
    # The owner's own spacing and punctuation stay as written.
    assert fill("Hi {customer_first_name} , ok :)", {"customer_first_name": "Jo"}) == "Hi Jo , ok :)"


def test_sms_segments_count_as_a_carrier_does():
    from app.messaging.templating import sms_segments

    assert sms_segments("é" * 160) == (160, 1)  # accents in the GSM alphabet keep 160 per text
    assert sms_segments("€" * 81) == (81, 2)  # extension characters take two units
    assert sms_segments("😀" * 36) == (36, 2)  # UCS-2: an emoji is two UTF-16 units of 70


def test_preview_uses_sample_values():
    from app.messaging.templating import preview

    assert preview("on_my_way", "{technician} at {eta}") == "Sam at 10:40 AM"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", (0, 1)), ("a" * 160, (160, 1)), ("a" * 161, (161, 2)), ("a" * 306, (306, 2)), ("a" * 307, (307, 3))],
)
def test_sms_segments_in_the_gsm_alphabet(text, expected):
    from app.messaging.templating import sms_segments

    assert sms_segments(text) == expected


def test_sms_segments_outside_the_gsm_alphabet_are_70_a_text():
    from app.messaging.templating import sms_segments

    assert sms_segments("✓" * 70) == (70, 1)
    assert sms_segments("✓" * 71) == (71, 2)
    assert sms_segments("✓" * 134) == (134, 2)
    assert sms_segments("✓" * 135) == (135, 3)


# --- the editor over HTTP ------------------------------------------------------------------------


def test_page_shows_every_kind_with_its_default_and_variables(app, make_tenant, visitor):
    from app.messaging.templating import KINDS

    t = make_tenant()
    r = owner_of(visitor, t).get(PAGE)
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    for kind, spec in KINDS.items():
        assert f'data-testid="template-{kind}"' in page and f'data-testid="default-{kind}"' in page
        assert textarea(page, kind) == spec.default
        for name in spec.variables:
            assert f'data-testid="var-{kind}-{name}"' in page
    assert f"{t.name}: you're booked for Tue Nov 24, 9:00 AM (Full detail)" in html.unescape(page)  # sample values
    assert 'data-testid="preview-count-confirmation"' in page


def test_messages_page_links_to_templates(make_tenant, visitor):
    t = make_tenant()
    page = owner_of(visitor, t).get("/messages").get_data(as_text=True)
    assert f'href="{PAGE}" data-testid="templates-link"' in page


def test_saved_confirmation_is_the_next_text_in_the_owners_words(app, make_tenant, visitor, twilio_fake):
    from app.customers.services import create_customer
    from app.extensions import db
    from app.messaging import services as messaging
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t = make_tenant()
    texting(app, t, twilio_fake)
    v = owner_of(visitor, t)
    r = save(v, "confirmation", MINE)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"{PAGE}#t-confirmation")
    assert stored(app, t) == {"confirmation": MINE}
    page = v.get(PAGE).get_data(as_text=True)
    assert 'data-testid="custom-confirmation"' in page and textarea(page, "confirmation") == MINE
    assert "Booking confirmation saved" in html.unescape(page)
    assert audit_actions(app, t) == ["message_template.saved"]

    with app.app_context(), tenant_context(t.id, db.session):
        tenant = db.session.get(Tenant, t.id)
        customer = create_customer(t.id, {"name": "Casey Customer", "phone": "+15125550611"}, region="US")
        values = {"when": "Fri Dec 4, 10:00 AM", "service": "Express wash", "manage_link": "https://x.test/b/1"}
        message = messaging.notify(tenant, customer, "confirmation", values, dedupe_key="confirmation:tpl-test")
        assert message is not None and message.channel == "sms" and message.status == "queued"
        assert message.body == (
            f"Hi Casey! {t.name} has you down for Fri Dec 4, 10:00 AM (Express wash). Change it: https://x.test/b/1"
        )
        db.session.rollback()  # never committed: no job is queued


def test_a_real_booking_is_confirmed_in_the_owners_words(
    app, make_tenant, seed_booking, visitor, twilio_fake, flushed_queues
):
    from tests.test_booking import tomorrow_at
    from tests.test_messages import rows, staff_book

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    assert (
        save(owner_of(visitor, t), "confirmation", "{business}: booked, {customer_first_name}! {when}").status_code
        == 302
    )
    staff_book(app, t, f, tomorrow_at(10), "+15125550612")
    (row,) = rows(app, t)
    assert row["kind"] == "confirmation" and row["body"].startswith(f"{t.name}: booked, Casey! ")


def test_unknown_variable_is_refused_with_a_clear_answer_and_the_text_kept(app, make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    typed = "Hi {customer_first_name}, that's {price} for {service}"
    r = save(v, "confirmation", typed)
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    error = html.unescape(re.search(r'data-testid="error-confirmation">(.*?)</p>', page).group(1))
    assert error.startswith("Unknown variable {price}.")
    assert (
        "You can use {business}, {customer_first_name}, {when}, {service}, {address}, {reference}, {manage_link}"
        in error
    )
    assert textarea(page, "confirmation") == typed  # what the owner typed is still there
    assert 'aria-invalid="true" aria-describedby="e-body-confirmation"' in page
    assert 'data-testid="form-errors"' in page
    assert 'data-testid="error-reminder"' not in page  # the other cards are untouched
    assert stored(app, t) == {} and audit_actions(app, t) == []


def test_unclosed_brace_is_refused(app, make_tenant, visitor):
    t = make_tenant()
    r = save(owner_of(visitor, t), "reminder", "{business}: see you at {time")
    assert r.status_code == 422
    assert "A brace is not closed: write variables as {name}." in text_of(r)
    assert stored(app, t) == {}


def test_reset_restores_the_default(app, make_tenant, visitor):
    from app.messaging.templating import KINDS

    t = make_tenant()
    v = owner_of(visitor, t)
    save(v, "on_my_way", "{technician} is coming, ETA {eta}")
    assert stored(app, t) == {"on_my_way": "{technician} is coming, ETA {eta}"}
    page = v.get(PAGE).get_data(as_text=True)
    assert 'data-testid="reset-on_my_way"' in page and 'data-testid="reset-confirmation"' not in page
    r = v.post(f"{PAGE}/on_my_way", {"action": "reset", "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    assert stored(app, t) == {}
    page = v.get(PAGE).get_data(as_text=True)
    assert textarea(page, "on_my_way") == KINDS["on_my_way"].default and 'data-testid="default-on_my_way"' in page
    assert "On my way is back to our wording" in html.unescape(page)
    assert audit_actions(app, t) == ["message_template.saved", "message_template.reset"]


def test_saving_the_same_text_again_changes_nothing(app, make_tenant, visitor):
    from app.messaging.templating import KINDS

    t = make_tenant()
    v = owner_of(visitor, t)
    r = save(v, "reminder", KINDS["reminder"].default)
    assert r.status_code == 302 and stored(app, t) == {} and audit_actions(app, t) == []
    assert "nothing changed" in text_of(v.get(PAGE))


def test_unknown_kind_is_404(make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    assert save(v, "price_list", "Hi {business}").status_code == 404
    token = csrf_from(v.get(PAGE).get_data(as_text=True))
    assert v.post(f"{PAGE}/price_list/preview", {"body": "x", "csrf_token": token}).status_code == 404


def test_preview_fragment_follows_the_text(make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    token = csrf_from(v.get(PAGE).get_data(as_text=True))
    r = v.post(f"{PAGE}/on_my_way/preview", {"body": "{technician} here at {eta}", "csrf_token": token})
    assert r.status_code == 200
    fragment = text_of(r)
    assert "Sam here at 10:40 AM" in fragment and "20 characters · 1 text message" in fragment
    assert "<html" not in fragment  # a fragment, not a page
    r = v.post(f"{PAGE}/on_my_way/preview", {"body": "a" * 170 + " {technician}", "csrf_token": token})
    assert "174 characters · 2 text messages" in text_of(r)
    r = v.post(f"{PAGE}/on_my_way/preview", {"body": "{technician} at {price}", "csrf_token": token})
    assert r.status_code == 200  # htmx swaps 2xx only: the error shows where the preview was
    assert 'data-testid="preview-error-on_my_way"' in r.get_data(as_text=True)
    assert "Unknown variable {price}. You can use {business}" in text_of(r)
    # The preview endpoint never saves.
    assert 'data-testid="default-on_my_way"' in v.get(PAGE).get_data(as_text=True)


def test_preview_needs_the_csrf_token(make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    assert v.post(f"{PAGE}/on_my_way/preview", {"body": "{technician}"}).status_code in (400, 403)


def test_each_business_sees_and_changes_only_its_own_templates(app, two_tenants, visitor):
    from app.extensions import db
    from app.messaging.models import MessageTemplate
    from app.messaging.templating import KINDS
    from tenants.context import tenant_context

    a, b = two_tenants
    save(owner_of(visitor, a), "confirmation", MINE)
    vb = owner_of(visitor, b)
    page = vb.get(PAGE).get_data(as_text=True)
    assert textarea(page, "confirmation") == KINDS["confirmation"].default
    assert 'data-testid="default-confirmation"' in page and "has you down for" not in page
    # B's save and reset write B's rows only.
    assert save(vb, "confirmation", "{business}: B's words {when}").status_code == 302
    assert stored(app, a) == {"confirmation": MINE}
    assert stored(app, b) == {"confirmation": "{business}: B's words {when}"}
    vb.post(f"{PAGE}/confirmation", {"action": "reset", "csrf_token": csrf_from(vb.get(PAGE).get_data(as_text=True))})
    assert stored(app, a) == {"confirmation": MINE} and stored(app, b) == {}
    # Row-level security, not just the view's filter: in B's context A's row does not exist.
    with app.app_context(), tenant_context(b.id, db.session):
        assert db.session.get(MessageTemplate, (a.id, "confirmation")) is None
        assert db.session.scalars(db.select(MessageTemplate)).all() == []
        db.session.rollback()


@pytest.mark.parametrize("role", ["tech0"])
def test_technicians_are_refused(app, make_tenant, visitor, role):
    t = make_tenant(techs=1)
    v = visitor("app.localhost")
    v.login(t.people[role].email, t.people[role].password)
    token = v.dashboard_token()
    assert v.get(PAGE).status_code == 403
    r = v.post(f"{PAGE}/confirmation", {"body": "{business} hi", "csrf_token": token})
    assert r.status_code == 403
    r = v.post(f"{PAGE}/confirmation", {"action": "reset", "csrf_token": token})
    assert r.status_code == 403
    assert v.post(f"{PAGE}/confirmation/preview", {"body": "{business}", "csrf_token": token}).status_code == 403
    assert stored(app, t) == {}


def test_admins_may_edit(app, make_tenant, visitor):
    t = make_tenant(admins=1)
    v = visitor("app.localhost")
    v.login(t.people["admin0"].email, t.people["admin0"].password)
    assert save(v, "review_request", "{business}: thanks! {review_link}").status_code == 302
    assert stored(app, t) == {"review_request": "{business}: thanks! {review_link}"}


def test_logged_out_visitors_go_to_login(visitor):
    r = visitor("app.localhost").get(PAGE)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


# --- in a browser --------------------------------------------------------------------------------


@pytest.mark.browser
def test_preview_follows_typing_chips_and_errors_in_a_browser(app, make_tenant, new_context, live_server):
    t = make_tenant(name="Shine On Detailing")
    page = new_context(viewport={"width": 375, "height": 812}).new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(t.owner.password)
    with page.expect_navigation():
        page.get_by_test_id("login-submit").click()
    page.goto(live_server.url("app.localhost", "/messages"))
    with page.expect_navigation():
        page.get_by_test_id("templates-link").click()

    body = page.get_by_test_id("body-confirmation")
    preview = page.get_by_test_id("preview-confirmation")
    expect(preview).to_contain_text("Shine On Detailing: you're booked for Tue Nov 24")  # its own name, sample values
    body.fill("")
    body.press_sequentially("Hi {customer_first_name}, see you ")
    expect(preview).to_contain_text("Hi Jordan, see you")
    expect(page.get_by_test_id("preview-count-confirmation")).to_have_text("18 characters · 1 text message")

    # A chip puts its variable at the cursor and the preview follows without a keystroke.
    page.get_by_test_id("var-confirmation-when").click()
    expect(body).to_have_value("Hi {customer_first_name}, see you {when}")
    expect(preview).to_contain_text("Hi Jordan, see you Tue Nov 24, 9:00 AM")
    expect(page.get_by_test_id("preview-count-confirmation")).to_have_text("38 characters · 1 text message")
    screenshot(page, "message-templates-1-preview-phone")

    # An unknown variable: the preview turns into the error; what was typed stays.
    body.press("End")
    body.press_sequentially(" for {price}")
    error = page.get_by_test_id("preview-error-confirmation")
    expect(error).to_contain_text("Unknown variable {price}. You can use {business}, {customer_first_name}")
    expect(body).to_have_value("Hi {customer_first_name}, see you {when} for {price}")
    screenshot(page, "message-templates-2-unknown-variable-phone")

    # Saving it anyway is refused on the page (422), with the text kept next to the error.
    with page.expect_navigation():
        page.get_by_test_id("save-confirmation").click()
    expect(page.get_by_test_id("error-confirmation")).to_contain_text("Unknown variable {price}")
    expect(page.get_by_test_id("body-confirmation")).to_have_value(
        "Hi {customer_first_name}, see you {when} for {price}"
    )
    page.evaluate("window.scrollTo(0, 0)")  # the form's #anchor scrolled the page; shoot it from the top
    screenshot(page, "message-templates-3-refused-phone")

    # Fix it and save: the card says it is customised.
    body = page.get_by_test_id("body-confirmation")
    body.fill("Hi {customer_first_name}, see you {when} at {address}.")
    with page.expect_navigation():
        page.get_by_test_id("save-confirmation").click()
    expect(page.get_by_test_id("custom-confirmation")).to_be_visible()
    expect(page.get_by_test_id("preview-confirmation")).to_contain_text("at 1200 Main St, Austin.")
    assert stored(app, t) == {"confirmation": "Hi {customer_first_name}, see you {when} at {address}."}
    # Nothing overflows sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "message-templates-4-saved-laptop")
    # No CSP violations or script errors (the refused save's 422 is logged by Chromium as a failed load).
    assert [p for p in problems if "status of 422" not in p] == [], problems
