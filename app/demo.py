"""Demo data for the two demo businesses: services, technicians with home bases, customers
with vehicles and Austin addresses, and a week of bookings (some done, most upcoming).
Everything goes through the real services, so demo data obeys the same rules as users."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.booking import services as booking
from app.booking.errors import SlotTaken, SlotUnavailable
from app.catalog import services as catalog
from app.extensions import db
from app.geo.geocoding import get_geocoder

UTC = UTC

PACKAGES = [
    (
        "package",
        "Full detail",
        "Hand wash, clay and wax outside; vacuum, shampoo and dressing inside.",
        {"sedan": (18900, 180), "suv": (22900, 210), "truck": (25900, 240)},
    ),
    (
        "package",
        "Interior reset",
        "Deep vacuum, steam clean, leather care and glass.",
        {"sedan": (12900, 120), "suv": (14900, 150), "truck": (16900, 150)},
    ),
    (
        "package",
        "Exterior wash & wax",
        "Foam wash, hand dry, spray wax and tyre shine.",
        {"sedan": (7900, 75), "suv": (8900, 90), "truck": (9900, 90)},
    ),
    (
        "package",
        "Ceramic coating",
        "Paint decontamination, one-step polish and a 2-year coating.",
        {"sedan": (69900, 360), "suv": (79900, 420)},
    ),
    ("addon", "Pet hair removal", None, {"sedan": (3500, 30), "suv": (4500, 30), "truck": (4500, 30)}),
    ("addon", "Headlight restoration", None, {"sedan": (6000, 30), "suv": (6000, 30), "truck": (6000, 30)}),
    ("addon", "Engine bay clean", None, {"sedan": (4000, 30), "suv": (4000, 30), "truck": (5000, 30)}),
]

CUSTOMERS = [
    ("Maria Gonzalez", "+15125550101", "2101 S Lamar Blvd", ("suv", 2021, "Toyota", "RAV4", "Silver")),
    ("James Carter", "+15125550102", "400 Congress Ave", ("sedan", 2019, "Honda", "Accord", "Black")),
    ("Priya Patel", "+15125550103", "1800 Barton Springs Rd", ("sedan", 2022, "Tesla", "Model 3", "White")),
    ("Daniel Kim", "+15125550104", "5400 Burnet Rd", ("truck", 2020, "Ford", "F-150", "Blue")),
    ("Emily Johnson", "+15125550105", "3200 Guadalupe St", ("suv", 2018, "Subaru", "Outback", "Green")),
    ("Carlos Ruiz", "+15125550106", "1500 E 6th St", ("truck", 2023, "Chevrolet", "Silverado", "Red")),
    ("Hannah Lee", "+15125550107", "2900 S Congress Ave", ("sedan", 2017, "Mazda", "3", "Grey")),
    ("Marcus Brown", "+15125550108", "6200 Airport Blvd", ("suv", 2022, "Kia", "Telluride", "Black")),
    ("Olivia Martin", "+15125550109", "1200 Enfield Rd", ("sedan", 2020, "BMW", "330i", "Blue")),
    ("Ethan Wilson", "+15125550110", "8400 Research Blvd", ("suv", 2019, "Jeep", "Grand Cherokee", "White")),
    ("Sofia Hernandez", "+15125550111", "2300 William Cannon Dr", ("truck", 2021, "Ram", "1500", "Grey")),
    ("Noah Davis", "+15125550112", "900 Rainey St", ("sedan", 2023, "Hyundai", "Elantra", "Red")),
]

TECH_HOMES = ["4500 Mueller Blvd", "3000 Menchaca Rd", "7000 Cameron Rd"]


def load_business(tenant, users: list, *, seed: int) -> None:
    """Services, technicians (one per tech user), customers and a week of bookings."""
    rng = random.Random(seed)
    geo = get_geocoder()
    ids = {}
    for pos, (kind, name, desc, prices) in enumerate(PACKAGES):
        p = catalog.create_package(
            tenant.id,
            name=name,
            kind=kind,
            description=desc,
            position=pos,
            prices={s: {"price_cents": c, "duration_min": m} for s, (c, m) in prices.items()},
        )
        ids[name] = p.id
    colors = ["#0f766e", "#7c3aed", "#c2410c"]
    hours = {d: [(time(8), time(17))] for d in range(5)} | {5: [(time(9), time(15))]}
    techs = []
    for i, user in enumerate(u for u in users if u.role == "tech"):
        home = geo.geocode(TECH_HOMES[i % len(TECH_HOMES)]).as_dict()
        techs.append(
            booking.create_technician(
                tenant.id,
                name=user.name,
                user_id=user.id,
                color=colors[i % 3],
                home=home,
                skills=["ceramic"] if i == 0 else [],
                hours=hours,
                position=i,
            )
        )
    db.session.flush()
    tz = ZoneInfo(tenant.time_zone)
    today = datetime.now(tz).date()
    packages = [n for k, n, _, _ in PACKAGES if k == "package" and n != "Ceramic coating"]
    made = 0
    for day_offset in range(-3, 5):
        day = today + timedelta(days=day_offset)
        if day.weekday() == 6:
            continue
        for hour, minute in ((9, 0), (10, 30), (12, 0), (13, 30), (15, 0)):
            name, phone, street, (size, year, make, model, color) = CUSTOMERS[(made * 5 + seed) % len(CUSTOMERS)]
            starts = datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)
            package = packages[rng.randrange(len(packages))]
            addons = [ids["Pet hair removal"]] if rng.random() < 0.25 else []
            req = booking.BookingRequest(
                package_id=ids[package],
                addon_ids=addons,
                vehicle={"size_class": size, "year": year, "make": make, "model": model, "color": color},
                place=geo.geocode(street).as_dict(),
                access_notes="Gate code 2468" if made % 4 == 0 else None,
                customer={"name": name, "phone": phone, "email": ""},
                starts_at=starts,
                source="dashboard",
                technician_id=techs[made % len(techs)].id if techs else None,
            )
            try:
                with db.session.begin_nested():
                    b = booking.book(tenant, req, now=starts - timedelta(days=7), actor_type="system")
            except (SlotTaken, SlotUnavailable):
                continue
            if day_offset < 0:
                booking.transition(b, "in_progress", actor_type="system")
                booking.transition(b, "completed", actor_type="system")
            made += 1


def load_payments(tenant, *, seed: int) -> int:
    """Jobs done earlier in the week were paid on site: cash or check, some with a tip."""
    from app.booking.models import Booking
    from app.payments import services as payments

    rng = random.Random(seed)
    done = db.session.scalars(db.select(Booking).where(Booking.status == "completed").order_by(Booking.starts_at))
    made = 0
    for b in done:
        method = "cash" if rng.random() < 0.6 else "check"
        tip = rng.choice([0, 0, 1000, 1500, 2000])
        payments.record_manual(
            b,
            method=method,
            amount_cents=payments.balance_due(b),
            tip_cents=tip,
            note=f"Check #{rng.randint(1000, 1999)}" if method == "check" else None,
        )
        made += 1
    return made


def connect_stripe_standin(tenant) -> str | None:
    """Offline demo only: connect the business to the local Stripe stand-in and finish its
    onboarding there, so the booking site takes deposits at once. With real Stripe keys the
    owner connects from Integrations instead (Account Links cannot be completed by a script)."""
    import json
    import urllib.request

    from flask import current_app

    from app.payments import services as payments

    base = current_app.config.get("STRIPE_API_BASE")
    if not base or not current_app.config.get("STRIPE_SECRET_KEY"):
        return None
    payments.start_onboarding(
        tenant, request_key="demo", refresh_url="http://localhost/", return_url="http://localhost/"
    )
    request = urllib.request.Request(f"{base}/_standin/accounts/{tenant.stripe_account_id}/complete", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback stand-in
        json.load(response)
    payments.refresh_account(tenant)
    tenant.deposits_enabled = True
    tenant.deposit_kind, tenant.deposit_value = "percent", 25
    return tenant.stripe_account_id


def assign_twilio_standin_number(tenant) -> str | None:
    """Offline demo only: give the business the number the platform assigned it in the local Twilio
    stand-in (friendly name ``fieldday:<subdomain>``, the rule Integrations enforces), so customers
    get texts and can reply from the stand-in's fake phone. With a real Twilio account the owner sets
    the number on Integrations instead (and demo customers' 555 numbers would not receive texts)."""
    from flask import current_app
    from sqlalchemy import text

    from app.messaging import services as messaging

    if not current_app.config.get("TWILIO_API_BASE") or not current_app.config.get("TWILIO_ACCOUNT_SID"):
        return None
    owned = messaging.client().incoming_phone_numbers.list(friendly_name=f"fieldday:{tenant.subdomain}", limit=1)
    if not owned:
        return None
    number = owned[0].phone_number
    other = db.session.execute(text("SELECT public.tenant_id_for_sms_number(:n)"), {"n": number}).scalar()
    if other is not None and other != tenant.id:
        return None
    tenant.sms_number = number
    return number


def load_quotes(tenant, owner_id, *, now: datetime | None = None) -> int:
    """A sent quote with two tiers and an optional add-on for a demo customer, so Quotes has
    something to open and the customer's link (texted through the stand-in when texts are on)
    can be accepted. Returns how many quotes were sent (0 when no demo customer was found)."""
    from app.customers import services as customer_services
    from app.quotes import services as quotes

    now = now or datetime.now(UTC)
    name, phone, _street, (size, *_car) = CUSTOMERS[0]
    customer = customer_services.find_by_phone(phone)
    if customer is None or not customer.vehicles or not customer.addresses:
        return 0
    packages = {p.name: p for p in catalog.list_packages(active_only=True)}
    full, pet = packages.get("Full detail"), packages.get("Pet hair removal")
    if full is None:
        return 0
    quote = quotes.create_quote(
        tenant,
        customer=customer,
        size_class=customer.vehicles[0].size_class,
        vehicle_id=customer.vehicles[0].id,
        address_id=customer.addresses[0].id,
        actor_id=owner_id,
        now=now,
    )
    quotes.add_catalog_line(quote, full.id, {"tier": "Good"})
    quotes.add_catalog_line(quote, full.id, {"tier": "Best"})
    quotes.add_custom_line(
        quote, {"name": "Paint correction, one stage", "unit_price": "350", "duration_min": "180", "tier": "Best"}
    )
    if pet is not None:
        quotes.add_catalog_line(quote, pet.id, {"optional": "1"})
    quotes.update_details(
        tenant,
        quote,
        {
            "title": f"Spring refresh for {name.split()[0]}'s car",
            "expires_on": quote.expires_on.isoformat(),
            "discount_kind": "none",
            "discount_value": "0",
            "tax_rate": "0",
            "notes": "We bring water and power. Paint correction removes light swirls; deep scratches stay.",
        },
        now=now,
    )
    quotes.send_quote(tenant, quote, now=now)
    return 1
