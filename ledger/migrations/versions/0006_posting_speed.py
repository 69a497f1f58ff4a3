"""Posting speed: (reserved; filled in by the ledger performance work).

Revision ID: 0006_posting_speed
Revises: 0005_recon
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006_posting_speed"
down_revision: str | Sequence[str] | None = "0005_recon"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
