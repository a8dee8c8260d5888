def test_healthz_answers_on_app_host(client):
    r = client.get("/healthz", base_url="http://app.localhost")
    assert r.status_code == 200
    assert r.get_json()["checks"] == {"postgres": "ok", "redis": "ok"}
