"""Quotes on both hosts (DESIGN §5a). On the dashboard (owners and admins): the pipeline, the
builder, sending, versions, duplicates, the printable page and customers' requests. On the
booking site (anonymous, phone first): request a quote with photos; open a quote by its signed
link, pick an option, a time the route allows and pay the deposit, or decline."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.booking.errors import SlotTaken, SlotUnavailable
from app.catalog import services as catalog
from app.customers.models import SIZE_CLASSES
from app.errors import FielddayError, ValidationFailed
from app.extensions import db, limiter
from app.quotes import services as quotes
from app.quotes import tokens as quote_tokens
from app.quotes import totals as money
from app.quotes.models import LINE_KINDS, PIPELINE, STATUS_LABELS
from app.urls import site_url
from app.web import dashboard, site
from tenants.quotas import PlanLimitReached


def _now() -> datetime:
    return datetime.now(UTC)


# The dashboard ------------------------------------------------------------------------------------


def _local_day(raw: str | None, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


@dashboard.bp.get("/quotes", endpoint="quotes")
def quotes_list():
    tenant = g.tenant
    tz = ZoneInfo(tenant.time_zone)
    today = _now().astimezone(tz).date()
    first = _local_day(request.args.get("from"), today - timedelta(days=29))
    last = _local_day(request.args.get("to"), today)
    if last < first:
        first, last = last, first
    start = datetime.combine(first, datetime.min.time(), tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
    status = request.args.get("status") or None
    if status not in PIPELINE:
        status = None
    rows = quotes.list_quotes(status=status)
    return render_template(
        "dashboard/quotes.html",
        rows=rows,
        status=status,
        labels=STATUS_LABELS,
        pipeline_order=PIPELINE,
        stats=quotes.pipeline(tenant, start, end),
        period={"from": first.isoformat(), "to": last.isoformat()},
        headline=quotes.headline_amount,
        new_requests=quotes.count_new_requests(),
        tax_rate=quotes.tax_rate_bps(tenant),
        site_quote_request_url=site_url(tenant.subdomain, "/quote-request"),
    )


@dashboard.bp.post("/quotes/tax-rate")
def quotes_tax_rate():
    try:
        bps = quotes.set_tax_rate(g.tenant, request.form.get("tax_rate"))
    except ValidationFailed as exc:
        db.session.rollback()
        flash(exc.errors["tax_rate"], "error")
        return redirect(url_for("dashboard.quotes"))
    db.session.commit()
    flash(f"New quotes add {bps / 100:g} % tax.", "success")
    return redirect(url_for("dashboard.quotes"))


@dashboard.bp.route("/quotes/new", methods=["GET", "POST"])
def quote_new():
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        try:
            quote = quotes.quote_for_new_customer(g.tenant, form, actor_id=current_user.id, now=_now())
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            return redirect(url_for("dashboard.quote_detail", quote_id=quote.id))
    return render_template("dashboard/quote_new.html", form=form, errors=errors, sizes=SIZE_CLASSES), (
        422 if errors else 200
    )


@dashboard.bp.get("/quotes/requests")
def quote_requests():
    return render_template("dashboard/quote_requests.html", rows=quotes.list_requests(), sizes=SIZE_CLASSES)


@dashboard.bp.get("/quotes/requests/<uuid:quote_request_id>")
def quote_request_detail(quote_request_id: uuid.UUID):
    req = quotes.get_request(quote_request_id)
    from app.web.tech import _allow_storage

    photos = quotes.request_photos(req)
    if photos:
        _allow_storage("img-src")
    existing = db.session.scalar(
        db.select(quotes.Quote).where(quotes.Quote.request_id == req.id, quotes.Quote.status != "superseded").limit(1)
    )
    return render_template(
        "dashboard/quote_request.html", req=req, photos=photos, sizes=SIZE_CLASSES, existing=existing
    )


@dashboard.bp.post("/quotes/requests/<uuid:quote_request_id>/quote")
def quote_request_to_quote(quote_request_id: uuid.UUID):
    req = quotes.get_request(quote_request_id)
    quote = quotes.quote_from_request(g.tenant, req, actor_id=current_user.id, now=_now())
    db.session.commit()
    return redirect(url_for("dashboard.quote_detail", quote_id=quote.id))


@dashboard.bp.post("/quotes/requests/<uuid:quote_request_id>/close")
def quote_request_close(quote_request_id: uuid.UUID):
    quotes.close_request(quotes.get_request(quote_request_id))
    db.session.commit()
    flash("Request closed.", "info")
    return redirect(url_for("dashboard.quote_requests"))


@dashboard.bp.get("/quotes/request-photos/<uuid:request_photo_id>")
def quote_request_photo(request_photo_id: uuid.UUID):
    """A stored request photo: a 302 to a presigned GET valid for five minutes (RLS checked)."""
    photo = quotes.get_request_photo(request_photo_id)
    if photo.status != "stored":
        abort(404)
    return redirect(quotes.photo_read_url(photo), code=302)


def _render_builder(quote, *, status: int = 200, errors: dict | None = None, form: dict | None = None):
    packages = catalog.list_packages(active_only=True)
    return render_template(
        "dashboard/quote.html",
        quote=quote,
        by_tier=money.tier_totals(quote),
        tiers=money.tiers(quote.lines),
        packages=[p for p in packages if p.price_for(quote.size_class)],
        unpriced=[p for p in packages if not p.price_for(quote.size_class)],
        sizes=SIZE_CLASSES,
        labels=STATUS_LABELS,
        line_kinds=LINE_KINDS,
        versions=quotes.versions_of(quote),
        link=quotes.quote_link(g.tenant, quote) if quote.status not in ("draft", "superseded") else None,
        errors=errors or {},
        form=form or {},
    ), status


@dashboard.bp.get("/quotes/<uuid:quote_id>")
def quote_detail(quote_id: uuid.UUID):
    return _render_builder(quotes.get_quote(quote_id))


def _back(quote, anchor: str = ""):
    return redirect(url_for("dashboard.quote_detail", quote_id=quote.id) + anchor)


def _try(quote, fn, success: str, anchor: str = ""):
    """Run one builder change; on bad input show the builder again with the errors."""
    try:
        fn()
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_builder(quotes.get_quote(quote.id), status=422, errors=exc.errors, form=request.form.to_dict())
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(quote)
    db.session.commit()
    if success:
        flash(success, "success")
    return _back(quote, anchor)


@dashboard.bp.post("/quotes/<uuid:quote_id>/details")
def quote_details(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id, for_update=True)
    return _try(quote, lambda: quotes.update_details(g.tenant, quote, request.form, now=_now()), "Quote saved.")


@dashboard.bp.post("/quotes/<uuid:quote_id>/lines")
def quote_add_line(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id, for_update=True)
    if request.form.get("action") == "custom":
        return _try(quote, lambda: quotes.add_custom_line(quote, request.form), "", "#lines")
    return _try(
        quote, lambda: quotes.add_catalog_line(quote, request.form.get("package_id"), request.form), "", "#lines"
    )


@dashboard.bp.post("/quotes/<uuid:quote_id>/lines/<uuid:quote_line_id>")
def quote_line(quote_id: uuid.UUID, quote_line_id: uuid.UUID):
    quote = quotes.get_quote(quote_id, for_update=True)
    if request.form.get("action") == "remove":
        return _try(quote, lambda: quotes.remove_line(quote, quote_line_id), "Line removed.", "#lines")
    return _try(quote, lambda: quotes.update_line(quote, quote_line_id, request.form), "", "#lines")


@dashboard.bp.post("/quotes/<uuid:quote_id>/send")
def quote_send(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id)
    name = quote.customer.name
    return _try(quote, lambda: quotes.send_quote(g.tenant, quote, now=_now()), f"Quote {quote.label} sent to {name}.")


@dashboard.bp.post("/quotes/<uuid:quote_id>/revise")
def quote_revise(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id, for_update=True)
    try:
        new = quotes.revise_quote(g.tenant, quote, actor_id=current_user.id, now=_now())
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(quote)
    db.session.commit()
    flash(f"Version {new.version} is a draft: change it, then send it to replace version {quote.version}.", "info")
    return _back(new)


@dashboard.bp.post("/quotes/<uuid:quote_id>/duplicate")
def quote_duplicate(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id)
    new = quotes.duplicate_quote(g.tenant, quote, actor_id=current_user.id, now=_now())
    db.session.commit()
    flash(f"{new.label} is a copy of {quote.label}.", "success")
    return _back(new)


@dashboard.bp.post("/quotes/<uuid:quote_id>/delete")
def quote_delete(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id, for_update=True)
    try:
        quotes.delete_draft(quote)
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(quote)
    db.session.commit()
    flash("Draft deleted.", "info")
    return redirect(url_for("dashboard.quotes"))


@dashboard.bp.get("/quotes/<uuid:quote_id>/print")
def quote_print(quote_id: uuid.UUID):
    quote = quotes.get_quote(quote_id)
    return render_template(
        "quotes/print.html",
        quote=quote,
        tenant=g.tenant,
        by_tier=money.tier_totals(quote),
        tiers=money.tiers(quote.lines),
        sizes=SIZE_CLASSES,
        back=url_for("dashboard.quote_detail", quote_id=quote.id),
    )


@dashboard.bp.get("/quotes/<uuid:quote_id>/pdf")
def quote_pdf(quote_id: uuid.UUID):
    from flask import Response

    from app.quotes import pdf

    quote = quotes.get_quote(quote_id)
    response = Response(pdf.render(g.tenant, quote), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="quote-{quote.label.replace(" ", "-")}.pdf"'
    return response


# The booking site: requesting a quote -----------------------------------------------------------


@site.bp.route("/quote-request", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def quote_request():
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        from app.geo.geocoding import get_geocoder

        query = " ".join(form.get("address", "").split())[:200]
        found = get_geocoder().geocode(query) if query else None
        try:
            if found is None:
                place = None
                errors["address"] = (
                    "We couldn't find that address. Use a street number and name, like 1100 Congress Ave."
                    if query
                    else "Enter the address where the vehicle will be."
                )
            else:
                place = found.as_dict()
            req = quotes.create_request(g.tenant, form, place=place)
            if errors:
                raise ValidationFailed(errors)
        except PlanLimitReached:  # a new customer at the plan's limit: polite, nothing kept
            db.session.rollback()
            return site.booking_paused(attempted=True, what="quote request")
        except ValidationFailed as exc:
            db.session.rollback()
            errors = {**exc.errors, **errors}
        else:
            db.session.commit()
            token = quote_tokens.make_request_token(g.tenant.id, req.id)
            return redirect(url_for("site.quote_request_photos", token=token))
    return render_template("site/quote_request.html", tenant=g.tenant, form=form, errors=errors, sizes=SIZE_CLASSES), (
        422 if errors else 200
    )


def _request_for_token(token: str):
    g.referrer_policy = "no-referrer"
    try:
        tenant_id, request_id = quote_tokens.read_request_token(token)
    except FielddayError:
        abort(404)
    if tenant_id != g.tenant.id:
        abort(404)
    try:
        return quotes.get_request(request_id)
    except FielddayError:
        abort(404)


@site.bp.get("/quote-request/<token>")
def quote_request_photos(token: str):
    req = _request_for_token(token)
    from app.media import photos as photo_services
    from app.web.tech import _allow_storage

    _allow_storage("connect-src")  # photos go straight from the phone to storage
    return render_template(
        "site/quote_request_photos.html",
        tenant=g.tenant,
        req=req,
        token=token,
        count=len(quotes.request_photos(req)),
        max_photos=quotes.MAX_REQUEST_PHOTOS,
        max_mb=photo_services.MAX_BYTES // (1024 * 1024),
        max_bytes=photo_services.MAX_BYTES,
        photo_types=",".join(photo_services.PHOTO_TYPES),
    )


@site.bp.post("/quote-request/<token>/photos")
@limiter.limit("60 per hour")
def quote_request_photo_new(token: str):
    """A presigned POST for one photo: JSON ``{photo_id, url, fields, done_url}``. The key is ours."""
    from tenants.plans import get_plan

    req = _request_for_token(token)
    body = request.get_json(silent=True) if request.is_json else request.form
    if not hasattr(body, "get"):
        body = {}
    ticket = quotes.start_request_upload(
        req, content_type=body.get("content_type"), size=body.get("size"), media_gb=get_plan(g.tenant.plan).media_gb
    )
    db.session.commit()
    return jsonify(
        photo_id=str(ticket.photo.id),
        url=ticket.url,
        fields=ticket.fields,
        done_url=url_for("site.quote_request_photo_done", token=token, photo_id=ticket.photo.id),
    ), 201


@site.bp.post("/quote-request/<token>/photos/<uuid:photo_id>/done")
def quote_request_photo_done(token: str, photo_id: uuid.UUID):
    from app.media.photos import PhotoNotStored

    req = _request_for_token(token)
    try:
        photo = quotes.get_request_photo(photo_id)
    except FielddayError:
        abort(404)
    if photo.request_id != req.id:
        abort(404)
    try:
        quotes.finish_request_upload(photo)
    except PhotoNotStored as exc:
        db.session.commit()
        return jsonify(error={"status": 422, "code": exc.code, "message": exc.message}), 422
    db.session.commit()
    return jsonify(photo_id=str(photo.id), status=photo.status, count=len(quotes.request_photos(req)))


# The booking site: the customer's quote ---------------------------------------------------------


def _quote_for_token(token: str, *, for_update: bool = False):
    """The quote a link names, on this business's site only (another business's link: 404)."""
    g.referrer_policy = "no-referrer"
    try:
        tenant_id, quote_id, version = quote_tokens.read_quote_token(token)
    except FielddayError:
        abort(404)
    if tenant_id != g.tenant.id:
        abort(404)
    try:
        quote = quotes.get_quote(quote_id, for_update=for_update)
    except FielddayError:
        abort(404)
    if quote.token_version != version or quote.status == "draft":
        abort(404)
    return quote


def _choice_args() -> tuple[str | None, list[str]]:
    return request.values.get("tier") or None, request.values.getlist("opt")


def _closed_page(quote, token: str):
    """Superseded, declined, expired or accepted: say so clearly (200, it's a real page)."""
    newer_link = None
    if quote.status == "superseded":
        newest = quotes.current_version(quote)
        if newest.status != "draft":
            newer_link = url_for(
                "site.quote_page", token=quote_tokens.make_quote_token(g.tenant.id, newest.id, newest.token_version)
            )
    manage = None
    if quote.status == "accepted" and quote.booking is not None:
        from app.booking import tokens as booking_tokens

        b = quote.booking
        manage = url_for(
            "site.manage_booking", token=booking_tokens.make_manage_token(b.tenant_id, b.id, b.token_version)
        )
    return render_template(
        "site/quote_closed.html",
        tenant=g.tenant,
        quote=quote,
        token=token,
        newer_link=newer_link,
        manage_link=manage,
        expired=quote.status == "expired"
        or (
            (quote.status in ("sent", "viewed") or quotes.hold_ran_out(quote))
            and quotes.is_past_expiry(g.tenant, quote, _now())
        ),
    )


@site.bp.get("/q/<token>")
def quote_page(token: str):
    quote = _quote_for_token(token)
    now = _now()
    if quotes.record_view(quote, now=now):
        db.session.commit()
    try:
        quotes.answerable(g.tenant, quote, now=now)
    except FielddayError:
        return _closed_page(quote, token)
    tier, picked = _choice_args()
    names = money.tiers(quote.lines)
    if names and tier not in names:
        tier = names[0]
    choice = None
    try:
        choice = quotes.choose(g.tenant, quote, tier if names else None, picked)
    except ValidationFailed:
        choice = None
    return render_template(
        "site/quote.html",
        tenant=g.tenant,
        quote=quote,
        token=token,
        tiers=names,
        tier=tier if names else None,
        picked=set(picked),
        choice=choice,
        by_tier=money.tier_totals(quote),
        sizes=SIZE_CLASSES,
        hold_again=quote.status == "accepted",
    )


@site.bp.get("/q/<token>/time")
def quote_time(token: str):
    quote = _quote_for_token(token)
    quotes.answerable(g.tenant, quote, now=_now())
    tier, picked = _choice_args()
    try:
        choice = quotes.choose(g.tenant, quote, tier, picked)
    except ValidationFailed as exc:
        flash(next(iter(exc.errors.values())), "error")
        return redirect(url_for("site.quote_page", token=token))
    return _render_quote_time(quote, token, choice)


def _render_quote_time(quote, token: str, choice, *, message: str | None = None, status: int = 200, day=None):
    from app.web.site import _day_choices

    duration = timedelta(minutes=choice.totals.duration_min)
    place = {"lat": quote.address.lat, "lng": quote.address.lng}
    by_day = _day_choices(g.tenant, duration, _now(), place=place)
    try:
        selected = date.fromisoformat(request.args["day"]) if request.args.get("day") else day
    except ValueError:
        selected = day
    if selected not in by_day:
        selected = next((d for d, slots in by_day.items() if slots), next(iter(by_day), None))
    return render_template(
        "site/quote_time.html",
        tenant=g.tenant,
        quote=quote,
        token=token,
        choice=choice,
        by_day=by_day,
        selected=selected,
        slots=by_day.get(selected, []),
        message=message,
    ), status


@site.bp.post("/q/<token>/accept")
def quote_accept(token: str):
    from app.booking import tokens as booking_tokens
    from app.booking.jobs import schedule_hold_expiry
    from app.web.site import _to_deposit_checkout

    quote = _quote_for_token(token)
    tier, picked = _choice_args()
    try:
        starts_at = datetime.fromisoformat(request.form.get("starts_at", ""))
        if starts_at.tzinfo is None:
            raise ValueError
    except ValueError:
        flash("Please pick one of the offered times.", "error")
        return redirect(url_for("site.quote_time", token=token, tier=tier, opt=picked))
    try:
        booking = quotes.accept_quote(g.tenant, quote.id, tier=tier, option_ids=picked, starts_at=starts_at, now=_now())
    except (SlotTaken, SlotUnavailable) as exc:
        db.session.rollback()
        quote = _quote_for_token(token)
        choice = quotes.choose(g.tenant, quote, tier, picked)
        lost_day = starts_at.astimezone(ZoneInfo(g.tenant.time_zone)).date()
        return _render_quote_time(quote, token, choice, message=exc.message, status=409, day=lost_day)
    except PlanLimitReached:  # this month's jobs are booked: polite, nothing booked or charged
        db.session.rollback()
        return site.booking_paused(attempted=True)
    except FielddayError as exc:
        # Already accepted (a second tap or tab), declined, expired, replaced: the quote page says which.
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("site.quote_page", token=token))
    db.session.commit()
    schedule_hold_expiry(booking)
    manage = booking_tokens.make_manage_token(booking.tenant_id, booking.id, booking.token_version)
    if booking.status == "pending":
        return _to_deposit_checkout(booking, manage)
    return redirect(url_for("site.manage_booking", token=manage, new=1))


@site.bp.route("/q/<token>/decline", methods=["GET", "POST"])
def quote_decline(token: str):
    quote = _quote_for_token(token, for_update=request.method == "POST")
    errors: dict[str, str] = {}
    try:
        quotes.answerable(g.tenant, quote, now=_now())
    except FielddayError:
        return _closed_page(quote, token)
    if request.method == "POST":
        try:
            quotes.decline_quote(g.tenant, quote, request.form.get("reason"), now=_now())
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        except FielddayError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return redirect(url_for("site.quote_page", token=token))
        else:
            db.session.commit()
            current_app.logger.info("quote %s declined", quote.id)
            return redirect(url_for("site.quote_page", token=token))
    return render_template("site/quote_decline.html", tenant=g.tenant, quote=quote, token=token, errors=errors), (
        422 if errors else 200
    )
