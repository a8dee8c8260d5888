"""CLI groups: ``flask demo load``, ``flask tenants create``, ``flask storage init``, ``flask platform-admin
grant|revoke``. Safe to re-run."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db
from tenants.context import tenant_context

DEMO_PASSWORD = "detail-demo-2026"

DEMO = [
    {
        "business_name": "Acme Mobile Detailing",
        "subdomain": "acme",
        "time_zone": "America/Chicago",
        "currency": "USD",
        "plan": "pro",
        "brand_color": "#0f766e",
        "tagline": "Showroom shine in your driveway, all over Austin",
        "owner": ("owner@acme.test", "Alex Moreno"),
        "team": [
            ("admin@acme.test", "Priya Shah", "admin"),
            ("tech1@acme.test", "Jordan Lee", "tech"),
            ("tech2@acme.test", "Sam Ortiz", "tech"),
        ],
    },
    {
        "business_name": "Bravo Auto Spa",
        "subdomain": "bravo",
        "time_zone": "America/Chicago",
        "currency": "USD",
        "plan": "starter",
        "brand_color": "#1d4ed8",
        "tagline": "Ceramic coatings and interior resets at your door",
        "owner": ("owner@bravo.test", "Blake Turner"),
        "team": [("tech@bravo.test", "Casey Nguyen", "tech")],
    },
]


def init_app(app) -> None:
    app.cli.add_command(demo)
    app.cli.add_command(tenants_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(platform_admin_cli)
    from app.billing.cli import billing_cli

    app.cli.add_command(billing_cli)


@click.group("demo", cls=AppGroup)
def demo():
    """Demo data."""


@demo.command("load")
def demo_load():
    """Create the acme and bravo demo businesses (skips ones that exist)."""
    from app.accounts import services as accounts
    from app.demo import connect_stripe_standin, load_business, load_payments
    from tenants.lookup import tenant_id_for_subdomain
    from tenants.models import Tenant
    from tenants.provisioning import provision_tenant

    for spec in DEMO:
        existing = tenant_id_for_subdomain(spec["subdomain"])
        if existing:
            note = ""
            with tenant_context(existing, db.session):
                tenant = db.session.get(Tenant, existing)
                if tenant is not None and tenant.sms_number is None:
                    note = _demo_texts(tenant)  # a demo loaded before texts were wired gets its number
            db.session.commit()
            click.echo(f"  {spec['subdomain']}: already there{note}")
            continue
        owner_email, owner_name = spec["owner"]
        tenant, owner = provision_tenant(
            business_name=spec["business_name"],
            subdomain=spec["subdomain"],
            time_zone=spec["time_zone"],
            currency=spec["currency"],
            owner_email=owner_email,
            owner_name=owner_name,
            password=DEMO_PASSWORD,
            plan=spec["plan"],
        )
        tenant.brand_color = spec["brand_color"]
        tenant.tagline = spec["tagline"]
        tenant.contact_phone = "+1 512 555 0100"
        with tenant_context(tenant.id, db.session):
            users = [
                accounts.create_user(tenant.id, email=email, name=name, role=role, password=DEMO_PASSWORD)
                for email, name, role in spec["team"]
            ]
            tenant.lead_time_min = 60
            load_business(tenant, users, seed=len(spec["subdomain"]))
            load_payments(tenant, seed=len(spec["subdomain"]))
            stripe_note = ""
            try:
                if connect_stripe_standin(tenant):
                    stripe_note = f", Stripe stand-in account {tenant.stripe_account_id} (deposits on)"
            except Exception as exc:  # noqa: BLE001 - the demo works without card payments
                stripe_note = f" (Stripe stand-in not reachable: {exc}; deposits off)"
            # After the demo week is booked, so its bookings don't each text a confirmation.
            texts_note = _demo_texts(tenant)
            from app.demo import load_quotes

            load_quotes(tenant, owner.id)  # after texts: the quote's link goes out like a real one
        db.session.commit()
        click.echo(f"  {spec['subdomain']}: created{stripe_note}{texts_note}")


def _demo_texts(tenant) -> str:
    from app.demo import assign_twilio_standin_number

    try:
        number = assign_twilio_standin_number(tenant)
    except Exception as exc:  # noqa: BLE001 - the demo works without texts
        return f" (Twilio stand-in not reachable: {exc}; texts off)"
    return f", texts from {number} (Twilio stand-in)" if number else ""


@demo.command("logins")
def demo_logins():
    """Print the demo URLs and logins."""
    from app.urls import app_url, site_url

    click.echo(f"Dashboard:   {app_url('/')}")
    for spec in DEMO:
        click.echo(f"Booking site: {site_url(spec['subdomain'])}")
        click.echo(f"  owner  {spec['owner'][0]}")
        for email, _, role in spec["team"]:
            click.echo(f"  {role:<6} {email}")
    click.echo(f"Password for every demo login: {DEMO_PASSWORD}")


@click.group("tenants", cls=AppGroup)
def tenants_cli():
    """Tenants."""


@tenants_cli.command("create")
@click.option("--name", required=True)
@click.option("--subdomain", required=True)
@click.option("--time-zone", default="America/New_York")
@click.option("--currency", default="USD")
@click.option("--owner-email", required=True)
@click.option("--owner-name", required=True)
@click.password_option()
def tenants_create(name, subdomain, time_zone, currency, owner_email, owner_name, password):
    """Provision a business and its owner."""
    from app.errors import ValidationFailed
    from tenants.provisioning import provision_tenant

    try:
        tenant, _ = provision_tenant(
            business_name=name,
            subdomain=subdomain,
            time_zone=time_zone,
            currency=currency,
            owner_email=owner_email,
            owner_name=owner_name,
            password=password,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        for field, message in exc.errors.items():
            click.echo(f"{field}: {message}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    click.echo(f"created {tenant.subdomain} ({tenant.id})")


@click.group("storage", cls=AppGroup)
def storage_cli():
    """Object storage."""


@storage_cli.command("init")
def storage_init():
    """Create the media bucket if it is missing."""
    from app.media import storage

    storage.ensure_bucket()
    click.echo(f"bucket {current_app.config['S3_BUCKET']} ready")


@click.group("platform-admin", cls=AppGroup)
def platform_admin_cli():
    """Platform staff: who sees every business's failed jobs at app.<base>/platform/jobs."""


@platform_admin_cli.command("grant")
@click.argument("email")
@click.option("--business", help="The business (subdomain) of the account, when the e-mail has several.")
def platform_admin_grant(email, business):
    """Make the account with EMAIL a platform admin."""
    _set_platform_admin(email, business, grant=True)


@platform_admin_cli.command("revoke")
@click.argument("email")
@click.option("--business", help="Only the account in this business (default: every account with EMAIL).")
def platform_admin_revoke(email, business):
    """Take platform admin away from the account(s) with EMAIL."""
    _set_platform_admin(email, business, grant=False)


def _set_platform_admin(email: str, business: str | None, *, grant: bool) -> None:
    # Least privilege: no owner connection. `users` is under RLS per business, so the account is
    # found through the narrow definer function the log-in uses (login_accounts: ids of the active
    # accounts with this e-mail, nothing else), and the flag is set as the app role inside that
    # business's tenant context, exactly as a request would. (Deactivated accounts are not listed:
    # they can't log in, so their flag opens nothing; revoke before removing someone.)
    from app.accounts.models import User
    from app.accounts.services import normalise_email
    from app.audit import services as audit
    from app.errors import ValidationFailed
    from tenants.lookup import login_accounts

    try:
        email = normalise_email(email)
    except ValidationFailed as exc:
        raise click.ClickException(next(iter(exc.errors.values()))) from None
    accounts = [a for a in login_accounts(email) if not business or a.subdomain == business]
    if not accounts:
        raise click.ClickException(f"no active account with {email}" + (f" in {business}" if business else ""))
    if grant and len(accounts) > 1:
        names = ", ".join(a.subdomain for a in accounts)
        raise click.ClickException(f"{email} has accounts in {names}: choose one with --business")
    for account in accounts:
        with tenant_context(account.tenant_id, db.session):
            user = db.session.get(User, (account.tenant_id, account.user_id))
            changed = user.is_platform_admin != grant
            user.is_platform_admin = grant
            if changed:
                audit.record(
                    account.tenant_id,
                    "user.platform_admin_granted" if grant else "user.platform_admin_revoked",
                    subject_type="user",
                    subject_id=user.id,
                )
            db.session.flush()  # under this business's RLS setting, before the next one applies
        state = "is now" if grant else "is no longer"
        click.echo(f"{email} ({account.subdomain}) {state} a platform admin" + ("" if changed else " (unchanged)"))
    db.session.commit()
