"""Customer reviews: asked of every customer after a finished job, shown on the booking site,
answered by the owner (issue 7; docs/reviews.md)."""
