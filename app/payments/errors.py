from __future__ import annotations

from app.errors import FielddayError


class PaymentsUnavailable(FielddayError):
    status = 409
    code = "payments_unavailable"


class PaymentFailed(FielddayError):
    """Stripe answered with an error we can explain to the person in front of the screen."""

    status = 402
    code = "payment_failed"
