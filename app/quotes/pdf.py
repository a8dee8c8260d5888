"""A quote as a PDF (fpdf2, pure Python; the same numbers as every other view, from totals.py).

Built-in PDF fonts cover Latin-1 only, so characters outside it (an emoji in a note, €) are
replaced rather than failing the download; the printable HTML page shows them as typed.
"""

from __future__ import annotations

from fpdf import FPDF

from app.catalog.services import format_money
from app.customers.models import SIZE_CLASSES
from app.quotes import totals as money


def _text(value) -> str:
    text = str(value or "").replace("\u2212", "-").replace("\u2013", "-").replace("\u2014", "-")
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"').replace("\u2026", "...")
    return text.encode("latin-1", "replace").decode("latin-1")


def render(tenant, quote) -> bytes:
    """The quote on A4/Letter-friendly margins: who, what, each option's totals, notes."""
    cur = quote.currency

    def m(cents: int) -> str:
        return _text(format_money(cents, cur))

    pdf = FPDF(format="letter")
    pdf.set_title(_text(f"Quote {quote.label} - {tenant.name}"))
    pdf.set_author(_text(tenant.name))
    pdf.set_margins(18, 18, 18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(width * 0.6, 9, _text(tenant.name))
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(width * 0.4, 9, _text(f"Quote {quote.label}"), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    contact = " · ".join(x for x in (tenant.contact_phone, tenant.contact_email) if x)
    pdf.cell(width * 0.6, 6, _text(contact))
    pdf.cell(width * 0.4, 6, _text(f"Valid until {quote.expires_on.strftime('%B %-d, %Y')}"), align="R")
    pdf.ln(10)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, _text(quote.customer.name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    if quote.address is not None:
        pdf.cell(0, 5, _text(quote.address.one_line), new_x="LMARGIN", new_y="NEXT")
    vehicle = SIZE_CLASSES.get(quote.size_class, "")
    if quote.vehicle is not None and quote.vehicle.make:
        vehicle += f" · {quote.vehicle.year or ''} {quote.vehicle.make} {quote.vehicle.model or ''}"
    pdf.cell(0, 5, _text(vehicle), new_x="LMARGIN", new_y="NEXT")
    if quote.title:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, _text(quote.title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    tiers = money.tiers(quote.lines)
    with pdf.table(col_widths=(58, 10, 16, 16), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"), line_height=6) as table:
        head = table.row()
        for label in ("Item", "Qty", "Unit", "Amount"):
            head.cell(label)
        for group in [None, *tiers]:
            rows = [line for line in quote.lines if line.tier == group]
            if not rows:
                continue
            if tiers:
                table.row().cell(_text("In every option" if group is None else f"Option: {group}"), colspan=4)
            for line in rows:
                row = table.row()
                name = line.name + (" (optional)" if line.optional else "")
                if line.description:
                    name += f"\n{line.description}"
                row.cell(_text(name))
                row.cell(str(line.quantity))
                row.cell(m(line.unit_cents))
                row.cell(m(line.amount_cents))
    pdf.ln(4)
    for name, t in money.tier_totals(quote).items():
        prefix = f"{name}: " if name else ""
        rows = [(f"{prefix}Subtotal", m(t.subtotal_cents))]
        if t.discount_cents:
            rows.append(("Discount", "-" + m(t.discount_cents)))
        if t.tax_cents:
            rows.append((f"Tax ({quote.tax_rate_bps / 100:g} %)", m(t.tax_cents)))
        rows.append((f"{prefix}Total", m(t.total_cents)))
        for i, (label, amount) in enumerate(rows):
            pdf.set_font("Helvetica", "B" if i == len(rows) - 1 else "", 10)
            pdf.set_x(pdf.l_margin + width * 0.5)
            pdf.cell(width * 0.3, 6, _text(label))
            pdf.cell(width * 0.2, 6, amount, align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    if any(line.optional for line in quote.lines):
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, 5, "Optional items are added to the total when chosen.", new_x="LMARGIN", new_y="NEXT")
    if quote.notes:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, "Notes", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 5, _text(quote.notes))
    return bytes(pdf.output())
