"""Accounts: users, log-in, passwords, invitations. Plain functions; callers commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app

from app.accounts import passwords, tokens
from app.accounts.errors import LoginFailed, TokenInvalid
from app.accounts.models import ROLES, Invitation, User, UserSession
from app.audit import services as audit
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import db
from tenants import quotas
from tenants.context import activate, current_tenant_id
from tenants.lookup import LoginAccount, login_accounts


def normalise_email(raw: str) -> str:
    """Validated, lower-cased e-mail address; raises ValidationFailed."""
    raw = (raw or "").strip()
    if not raw:
        raise ValidationFailed({"email": "Enter your e-mail address."})
    if len(raw) > 254:
        raise ValidationFailed({"email": "That e-mail address is too long."})
    try:
        # Development and tests use the reserved .test domain; production refuses it.
        result = validate_email(
            raw, check_deliverability=False, test_environment=current_app.config["EMAIL_ALLOW_TEST_DOMAINS"]
        )
    except EmailNotValidError:
        raise ValidationFailed({"email": "Enter a valid e-mail address, like you@example.com."}) from None
    return result.normalized.lower()


def clean_name(raw: str, field: str = "name", label: str = "your name") -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise ValidationFailed({field: f"Enter {label}."})
    if len(name) > 120:
        raise ValidationFailed({field: "Use at most 120 characters."})
    return name


def get_user(user_id: uuid.UUID) -> User:
    user = db.session.get(User, (current_tenant_id(), user_id))
    if user is None:
        raise NotFound("No such team member.")
    return user


def list_users() -> list[User]:
    return list(db.session.scalars(db.select(User).order_by(User.role != "owner", User.name)))


def create_user(tenant_id: uuid.UUID, *, email: str, name: str, role: str, password: str) -> User:
    """Add a user to the current tenant, validating every field."""
    errors: dict[str, str] = {}
    try:
        email = normalise_email(email)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        name = clean_name(name)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if role not in ROLES:
        errors["role"] = "Choose a role."
    problem = passwords.password_problem(password, email=email or "", name=name or "")
    if problem:
        errors["password"] = problem
    if errors:
        raise ValidationFailed(errors)
    exists = db.session.scalar(db.select(User.id).where(User.tenant_id == tenant_id, User.email == email))
    if exists:
        raise ValidationFailed({"email": "Someone on this team already uses that e-mail."})
    user = User(
        tenant_id=tenant_id,
        email=email,
        name=name,
        role=role,
        password_hash=passwords.hash_password(password),
    )
    db.session.add(user)
    db.session.flush()
    return user


class ChooseBusiness(FielddayError):
    """The e-mail and password match accounts in several businesses."""

    status = 200
    code = "choose_business"

    def __init__(self, accounts: list[LoginAccount]):
        super().__init__("This e-mail belongs to several businesses. Choose one.")
        self.accounts = accounts


def authenticate(email: str, password: str, *, subdomain: str | None, now: datetime) -> User:
    """Check a log-in. Leaves the matched user's tenant active on success."""
    try:
        email = normalise_email(email)
    except ValidationFailed:
        raise LoginFailed() from None
    matched: list[tuple[LoginAccount, User]] = []
    for account in login_accounts(email):
        if subdomain and account.subdomain != subdomain:
            continue
        activate(account.tenant_id, db.session)
        user = db.session.get(User, (account.tenant_id, account.user_id))
        if user is not None and passwords.verify_password(user.password_hash, password):
            matched.append((account, user))
    if not matched:
        # Spend the time a real check would, so timing does not tell which e-mails exist.
        passwords.verify_password(_DUMMY_HASH.get(), password)
        activate(None, db.session)
        raise LoginFailed()
    if len(matched) > 1:
        activate(None, db.session)
        raise ChooseBusiness([account for account, _ in matched])
    account, user = matched[0]
    activate(account.tenant_id, db.session)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_login_at = now
    audit.record(user.tenant_id, "user.login", actor_id=user.id, subject_type="user", subject_id=user.id)
    return user


class _DummyHash:
    _value: str | None = None

    def get(self) -> str:
        if self._value is None:
            self._value = passwords.hash_password("not-a-real-password-0")
        return self._value


_DUMMY_HASH = _DummyHash()


def change_password(user: User, current: str, new: str) -> None:
    """Change a password; every other session of this user ends."""
    if not passwords.verify_password(user.password_hash, current):
        raise ValidationFailed({"current_password": "That isn't your current password."})
    set_password(user, new)


def set_password(user: User, new: str) -> None:
    problem = passwords.password_problem(new, email=user.email, name=user.name)
    if problem:
        raise ValidationFailed({"password": problem})
    user.password_hash = passwords.hash_password(new)
    user.session_version += 1
    end_other_sessions(user, None, now=datetime.now(UTC))
    user.password_changed_at = db.func.now()
    audit.record(user.tenant_id, "user.password_changed", actor_id=user.id, subject_type="user", subject_id=user.id)
    db.session.flush()


# Sessions (devices) ----------------------------------------------------------

SEEN_EVERY = timedelta(minutes=5)


def start_session(user: User, *, ip: str | None, user_agent: str | None) -> UserSession:
    record = UserSession(tenant_id=user.tenant_id, user_id=user.id, ip=ip, user_agent=(user_agent or "")[:300] or None)
    db.session.add(record)
    db.session.flush()
    return record


def session_is_live(user: User, session_id: uuid.UUID, *, now: datetime) -> bool:
    """True if this device's session has not been ended; notes when it was last seen."""
    record = db.session.get(UserSession, (user.tenant_id, session_id))
    if record is None or record.user_id != user.id or record.ended_at is not None:
        return False
    if now - record.last_seen_at > SEEN_EVERY:
        record.last_seen_at = now
    return True


def end_session(tenant_id: uuid.UUID, session_id: uuid.UUID, *, now: datetime) -> None:
    record = db.session.get(UserSession, (tenant_id, session_id))
    if record is not None and record.ended_at is None:
        record.ended_at = now
        db.session.flush()


def end_other_sessions(user: User, keep: uuid.UUID | None, *, now: datetime) -> int:
    query = db.update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep)
    return db.session.execute(query.values(ended_at=now)).rowcount


def list_live_sessions(user: User) -> list[UserSession]:
    return list(
        db.session.scalars(
            db.select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        )
    )


def logout_everywhere(user: User) -> None:
    end_other_sessions(user, None, now=datetime.now(UTC))
    user.session_version += 1
    audit.record(user.tenant_id, "user.logout_everywhere", actor_id=user.id, subject_type="user", subject_id=user.id)
    db.session.flush()


# Password reset -------------------------------------------------------------


def accounts_for_reset(email: str) -> list[LoginAccount]:
    try:
        return login_accounts(normalise_email(email))
    except ValidationFailed:
        return []


def reset_token_for(user: User) -> str:
    return tokens.make_reset_token(user.tenant_id, user.id, user.password_hash)


def user_for_reset_token(token: str) -> User:
    """The user a reset link belongs to; activates that user's tenant."""
    tenant_id, user_id, fingerprint = tokens.read_reset_token(token)
    activate(tenant_id, db.session)
    user = db.session.get(User, (tenant_id, user_id))
    if user is None or not user.is_active or not tokens.reset_fingerprint_matches(user.password_hash, fingerprint):
        activate(None, db.session)
        raise TokenInvalid()
    return user


# Invitations ----------------------------------------------------------------


def invite(actor: User, *, email: str, name: str, role: str, now: datetime) -> Invitation:
    """Invite an admin or technician by e-mail."""
    errors: dict[str, str] = {}
    try:
        email = normalise_email(email)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    name = " ".join((name or "").split())[:120] or None
    if role not in ("admin", "tech"):
        errors["role"] = "Choose Admin or Technician."
    if role == "admin" and actor.role != "owner":
        errors["role"] = "Only the owner can invite admins."
    if errors:
        raise ValidationFailed(errors)
    if db.session.scalar(db.select(User.id).where(User.email == email)):
        raise ValidationFailed({"email": "That person is already on your team."})
    open_invite = db.session.scalar(
        db.select(Invitation).where(
            Invitation.email == email, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)
        )
    )
    if open_invite is not None:
        # Re-inviting refreshes the link instead of failing: what an owner expects.
        open_invite.revoked_at = now
        db.session.flush()
    if role == "tech":  # the plan's technicians: logins and open invitations (PlanLimitReached)
        quotas.check(actor.tenant_id, "technician_logins", now=now)
    invitation = Invitation(
        tenant_id=actor.tenant_id,
        email=email,
        name=name,
        role=role,
        invited_by=actor.id,
        expires_at=now + timedelta(seconds=current_app.config["INVITE_MAX_AGE_S"]),
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record(
        actor.tenant_id,
        "invitation.created",
        actor_id=actor.id,
        subject_type="invitation",
        subject_id=invitation.id,
        detail={"email": email, "role": role},
    )
    return invitation


def list_open_invitations(now: datetime) -> list[Invitation]:
    return list(
        db.session.scalars(
            db.select(Invitation)
            .where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > now)
            .order_by(Invitation.created_at.desc())
        )
    )


def get_invitation(invitation_id: uuid.UUID) -> Invitation:
    invitation = db.session.get(Invitation, (current_tenant_id(), invitation_id))
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


def revoke_invitation(actor: User, invitation_id: uuid.UUID, *, now: datetime) -> None:
    invitation = get_invitation(invitation_id)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = now
        audit.record(
            actor.tenant_id,
            "invitation.revoked",
            actor_id=actor.id,
            subject_type="invitation",
            subject_id=invitation.id,
        )
    db.session.flush()


def invitation_for_token(token: str, *, now: datetime) -> Invitation:
    """The open invitation a link belongs to; activates its tenant."""
    tenant_id, invitation_id = tokens.read_invite_token(token)
    activate(tenant_id, db.session)
    invitation = db.session.get(Invitation, (tenant_id, invitation_id))
    if invitation is None or invitation.status(now) != "pending":
        activate(None, db.session)
        raise TokenInvalid("This invitation is no longer valid. Ask for a new one.")
    return invitation


def invitation_token(invitation: Invitation) -> str:
    return tokens.make_invite_token(invitation.tenant_id, invitation.id)


def accept_invitation(invitation: Invitation, *, name: str, password: str, now: datetime) -> User:
    user = create_user(invitation.tenant_id, email=invitation.email, name=name, role=invitation.role, password=password)
    invitation.accepted_at = now
    audit.record(
        invitation.tenant_id,
        "invitation.accepted",
        actor_id=user.id,
        subject_type="invitation",
        subject_id=invitation.id,
    )
    db.session.flush()
    return user


def set_role(actor: User, user_id: uuid.UUID, role: str) -> User:
    user = get_user(user_id)
    if actor.role != "owner":
        raise ValidationFailed({"role": "Only the owner can change roles."})
    if user.role == "owner" or role not in ("admin", "tech"):
        raise ValidationFailed({"role": "The owner's role can't be changed here."})
    if role == "tech" and user.role != "tech" and user.is_active_flag:
        quotas.check(actor.tenant_id, "technician_logins")
    user.role = role
    user.session_version += 1
    audit.record(
        actor.tenant_id,
        "user.role_changed",
        actor_id=actor.id,
        subject_type="user",
        subject_id=user.id,
        detail={"role": role},
    )
    db.session.flush()
    return user


def deactivate_user(actor: User, user_id: uuid.UUID) -> User:
    user = get_user(user_id)
    if user.role == "owner" or user.id == actor.id:
        raise ValidationFailed({"user": "You can't remove the owner or yourself."})
    if actor.role != "owner" and user.role == "admin":
        raise ValidationFailed({"user": "Only the owner can remove admins."})
    user.is_active_flag = False
    user.session_version += 1
    audit.record(actor.tenant_id, "user.deactivated", actor_id=actor.id, subject_type="user", subject_id=user.id)
    db.session.flush()
    return user
