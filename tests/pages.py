"""Page objects for the browser tests: how to reach and drive each page, no asserts.

Elements are found by ``data-testid``. Each object takes a Playwright ``Page`` and the
``live_server`` fixture (for URLs on ``app.localhost`` and tenants' hosts).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


def screenshot(page: Page, name: str, viewport: dict | None = None) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ (optionally at a viewport size)."""
    if viewport:
        page.set_viewport_size(viewport)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class _Page:
    def __init__(self, page: Page, live):
        self.page = page
        self.live = live

    def by(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)


class SignupPage(_Page):
    def open(self):
        return self.page.goto(self.live.url("app.localhost", "/signup"))

    def fill(self, *, business_name: str, subdomain: str, time_zone: str, name: str, email: str, password: str):
        self.by("field-business_name").fill(business_name)
        self.by("field-subdomain").fill(subdomain)
        self.by("field-time_zone").select_option(time_zone)
        self.by("field-name").fill(name)
        self.by("field-email").fill(email)
        self.by("field-password").fill(password)

    def submit(self):
        with self.page.expect_navigation():
            self.by("signup-submit").click()

    def field_error(self, name: str) -> Locator:
        return self.by(f"error-{name}")


class LoginPage(_Page):
    def open(self):
        return self.page.goto(self.live.url("app.localhost", "/login"))

    def log_in(self, email: str, password: str):
        self.by("field-email").fill(email)
        self.by("field-password").fill(password)
        with self.page.expect_navigation():
            self.by("login-submit").click()

    def error(self) -> Locator:
        return self.by("login-error")


class Dashboard(_Page):
    def open(self, path: str = "/"):
        return self.page.goto(self.live.url("app.localhost", path))

    def tenant_name(self) -> Locator:
        return self.by("tenant-name")

    def welcome(self) -> Locator:
        return self.by("welcome")

    def flash(self) -> Locator:
        return self.by("flash")

    def sidebar(self) -> Locator:
        return self.by("sidebar")

    def menu(self) -> Locator:
        return self.by("mobile-menu")

    def open_menu(self):
        self.menu().locator("summary").click()

    def menu_link(self, name: str) -> Locator:
        return self.menu().get_by_test_id(f"nav-{name}")

    def scroll_width(self) -> int:
        return self.page.evaluate("document.scrollingElement.scrollWidth")

    def post_form(self, path: str, fields: dict) -> int:
        """POST a form the way a crafted page would (with this page's CSRF token); returns the status."""
        return self.page.evaluate(
            """async ([path, fields]) => {
                const body = new URLSearchParams(fields);
                body.set("csrf_token", document.querySelector("input[name=csrf_token]").value);
                const r = await fetch(path, {method: "POST", body, redirect: "manual"});
                return r.status;
            }""",
            [path, fields],
        )


class SettingsPage(Dashboard):
    def open(self, path: str = "/settings"):
        return super().open(path)

    def set_brand_color(self, hex_colour: str):
        self.by("field-brand_color").fill(hex_colour)

    def save(self):
        with self.page.expect_navigation():
            self.by("settings-save").click()


class BookingSite(_Page):
    def open(self, host: str, path: str = "/"):
        return self.page.goto(self.live.url(host, path))

    def name(self) -> Locator:
        return self.by("site-name")

    def hero(self) -> Locator:
        return self.by("site-hero")

    def hero_background(self) -> str:
        return self.hero().evaluate("el => getComputedStyle(el).backgroundColor")

    def hero_colours(self) -> tuple[list[int], list[int]]:
        """The hero's text and background colours as sRGB triples (via a canvas, whatever colour syntax CSS used)."""
        return self.hero().evaluate(
            _RGB_OF + "el => [rgb(getComputedStyle(el).color), rgb(getComputedStyle(el).backgroundColor)]"
        )


_RGB_OF = """const rgb = (colour) => {
  const ctx = Object.assign(document.createElement("canvas"), {width: 1, height: 1}).getContext("2d");
  ctx.fillStyle = colour; ctx.fillRect(0, 0, 1, 1);
  return Array.from(ctx.getImageData(0, 0, 1, 1).data).slice(0, 3);
};
"""
