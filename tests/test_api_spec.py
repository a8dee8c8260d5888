"""The OpenAPI document covers every /api/v1 route, with the methods each accepts."""

import re


def test_every_api_route_is_documented(app, client):
    spec = client.get("/api/v1/openapi.json", base_url="http://app.localhost").get_json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.subdomain != "app" or not rule.rule.startswith("/api/v1/") or rule.endpoint == "api.openapi":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1") :])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {path} is not in the OpenAPI document"
