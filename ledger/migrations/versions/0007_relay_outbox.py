"""Relay: (reserved; filled in by the relay work).

Revision ID: 0007_relay_outbox
Revises: 0006_posting_speed
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007_relay_outbox"
down_revision: str | Sequence[str] | None = "0006_posting_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
