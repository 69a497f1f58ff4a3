"""Reconciliation alerts: (reserved; filled in by the reconciliation work).

Revision ID: 0008_recon_alerts
Revises: 0007_relay_outbox
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008_recon_alerts"
down_revision: str | Sequence[str] | None = "0007_relay_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
