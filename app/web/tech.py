"""The technician's day on a phone (dashboard blueprint). Being built: see issue 6."""

from __future__ import annotations

from flask import render_template

from app.web.dashboard import EVERYONE, bp, roles


@bp.get("/my-day")
@roles(*EVERYONE)
def my_day():
    return render_template("dashboard/my_day.html")
