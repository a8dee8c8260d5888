"""Base class for domain errors. Each carries an HTTP status and a message a user can read;
app/web/errors.py turns them into pages or JSON."""


class FielddayError(Exception):
    status = 400
    code = "bad_request"
    message = "Something is wrong with that request."

    def __init__(self, message: str | None = None, *, field: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.field = field


class NotFound(FielddayError):
    status = 404
    code = "not_found"
    message = "Not found."


class Forbidden(FielddayError):
    status = 403
    code = "forbidden"
    message = "Your role can't do that."


class ValidationFailed(FielddayError):
    status = 422
    code = "invalid"
    message = "Please check the highlighted fields."

    def __init__(self, errors: dict[str, str], message: str | None = None):
        super().__init__(message)
        self.errors = errors

    def __str__(self) -> str:
        return f"{self.message} {self.errors}"
