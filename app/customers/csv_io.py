"""CSV import and export of customers, each with their first vehicle and address.

Import is two steps. ``parse_import`` validates every row and reports every problem (the
preview); ``import_customers`` parses the same bytes again, since anything may have changed in
between, and writes all rows or none (at the plan's customer limit: the first rows that fit).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.audit import services as audit
from app.customers import services
from app.customers.models import SIZE_CLASSES, Address, Customer, Vehicle
from app.errors import ValidationFailed
from app.extensions import db
from tenants import quotas

COLUMNS = (
    "name",
    "phone",
    "email",
    "address",
    "access_notes",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "vehicle_color",
    "plate",
    "size_class",
)
MAX_BYTES = 1_000_000
MAX_ROWS = 2_000

# CSV column -> clean_vehicle() key
VEHICLE_COLUMNS = {
    "vehicle_year": "year",
    "vehicle_make": "make",
    "vehicle_model": "model",
    "vehicle_color": "color",
    "plate": "plate",
    "size_class": "size_class",
}
ALIASES = {"e_mail": "email", "vehicle_colour": "vehicle_color", "license_plate": "plate"}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SIZE_HELP = ", ".join(SIZE_CLASSES)


@dataclass
class ImportRow:
    number: int  # as a spreadsheet numbers it: the header is row 1
    cells: dict[str, str] = field(default_factory=dict)  # as typed, to show beside problems
    customer: dict = field(default_factory=dict)
    phone: str | None = None  # E.164 when the number itself is valid, even if the row is not
    vehicle: dict | None = None
    place: dict | None = None
    access_notes: str | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (column, message)

    @property
    def vehicle_label(self) -> str:
        if not self.vehicle:
            return ""
        v = self.vehicle
        parts = [str(v["year"] or ""), v["color"] or "", v["make"] or "", v["model"] or ""]
        return " ".join(p for p in parts if p) or SIZE_CLASSES[v["size_class"]]

    @property
    def address_label(self) -> str:
        if not self.place:
            return ""
        p = self.place
        return ", ".join(x for x in (p["line1"], p.get("city"), p.get("region"), p.get("postal_code")) if x)


@dataclass
class ImportPreview:
    rows: list[ImportRow]

    @property
    def bad_rows(self) -> list[ImportRow]:
        return [r for r in self.rows if r.errors]

    @property
    def can_import(self) -> bool:
        return bool(self.rows) and not self.bad_rows


class ImportRejected(ValidationFailed):
    """Some row is invalid; ``preview`` says which. Nothing was written."""

    def __init__(self, preview: ImportPreview):
        n = len(preview.bad_rows)
        super().__init__(
            {"file": f"{n} {'row has' if n == 1 else 'rows have'} problems."},
            "Nothing was imported: fix the rows marked below and upload the file again.",
        )
        self.preview = preview


def _file_error(message: str) -> ValidationFailed:
    return ValidationFailed({"file": message})


def _decode(content: bytes) -> str:
    if len(content) > MAX_BYTES:
        raise _file_error("The file is larger than 1 MB. Split it into smaller files and import them one by one.")
    if content.startswith(b"PK\x03\x04"):
        raise _file_error("That is an Excel workbook, not a CSV file. In Excel, choose File › Save As › CSV UTF-8.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:  # Excel's plain "CSV" on Windows
            text = content.decode("cp1252")
        except UnicodeDecodeError:
            raise _file_error("We couldn't read the text in that file. Save it as CSV UTF-8 and try again.") from None
    if "\x00" in text:
        raise _file_error("That doesn't look like a CSV file. Save it as CSV UTF-8 and try again.")
    if not text.strip():
        raise _file_error("The file is empty.")
    return text


def _unescape(cell: str) -> str:
    """Undo the quote our export puts before formula-like cells, so an export imports as-is."""
    cell = cell.strip()
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_STARTS:
        return cell[1:]
    return cell


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in cells]
    while names and not names[-1]:
        names.pop()  # trailing empty cells some spreadsheets add
    names = [ALIASES.get(n, n) for n in names]
    problems = []
    unknown = [cells[i].strip() or f"column {i + 1} (no name)" for i, n in enumerate(names) if n not in COLUMNS]
    if unknown:
        listed = ", ".join(f"“{u}”" for u in unknown)
        problems.append(f"Unknown column{'s' if len(unknown) > 1 else ''} {listed}. Use only: {', '.join(COLUMNS)}.")
    repeated = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    if repeated:
        problems.append(f"Each column may appear once: {', '.join(repeated)} appears twice.")
    if "name" not in names:
        problems.append("Add a “name” column.")
    if "phone" not in names and "email" not in names:
        problems.append("Add a “phone” or an “email” column: every customer needs one of them.")
    if problems:
        raise _file_error(" ".join(problems))
    return names


def _records(text: str) -> tuple[list[str], list[tuple[int, dict[str, str], bool]]]:
    """The header and, for each non-blank row, (row number, cells by column, has extra cells)."""
    first_line = text.lstrip().split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)  # Excel in many locales writes ';'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str], bool]] = []
    try:
        for number, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = _header(cells)
                continue
            if len(rows) == MAX_ROWS:
                raise _file_error(f"The file has more than {MAX_ROWS:,} customers. Split it into smaller files.")
            values = {name: _unescape(cells[i]) if i < len(cells) else "" for i, name in enumerate(header)}
            extra = any(c.strip() for c in cells[len(header) :])
            rows.append((number, values, extra))
    except csv.Error as exc:
        raise _file_error(f"The file isn't valid CSV near row {reader.line_num}: {exc}.") from None
    if header is None:
        raise _file_error("The file is empty.")
    if not rows:
        raise _file_error("The file has a header row but no customers under it.")
    return header, rows


def parse_import(content: bytes, *, region: str) -> ImportPreview:
    """Every row of an uploaded CSV with its parsed values or its problems. Raises
    ValidationFailed for problems with the file as a whole (size, encoding, columns)."""
    _, records = _records(_decode(content))
    rows: list[ImportRow] = []
    first_row_with_phone: dict[str, int] = {}
    places: dict[str, dict | ValidationFailed] = {}
    for number, cells, extra in records:
        row = ImportRow(number=number, cells=cells)
        errors: dict[str, str] = {}
        try:
            row.customer = services.clean_customer(cells, region=region)
        except ValidationFailed as exc:
            errors.update(exc.errors)
        row.phone = row.customer.get("phone") or _phone_or_none(cells.get("phone", ""), region)
        if row.phone and "phone" not in errors:
            if row.phone in first_row_with_phone:
                errors["phone"] = f"Row {first_row_with_phone[row.phone]} has the same number."
            else:
                first_row_with_phone[row.phone] = number
        vehicle_data = {key: cells.get(col, "") for col, key in VEHICLE_COLUMNS.items()}
        vehicle_data["size_class"] = vehicle_data["size_class"].lower()
        if services.has_vehicle_fields(vehicle_data):
            try:
                row.vehicle = services.clean_vehicle(vehicle_data)
            except ValidationFailed as exc:
                for key, message in exc.errors.items():
                    column = next(c for c, k in VEHICLE_COLUMNS.items() if k == key)
                    errors[column] = f"Use one of: {SIZE_HELP}." if key == "size_class" else message
        try:
            row.access_notes = services.clean_access_notes(cells.get("access_notes"))
        except ValidationFailed as exc:
            errors.update(exc.errors)
        address = " ".join(cells.get("address", "").split())
        if address:
            key = address.lower()
            if key not in places:
                try:
                    places[key] = services.geocode_address(address)
                except ValidationFailed as exc:
                    places[key] = exc
            found = places[key]
            if isinstance(found, ValidationFailed):
                errors.update(found.errors)
            else:
                row.place = found
        elif row.access_notes:
            errors["address"] = "Add the address these access notes are for."
        if extra:
            errors["row"] = "This row has more cells than the header has columns."
        row.errors = sorted(errors.items(), key=lambda kv: COLUMNS.index(kv[0]) if kv[0] in COLUMNS else -1)
        rows.append(row)
    _mark_existing_phones(rows)
    return ImportPreview(rows=rows)


def _phone_or_none(raw: str, region: str) -> str | None:
    try:
        return services.normalise_phone(raw, region=region) if raw.strip() else None
    except ValidationFailed:
        return None


def _mark_existing_phones(rows: list[ImportRow]) -> None:
    phones = {r.phone for r in rows if r.phone}
    if not phones:
        return
    taken = set(db.session.scalars(db.select(Customer.phone).where(Customer.phone.in_(phones))))
    for row in rows:
        if row.phone in taken and not any(col == "phone" for col, _ in row.errors):
            row.errors.append(("phone", "A customer with this number already exists."))
            row.errors.sort(key=lambda kv: COLUMNS.index(kv[0]) if kv[0] in COLUMNS else -1)


@dataclass
class ImportResult:
    imported: int
    refused: list[int] = field(default_factory=list)  # row numbers left out: the plan's customer limit

    @property
    def refused_rows(self) -> str:
        """ "row 14" or "rows 14–41" (the refused rows are always the file's last ones)."""
        if not self.refused:
            return ""
        first, last = self.refused[0], self.refused[-1]
        return f"row {first}" if first == last else f"rows {first}–{last}"


def import_customers(tenant_id: uuid.UUID, content: bytes, *, region: str, actor_id: uuid.UUID | None) -> ImportResult:
    """Validate ``content`` again and create every customer in it, or none (ImportRejected). At
    the plan's customer limit only the first rows that fit are imported; ``refused`` names the rest."""
    preview = parse_import(content, region=region)
    if not preview.can_import:
        raise ImportRejected(preview)
    room = quotas.room(tenant_id, "customers")  # holds the quota lock until commit
    rows = preview.rows if room is None else preview.rows[:room]
    refused = [row.number for row in preview.rows[len(rows) :]]
    if not rows:
        return ImportResult(0, refused)
    try:
        with db.session.begin_nested():
            customers = [Customer(id=uuid.uuid4(), tenant_id=tenant_id, **row.customer) for row in rows]
            db.session.add_all(customers)
            db.session.flush()  # customers first: vehicles and addresses refer to them
            for row, customer in zip(rows, customers, strict=True):
                if row.vehicle:
                    db.session.add(Vehicle(tenant_id=tenant_id, customer_id=customer.id, **row.vehicle))
                if row.place:
                    db.session.add(
                        Address(
                            tenant_id=tenant_id,
                            customer_id=customer.id,
                            line1=row.place["line1"],
                            city=row.place.get("city"),
                            region=row.place.get("region"),
                            postal_code=row.place.get("postal_code"),
                            lat=float(row.place["lat"]),
                            lng=float(row.place["lng"]),
                            access_notes=row.access_notes,
                        )
                    )
            db.session.flush()
    except IntegrityError as exc:
        if services.is_duplicate_phone(exc):
            raise _file_error(
                "Someone added a customer with one of these numbers a moment ago. Upload the file again to see which."
            ) from None
        raise
    detail = {"rows": len(customers)} | ({"refused": len(refused)} if refused else {})
    audit.record(tenant_id, "customers.imported", actor_id=actor_id, detail=detail)
    return ImportResult(len(customers), refused)


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading quote stops it from running as a formula."""
    text = "" if value is None else str(value)
    if text.lstrip(" ")[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def export_customers_csv(tenant_id: uuid.UUID, *, actor_id: uuid.UUID | None) -> str:
    """Every customer with their first vehicle and address, in the import's columns; UTF-8 with
    a byte-order mark so Excel reads accents and emoji correctly."""
    customers = db.session.scalars(
        db.select(Customer)
        .where(Customer.anonymised_at.is_(None))  # records kept for tax, not people (app/customers/privacy.py)
        .options(selectinload(Customer.vehicles), selectinload(Customer.addresses))
        .order_by(Customer.name, Customer.id)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for c in customers:
        v = c.vehicles[0] if c.vehicles else None
        a = c.addresses[0] if c.addresses else None
        cells = [
            c.name,
            services.format_phone(c.phone),
            c.email,
            a.one_line if a else "",
            a.access_notes if a else "",
            v.year if v else "",
            v.make if v else "",
            v.model if v else "",
            v.color if v else "",
            v.plate if v else "",
            v.size_class if v else "",
        ]
        writer.writerow([safe_cell(x) for x in cells])
        count += 1
    audit.record(tenant_id, "customers.exported", actor_id=actor_id, detail={"rows": count})
    return "\ufeff" + out.getvalue()
