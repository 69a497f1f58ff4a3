"""`ledgerflow audit verify`: walk the audit log's hash chain (ledger.audit.verify) and say
whether it holds.

Exit codes: 0 the chain holds; 1 it is broken (the first bad record is named); 2 the
database could not be read.
"""

from __future__ import annotations

import sys
from datetime import UTC

from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import SQLAlchemyError

from ledger import audit
from ledger.db import normalize_url

OK, BROKEN, UNREADABLE = 0, 1, 2


def verify_audit(database_url: str) -> int:
    """Verify the chain at `database_url`, print the verdict, return the exit code."""
    engine = create_engine(normalize_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            broken = audit.verify(conn)
            if broken is None:
                count = int(conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one())
                print(f"audit log OK ({count} records)")
                return OK
            row = conn.execute(text("SELECT at, action FROM audit_log WHERE id = :id"), {"id": broken}).first()
    except SQLAlchemyError as err:
        # First line only: the rest is SQLAlchemy's boilerplate (and may echo the statement).
        first = str(err).splitlines()[0] if str(err) else ""
        print(f"audit log unreadable: {type(err).__name__}: {first}", file=sys.stderr)
        return UNREADABLE
    finally:
        engine.dispose()
    # A broken link found at a deleted row's successor still names a row that exists.
    when = row.at.astimezone(UTC).isoformat() if row is not None else "unknown time"
    action = row.action if row is not None else "unknown action"
    print(f"audit log broken at record {broken} ({when}, {action})")
    return BROKEN


def main(argv: list[str] | None = None) -> int:
    """`python -m recon.audit_cli [DATABASE_URL]` (default: the configured database)."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        url = args[0]
    else:
        from config.settings import Settings

        url = Settings().sqlalchemy_url
    return verify_audit(url)


if __name__ == "__main__":
    sys.exit(main())
