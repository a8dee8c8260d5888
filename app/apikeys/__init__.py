"""Per-business API keys for /api/v1 and the per-business hourly request allowance (issue 10)."""
