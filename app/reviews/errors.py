from __future__ import annotations

from app.errors import FielddayError


class NotReviewable(FielddayError):
    """Only a finished job can be reviewed."""

    status = 409
    code = "not_reviewable"
    message = "This booking isn't finished yet, so it can't be reviewed."


class ReviewLocked(FielddayError):
    """The edit window has passed: the review stands as it is."""

    status = 409
    code = "review_locked"
    message = "This review can no longer be changed."
