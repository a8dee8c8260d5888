"""The demo command loads two businesses that look like a real week."""

from click.testing import CliRunner  # noqa: F401


def test_demo_load_creates_a_real_week(app):
    from sqlalchemy import text

    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.lookup import tenant_id_for_subdomain

    runner = app.test_cli_runner()
    with app.app_context():
        if tenant_id_for_subdomain("acme"):
            db.session.rollback()
            return  # already loaded in this database by an earlier run
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["demo", "load"])
    assert "already there" in again.output
    with app.app_context():
        for sub in ("acme", "bravo"):
            tid = tenant_id_for_subdomain(sub)
            with tenant_context(tid, db.session):
                counts = db.session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM bookings WHERE status = 'completed'),"
                        " (SELECT count(*) FROM customers), (SELECT count(*) FROM technicians), (SELECT count(*) FROM packages)"
                    )
                ).one()
                bookings, completed, customers, techs, packages = counts
                assert bookings >= 10 and completed >= 3 and customers >= 5 and techs >= 1 and packages == 7
                # A sent quote with Good/Best tiers and an optional add-on, its link texted to the customer.
                quote = db.session.execute(
                    text(
                        "SELECT q.status, count(l.*) FILTER (WHERE l.tier = 'Best'), bool_or(l.optional),"
                        " (SELECT count(*) FROM messages m WHERE m.kind = 'quote_sent')"
                        " FROM quotes q JOIN quote_lines l ON l.quote_id = q.id GROUP BY q.tenant_id, q.id, q.status"
                    )
                ).all()
                assert quote == [("sent", 2, True, 1)], quote
        db.session.rollback()
