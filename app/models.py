"""Imports every model so SQLAlchemy knows all mappers (and Alembic all tables)."""

from app.accounts.models import Invitation, User, UserSession  # noqa: F401
from app.apikeys.models import ApiKey  # noqa: F401
from app.audit.models import AuditEntry  # noqa: F401
from app.booking.models import Booking, BookingEvent, BookingItem, BusyBlock, Technician, WorkingHours  # noqa: F401
from app.calendar.models import GoogleCalendar, GoogleChannel, GoogleConnection  # noqa: F401
from app.catalog.models import Package, PackagePrice  # noqa: F401
from app.customers.models import Address, Customer, Vehicle  # noqa: F401
from app.dispatch.models import RoutePlan  # noqa: F401
from app.links.models import ShortLink  # noqa: F401
from app.media.models import BookingPhoto  # noqa: F401
from app.messaging.models import Message  # noqa: F401
from app.payments.models import Payment, Refund, StripeEvent  # noqa: F401
from app.quotes.models import Quote, QuoteLine, QuoteRequest, QuoteRequestPhoto  # noqa: F401
from app.reviews.models import Review  # noqa: F401
from app.webhooks_out.models import WebhookDelivery, WebhookEndpoint  # noqa: F401
from tenants.models import Tenant  # noqa: F401
