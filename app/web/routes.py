"""The owner's route page for a day (dashboard blueprint). Being built: see issue 6."""

from __future__ import annotations

from flask import render_template

from app.web.dashboard import UPCOMING, bp


@bp.get("/routes")
def routes():
    title, blurb = UPCOMING["routes"]
    return render_template("dashboard/upcoming.html", title=title, blurb=blurb, page="routes")
