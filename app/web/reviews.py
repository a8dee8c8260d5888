"""Reviews on both hosts: the customer's review page and the public list on the booking site
(``site`` blueprint), the owner's list with replies and the Google review link on the dashboard
(``dashboard`` blueprint, owners and admins only)."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.booking import services as booking_services
from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from app.reviews import services as reviews
from app.reviews import tokens as review_tokens
from app.reviews.errors import NotReviewable
from app.reviews.models import SUB_RATINGS
from app.urls import site_url
from app.web import dashboard, site

PER_PAGE = 20


def _now() -> datetime:
    return datetime.now(UTC)


def _page_arg() -> int:
    return min(max(request.args.get("page", 1, type=int) or 1, 1), 10_000)


# The booking site ---------------------------------------------------------------------------------


@site.bp.context_processor
def review_figures():
    """``site_reviews()`` for the home page: the average and the latest few. A function, so pages
    that don't show reviews don't query them."""

    def site_reviews(limit: int = 5):
        return SimpleNamespace(
            stats=reviews.review_stats(g.tenant.id), recent=reviews.recent_reviews(g.tenant.id, limit)
        )

    return {"site_reviews": site_reviews}


@site.bp.app_template_filter("review_date")
def review_date(dt: datetime) -> str:
    """ "March 4, 2026" in the business's time zone (reviews outlive the year they were written in)."""
    from zoneinfo import ZoneInfo

    tenant = g.get("tenant")
    local = dt.astimezone(ZoneInfo(tenant.time_zone)) if tenant else dt
    return local.strftime("%B %-d, %Y")


def _reviewed_booking(token: str):
    # The token is the customer's key: keep it out of Referer headers (the Google link is one click away).
    g.referrer_policy = "no-referrer"
    try:
        tenant_id, booking_id = review_tokens.read_review_token(token)
    except FielddayError:
        abort(404)
    if tenant_id != g.tenant.id:
        abort(404)  # another business's link: nothing to see on this site
    try:
        booking = booking_services.get_booking(booking_id)
    except FielddayError:
        abort(404)
    if booking.customer is not None and not booking.customer.reachable:
        abort(404)  # anonymised or asked to be deleted: the link no longer adds to their record
    return booking


@site.bp.route("/review/<token>", methods=["GET", "POST"])
def review_page(token: str):
    booking = _reviewed_booking(token)
    if booking.status != "completed":
        raise NotReviewable()
    now = _now()
    review = reviews.get_review_for_booking(booking)
    errors: dict[str, str] = {}
    form: dict = {}
    if request.method == "POST":
        try:
            reviews.submit_review(booking, request.form, now=now)
        except ValidationFailed as exc:
            db.session.rollback()
            errors, form = exc.errors, request.form.to_dict()
        else:
            db.session.commit()
            return redirect(url_for("site.review_page", token=token, thanks=1))
    elif review is not None and request.args.get("thanks"):
        return render_template("site/review_thanks.html", tenant=g.tenant, review=review, token=token)
    if not form:
        form = {
            "rating": review.rating if review else "",
            **{k: (getattr(review, k) or "") if review else "" for k in SUB_RATINGS},
            "comment": (review.comment or "") if review else "",
            "author_name": review.author_name if review else reviews.default_author_name(booking.customer),
        }
    return render_template(
        "site/review.html",
        tenant=g.tenant,
        booking=booking,
        review=review,
        token=token,
        form=form,
        errors=errors,
        locked=not reviews.can_edit(review, now=now),
        deadline=reviews.edit_deadline(review) if review else None,
        sub_ratings=SUB_RATINGS,
        comment_max=reviews.COMMENT_MAX,
        name_max=reviews.NAME_MAX,
    ), (422 if errors else 200)


@site.bp.get("/reviews", endpoint="reviews")
def site_reviews_page():
    stats = reviews.review_stats(g.tenant.id)
    pages = max(math.ceil(stats.count / PER_PAGE), 1)
    page = min(_page_arg(), pages)
    rows, _ = reviews.page_reviews(g.tenant.id, page=page, per_page=PER_PAGE)
    return render_template(
        "site/reviews.html", tenant=g.tenant, stats=stats, rows=rows, page=page, pages=pages, sub_ratings=SUB_RATINGS
    )


# The dashboard ------------------------------------------------------------------------------------


def _render_dashboard(*, status: int = 200, reply_errors: dict | None = None, link_error: str | None = None, **form):
    show = request.args.get("show", "all")
    show = show if show in reviews.FILTERS else "all"
    rows, total = reviews.page_reviews(g.tenant.id, page=_page_arg(), per_page=PER_PAGE, show=show)
    pages = max(math.ceil(total / PER_PAGE), 1)
    return render_template(
        "dashboard/reviews.html",
        rows=rows,
        total=total,
        page=min(_page_arg(), pages),
        pages=pages,
        show=show,
        filters=reviews.FILTERS,
        stats=reviews.review_stats(g.tenant.id),
        sub_ratings=SUB_RATINGS,
        reply_errors=reply_errors or {},
        link_error=link_error,
        form=form,
        reply_max=reviews.REPLY_MAX,
        site_reviews_url=site_url(g.tenant.subdomain, "/reviews"),
    ), status


@dashboard.bp.get("/reviews", endpoint="reviews")
def dashboard_reviews_page():
    return _render_dashboard()


@dashboard.bp.post("/reviews/<uuid:review_id>/reply")
def review_reply(review_id: uuid.UUID):
    review = reviews.get_review(g.tenant.id, review_id)
    back = redirect(url_for("dashboard.reviews", show=request.args.get("show"), page=request.args.get("page")))
    had_reply = review.reply is not None
    if request.form.get("action") == "remove":
        if had_reply:
            reviews.remove_reply(review)
            _audit("review.reply_removed", review)
            db.session.commit()
        flash("Reply removed.", "info")
        return back
    try:
        reviews.reply(review, request.form.get("reply", ""), actor_id=current_user.id, now=_now())
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_dashboard(
            status=422, reply_errors={review_id: exc.errors["reply"]}, reply_text={review_id: request.form.get("reply")}
        )
    _audit("review.reply_changed" if had_reply else "review.replied", review)
    db.session.commit()
    flash(f"Reply to {review.author_name} posted on your booking site.", "success")
    return back


@dashboard.bp.post("/reviews/google-link")
def review_google_link():
    tenant = g.tenant
    raw = request.form.get("google_review_url", "")
    try:
        url = reviews.set_google_review_url(tenant, raw)
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_dashboard(status=422, link_error=exc.errors["google_review_url"], google_review_url=raw)
    audit.record(
        tenant.id,
        "tenant.google_review_link_set" if url else "tenant.google_review_link_cleared",
        actor_id=current_user.id,
        subject_type="tenant",
        subject_id=tenant.id,
        detail={"url": url} if url else {},
    )
    db.session.commit()
    flash(
        "Google review link saved: every reviewer sees it after posting." if url else "Google review link removed.",
        "success",
    )
    return redirect(url_for("dashboard.reviews"))


def _audit(action: str, review) -> None:
    audit.record(
        g.tenant.id,
        action,
        actor_id=current_user.id,
        subject_type="review",
        subject_id=review.id,
        detail={"booking_id": str(review.booking_id), "rating": review.rating},
    )
