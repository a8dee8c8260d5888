"""The per-transaction tenant context (DESIGN §3).

The current tenant lives in a ContextVar, set by request resolution or by a job.
Every database transaction that starts applies it with a transaction-local
``set_config('app.tenant_id', ..., true)``, so a pooled connection never carries a
tenant into the next transaction. Views never call any of this directly.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from sqlalchemy import event, text
from sqlalchemy.orm import Session, scoped_session

_current: ContextVar[uuid.UUID | None] = ContextVar("fieldday_tenant_id", default=None)

SET_TENANT_SQL = text("SELECT set_config('app.tenant_id', :tenant_id, true)")


def current_tenant_id() -> uuid.UUID | None:
    return _current.get()


def _apply(connection, tenant_id: uuid.UUID | None) -> None:
    connection.execute(SET_TENANT_SQL, {"tenant_id": str(tenant_id) if tenant_id else ""})


@event.listens_for(Session, "after_begin")
def _set_tenant_on_begin(session, transaction, connection) -> None:
    # A SAVEPOINT lives inside the outer transaction, whose setting already applies.
    if transaction.nested:
        return
    _apply(connection, _current.get())


def activate(tenant_id: uuid.UUID | None, session: Session | None = None) -> None:
    """Make ``tenant_id`` current, including inside a transaction that already began."""
    _current.set(tenant_id)
    if isinstance(session, scoped_session):
        session = session()
    if session is not None and session.in_transaction():
        tx = session.get_transaction()
        if tx is not None and tx.is_active:
            _apply(session.connection(), tenant_id)


@contextlib.contextmanager
def tenant_context(tenant_id: uuid.UUID, session: Session | None = None) -> Iterator[uuid.UUID]:
    """Run a block as ``tenant_id``; restores the previous tenant afterwards."""
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_context needs a UUID")
    previous = _current.get()
    activate(tenant_id, session)
    try:
        yield tenant_id
    finally:
        activate(previous, session)
