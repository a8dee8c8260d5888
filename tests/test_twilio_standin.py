"""The Twilio stand-in, driven through the official SDK over loopback HTTP: each test is a behaviour the app relies on."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from scripts.standins.twilio_standin import TwilioStandin, num_segments
from tests.fixtures_twilio import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_NUMBER

CUSTOMER = "+15555550123"
OTHER_NUMBER = "+15005550007"


@dataclass
class Received:
    path: str
    headers: dict
    form: dict

    def url(self, scheme: str | None = None) -> str:
        """The URL an app behind ProxyFix reconstructs: forwarded scheme, Host header, path."""
        scheme = scheme or self.headers.get("X-Forwarded-Proto", "http")
        return f"{scheme}://{self.headers['Host']}{self.path}"

    def valid(self, url: str | None = None, form: dict | None = None, token: str = TWILIO_AUTH_TOKEN) -> bool:
        signature = self.headers.get("X-Twilio-Signature", "")
        return RequestValidator(token).validate(url or self.url(), self.form if form is None else form, signature)


class Receiver:
    """A tiny loopback web server standing in for the app's webhook endpoints."""

    def __init__(self):
        self.received: list[Received] = []
        self.answer = 200
        self.arrived = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with receiver.arrived:
                    receiver.received.append(Received(self.path, dict(self.headers), dict(parse_qsl(raw, True))))
                    receiver.arrived.notify_all()
                self.send_response(receiver.answer)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", "22")
                self.end_headers()
                self.wfile.write(b"<Response></Response>\n")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5) -> list[Received]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(twilio_fake):
    """Webhooks go to a local receiver as if it were the app at app.localhost:5000."""
    receiver = Receiver()
    twilio_fake.webhook_base = receiver.base
    twilio_fake.webhook_host = "app.localhost:5000"
    yield receiver
    receiver.close()


def send(client, to=CUSTOMER, body="Your detail is booked for Tue 10:00.", **kwargs):
    kwargs.setdefault("from_", TWILIO_NUMBER)
    return client.messages.create(to=to, body=body, **kwargs)


def twilio_error(call) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


# -- Messages API ---------------------------------------------------------------------------------------


def test_create_fetch_and_list_a_message(twilio_fake, twilio_client):
    message = send(twilio_client, status_callback="https://app.localhost/webhooks/twilio/status")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.direction, message.to, message.from_) == (
        "queued",
        "outbound-api",
        CUSTOMER,
        TWILIO_NUMBER,
    )
    assert (message.num_segments, message.num_media, message.price, message.error_code) == ("1", "0", None, None)
    assert isinstance(message.date_created, datetime) and message.date_created.tzinfo is not None
    assert message.date_sent is None
    assert message.uri == f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{message.sid}.json"
    assert message.account_sid == TWILIO_ACCOUNT_SID and message.api_version == "2010-04-01"

    fetched = twilio_client.messages(message.sid).fetch()
    assert (fetched.sid, fetched.body, fetched.status) == (message.sid, message.body, "queued")
    assert [m.sid for m in twilio_client.messages.list(to=CUSTOMER)] == [message.sid]
    assert [m.sid for m in twilio_client.messages.list(from_=TWILIO_NUMBER)] == [message.sid]
    assert twilio_client.messages.list(to="+15555550999") == []

    create = twilio_fake.requests[0]
    assert (create.method, create.path, create.status) == (
        "POST",
        f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json",
        201,
    )
    assert create.params == {
        "To": CUSTOMER,
        "From": TWILIO_NUMBER,
        "Body": "Your detail is booked for Tue 10:00.",
        "StatusCallback": "https://app.localhost/webhooks/twilio/status",
    }
    assert "Authorization" not in create.headers and create.headers["User-Agent"].startswith("twilio-python/9.")
    assert twilio_fake.messages == [twilio_fake.message(message.sid)]


def test_list_pages_newest_first_through_next_page_uri(twilio_fake, twilio_client):
    for i in range(7):
        send(twilio_client, body=f"message {i}")

    assert [m.body for m in twilio_client.messages.list(page_size=3)] == [f"message {i}" for i in range(6, -1, -1)]
    pages = [r for r in twilio_fake.requests if r.method == "GET"]
    assert [r.params.get("Page", "0") for r in pages] == ["0", "1", "2"]
    assert all(r.params.get("PageToken", "PA").startswith("PA") for r in pages)
    assert [m.body for m in twilio_client.messages.list(limit=2)] == ["message 6", "message 5"]


def test_segments_follow_gsm7_and_ucs2_limits(twilio_client):
    assert send(twilio_client, body="x" * 160).num_segments == "1"
    assert send(twilio_client, body="x" * 161).num_segments == "2"
    assert send(twilio_client, body="é" * 70 + "ś").num_segments == "2"  # ś is not GSM-7: UCS-2, 67 per part
    assert num_segments("{" * 80) == 1 and num_segments("{" * 81) == 2  # extension characters count twice


@pytest.mark.parametrize(
    ("kwargs", "code", "text"),
    [
        ({"to": "5551234567"}, 21211, "The 'To' number 5551234567 is not a valid phone number."),
        ({"to": "+1 (555) 123-4567"}, 21211, "is not a valid phone number"),
        ({"to": "not-a-number"}, 21211, "is not a valid phone number"),
        ({"from_": "+15559990000"}, 21606, "The From phone number +15559990000 is not a valid"),
        ({"body": "   "}, 21602, "Message body is required."),
        ({"body": "x" * 1601}, 21617, "exceeds the 1600 character limit"),
        ({"from_": None}, 21603, "A 'From' phone number is required."),
        ({"messaging_service_sid": "MG" + "1" * 32, "from_": None}, 21701, "Messaging Service Sid"),
        ({"status_callback": "ftp://example.com/cb"}, 21609, "StatusCallback"),
    ],
)
def test_invalid_sends_answer_twilio_errors_and_store_nothing(twilio_fake, twilio_client, kwargs, code, text):
    error = twilio_error(lambda: send(twilio_client, **kwargs))

    assert (error.status, error.code, error.method) == (400, code, "POST")
    assert text in error.msg
    assert twilio_fake.messages == [] and twilio_fake.requests[-1].status == 400


def test_a_number_of_another_account_is_not_ours(twilio_fake, twilio_client):
    other = twilio_fake.add_account(auth_token="other_token")
    twilio_fake.add_number(OTHER_NUMBER, account_sid=other["sid"])

    assert twilio_error(lambda: send(twilio_client, from_=OTHER_NUMBER)).code == 21606
    own = twilio_fake.client(account_sid=other["sid"], auth_token="other_token")
    assert send(own, from_=OTHER_NUMBER).account_sid == other["sid"]
    # Each account sees only its own messages; another account's path is not found.
    assert twilio_client.messages.list() == []
    assert twilio_error(lambda: twilio_client.api.v2010.accounts(other["sid"]).fetch()).code == 20404


def test_wrong_credentials_answer_401_20003(twilio_fake):
    client = twilio_fake.client(auth_token="wrong")

    error = twilio_error(lambda: send(client))

    assert (error.status, error.code) == (401, 20003)
    assert twilio_fake.messages == [] and twilio_fake.requests[0].status == 401


def test_unserved_twilio_apis_get_a_local_404_not_the_internet(twilio_fake, twilio_client):
    error = twilio_error(lambda: twilio_client.lookups.v2.phone_numbers(CUSTOMER).fetch())

    assert (error.status, error.code) == (404, 20404)
    assert twilio_fake.requests[0].path == f"/v2/PhoneNumbers/{CUSTOMER}"


def test_incoming_phone_numbers_can_be_checked_and_pointed_at_the_app(twilio_fake, twilio_client, receiver):
    twilio_fake.add_number(OTHER_NUMBER)

    owned = twilio_client.incoming_phone_numbers.list(phone_number=TWILIO_NUMBER)
    assert [n.phone_number for n in owned] == [TWILIO_NUMBER]
    assert owned[0].sid.startswith("PN") and owned[0].capabilities["sms"] is True
    assert twilio_client.incoming_phone_numbers.list(phone_number="+15559990000") == []
    assert sorted(n.phone_number for n in twilio_client.incoming_phone_numbers.list()) == [TWILIO_NUMBER, OTHER_NUMBER]

    sms_url = "http://acme.localhost:5000/webhooks/twilio/sms?tenant=ignored"
    updated = twilio_client.incoming_phone_numbers(owned[0].sid).update(sms_url=sms_url, sms_method="POST")
    assert updated.sms_url == sms_url
    assert twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="hi") == 200
    (got,) = receiver.wait_for(1)
    assert got.headers["Host"] == "acme.localhost:5000" and got.path == "/webhooks/twilio/sms?tenant=ignored"
    assert got.valid()


# -- failures and retries ----------------------------------------------------------------------------------


def test_injected_500_reaches_the_caller_after_exactly_one_request(twilio_fake):
    # max_retries only covers connection errors (urllib3 Retry without a status list): the SDK never retries a 500.
    client = twilio_fake.client(max_retries=3)
    twilio_fake.fail_next("POST", r"/Messages\.json$", 500)

    error = twilio_error(lambda: send(client))

    assert (error.status, error.code) == (500, 20500)
    assert "Injected failure" in error.msg
    assert [(r.method, r.status) for r in twilio_fake.requests] == [("POST", 500)]
    assert twilio_fake.messages == []
    assert send(client).status == "queued"  # the failure was used up


def test_injected_429_with_a_chosen_code(twilio_fake, twilio_client):
    twilio_fake.fail_next("POST", "Messages", 429, code=20429, message="Too Many Requests")

    error = twilio_error(lambda: send(twilio_client))

    assert (error.status, error.code) == (429, 20429) and error.msg.endswith("Too Many Requests")


def test_no_idempotency_a_retried_create_sends_twice(twilio_fake, twilio_client):
    # commit=True: Twilio accepted the send but the answer was lost. Retrying without a sent-marker double-texts.
    twilio_fake.fail_next("POST", "Messages", 503, commit=True)

    with pytest.raises(TwilioRestException):
        send(twilio_client, body="Reminder: tomorrow 10:00")
    retried = send(twilio_client, body="Reminder: tomorrow 10:00")

    sent = twilio_fake.messages
    assert [m["body"] for m in sent] == ["Reminder: tomorrow 10:00"] * 2
    assert sent[1]["sid"] == retried.sid and sent[0]["sid"] != retried.sid


def test_concurrent_sends_each_get_their_own_message(twilio_fake, twilio_client):
    with ThreadPoolExecutor(8) as pool:
        sids = list(pool.map(lambda i: send(twilio_client, body=f"n{i}").sid, range(40)))

    assert len(set(sids)) == 40 and len(twilio_fake.messages) == 40


# -- opt-out -------------------------------------------------------------------------------------------------


def test_opted_out_recipient_gets_21610_and_nothing_is_stored(twilio_fake, twilio_client):
    twilio_fake.opt_out(CUSTOMER)

    error = twilio_error(lambda: send(twilio_client))

    assert (error.status, error.code) == (400, 21610)
    assert "Attempt to send to unsubscribed recipient" in error.msg
    assert twilio_fake.messages == []
    twilio_fake.opt_in(CUSTOMER)
    assert send(twilio_client).status == "queued"


def test_stop_then_send_is_21610_and_start_then_send_is_201(twilio_fake, twilio_client, receiver):
    assert twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body=" Stop ") == 200
    stop = receiver.wait_for(1)[0]
    assert (stop.form["Body"], stop.form["OptOutType"]) == (" Stop ", "STOP")  # Twilio still forwards it
    assert twilio_fake.auto_replies[0]["to"] == CUSTOMER and "unsubscribed" in twilio_fake.auto_replies[0]["body"]

    assert twilio_error(lambda: send(twilio_client)).code == 21610
    assert twilio_fake.messages == []

    assert twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="START") == 200
    assert receiver.wait_for(2)[1].form["OptOutType"] == "START"
    assert send(twilio_client).status == "queued"
    assert [r.status for r in twilio_fake.requests] == [400, 201]


@pytest.mark.parametrize(
    ("body", "opted_out"),
    [("STOPALL", True), ("unsubscribe", True), ("Cancel.", True), ("quit", True), ("stop please", False)],
)
def test_only_whole_message_keywords_opt_out(twilio_fake, receiver, body, opted_out):
    twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body=body)

    assert twilio_fake.opted_out(CUSTOMER, TWILIO_NUMBER) is opted_out
    assert ("OptOutType" in receiver.wait_for(1)[0].form) is opted_out


def test_stop_to_one_tenants_number_does_not_silence_another(twilio_fake, twilio_client, receiver):
    twilio_fake.add_number(OTHER_NUMBER)
    twilio_fake.inbound(from_=CUSTOMER, to=OTHER_NUMBER, body="STOP")

    assert send(twilio_client, from_=TWILIO_NUMBER).status == "queued"
    assert twilio_error(lambda: send(twilio_client, from_=OTHER_NUMBER)).code == 21610


def test_help_keeps_the_subscription(twilio_fake, twilio_client, receiver):
    twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="help")

    assert receiver.wait_for(1)[0].form["OptOutType"] == "HELP"
    assert send(twilio_client).status == "queued"


# -- signed webhooks --------------------------------------------------------------------------------------


def test_signed_inbound_validates_and_a_tampered_one_does_not(twilio_fake, receiver):
    status = twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="Can we do 11 instead?")

    assert status == 200
    (got,) = receiver.wait_for(1)
    assert got.path == "/webhooks/twilio/sms" and got.headers["Host"] == "app.localhost:5000"
    assert got.url() == "http://app.localhost:5000/webhooks/twilio/sms"
    assert got.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = got.form
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"] and form["MessageSid"].startswith("SM")
    assert (form["AccountSid"], form["From"], form["To"], form["Body"]) == (
        TWILIO_ACCOUNT_SID,
        CUSTOMER,
        TWILIO_NUMBER,
        "Can we do 11 instead?",
    )
    assert (form["NumMedia"], form["SmsStatus"], form["ApiVersion"], form["NumSegments"]) == (
        "0",
        "received",
        "2010-04-01",
        "1",
    )
    assert "OptOutType" not in form

    assert got.valid()
    assert got.headers["X-Twilio-Signature"] == twilio_fake.signature(got.url(), form)
    assert not got.valid(form={**form, "Body": "Can we do 12 instead?"})
    assert not got.valid(form={**form, "From": "+15555550999"})
    assert not got.valid(url="http://bravo.localhost:5000/webhooks/twilio/sms")
    assert not got.valid(token="another_token")

    (inbound,) = twilio_fake.received
    assert (inbound["sid"], inbound["direction"], inbound["from"], inbound["to"]) == (
        form["MessageSid"],
        "inbound",
        CUSTOMER,
        TWILIO_NUMBER,
    )


def test_signature_over_the_public_https_url_behind_a_tls_proxy(twilio_fake, receiver):
    twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="hi", url="https://app.localhost/webhooks/twilio/sms")

    (got,) = receiver.wait_for(1)
    assert got.headers["X-Forwarded-Proto"] == "https" and got.headers["Host"] == "app.localhost"
    assert got.valid(url="https://app.localhost/webhooks/twilio/sms")
    assert got.valid(url="https://app.localhost:443/webhooks/twilio/sms")  # the validator tries with the port too
    assert not got.valid(url="http://app.localhost/webhooks/twilio/sms")  # request.url without ProxyFix


def test_a_replayed_inbound_keeps_its_message_sid(twilio_fake, receiver):
    sid = "SM" + "a" * 32
    twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="On my way?", message_sid=sid)
    twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="On my way?", message_sid=sid)

    first, second = receiver.wait_for(2)
    assert first.form["MessageSid"] == second.form["MessageSid"] == sid
    assert first.headers["I-Twilio-Idempotency-Token"] != second.headers["I-Twilio-Idempotency-Token"]
    assert [m["sid"] for m in twilio_fake.received] == [sid]


def test_inbound_reports_the_apps_status_and_records_deliveries(twilio_fake, receiver):
    receiver.answer = 403

    assert twilio_fake.inbound(from_=CUSTOMER, to=TWILIO_NUMBER, body="hi") == 403
    (delivery,) = twilio_fake.deliveries
    assert (delivery.kind, delivery.status, delivery.url) == (
        "inbound",
        403,
        "http://app.localhost:5000/webhooks/twilio/sms",
    )


def test_status_callbacks_carry_the_right_fields_and_signatures(twilio_fake, twilio_client, receiver):
    callback = "http://app.localhost:5000/webhooks/twilio/status"
    message = send(twilio_client, status_callback=callback)

    assert twilio_fake.status_callback(message.sid, "sent") == 200
    assert twilio_fake.status_callback(message.sid, "delivered") == 200

    sent, delivered = receiver.wait_for(2)
    for got, status in ((sent, "sent"), (delivered, "delivered")):
        assert got.path == "/webhooks/twilio/status" and got.url() == callback
        assert got.valid() and not got.valid(form={**got.form, "MessageStatus": "failed"})
        assert got.form["MessageStatus"] == got.form["SmsStatus"] == status
        assert got.form["MessageSid"] == got.form["SmsSid"] == message.sid
        assert (got.form["AccountSid"], got.form["From"], got.form["To"], got.form["ApiVersion"]) == (
            TWILIO_ACCOUNT_SID,
            TWILIO_NUMBER,
            CUSTOMER,
            "2010-04-01",
        )
        assert "ErrorCode" not in got.form and "Body" not in got.form
    assert "RawDlrDoneDate" in delivered.form and "RawDlrDoneDate" not in sent.form

    fetched = twilio_client.messages(message.sid).fetch()
    assert fetched.status == "delivered" and fetched.price == "-0.00790" and fetched.date_sent is not None

    # A late "sent" can still be posted (to test the app's no-downgrade rule); Twilio's record stays delivered.
    assert twilio_fake.status_callback(message.sid, "sent") == 200
    assert receiver.wait_for(3)[2].form["MessageStatus"] == "sent"
    assert twilio_client.messages(message.sid).fetch().status == "delivered"


def test_undelivered_callback_carries_an_error_code(twilio_fake, twilio_client, receiver):
    message = send(twilio_client, status_callback="http://app.localhost:5000/webhooks/twilio/status")

    twilio_fake.status_callback(message.sid, "undelivered", error_code=30005)

    assert receiver.wait_for(1)[0].form["ErrorCode"] == "30005"
    fetched = twilio_client.messages(message.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30005)


def test_status_callback_needs_a_url(twilio_fake, twilio_client):
    message = send(twilio_client)

    with pytest.raises(ValueError, match="no StatusCallback"):
        twilio_fake.status_callback(message.sid, "delivered")


def test_auto_status_posts_callbacks_after_the_create_returns(twilio_fake, twilio_client, receiver):
    twilio_fake.auto_status, twilio_fake.auto_status_delay = ["sent", "delivered"], 0.2

    message = send(twilio_client, status_callback="http://app.localhost:5000/webhooks/twilio/status")

    assert twilio_fake.deliveries == [] and message.status == "queued"  # callbacks come later, on their own
    got = receiver.wait_for(2)
    assert [g.form["MessageStatus"] for g in got] == ["sent", "delivered"]
    assert all(g.form["MessageSid"] == message.sid and g.valid() for g in got)
    assert send(twilio_client).status == "queued"  # no StatusCallback, no callbacks
    time.sleep(0.1)
    assert len(twilio_fake.deliveries) == 2


def test_messaging_service_sends_pick_a_sender(twilio_fake, twilio_client, receiver):
    service = twilio_fake.add_messaging_service([TWILIO_NUMBER])

    message = send(
        twilio_client, from_=None, messaging_service_sid=service["sid"], status_callback="http://app.localhost:5000/cb"
    )

    assert (message.status, message.from_, message.messaging_service_sid) == ("accepted", None, service["sid"])
    twilio_fake.status_callback(message.sid, "sent")
    got = receiver.wait_for(1)[0]
    assert got.url() == "http://app.localhost:5000/cb" and got.valid()
    assert (got.form["From"], got.form["MessagingServiceSid"]) == (TWILIO_NUMBER, service["sid"])
    assert twilio_client.messages(message.sid).fetch().from_ == TWILIO_NUMBER


# -- demo plumbing -------------------------------------------------------------------------------------------


def test_state_file_survives_a_restart(tmp_path):
    state = str(tmp_path / "twilio.json")
    first = TwilioStandin(state_file=state).start()
    first.add_number(TWILIO_NUMBER)
    sid = send(first.client()).sid
    first.opt_out("+15555550999")
    first.stop()

    second = TwilioStandin(state_file=state).start()
    try:
        assert second.numbers == {TWILIO_ACCOUNT_SID: [TWILIO_NUMBER]}
        assert second.client().messages(sid).fetch().body == "Your detail is booked for Tue 10:00."
        assert second.opted_out("+15555550999")
    finally:
        second.stop()


def test_control_endpoints_for_other_processes(twilio_fake, twilio_client, receiver):
    parts = urlsplit(twilio_fake.url)

    def call(method, path, form=None):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        body = urlencode(form).encode() if form else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    status, body = call("POST", "/_standin/inbound", {"From": CUSTOMER, "To": TWILIO_NUMBER, "Body": "Thanks!"})
    assert (status, json.loads(body)) == (200, {"status": 200})
    assert receiver.wait_for(1)[0].valid()
    sid = send(twilio_client, status_callback="http://app.localhost:5000/webhooks/twilio/status").sid
    assert call("POST", f"/_standin/messages/{sid}/status", {"Status": "delivered"})[0] == 200
    status, body = call("GET", "/_standin/messages")
    state = json.loads(body)
    assert [m["status"] for m in state["messages"]] == ["delivered"] and state["received"][0]["body"] == "Thanks!"
    status, page = call("GET", "/")
    assert status == 200 and "Thanks!" in page and TWILIO_NUMBER in page
    status, body = call("POST", "/_standin/numbers", {"PhoneNumber": OTHER_NUMBER})
    assert status == 201 and OTHER_NUMBER in twilio_fake.numbers[TWILIO_ACCOUNT_SID]
