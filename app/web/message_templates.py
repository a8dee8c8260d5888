"""The owner's wording of the automatic messages (Messages → Templates, dashboard blueprint):
one card per kind with its variables and a live preview; owners and admins only (the
dashboard's default roles)."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.extensions import db
from app.links import services as links
from app.messaging import templating
from app.messaging.models import MessageTemplate
from app.messaging.templating import TemplateError
from app.web.dashboard import bp


def _samples() -> dict[str, str]:
    """Sample values with the business's own name, and links as its texts carry them: a short link of
    the real length on its own site (app/links), so the count is the one a customer's phone makes."""
    short = links.sample_url(g.tenant)
    return {
        **templating.SAMPLE,
        "business": g.tenant.name,
        **{name: short for name in templating.SAMPLE if name.endswith("_link")},
    }


def preview_of(kind: str, body: str) -> dict:
    """What the preview shows: the text with sample values (and the business's own name, whose
    length counts too) and its length, or the error."""
    try:
        text = templating.fill(templating.check(kind, body), _samples())
    except TemplateError as exc:
        return {"error": str(exc)}
    chars, segments = templating.sms_segments(text)
    return {"text": text, "chars": chars, "segments": segments}


def _cards(typed: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> list[dict]:
    typed, errors = typed or {}, errors or {}
    rows = {
        row.kind: row
        for row in db.session.scalars(db.select(MessageTemplate).where(MessageTemplate.tenant_id == g.tenant.id))
    }
    cards = []
    for kind, spec in templating.KINDS.items():
        row = rows.get(kind)
        body = typed.get(kind, row.body if row is not None else spec.default)
        cards.append(
            {
                "kind": kind,
                "spec": spec,
                "body": body,
                "custom": row is not None,
                "updated_at": row.updated_at if row is not None else None,
                "error": errors.get(kind),
                "preview": preview_of(kind, body),
            }
        )
    return cards


@bp.get("/messages/templates")
def message_templates():
    return render_template("dashboard/message_templates.html", cards=_cards(), samples=_samples())


def message_template_save(kind: str):
    spec = templating.KINDS[kind]
    back = redirect(url_for("dashboard.message_templates", _anchor=f"t-{kind}"))
    if request.form.get("action") == "reset":
        if db.session.get(MessageTemplate, (g.tenant.id, kind)) is None:
            flash(f"{spec.label} already uses our wording.", "info")
            return back
        templating.reset(g.tenant.id, kind)
        _audit("message_template.reset", kind)
        db.session.commit()
        flash(f"{spec.label} is back to our wording.", "success")
        return back
    body = request.form.get("body", "")
    before = templating.body_for(g.tenant.id, kind)
    try:
        saved = templating.save(g.tenant.id, kind, body, user_id=current_user.id)
    except TemplateError as exc:  # refused before anything was written
        page = render_template(
            "dashboard/message_templates.html",
            cards=_cards({kind: body}, {kind: str(exc)}),
            samples=_samples(),
            failed=spec.label,
        )
        return page, 422
    if saved == before:
        flash(f"{spec.label}: nothing changed.", "info")
        return back
    _audit("message_template.saved", kind)
    db.session.commit()
    flash(f"{spec.label} saved. The next one goes out in your words.", "success")
    return back


def message_template_preview(kind: str):
    """The live preview fragment (htmx); an error is shown in place of the text, not as an HTTP error,
    so htmx swaps it in and the owner's typing is untouched."""
    return render_template(
        "dashboard/_message_template_preview.html", kind=kind, p=preview_of(kind, request.form.get("body", ""))
    )


def _audit(action: str, kind: str) -> None:
    audit.record(
        g.tenant.id,
        action,
        actor_id=current_user.id,
        subject_type="message_template",
        detail={"kind": kind},
    )


# One static rule per kind rather than ``<kind>``: a kind we don't have is a plain 404 from routing,
# and the role and login sweeps in tests/test_roles.py reach every one of them.
for _kind in templating.KINDS:
    bp.add_url_rule(
        f"/messages/templates/{_kind}",
        "message_template_save",
        message_template_save,
        methods=["POST"],
        defaults={"kind": _kind},
    )
    bp.add_url_rule(
        f"/messages/templates/{_kind}/preview",
        "message_template_preview",
        message_template_preview,
        methods=["POST"],
        defaults={"kind": _kind},
    )
