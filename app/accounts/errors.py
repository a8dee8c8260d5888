from app.errors import FielddayError


class LoginFailed(FielddayError):
    status = 401
    code = "login_failed"
    message = "That e-mail and password don't match an account."


class TokenInvalid(FielddayError):
    status = 404
    code = "link_invalid"
    message = "This link is invalid or has expired."
