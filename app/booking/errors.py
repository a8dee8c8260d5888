from app.errors import FielddayError


class SlotTaken(FielddayError):
    status = 409
    code = "slot_taken"
    message = "Sorry, that time was just taken. Please pick another time."


class SlotUnavailable(FielddayError):
    status = 422
    code = "slot_unavailable"
    message = "That time isn't available. Please pick one of the offered times."


class PolicyRefused(FielddayError):
    status = 422
    code = "policy"
    message = "That change isn't allowed by the booking policy."


class BadTransition(FielddayError):
    status = 409
    code = "bad_transition"
    message = "The booking can't move to that status from where it is."
