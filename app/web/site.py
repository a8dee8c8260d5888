"""A tenant's branded booking site at ``<subdomain>.<base>``. Anonymous: it never
reads the owner's session (which is not even sent here: the cookie is host-only)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.booking import services as booking_services
from app.booking import tokens as booking_tokens
from app.booking.errors import SlotTaken, SlotUnavailable
from app.catalog import services as catalog
from app.customers.models import SIZE_CLASSES
from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from app.geo.geocoding import get_geocoder
from app.urls import site_url
from tenants import quotas
from tenants import settings as tenant_settings
from tenants.web import require_tenant

bp = Blueprint("site", __name__)


@bp.before_request
def need_tenant():
    require_tenant()


@bp.get("/")
def home():
    packages = catalog.list_packages(active_only=True, kind="package")
    return render_template("site/home.html", tenant=g.tenant, packages=packages)


@bp.get("/brand.css")
def brand_css():
    # Colours come as a stylesheet, so the CSP can forbid inline styles.
    css = f":root {{ --brand: {g.tenant.brand_color}; }}\n"
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get("/logo")
def logo():
    return tenant_settings.logo_response(g.tenant)


# The booking flow: service → vehicle → address → time → contact → review. The draft lives in
# this host's own session cookie (host-only, so it never leaves this booking site).


DRAFT = "booking_draft"


def _now() -> datetime:
    return datetime.now(UTC)


def _draft() -> dict:
    draft = session.get(DRAFT) or {}
    # A draft from another business (same browser, other site) is never reused.
    return draft if draft.get("tenant") == str(g.tenant.id) else {"tenant": str(g.tenant.id)}


def _save(draft: dict) -> None:
    session[DRAFT] = draft


def _priced(draft: dict):
    return booking_services.price_selection(
        draft.get("package_id"), draft.get("addon_ids", []), draft.get("vehicle", {}).get("size_class", "")
    )


def _need(draft: dict, *keys: str):
    for key, endpoint in (
        ("package_id", "site.book_service"),
        ("place", "site.book_address"),
        ("starts_at", "site.book_time"),
        ("customer", "site.book_details"),
    ):
        if key in keys and not draft.get(key):
            return redirect(url_for(endpoint))
    return None


@bp.route("/book", methods=["GET", "POST"])
def book_service():
    if quotas.is_full(g.tenant, "jobs"):  # say so before the customer fills anything in
        return booking_paused()
    draft = _draft()
    packages = catalog.list_packages(active_only=True, kind="package")
    addons = catalog.list_packages(active_only=True, kind="addon")
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        vehicle = {k: form.get(k, "") for k in ("size_class", "year", "make", "model", "color")}
        candidate = {
            **draft,
            "package_id": form.get("package_id"),
            "addon_ids": form.getlist("addon_ids"),
            "vehicle": vehicle,
        }
        try:
            priced = _priced(candidate)
            from app.customers.services import clean_vehicle

            clean_vehicle(vehicle)
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            if draft.get("duration_min") != int(priced.duration.total_seconds() // 60):
                candidate.pop("starts_at", None)  # a different length needs a new time
            candidate["duration_min"] = int(priced.duration.total_seconds() // 60)
            _save(candidate)
            return redirect(url_for("site.book_address"))
        draft = candidate
    elif request.args.get("package"):
        draft["package_id"] = request.args["package"]
    return render_template(
        "site/book_service.html",
        tenant=g.tenant,
        draft=draft,
        packages=packages,
        addons=addons,
        sizes=SIZE_CLASSES,
        errors=errors,
        step=1,
    ), (422 if errors else 200)


@bp.route("/book/address", methods=["GET", "POST"])
def book_address():
    draft = _draft()
    if (r := _need(draft, "package_id")) is not None:
        return r
    errors: dict[str, str] = {}
    query = request.form.get("address", "") if request.method == "POST" else (draft.get("address_query") or "")
    confirming = False
    if request.method == "POST":
        place = get_geocoder().geocode(query)
        if place is None:
            errors["address"] = "We couldn't find that address. Use a street number and name, like 1100 Congress Ave."
        else:
            p = place.as_dict()
            known = draft.get("place") or {}
            same = known.get("line1") == p["line1"] and draft.get("pin_shown")
            if same:
                try:  # the customer may have dragged the pin onto the driveway
                    lat, lng = float(request.form.get("lat", "")), float(request.form.get("lng", ""))
                    if abs(lat - p["lat"]) < 0.05 and abs(lng - p["lng"]) < 0.05:
                        p["lat"], p["lng"] = round(lat, 6), round(lng, 6)
                except ValueError:
                    pass
            draft.update(place=p, address_query=query, access_notes=request.form.get("access_notes", "")[:500])
            if not same:
                # First time we place this address: show the pin and let the customer confirm or move it.
                draft["pin_shown"] = True
                _save(draft)
                confirming = True
            else:
                _save(draft)
                return redirect(url_for("site.book_time"))
    return render_template(
        "site/book_address.html",
        tenant=g.tenant,
        draft=draft,
        query=query,
        errors=errors,
        step=2,
        confirming=confirming,
        tile_url=current_app.config["MAP_TILE_URL"],
        tile_attribution=current_app.config["MAP_TILE_ATTRIBUTION"],
    ), (422 if errors else 200)


def _day_choices(tenant, duration: timedelta, now: datetime, days: int = 14, place: dict | None = None):
    tz = ZoneInfo(tenant.time_zone)
    first = (now + timedelta(minutes=tenant.lead_time_min)).astimezone(tz).date()
    days = min(days, tenant.horizon_days + 1)
    return booking_services.slots_for_days(tenant, first, days, duration, now=now, place=place)


@bp.get("/book/time")
def book_time():
    draft = _draft()
    if (r := _need(draft, "package_id", "place")) is not None:
        return r
    return _render_time(draft)


def _render_time(
    draft: dict,
    *,
    day: date | None = None,
    message: str | None = None,
    status: int = 200,
    reschedule_token: str | None = None,
    duration: timedelta | None = None,
    place: dict | None = None,
):
    now = _now()
    duration = duration or timedelta(minutes=int(draft.get("duration_min") or 60))
    # Only times a technician can really drive to (route-aware availability, DESIGN §5).
    by_day = _day_choices(g.tenant, duration, now, place=place or draft.get("place"))
    chosen_day = request.args.get("day")
    try:
        selected = date.fromisoformat(chosen_day) if chosen_day else day
    except ValueError:
        selected = day
    if selected not in by_day:
        selected = next((d for d, slots in by_day.items() if slots), next(iter(by_day), None))
    return render_template(
        "site/book_time.html",
        tenant=g.tenant,
        draft=draft,
        by_day=by_day,
        selected=selected,
        slots=by_day.get(selected, []),
        message=message,
        step=3,
        reschedule_token=reschedule_token,
    ), status


@bp.post("/book/time")
def choose_time():
    draft = _draft()
    if (r := _need(draft, "package_id", "place")) is not None:
        return r
    try:
        starts_at = datetime.fromisoformat(request.form.get("starts_at", ""))
        if starts_at.tzinfo is None:
            raise ValueError
    except ValueError:
        return _render_time(draft, message="Please pick one of the times below.", status=422)
    draft["starts_at"] = starts_at.astimezone(UTC).isoformat()
    _save(draft)
    return redirect(url_for("site.book_details"))


@bp.route("/book/details", methods=["GET", "POST"])
def book_details():
    draft = _draft()
    if (r := _need(draft, "package_id", "place", "starts_at")) is not None:
        return r
    errors: dict[str, str] = {}
    form = request.form if request.method == "POST" else draft.get("customer", {})
    if request.method == "POST":
        from app.customers.services import DEFAULT_REGION, clean_customer

        data = {k: request.form.get(k, "") for k in ("name", "phone", "email")}
        try:
            clean_customer(data, region=DEFAULT_REGION.get(g.tenant.currency, "US"))
            if not data["phone"].strip():
                raise ValidationFailed({"phone": "Enter a mobile number: we text you when we're on the way."})
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            draft["customer"] = data
            draft["notes"] = request.form.get("notes", "")[:1000]
            _save(draft)
            return redirect(url_for("site.book_review"))
    return render_template("site/book_details.html", tenant=g.tenant, draft=draft, form=form, errors=errors, step=4), (
        422 if errors else 200
    )


@bp.route("/book/review", methods=["GET", "POST"])
def book_review():
    draft = _draft()
    if (r := _need(draft, "package_id", "place", "starts_at", "customer")) is not None:
        return r
    try:
        priced = _priced(draft)
    except ValidationFailed:
        return redirect(url_for("site.book_service"))
    starts_at = datetime.fromisoformat(draft["starts_at"])
    if request.method == "POST":
        req = booking_services.BookingRequest(
            package_id=draft["package_id"],
            addon_ids=draft.get("addon_ids", []),
            vehicle=draft["vehicle"],
            place=draft["place"],
            access_notes=draft.get("access_notes"),
            customer=draft["customer"],
            starts_at=starts_at,
            notes=draft.get("notes"),
            source="site",
        )
        try:
            booking = booking_services.book(g.tenant, req, now=_now())
        except quotas.PlanLimitReached:
            db.session.rollback()  # nothing booked; the draft stays, the owner gets an e-mail
            return booking_paused(attempted=True)
        except (SlotTaken, SlotUnavailable) as exc:
            db.session.rollback()
            draft.pop("starts_at", None)
            _save(draft)
            lost_day = starts_at.astimezone(ZoneInfo(g.tenant.time_zone)).date()
            return _render_time(draft, message=exc.message, status=409, day=lost_day)
        db.session.commit()
        from app.booking.jobs import schedule_hold_expiry

        schedule_hold_expiry(booking)
        session.pop(DRAFT, None)
        token = booking_tokens.make_manage_token(booking.tenant_id, booking.id, booking.token_version)
        if booking.status == "pending":
            return _to_deposit_checkout(booking, token)
        return redirect(url_for("site.manage_booking", token=token, new=1))
    from app.catalog.models import Package
    from app.payments.rules import deposit_for

    package = db.session.get(Package, (g.tenant.id, priced.items[0]["package_id"]))
    return render_template(
        "site/book_review.html",
        tenant=g.tenant,
        draft=draft,
        priced=priced,
        starts_at=starts_at,
        sizes=SIZE_CLASSES,
        step=5,
        deposit=deposit_for(g.tenant, package, priced.price_cents),
    )


def booking_paused(*, attempted: bool = False, what: str = "booking"):
    """The business is at its plan's limit: a polite page with its phone and e-mail, never the
    owner's upgrade message (tenants/quotas.py)."""
    return render_template(
        "site/booking_paused.html",
        tenant=g.tenant,
        message=quotas.public_message(g.tenant),
        attempted=attempted,
        what=what,
    ), (402 if attempted else 200)


# Paying: the deposit at booking, what is owed later, receipts --------------------------------------


def _manage_url(token: str, **params) -> str:
    return site_url(g.tenant.subdomain, url_for("site.manage_booking", token=token, **params))


def _to_deposit_checkout(booking, token: str):
    """Open (or reopen) the deposit's Checkout Session and send the customer there. If Stripe
    can't be reached the hold stands and the manage page offers the button again."""
    import stripe

    from app.payments import services as payments

    # Stripe swaps in the session id itself; the braces must reach it unescaped.
    success = _manage_url(token) + "?paid={CHECKOUT_SESSION_ID}"
    try:
        payment = payments.open_deposit_checkout(
            g.tenant, booking, success_url=success, cancel_url=_manage_url(token, payment="canceled")
        )
    except (stripe.StripeError, FielddayError) as exc:
        db.session.rollback()
        current_app.logger.warning("deposit checkout for %s failed: %r", booking.id, exc)
        message = exc.message if isinstance(exc, FielddayError) else "We couldn't open the payment page just now."
        flash(f"{message} Your time is held for you: try the button below.", "error")
        return redirect(url_for("site.manage_booking", token=token))
    db.session.commit()
    return redirect(payment.checkout_url, code=303)


@bp.post("/b/<token>/pay")
def pay_deposit(token: str):
    booking = _booking_for_token(token, for_update=True)
    if booking.status != "pending":
        return redirect(url_for("site.manage_booking", token=token))
    return _to_deposit_checkout(booking, token)


def _pay_booking(token: str, *, for_update: bool = False, receipt: bool = False):
    """The booking a pay link (or, with ``receipt``, a receipt link) names on this site; 404 otherwise."""
    from app.payments import tokens as pay_tokens

    g.referrer_policy = "no-referrer"
    read = pay_tokens.read_receipt_token if receipt else pay_tokens.read_pay_token
    try:
        tenant_id, booking_id = read(token)
    except FielddayError:
        abort(404)
    if tenant_id != g.tenant.id:
        abort(404)
    try:
        booking = booking_services.get_booking(booking_id, for_update=for_update)
    except FielddayError:
        abort(404)
    if booking.customer.anonymised_at is not None:  # the person was removed: old links open nothing
        abort(404)
    return booking


@bp.get("/pay/<token>")
def pay_link(token: str):
    from app.payments import services as payments
    from app.payments import tokens as pay_tokens

    booking = _pay_booking(token)
    if request.args.get("paid"):
        _settle_from_redirect(request.args["paid"])
    due = payments.balance_due(booking)
    receipt = url_for("site.receipt", token=pay_tokens.make_receipt_token(g.tenant.id, booking.id))
    return render_template(
        "site/pay.html",
        tenant=g.tenant,
        booking=booking,
        token=token,
        due=due,
        paid=payments.paid_total(booking),
        receipt_url=receipt,
        canceled=request.args.get("payment") == "canceled",
        can_pay=due >= 50 and g.tenant.takes_card_payments,
    )


@bp.post("/pay/<token>")
def pay_balance(token: str):
    import stripe

    from app.payments import services as payments

    booking = _pay_booking(token, for_update=True)
    here = site_url(g.tenant.subdomain, url_for("site.pay_link", token=token))
    try:
        payment = payments.open_balance_checkout(
            g.tenant, booking, success_url=here + "?paid={CHECKOUT_SESSION_ID}", cancel_url=here + "?payment=canceled"
        )
    except (stripe.StripeError, FielddayError) as exc:
        db.session.rollback()
        current_app.logger.warning("pay link checkout for %s failed: %r", booking.id, exc)
        flash(
            exc.message if isinstance(exc, FielddayError) else "We couldn't open the payment page. Try again.", "error"
        )
        return redirect(url_for("site.pay_link", token=token))
    db.session.commit()
    return redirect(payment.checkout_url, code=303)


def _settle_from_redirect(session_id: str) -> None:
    """Back from Checkout: don't wait for the webhook to show the result (it may be slower than
    the customer). Same idempotent code path as the webhook job."""
    import stripe

    from app.payments import services as payments

    if not session_id.startswith("cs_") or len(session_id) > 200:
        return
    try:
        payments.fulfil_checkout(session_id)
        db.session.commit()
    except (stripe.StripeError, FielddayError) as exc:
        db.session.rollback()
        current_app.logger.warning("could not settle checkout %s on return: %r", session_id, exc)


@bp.get("/r/<token>")
def receipt(token: str):
    from app.payments import services as payments
    from app.payments import tokens as pay_tokens

    booking = _pay_booking(token, receipt=True)
    rows = [p for p in payments.payments_for(booking) if p.status == "succeeded"]
    return render_template(
        "site/receipt.html",
        tenant=g.tenant,
        booking=booking,
        payments=rows,
        due=payments.balance_due(booking),
        paid=payments.paid_total(booking),
        pay_url=url_for("site.pay_link", token=pay_tokens.make_pay_token(g.tenant.id, booking.id))
        if booking.status in payments.PAYABLE and g.tenant.takes_card_payments
        else None,
    )


# Manage my booking -----------------------------------------------------------------


def _booking_for_token(token: str, *, for_update: bool = False):
    g.referrer_policy = "no-referrer"
    try:
        tenant_id, booking_id, version = booking_tokens.read_manage_token(token)
    except FielddayError:
        abort(404)
    if tenant_id != g.tenant.id:
        abort(404)  # a link for another business's booking: nothing to see here
    try:
        # Changes lock the row: two tabs cannot both spend the last reschedule, and a customer's
        # cancel cannot overwrite a job staff just started.
        booking = booking_services.get_booking(booking_id, for_update=for_update)
    except FielddayError:
        abort(404)
    if booking.token_version != version:
        abort(404)
    return booking


@bp.get("/b/<token>")
def manage_booking(token: str):
    from app.payments import services as payments
    from app.payments import tokens as pay_tokens

    booking = _booking_for_token(token)
    if request.args.get("paid"):
        _settle_from_redirect(request.args["paid"])  # commits; the booking reloads below
    deposit = payments.deposit_payment(booking)
    due = payments.balance_due(booking)
    money = {
        "deposit": deposit,
        "due": due,
        "paid": payments.paid_total(booking),
        "canceled_checkout": request.args.get("payment") == "canceled" and booking.status == "pending",
        "just_paid": bool(request.args.get("paid")) and deposit is not None and deposit.status == "succeeded",
        "receipt_url": url_for("site.receipt", token=pay_tokens.make_receipt_token(g.tenant.id, booking.id)),
        "pay_url": url_for("site.pay_link", token=pay_tokens.make_pay_token(g.tenant.id, booking.id)),
        "owes_now": booking.payment_status in ("action_required", "failed") and due > 0,
    }
    now = _now()
    cutoff = booking.starts_at - timedelta(hours=g.tenant.cancel_cutoff_hours)
    can_change = booking.status in ("pending", "confirmed") and now <= cutoff
    return render_template(
        "site/manage.html",
        tenant=g.tenant,
        booking=booking,
        token=token,
        new=request.args.get("new") == "1",
        can_change=can_change,
        can_reschedule=can_change and booking.reschedule_count < g.tenant.max_reschedules,
        cutoff=cutoff,
        money=money,
    )


@bp.route("/b/<token>/reschedule", methods=["GET", "POST"])
def reschedule(token: str):
    booking = _booking_for_token(token, for_update=request.method == "POST")
    duration = booking.ends_at - booking.starts_at
    draft = {"place": {"lat": booking.address.lat, "lng": booking.address.lng}}
    if request.method == "POST":
        try:
            new_start = datetime.fromisoformat(request.form.get("starts_at", ""))
            if new_start.tzinfo is None:
                raise ValueError
        except ValueError:
            return _render_time(
                draft,
                message="Please pick one of the times below.",
                status=422,
                reschedule_token=token,
                duration=duration,
            )
        try:
            booking_services.reschedule_booking(g.tenant, booking, new_start, actor_type="customer", now=_now())
        except (SlotTaken, SlotUnavailable) as exc:
            db.session.rollback()
            lost_day = new_start.astimezone(ZoneInfo(g.tenant.time_zone)).date()
            return _render_time(
                draft, message=exc.message, status=409, reschedule_token=token, duration=duration, day=lost_day
            )
        except FielddayError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return redirect(url_for("site.manage_booking", token=token))
        db.session.commit()
        flash("Your booking has been moved.", "success")
        return redirect(url_for("site.manage_booking", token=token))
    return _render_time(draft, reschedule_token=token, duration=duration)


@bp.post("/b/<token>/cancel")
def cancel(token: str):
    booking = _booking_for_token(token, for_update=True)
    try:
        booking_services.cancel_booking(
            g.tenant, booking, actor_type="customer", now=_now(), reason=request.form.get("reason", "")[:200] or None
        )
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("site.manage_booking", token=token))
    db.session.commit()
    flash("Your booking is canceled.", "info")
    return redirect(url_for("site.manage_booking", token=token))
