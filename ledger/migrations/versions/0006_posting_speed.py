"""Posting speed: the same-currency posting path without the generic leg machinery.

Revision ID: 0006_posting_speed
Revises: 0005_recon

Issue #3 measured where `ledger_post_transfer` spends its time (perf with DWARF call graphs
and pg_stat_statements with track = all, on the 16-poster benchmark). Besides the work every
posting must do (seven row writes, their index entries, CHECK and foreign-key checks, the
commit), a same-currency posting paid for machinery it does not need:

- `ledger_apply_legs`, the generic n-leg writer, called through PERFORM (one more executor
  and function call), grouping and sorting its two legs with an aggregate query, and
  building arrays of running balances in a loop before an `unnest` INSERT;
- `ledger_legs_json`, a SQL function with a FROM clause (never inlined: its own executor
  and an aggregate for two array elements);
- `ledger_rfc3339`, called three times per posting through the SQL-function executor:
  declared IMMUTABLE around `to_char`, which is STABLE, so the planner refused to inline it.

This migration gives the same-currency path of `ledger_post_transfer` straight-line code
with exactly the same effects and guarantees: the two projection rows are updated in
account-id order (the order every writer locks in), with the same status and overdraft
guard and the same strictly increasing `last_posted_at`; both entries are written by ONE
INSERT, so the `entries_balanced` trigger still proves the transaction balances; the
entries' foreign keys still check each leg's currency; the `transfer.posted` payload is
the same JSON. Cross-currency postings (caller-given legs) keep the generic path.
`ledger_rfc3339` becomes STABLE, which is what it is, and is then inlined everywhere.
(Both now live in ledger/sql/functions/: this revision is kept for the history's sake.)

Measured and left alone (one backend posting serially; the guards are the invariants):
every statement re-reads its table's CHECK constraints from their serialized form
(ExecConstraints was 17% of the backend's CPU; the ten on `transfers` cost 28 us per
UPDATE); `entries_balanced` costs about 40 us per posting (its query 10 us, the rest is the
trigger itself); `holds_guard` about 10 us, and as a trigger WHEN clause it cost more (68 us
for the holds UPDATE against 54 us); dropping ON CONFLICT from the outbox insert saved
nothing measurable; binary result format cost more than text.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006_posting_speed"
down_revision: str | Sequence[str] | None = "0005_recon"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The new ledger_post_transfer and ledger_rfc3339 declared STABLE now live in their files
# (ledger/sql/functions/), applied after the versioned steps: this revision changes no table,
# and its downgrade no longer restores the generic body (a function is not versioned; the
# files hold the live definition whatever the revision).


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
