"""Signed outgoing webhooks to the business's own URLs for booking events, with retries and a
delivery log (issue 10; docs/api-and-webhooks.md)."""
