"""Plans and their limits (DESIGN §5b). Enforcement arrives with the issues that create
the limited things; the numbers live here once."""

from __future__ import annotations

from dataclasses import dataclass

UNLIMITED = None


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    technicians: int
    jobs_per_month: int | None
    customers: int
    media_gb: int
    sms_per_month: int
    api_requests_per_hour: int
    platform_fee_bps: int  # basis points of each charge
    refund_platform_fee: bool = True  # a refund gives back our fee too (Stripe refund_application_fee)


PLANS = {
    "starter": Plan("starter", "Starter", 1, 100, 500, 1, 100, 1_000, 200),
    "pro": Plan("pro", "Pro", 5, UNLIMITED, 5_000, 10, 500, 10_000, 100),
    "teams": Plan("teams", "Teams", 10, UNLIMITED, 10_000, 50, 2_000, 50_000, 50),
}


def get_plan(code: str) -> Plan:
    return PLANS[code]
