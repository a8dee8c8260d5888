from app.errors import FielddayError
from app.payments.errors import PaymentsUnavailable


class QuoteNotEditable(FielddayError):
    status = 409
    code = "quote_not_editable"
    message = "This quote has been sent, so it can't be changed. Make a new version instead."


class QuoteNotSendable(FielddayError):
    status = 422
    code = "quote_not_sendable"
    message = "This quote can't be sent yet."


class QuoteExpired(FielddayError):
    status = 410
    code = "quote_expired"
    message = "This quote has expired. Please get in touch for a new one."


class QuoteClosed(FielddayError):
    """Accepted, declined or replaced: it can't be answered (again)."""

    status = 409
    code = "quote_closed"
    message = "This quote has already been answered."


class OldDepositStillOpen(PaymentsUnavailable):
    """Accepting again after a hold ran out, but the old deposit's Checkout Session could not be
    expired at Stripe: a second booking now could leave two payable deposits. Try again later."""

    status = 503
    code = "payments_unavailable"
    message = "We couldn't close your earlier payment page just now. Please try again in a minute."
