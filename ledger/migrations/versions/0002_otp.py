"""OTP challenges and attempts; FX rates (seeded) and firm quotes.

Revision ID: 0002_otp
Revises: 0001_ledger

OTP: one challenge per transfer holding only the keyed hash of the code (bound to amount,
currency and payee), its expiry and attempts left; every submitted code is an `otp_attempts`
row keyed by its submission id (a retried check answers the same); failures per customer
feed the cross-transfer cap. FX: `fx_rates` is what ops manage; `fx_quotes` are the firm
quotes a posting cites.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from alembic import op

revision: str = "0002_otp"
down_revision: str | Sequence[str] | None = "0001_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE TABLE otp_challenges (
    transfer_id   uuid PRIMARY KEY,
    customer_id   uuid NOT NULL,
    code_hash     text NOT NULL,
    expires_at    timestamptz NOT NULL,
    attempts_left integer NOT NULL CHECK (attempts_left >= 0),
    state         text NOT NULL CHECK (state IN ('pending', 'used', 'locked', 'expired')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE otp_attempts (
    transfer_id   uuid NOT NULL REFERENCES otp_challenges (transfer_id),
    submission_id text NOT NULL,
    outcome       text NOT NULL,
    attempts_left integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transfer_id, submission_id)
);

CREATE TABLE otp_failures (
    customer_id uuid NOT NULL,
    transfer_id uuid NOT NULL,
    failed_at   timestamptz NOT NULL
);
CREATE INDEX otp_failures_by_customer ON otp_failures (customer_id, failed_at);

CREATE TABLE fx_rates (
    base       char(3) NOT NULL,
    quote      char(3) NOT NULL,
    rate       numeric(24, 12) NOT NULL CHECK (rate > 0),
    spread_bps integer NOT NULL CHECK (spread_bps >= 0 AND spread_bps < 10000),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (base, quote),
    CHECK (base <> quote)
);

CREATE TABLE fx_quotes (
    id                   uuid PRIMARY KEY,
    transfer_id          uuid NOT NULL,
    source_currency      char(3) NOT NULL,
    destination_currency char(3) NOT NULL,
    rate                 numeric(24, 12) NOT NULL CHECK (rate > 0),
    spread_bps           integer NOT NULL,
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL
);
CREATE INDEX fx_quotes_by_transfer ON fx_quotes (transfer_id);
"""

# Units of each currency per 1 USD: sane defaults for the dev stack; ops replace them.
USD_RATES = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "CHF": Decimal("0.88"),
    "JPY": Decimal("151.50"),
    "BHD": Decimal("0.376"),
}
DEFAULT_SPREAD_BPS = 50


def seed_rows() -> list[tuple[str, str, Decimal]]:
    rows = []
    for base, base_per_usd in USD_RATES.items():
        for quote, quote_per_usd in USD_RATES.items():
            if base != quote:
                rate = (quote_per_usd / base_per_usd).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN)
                rows.append((base, quote, rate))
    return rows


def upgrade() -> None:
    op.execute(UPGRADE)
    values = ",\n".join(
        f"('{base}', '{quote}', {rate}, {DEFAULT_SPREAD_BPS}, 'seed')" for base, quote, rate in seed_rows()
    )
    op.execute(f"INSERT INTO fx_rates (base, quote, rate, spread_bps, updated_by) VALUES {values}")


def downgrade() -> None:
    op.execute("DROP TABLE fx_quotes, fx_rates, otp_failures, otp_attempts, otp_challenges")
