"""E-mails of the accounts domain, sent from the worker."""

from __future__ import annotations

import uuid

from flask import render_template

from app.accounts import services
from app.accounts.models import Invitation, User
from app.extensions import db
from app.jobs import job
from app.mail import send_email
from app.urls import app_url
from tenants.models import Tenant


@job("email")
def send_password_reset(tenant_id: uuid.UUID, user_id: str) -> None:
    user = db.session.get(User, (tenant_id, uuid.UUID(user_id)))
    if user is None or not user.is_active:
        return
    tenant = db.session.get(Tenant, tenant_id)
    link = app_url(f"/password/reset/{services.reset_token_for(user)}")
    context = {"user": user, "tenant": tenant, "link": link}
    send_email(
        user.email,
        f"Reset your Fieldday password for {tenant.name}",
        render_template("email/password_reset.txt", **context),
    )


@job("email")
def send_invitation(tenant_id: uuid.UUID, invitation_id: str) -> None:
    invitation = db.session.get(Invitation, (tenant_id, uuid.UUID(invitation_id)))
    if invitation is None or invitation.accepted_at or invitation.revoked_at:
        return
    tenant = db.session.get(Tenant, tenant_id)
    inviter = db.session.get(User, (tenant_id, invitation.invited_by))
    link = app_url(f"/invite/{services.invitation_token(invitation)}")
    context = {"invitation": invitation, "tenant": tenant, "inviter": inviter, "link": link}
    send_email(
        invitation.email,
        f"{inviter.name if inviter else tenant.name} invited you to {tenant.name} on Fieldday",
        render_template("email/invitation.txt", **context),
    )
