"""The Stripe stand-in, driven through the official SDK: each test is a behaviour the app relies on."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import pytest
import stripe

from scripts.standins.stripe_standin import CardDeclined, StripeStandin, decode_params
from tests.fixtures_stripe import STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET


def http_request(url: str, method: str = "GET", form: dict | None = None) -> tuple[int, dict, str]:
    """One request without following redirects."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    body = urlencode(form).encode() if form is not None else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def webhook_sink(stripe_fake):
    """A loopback receiver set as the stand-in's webhook_url; collects (raw body, headers)."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stripe_fake.webhook_url = f"http://127.0.0.1:{server.server_port}/webhooks/stripe/connect"
    stripe_fake.webhook_host = "app.localhost:5000"
    yield received
    server.shutdown()
    server.server_close()


def connected_account(client) -> str:
    return client.v1.accounts.create(params={"type": "standard", "country": "US", "email": "pat@example.com"}).id


def open_session(client, account: str, **params):
    params = {
        "mode": "payment",
        "line_items": [
            {"price_data": {"currency": "usd", "unit_amount": 5000, "product_data": {"name": "Deposit"}}, "quantity": 1}
        ],
        "success_url": "http://app.localhost:5000/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://app.localhost:5000/cancelled",
        "expires_at": int(time.time()) + 3600,
        **params,
    }
    return client.v1.checkout.sessions.create(params=params, options={"stripe_account": account})


def saved_card(stripe_fake, client, account: str, card: str):
    """A customer and a card saved for off-session use, by paying a session on the hosted page's code path."""
    session = open_session(client, account, payment_intent_data={"setup_future_usage": "off_session"})
    paid = stripe_fake.complete_checkout(session.id, card=card, email="sam@example.com")
    intent = client.v1.payment_intents.retrieve(paid["payment_intent"], options={"stripe_account": account})
    return paid["customer"], intent.payment_method


def test_decode_params_reads_nested_form_keys():
    pairs = [("line_items[0][price_data][unit_amount]", "5000"), ("metadata[booking_id]", "b1"), ("expand[0]", "x")]
    assert decode_params(pairs) == {
        "line_items": [{"price_data": {"unit_amount": "5000"}}],
        "metadata": {"booking_id": "b1"},
        "expand": ["x"],
    }


def test_wrong_api_key_is_refused(stripe_fake):
    url = stripe_fake.url
    client = stripe.StripeClient("sk_test_wrong", base_addresses={"api": url})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.accounts.create(params={"type": "standard"})
    assert stripe_fake.requests[-1].status == 401


def test_idempotent_replay_creates_one_object(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    options = {"stripe_account": account, "idempotency_key": "deposit:b1"}
    params = {"amount": 5000, "currency": "usd", "metadata": {"booking_id": "b1"}}
    first = stripe_client.v1.payment_intents.create(params=params, options=options)
    second = stripe_client.v1.payment_intents.create(params=params, options=options)

    assert second.to_dict() == first.to_dict()
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_fake.objects("payment_intent")) == 1


def test_idempotency_key_reused_with_other_params_is_refused(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    options = {"stripe_account": account, "idempotency_key": "deposit:b1"}
    stripe_client.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"}, options=options)
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.payment_intents.create(params={"amount": 6000, "currency": "usd"}, options=options)
    assert len(stripe_fake.objects("payment_intent")) == 1


def test_idempotency_keys_are_scoped_per_account(stripe_fake, stripe_client):
    a, b = connected_account(stripe_client), connected_account(stripe_client)
    params = {"amount": 5000, "currency": "usd"}
    for account in (a, b):
        stripe_client.v1.payment_intents.create(
            params=params, options={"stripe_account": account, "idempotency_key": "k"}
        )
    assert len(stripe_fake.objects("payment_intent")) == 2


def test_concurrent_requests_with_one_key_create_one_object(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    options = {"stripe_account": account, "idempotency_key": "remainder:b1"}

    def create(_):
        return stripe_client.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"}, options=options).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(8)))
    assert len(ids) == 1
    assert len(stripe_fake.objects("payment_intent")) == 1


def test_injected_500_then_retry_with_same_key_creates_one_intent(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    options = {"stripe_account": account, "idempotency_key": "remainder:b1"}
    params = {"amount": 5000, "currency": "usd"}
    stripe_fake.fail_next("POST", r"^/v1/payment_intents$", status=500)

    with pytest.raises(stripe.APIError):
        stripe_client.v1.payment_intents.create(params=params, options=options)
    intent = stripe_client.v1.payment_intents.create(params=params, options=options)

    assert [i["id"] for i in stripe_fake.objects("payment_intent")] == [intent.id]
    calls = [r for r in stripe_fake.requests if r.path == "/v1/payment_intents"]
    assert [(r.idempotency_key, r.status) for r in calls] == [("remainder:b1", 500), ("remainder:b1", 200)]


def test_sdk_retries_an_injected_500_with_the_same_key_when_allowed(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    stripe_fake.fail_next("POST", r"^/v1/payment_intents$", status=500, sdk_retry=True)

    stripe_client.v1.payment_intents.create(
        params={"amount": 5000, "currency": "usd"}, options={"stripe_account": account}
    )

    calls = [r for r in stripe_fake.requests if r.path == "/v1/payment_intents"]
    assert [r.status for r in calls] == [500, 200]
    assert calls[0].idempotency_key == calls[1].idempotency_key
    assert len(stripe_fake.objects("payment_intent")) == 1


def test_objects_of_one_account_are_invisible_to_another(stripe_fake, stripe_client):
    a, b = connected_account(stripe_client), connected_account(stripe_client)
    session = open_session(stripe_client, a)

    assert stripe_client.v1.checkout.sessions.retrieve(session.id, options={"stripe_account": a}).id == session.id
    for options in ({"stripe_account": b}, {}):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            stripe_client.v1.checkout.sessions.retrieve(session.id, options=options)
        assert exc.value.http_status == 404
        assert exc.value.code == "resource_missing"
    assert stripe_fake.requests[-1].stripe_account is None


def test_hosted_checkout_pays_redirects_and_sends_signed_events(stripe_fake, stripe_client, webhook_sink):
    account = connected_account(stripe_client)
    session = open_session(
        stripe_client,
        account,
        customer_email="sam@example.com",
        payment_intent_data={
            "setup_future_usage": "off_session",
            "application_fee_amount": 150,
            "metadata": {"b": "1"},
        },
    )
    assert session.url.startswith(f"{stripe_fake.url}/checkout/pay/")

    status, _, page = http_request(session.url)
    assert status == 200
    assert '<button type="submit">Pay $50.00</button>' in page
    assert 'name="viewport"' in page and "<script" not in page and "<link" not in page
    assert "Deposit" in page and 'href="http://app.localhost:5000/cancelled">Back</a>' in page

    status, headers, _ = http_request(session.url, "POST", {"email": "sam@example.com", "card": "4242 4242 4242 4242"})
    assert status == 303
    assert headers["Location"] == f"http://app.localhost:5000/paid?session={session.id}"

    events = [
        stripe.Webhook.construct_event(body, h["Stripe-Signature"], STRIPE_WEBHOOK_SECRET) for body, h in webhook_sink
    ]
    assert [e.type for e in events] == ["checkout.session.completed", "payment_intent.succeeded"]
    assert {e.account for e in events} == {account}
    assert events[0].data.object.id == session.id
    assert webhook_sink[0][1]["Host"] == "app.localhost:5000"
    assert [status for _, status in stripe_fake.deliveries] == [200, 200]
    assert stripe_fake.deliver(events[0].id) == 200 and webhook_sink[-1][0] == webhook_sink[0][0]  # a re-send

    paid = stripe_client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent.payment_method"]}, options={"stripe_account": account}
    )
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    intent = paid.payment_intent
    assert (intent.status, intent.amount_received, intent.application_fee_amount) == ("succeeded", 5000, 150)
    assert intent.metadata.to_dict() == {"b": "1"}
    assert intent.payment_method.card.last4 == "4242"
    assert intent.payment_method.customer == paid.customer
    saved = stripe_client.v1.payment_methods.list(
        params={"customer": paid.customer, "type": "card"}, options={"stripe_account": account}
    )
    assert [pm.id for pm in saved.data] == [intent.payment_method.id]


def test_declined_card_shows_message_and_creates_nothing(stripe_fake, stripe_client):
    session = open_session(stripe_client, connected_account(stripe_client))

    status, _, page = http_request(session.url, "POST", {"card": "4000000000000002"})
    assert status == 200 and "Your card was declined." in page
    _, _, page = http_request(session.url, "POST", {"card": "4000000000009995"})
    assert "Your card has insufficient funds." in page
    with pytest.raises(CardDeclined):
        stripe_fake.complete_checkout(session.id, card="4000000000000002")

    assert stripe_fake.objects("payment_intent") == [] and stripe_fake.objects("customer") == []
    assert stripe_fake.objects("checkout.session")[0]["status"] == "open"


def test_expire_open_session_but_not_a_complete_one(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    options = {"stripe_account": account}
    held, paid = open_session(stripe_client, account), open_session(stripe_client, account)
    stripe_fake.complete_checkout(paid.id)

    assert stripe_client.v1.checkout.sessions.expire(held.id, options=options).status == "expired"
    assert stripe_fake.events[-1]["type"] == "checkout.session.expired"
    with pytest.raises(stripe.InvalidRequestError, match=r'status in \["open"\] can be expired'):
        stripe_client.v1.checkout.sessions.expire(paid.id, options=options)
    status, _, page = http_request(held.url)
    assert status == 410 and "expired" in page


def test_session_expires_lazily_after_expires_at(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    session = open_session(stripe_client, account, expires_at=int(time.time()) + 1800)
    stripe_fake.advance(1801)

    again = stripe_client.v1.checkout.sessions.retrieve(session.id, options={"stripe_account": account})
    assert again.status == "expired"
    assert [e["type"] for e in stripe_fake.events] == ["checkout.session.expired"]


def test_session_validation_matches_stripe(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        open_session(stripe_client, account, expires_at=int(time.time()) + 29 * 60)
    assert exc.value.param == "expires_at"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        open_session(stripe_client, account, expires_at=int(time.time()) + 25 * 3600)
    assert exc.value.param == "expires_at"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        tiny = {"price_data": {"currency": "usd", "unit_amount": 49, "product_data": {"name": "Tip"}}, "quantity": 1}
        open_session(stripe_client, account, line_items=[tiny])
    assert exc.value.code == "amount_too_small"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        open_session(stripe_client, account, success_url=None)
    assert exc.value.param == "success_url"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.payment_intents.create(
            params={"amount": 49, "currency": "usd"}, options={"stripe_account": account}
        )
    assert (exc.value.code, exc.value.param) == ("amount_too_small", "amount")


def test_off_session_payment_needing_authentication_raises_card_error_with_intent(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    customer, card = saved_card(stripe_fake, stripe_client, account, "4000002500003155")
    params = {"amount": 10000, "currency": "usd", "customer": customer, "payment_method": card}

    with pytest.raises(stripe.CardError) as exc:
        stripe_client.v1.payment_intents.create(
            params={**params, "confirm": True, "off_session": True},
            options={"stripe_account": account, "idempotency_key": "remainder:b1"},
        )
    assert exc.value.code == "authentication_required"
    assert exc.value.http_status == 402
    intent = exc.value.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "authentication_required"
    assert exc.value.error.payment_method.id == card
    assert stripe_fake.events[-1]["type"] == "payment_intent.payment_failed"


def test_off_session_payment_with_saved_card_succeeds(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    customer, card = saved_card(stripe_fake, stripe_client, account, "4242424242424242")

    intent = stripe_client.v1.payment_intents.create(
        params={
            "amount": 10000,
            "currency": "usd",
            "customer": customer,
            "payment_method": card,
            "confirm": True,
            "off_session": True,
            "application_fee_amount": 300,
        },
        options={"stripe_account": account},
    )
    assert (intent.status, intent.amount_received) == ("succeeded", 10000)
    assert stripe_fake.events[-1]["type"] == "payment_intent.succeeded"


def test_refunds_track_what_remains_on_the_charge(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    options = {"stripe_account": account}
    paid = stripe_fake.complete_checkout(open_session(stripe_client, account).id)
    intent = paid["payment_intent"]

    refund = stripe_client.v1.refunds.create(params={"payment_intent": intent, "amount": 2000}, options=options)
    assert (refund.amount, refund.status) == (2000, "succeeded")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.refunds.create(params={"payment_intent": intent, "amount": 3001}, options=options)
    assert exc.value.code == "amount_too_large"
    assert "Refund amount ($30.01) is greater than unrefunded amount on charge ($30.00)" in str(exc.value)

    rest = stripe_client.v1.refunds.create(params={"payment_intent": intent}, options=options)
    assert rest.amount == 3000
    charge = stripe_fake.events[-1]["data"]["object"]
    assert (stripe_fake.events[-1]["type"], charge["amount_refunded"], charge["refunded"]) == (
        "charge.refunded",
        5000,
        True,
    )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.refunds.create(params={"payment_intent": intent}, options=options)
    assert exc.value.code == "charge_already_refunded"


def test_account_link_is_single_use_and_onboarding_enables_charges(stripe_fake, stripe_client, webhook_sink):
    account = connected_account(stripe_client)
    link_params = {
        "account": account,
        "type": "account_onboarding",
        "refresh_url": "http://app.localhost:5000/stripe/refresh",
        "return_url": "http://app.localhost:5000/stripe/return",
    }
    link = stripe_client.v1.account_links.create(params=link_params)

    status, _, page = http_request(link.url)
    assert status == 200 and "Stripe test onboarding: pat@example.com" in page
    status, headers, _ = http_request(link.url)
    assert (status, headers["Location"]) == (302, "http://app.localhost:5000/stripe/refresh")

    status, headers, _ = http_request(link.url, "POST", {})
    assert (status, headers["Location"]) == (303, "http://app.localhost:5000/stripe/return")
    assert stripe_client.v1.accounts.retrieve(account).charges_enabled is True
    event = stripe.Webhook.construct_event(
        webhook_sink[-1][0], webhook_sink[-1][1]["Stripe-Signature"], STRIPE_WEBHOOK_SECRET
    )
    assert (event.type, event.account) == ("account.updated", account)


def test_account_link_expires_after_five_minutes(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    link = stripe_client.v1.account_links.create(
        params={"account": account, "type": "account_onboarding", "refresh_url": "http://r", "return_url": "http://x"}
    )
    stripe_fake.advance(301)
    status, headers, _ = http_request(link.url)
    assert (status, headers["Location"]) == (302, "http://r")


def test_control_endpoint_completes_onboarding(stripe_fake, stripe_client):
    account = connected_account(stripe_client)
    status, _, body = http_request(f"{stripe_fake.url}/_standin/accounts/{account}/complete", "POST", {})
    assert status == 200 and json.loads(body)["details_submitted"] is True
    assert http_request(f"{stripe_fake.url}/_standin/health")[0] == 200


def test_signed_payload_is_accepted_by_the_sdk(stripe_fake):
    payload, headers = stripe_fake.signed({"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}})
    assert stripe.Webhook.construct_event(payload, headers["Stripe-Signature"], STRIPE_WEBHOOK_SECRET).id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            payload, stripe_fake.signed(payload, secret="whsec_other")[1]["Stripe-Signature"], STRIPE_WEBHOOK_SECRET
        )


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "stripe.json"
    first = StripeStandin(state_file=str(state)).start()
    url = first.url
    client = stripe.StripeClient(STRIPE_API_KEY, base_addresses={"api": url})
    account = connected_account(client)
    first.stop()

    second = StripeStandin(state_file=str(state)).start()
    try:
        client = stripe.StripeClient(STRIPE_API_KEY, base_addresses={"api": second.url})
        assert client.v1.accounts.retrieve(account).email == "pat@example.com"
    finally:
        second.stop()
