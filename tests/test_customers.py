"""Customers on the dashboard: create, search, detail with history, CSV export and import,
cross-tenant 404s and roles."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import uuid

import pytest

from tests.test_booking import book, request, tomorrow_at

GOOD_CSV = (
    "Name,Phone,EMAIL,address,access_notes,vehicle_year,vehicle_make,vehicle_model,vehicle_color,plate,size_class\n"
    "Avery Stone,(512) 555-0101,avery@example.com,1100 Congress Ave,Gate code 2468,2019,Honda,Civic,Blue,abc123,sedan\n"
    "Blake Rivers,512-555-0102,,200 Rainey St,,,,,,,\n"
    "Casey Ortiz,,casey@example.com,,,2021,Ford,F-150,,,TRUCK\n"
)


@contextlib.contextmanager
def in_tenant(app, t):
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        yield db.session


def owner_of(visitor, t):
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    return v


def post(v, path, data=None, **kw):
    return v.post(path, {**(data or {}), "csrf_token": v.dashboard_token()}, **kw)


def upload(v, content: bytes, filename="customers.csv"):
    return v.post(
        "/customers/import",
        {"csrf_token": v.dashboard_token(), "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def seed_customer(app, t, data: dict, *, vehicle=None, address=None):
    from app.customers import services

    with in_tenant(app, t) as session:
        customer = services.register_customer(t.id, {**data, **(vehicle or {}), **(address or {})}, region="US")
        session.commit()
        return customer.id


def customer_count(app, t) -> int:
    from app.customers.services import count_customers

    with in_tenant(app, t):
        return count_customers()


def text(r) -> str:
    return r.get_data(as_text=True)


# --- create and search ---------------------------------------------------------------


def test_create_customer_with_vehicle_and_address_then_search_by_name_phone_plate(app, make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    empty = v.get("/customers")
    assert empty.status_code == 200 and 'data-testid="customers-empty"' in text(empty)

    r = post(
        v,
        "/customers/new",
        {
            "name": "  Dana   Whitfield ",
            "phone": "(512) 555-0199",
            "email": "Dana@Example.com",
            "year": "2019",
            "make": "Honda",
            "model": "Civic",
            "color": "Blue",
            "plate": "abc 1234",
            "size_class": "sedan",
            "address": "1100 Congress Ave",
            "access_notes": "Gate code 2468",
        },
    )
    assert r.status_code == 302, text(r)[:1500]
    detail = v.get(r.headers["Location"])
    html = text(detail)
    assert detail.status_code == 200
    assert "Dana Whitfield" in html and "(512) 555-0199" in html and "dana@example.com" in html
    assert "2019 Blue Honda Civic" in html and "ABC 1234" in html
    assert "1100 Congress Ave, Austin, TX" in html and "Gate code 2468" in html
    book_link = re.search(r'data-testid="customer-book" href="([^"]+)"', html)
    assert book_link and "/bookings/new?" in book_link.group(1) and "phone=%2B15125550199" in book_link.group(1)
    seed_customer(
        app, t, {"name": "Other Person", "phone": "(512) 555-0300"}, vehicle={"plate": "ZZZ999", "size_class": "suv"}
    )

    for q in ("whit", "Whitfeld", "555-0199", "5550199", "abc 1", "ABC 12"):
        page = text(v.get("/customers", query_string={"q": q}))
        assert "Dana Whitfield" in page, q
        assert "Other Person" not in page, q
        assert "1 match for" in page, q
    assert "Other Person" in text(v.get("/customers", query_string={"q": "zzz9"}))
    listing = text(v.get("/customers"))
    assert "2 customers" in listing and "Dana Whitfield" in listing and "Other Person" in listing
    nothing = text(v.get("/customers", query_string={"q": "%"}))
    assert 'data-testid="customers-no-match"' in nothing and "0 matches" in nothing


def test_bad_phone_email_vehicle_and_address_are_422_beside_each_field_and_nothing_is_written(
    app, make_tenant, visitor
):
    t = make_tenant()
    v = owner_of(visitor, t)
    r = post(
        v,
        "/customers/new",
        {
            "name": "Ellis Park",
            "phone": "555",
            "email": "not-an-email",
            "year": "19",
            "make": "Mazda",
            "address": "Nowhere in particular",
            "access_notes": "Side gate",
        },
    )
    html = text(r)
    assert r.status_code == 422
    assert re.search(r'data-testid="error-phone">[^<]*(phone number|digits)', html)
    assert 'data-testid="error-email">Enter a valid e-mail address' in html
    assert 'data-testid="error-year">Enter a year like 2019.' in html
    assert 'data-testid="error-size_class">Choose the vehicle size.' in html
    assert 'data-testid="error-address">We couldn&#39;t find that address' in html
    assert 'value="Ellis Park"' in html and 'value="Mazda"' in html  # what was typed stays
    assert customer_count(app, t) == 0

    missing = post(v, "/customers/new", {"name": "", "phone": "", "email": ""})
    assert missing.status_code == 422
    assert "Enter the customer&#39;s name." in text(missing)
    assert "Enter a mobile number or an e-mail address." in text(missing)
    assert customer_count(app, t) == 0


def test_a_number_already_on_file_is_refused_with_a_link_to_that_customer(app, make_tenant, visitor):
    t = make_tenant()
    existing = seed_customer(app, t, {"name": "Frankie Lane", "phone": "+15125550142"})
    v = owner_of(visitor, t)
    r = post(v, "/customers/new", {"name": "Someone Else", "phone": "512 555 0142"})
    assert r.status_code == 422
    assert "A customer with this number already exists." in text(r)
    assert f"/customers/{existing}" in text(r)
    assert customer_count(app, t) == 1


# --- detail: history, addresses, vehicles, contact ------------------------------------


def test_detail_shows_service_history_newest_first_with_status_and_price(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    first = book(app, t, request(f, tomorrow_at(9)))
    second = book(app, t, request(f, tomorrow_at(14), package=f.full))
    from app.booking import services as booking
    from app.booking.models import Booking

    with in_tenant(app, t) as session:
        b1, b2 = session.get(Booking, (t.id, first)), session.get(Booking, (t.id, second))
        assert b1.customer_id == b2.customer_id
        customer_id, refs = b1.customer_id, (b1.reference, b2.reference)
        booking.transition(b1, "canceled", actor_type="user")
        session.commit()
    v = owner_of(visitor, t)
    html = text(v.get(f"/customers/{customer_id}"))
    history = html[html.index('data-testid="service-history"') :]
    assert history.index(refs[1]) < history.index(refs[0])  # newest first
    assert "$180" in history and "$60" in history
    assert "Full detail" in history and "Express wash" in history
    statuses = re.findall(r'data-testid="history-status">([^<]+)<', history)
    assert statuses == ["Confirmed", "Canceled"]
    assert "Tech 0" in history


def test_detail_without_bookings_has_an_empty_history(app, make_tenant, visitor):
    t = make_tenant()
    cid = seed_customer(app, t, {"name": "Gale Ho", "email": "gale@example.com"})
    html = text(owner_of(visitor, t).get(f"/customers/{cid}"))
    assert "No bookings yet" in html and "gale@example.com" in html


def test_add_address_vehicle_notes_and_edit_contact(app, make_tenant, visitor):
    t = make_tenant()
    cid = seed_customer(app, t, {"name": "Harper Quinn", "phone": "+15125550150", "notes": "Prefers mornings"})
    v = owner_of(visitor, t)
    base = f"/customers/{cid}"

    bad = post(v, f"{base}/addresses", {"address": "somewhere over the rainbow", "access_notes": "x" * 501})
    assert bad.status_code == 422
    assert "We couldn&#39;t find that address" in text(bad) and "Use at most 500 characters." in text(bad)
    assert '<details class="disclosure" open>' in text(bad)
    good = post(v, f"{base}/addresses", {"address": "2200 S Lamar Blvd", "access_notes": "Gate 1234#"})
    assert good.status_code == 302
    again = post(v, f"{base}/addresses", {"address": "2200 South Lamar Boulevard", "access_notes": "Gate 9999#"})
    assert again.status_code == 302
    html = text(v.get(base))
    assert html.count("<strong>2200 S Lamar Blvd, Austin, TX</strong>") == 1 and "Gate 9999#" in html

    from app.customers.models import Address, Vehicle

    with in_tenant(app, t) as session:
        address_id = session.scalar(session.query(Address.id).filter_by(customer_id=cid).statement)
    notes = post(v, f"{base}/addresses/{address_id}/notes", {"access_notes": "Code 0000, dog is friendly"})
    assert notes.status_code == 302 and "Code 0000, dog is friendly" in text(v.get(base))
    too_long = post(v, f"{base}/addresses/{address_id}/notes", {"access_notes": "y" * 600})
    assert too_long.status_code == 422 and "Use at most 500 characters." in text(too_long)

    no_size = post(v, f"{base}/vehicles", {"make": "Tesla", "model": "Model Y"})
    assert no_size.status_code == 422 and 'data-testid="error-size_class"' in text(no_size)
    car = post(v, f"{base}/vehicles", {"make": "Tesla", "model": "Model Y", "size_class": "suv", "plate": "ev 42"})
    assert car.status_code == 302
    with in_tenant(app, t) as session:
        vehicle_id = session.scalar(session.query(Vehicle.id).filter_by(customer_id=cid).statement)
    edit_page = v.get(f"{base}/vehicles/{vehicle_id}/edit")
    assert edit_page.status_code == 200 and 'value="EV 42"' in text(edit_page)
    bad_year = post(v, f"{base}/vehicles/{vehicle_id}/edit", {"year": "3000", "size_class": "suv"})
    assert bad_year.status_code == 422 and "Enter a year like 2019." in text(bad_year)
    saved = post(
        v,
        f"{base}/vehicles/{vehicle_id}/edit",
        {"year": "2023", "make": "Tesla", "color": "White", "size_class": "suv"},
    )
    assert saved.status_code == 302 and "2023 White Tesla" in text(v.get(base))

    form = text(v.get(f"{base}/edit"))
    assert 'value="(512) 555-0150"' in form and "Prefers mornings" in form
    bad_contact = post(v, f"{base}/edit", {"name": "Harper Quinn", "phone": "12", "email": "x@", "notes": "n"})
    assert bad_contact.status_code == 422
    assert 'data-testid="error-phone"' in text(bad_contact) and 'data-testid="error-email"' in text(bad_contact)
    ok = post(
        v,
        f"{base}/edit",
        {"name": "Harper Q. Quinn", "phone": "(512) 555-0151", "email": "hq@example.com", "notes": ""},
    )
    assert ok.status_code == 302
    html = text(v.get(base))
    assert "Harper Q. Quinn" in html and "(512) 555-0151" in html and "Prefers mornings" not in html


# --- CSV export ---------------------------------------------------------------------


def test_csv_export_has_every_customer_and_neutralises_formulas(app, make_tenant, visitor):
    from app.customers.csv_io import COLUMNS

    t = make_tenant()
    seed_customer(
        app,
        t,
        {"name": "Jo Müller", "phone": "+15125550160", "email": "jo@example.com"},
        vehicle={
            "year": "2018",
            "make": "Subaru",
            "model": "Outback",
            "color": "Green",
            "plate": "JO1",
            "size_class": "suv",
        },
        address={"address": "1100 Congress Ave", "access_notes": '=HYPERLINK("http://evil")'},
    )
    seed_customer(app, t, {"name": "=cmd|' /C calc'!A0", "email": "cmd@example.com"})
    seed_customer(app, t, {"name": "@SUM(1+1)", "phone": "+442079460958"})
    v = owner_of(visitor, t)
    r = v.get("/customers/export.csv")
    assert r.status_code == 200
    assert r.mimetype == "text/csv" and r.headers["Content-Type"].endswith("charset=utf-8")
    assert r.headers["Content-Disposition"].startswith('attachment; filename="customers-')
    raw = r.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 4
    by_email = {row[2]: row for row in rows[1:]}
    jo = by_email["jo@example.com"]
    assert jo[:4] == ["Jo Müller", "(512) 555-0160", "jo@example.com", "1100 Congress Ave, Austin, TX"]
    assert jo[4] == '\'=HYPERLINK("http://evil")'
    assert jo[5:] == ["2018", "Subaru", "Outback", "Green", "JO1", "suv"]
    assert by_email["cmd@example.com"][0] == "'=cmd|' /C calc'!A0"
    uk = next(row for row in rows[1:] if row[0].startswith("'@"))
    assert uk[0] == "'@SUM(1+1)" and uk[1] == "'+44 20 7946 0958"
    assert all(not cell or cell[0] not in "=+-@" for row in rows for cell in row)


def test_export_imports_into_another_business_unchanged(app, make_tenant, visitor):
    a, b = make_tenant(), make_tenant()
    seed_customer(
        app,
        a,
        {"name": "-Kim Lee", "phone": "+15125550170", "email": "kim@example.com"},
        vehicle={"make": "Kia", "size_class": "sedan", "plate": "KIM 1"},
        address={"address": "200 Rainey St", "access_notes": "Lobby buzzer 12"},
    )
    exported = owner_of(visitor, a).get("/customers/export.csv").get_data()
    vb = owner_of(visitor, b)
    preview = upload(vb, exported)
    assert preview.status_code == 200, text(preview)[:2000]
    token = re.search(r'name="token" value="([^"]+)"', text(preview)).group(1)
    assert post(vb, "/customers/import/confirm", {"token": token}).status_code == 302
    from app.customers.models import Customer

    with in_tenant(app, b) as session:
        kim = session.scalar(session.query(Customer).statement)
        assert (kim.name, kim.phone, kim.email) == ("-Kim Lee", "+15125550170", "kim@example.com")
        assert kim.vehicles[0].plate == "KIM 1" and kim.addresses[0].access_notes == "Lobby buzzer 12"


# --- CSV import ---------------------------------------------------------------------


def test_csv_import_preview_lists_row_errors_and_nothing_can_be_imported(app, make_tenant, visitor):
    t = make_tenant()
    seed_customer(app, t, {"name": "Already Here", "phone": "+15125550199"})
    bad = (
        b"name,phone,email,address,vehicle_make,size_class\n"
        b"Good Row,(512) 555-0110,,,,\n"
        b"Bad Phone,12345,,,,\n"
        b"Dup In File,512.555.0110,,,,\n"
        b",,not-an-email,,,\n"
        b"Lost,(512) 555-0111,,99 Nowhere Road,,\n"
        b"Odd Size,(512) 555-0112,,,Honda,minivan\n"
        b"\n"
        b"On File,(512) 555-0199,,,,\n"
    )
    v = owner_of(visitor, t)
    r = upload(v, bad)
    html = text(r)
    assert r.status_code == 422
    assert 'data-testid="import-rejected"' in html and "6 of 7 rows have problems" in html
    assert 'data-testid="import-confirm"' not in html and 'name="token"' not in html
    errors = re.findall(r'data-testid="row-error">(.*?)</li>', html)
    joined = "\n".join(errors)
    assert "Row 3, <code>phone</code>:" in joined
    assert "Row 4, <code>phone</code>: Row 2 has the same number." in joined
    assert "Row 5, <code>name</code>: Enter the customer&#39;s name." in joined
    assert "Row 5, <code>email</code>: Enter a valid e-mail address" in joined
    assert "Row 6, <code>address</code>: We couldn&#39;t find that address" in joined
    assert "Row 7, <code>size_class</code>: Use one of: sedan, suv, truck." in joined
    assert "Row 9, <code>phone</code>: A customer with this number already exists." in joined  # row 8 is blank
    assert 'data-testid="import-row-2"' in html and "Ready" in html
    assert customer_count(app, t) == 1

    # Without a preview token nothing happens either.
    r = post(v, "/customers/import/confirm", {"token": "x" * 32})
    assert r.status_code == 302 and r.headers["Location"].endswith("/customers/import")
    assert customer_count(app, t) == 1


def test_csv_import_good_file_imports_every_row_once(app, make_tenant, visitor):
    from app.customers.models import Customer

    t = make_tenant()
    v = owner_of(visitor, t)
    assert v.get("/customers/import").status_code == 200
    preview = upload(v, ("\ufeff" + GOOD_CSV).encode())
    html = text(preview)
    assert preview.status_code == 200, html[:2000]
    assert "Import 3 customers" in html and "1100 Congress Ave, Austin, TX" in html
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    assert customer_count(app, t) == 0  # the preview writes nothing

    done = post(v, "/customers/import/confirm", {"token": token})
    assert done.status_code == 302 and done.headers["Location"].endswith("/customers")
    assert "Imported 3 customers." in text(v.get("/customers"))
    with in_tenant(app, t) as session:
        people = {c.name: c for c in session.scalars(session.query(Customer).statement)}
        assert set(people) == {"Avery Stone", "Blake Rivers", "Casey Ortiz"}
        avery = people["Avery Stone"]
        assert avery.phone == "+15125550101" and avery.email == "avery@example.com"
        assert avery.addresses[0].access_notes == "Gate code 2468" and avery.addresses[0].lat
        assert (avery.vehicles[0].year, avery.vehicles[0].plate, avery.vehicles[0].size_class) == (
            2019,
            "ABC123",
            "sedan",
        )
        assert people["Blake Rivers"].vehicles == [] and people["Blake Rivers"].addresses[0].line1 == "200 Rainey St"
        assert people["Casey Ortiz"].phone is None and people["Casey Ortiz"].vehicles[0].size_class == "truck"

    twice = post(v, "/customers/import/confirm", {"token": token})
    assert twice.status_code == 302 and twice.headers["Location"].endswith("/customers/import")
    assert customer_count(app, t) == 3


def test_csv_import_is_validated_again_at_import(app, make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    html = text(upload(v, GOOD_CSV.encode()))
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    seed_customer(app, t, {"name": "Walk-in", "phone": "+15125550102"})  # booked meanwhile
    r = post(v, "/customers/import/confirm", {"token": token})
    assert r.status_code == 422
    assert "Something changed" in text(
        r
    ) and "Row 3, <code>phone</code>: A customer with this number already exists." in text(r)
    assert customer_count(app, t) == 1


def test_a_preview_token_works_only_for_the_user_who_uploaded(app, make_tenant, visitor):
    t = make_tenant(admins=1)
    v = owner_of(visitor, t)
    token = re.search(r'name="token" value="([^"]+)"', text(upload(v, GOOD_CSV.encode()))).group(1)
    admin = visitor()
    admin.login(t.people["admin0"].email, t.people["admin0"].password)
    r = post(admin, "/customers/import/confirm", {"token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/customers/import")
    assert customer_count(app, t) == 0


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "Choose a CSV file"),
        (b"name,phone,colour\nA,5125550100,red\n", "Unknown column “colour”"),
        (b"name,phone,name\nA,1,B\n", "name appears twice"),
        (b"phone\n5125550100\n", "Add a “name” column."),
        (b"name,address\nA,1 Main St\n", "Add a “phone” or an “email” column"),
        (b"name,phone\n", "a header row but no customers"),
        (b"PK\x03\x04rest-of-a-zip", "Excel workbook"),
        (b"n\x00a\x00m\x00e\x00", "doesn&#39;t look like a CSV file"),
        (b"name,phone\n" + b"A," + b"5" * 1_000_000 + b"\n", "larger than 1 MB"),
        (
            b"name,phone\n" + b"".join(b"P%d,+1512555%04d\n" % (i, i) for i in range(2001)),
            "more than 2,000 customers",
        ),
    ],
)
def test_csv_import_refuses_bad_files_beside_the_file_field(app, make_tenant, visitor, content, message):
    t = make_tenant()
    v = owner_of(visitor, t)
    r = upload(v, content, filename="customers.csv" if content else "")
    assert r.status_code == 422
    assert 'data-testid="error-file"' in text(r) and message in text(r)
    assert customer_count(app, t) == 0


def test_csv_import_reads_semicolons_windows_text_and_our_own_escapes(app, make_tenant, visitor):
    t = make_tenant()
    v = owner_of(visitor, t)
    content = "NAME;Phone;E-mail\nRenée Dubois;'+1 512 555 0120;\n'=Not A Formula;;eq@example.com\n".encode("cp1252")
    r = upload(v, content)
    assert r.status_code == 200, text(r)[:2000]
    assert "Renée Dubois" in text(r) and "(512) 555-0120" in text(r) and "=Not A Formula" in text(r)


# --- isolation and roles ---------------------------------------------------------------


def _customer_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("dashboard.") and rule.rule.startswith("/customers"):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield rule, method


def _b_customer(app, b):
    from app.customers.models import Customer

    cid = seed_customer(
        app,
        b,
        {"name": "Secret Bee", "phone": "+15125550180", "email": "secret@b.test"},
        vehicle={"make": "BMW", "plate": "BEE1", "size_class": "sedan"},
        address={"address": "1100 Congress Ave", "access_notes": "Code 1357"},
    )
    with in_tenant(app, b) as session:
        c = session.get(Customer, (b.id, cid))
        return {"customer_id": cid, "vehicle_id": c.vehicles[0].id, "address_id": c.addresses[0].id}


def _b_state(app, b, cid):
    from app.customers.models import Customer

    with in_tenant(app, b) as session:
        c = session.get(Customer, (b.id, cid))
        return (
            c.name,
            c.phone,
            c.email,
            [(v.make, v.plate) for v in c.vehicles],
            [a.access_notes for a in c.addresses],
        )


def test_another_tenants_customer_ids_are_404_on_every_customer_route(app, two_tenants, visitor):
    a, b = two_tenants
    ids = _b_customer(app, b)
    before = _b_state(app, b, ids["customer_id"])
    own = seed_customer(app, a, {"name": "Own Customer", "phone": "+15125550181"})
    v = owner_of(visitor, a)
    token = v.dashboard_token()
    form = {
        "csrf_token": token,
        "name": "Hijacked",
        "phone": "+15125550189",
        "address": "1100 Congress Ave",
        "access_notes": "pwned",
        "size_class": "suv",
        "make": "Pwn",
    }
    checked = 0
    for rule, method in _customer_routes(app):
        if "customer_id" not in rule.arguments:
            continue
        # B's ids throughout, then A's own customer with B's vehicle or address.
        variants = [ids]
        if {"vehicle_id", "address_id"} & set(rule.arguments):
            variants.append({**ids, "customer_id": own})
        for values in variants:
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<uuid:{name}>", str(values[name]))
            r = v.request(method, path, data=form)
            assert r.status_code == 404, (method, path, r.status_code)
            assert "Secret Bee" not in text(r) and "Code 1357" not in text(r)
            checked += 1
    assert checked >= 9
    assert _b_state(app, b, ids["customer_id"]) == before
    # Nor do B's customers show up in A's list, search or export.
    assert "Secret Bee" not in text(v.get("/customers", query_string={"q": "Secret"}))
    assert "Secret Bee" not in text(v.get("/customers", query_string={"q": "BEE1"}))
    assert "Secret Bee" not in v.get("/customers/export.csv").get_data(as_text=True)


def test_technicians_get_403_on_customer_pages(app, make_tenant, visitor):
    t = make_tenant(techs=1)
    cid = seed_customer(app, t, {"name": "Tech Cannot See", "phone": "+15125550190"})
    v = visitor()
    v.login(t.people["tech0"].email, t.people["tech0"].password)
    token = v.dashboard_token()
    checked = 0
    for rule, method in _customer_routes(app):
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<uuid:{name}>", str(cid if name == "customer_id" else uuid.uuid4()))
        r = v.request(method, path, data={"csrf_token": token})
        assert r.status_code == 403, (method, path, r.status_code)
        assert "Tech Cannot See" not in text(r)
        checked += 1
    assert checked >= 12


def test_api_vehicles_for_a_customer(app, two_tenants, visitor):
    a, b = two_tenants
    v = visitor()
    v.login(a.owner.email, a.owner.password)
    headers = {"X-CSRFToken": v.dashboard_token()}
    created = v.client.post(
        "/api/v1/customers", base_url=v.base, headers=headers, json={"name": "Api Person", "phone": "(512) 555-0170"}
    )
    assert created.status_code == 201
    cid = created.get_json()["id"]
    bad = v.client.post(
        f"/api/v1/customers/{cid}/vehicles",
        base_url=v.base,
        headers=headers,
        json={"size_class": "boat", "year": "1800"},
    )
    assert bad.status_code == 422 and {"size_class", "year"} <= set(bad.get_json()["error"]["fields"])
    ok = v.client.post(
        f"/api/v1/customers/{cid}/vehicles",
        base_url=v.base,
        headers=headers,
        json={"size_class": "suv", "make": "Kia", "model": "Telluride", "plate": "abc 123"},
    )
    assert ok.status_code == 201 and ok.get_json()["plate"] == "ABC 123"
    listed = v.get(f"/api/v1/customers/{cid}/vehicles").get_json()["vehicles"]
    assert [x["make"] for x in listed] == ["Kia"]
    other = visitor()
    other.login(b.owner.email, b.owner.password)
    assert other.get(f"/api/v1/customers/{cid}/vehicles").status_code == 404
