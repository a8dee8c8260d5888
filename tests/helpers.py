"""Small helpers for HTTP tests: a per-host visitor that handles CSRF tokens."""

from __future__ import annotations

import re

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class Visitor:
    def __init__(self, client, host: str):
        self.client = client
        self.host = host

    @property
    def base(self) -> str:
        return f"http://{self.host}"

    def get(self, path: str, **kw):
        return self.client.get(path, base_url=self.base, **kw)

    def token(self, page: str = "/login") -> str:
        return csrf_from(self.get(page).get_data(as_text=True))

    def post(self, path: str, data: dict | None = None, *, token_page: str | None = None, **kw):
        data = dict(data or {})
        if token_page is not None:
            data["csrf_token"] = self.token(token_page)
        return self.client.post(path, base_url=self.base, data=data, **kw)

    def request(self, method: str, path: str, **kw):
        return self.client.open(path, method=method, base_url=self.base, **kw)

    def login(self, email: str, password: str):
        r = self.post("/login", {"email": email, "password": password}, token_page="/login")
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        return r

    def dashboard_token(self) -> str:
        return self.token("/account")
