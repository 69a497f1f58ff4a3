"""Nothing writes around the unit of work (the design's "Code shape"), in the modules converted
so far: they hold no INSERT / UPDATE / DELETE of their own (the SQL lives in the repository
and domain modules) and open no transaction except a `ledger.uow.UnitOfWork`.

Scope: the `activities` package, api/views.py, every API route (api/routes/), the login and
the seed. It reads the modules' text: a domain function a route calls that opened its own
transaction would not be seen there, so the stores that hold their own SQL (the relay, the
portal's sessions, the idempotency store, the principals' rows, the reconciliation snapshot)
are checked too: they may write, but only on a unit of work (or, for the relay's leader and
reader, a `ledger.uow.session`), never on a connection or transaction of their own.

Left out, on purpose: security/ratelimit.py (security/ sits below the ledger in the layers,
so it cannot import ledger.uow; its one transaction per check is the limiter's atomicity),
the ledger package itself (it owns the unit of work and the autocommit posting path),
migrations, the stack launcher, bench/ and chaos/ (tools and read-only probes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONVERTED = sorted(
    [
        *(ROOT / "activities").glob("*.py"),
        ROOT / "api" / "views.py",
        ROOT / "api" / "login.py",
        ROOT / "api" / "seed.py",
        ROOT / "api" / "deps.py",
        *(ROOT / "api" / "routes").glob("*.py"),
    ]
)
# Modules that hold SQL of their own, writes included, and run it on the caller's unit of work
# or on one they open (`UnitOfWork(engine)`).
STORES = sorted(
    [
        *(ROOT / "relay").glob("*.py"),
        ROOT / "portal" / "sessions.py",
        ROOT / "api" / "idempotency.py",
        ROOT / "api" / "principals.py",
        ROOT / "recon" / "checks.py",
    ]
)
# A write statement in SQL text (any case, across a line break).
WRITE_SQL = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|TRUNCATE)\b", re.IGNORECASE)
# Transactions opened around the unit of work: ledger.db.transaction, engine.begin(),
# psycopg's conn.transaction(), a connection taken out of autocommit.
OWN_TRANSACTION = re.compile(
    r"(\btransaction\(\s*[\w.]*engine|\.begin\(\)|\bconn\.transaction\(|autocommit\s*=\s*False|\bdriver\()"
)


# A connection or transaction taken straight from the engine or the driver.
OWN_CONNECTION = re.compile(
    r"(engine\.(begin|connect)\(|(?<![\w.])(connection|transaction)\(|psycopg\.connect\(|\.raw_connection\()"
)


def offences(text: str) -> list[str]:
    found = [m.group(0) for m in WRITE_SQL.finditer(text)]
    found += [m.group(0) for m in OWN_TRANSACTION.finditer(text)]
    return found


@pytest.mark.parametrize("path", CONVERTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_converted_modules_write_only_through_a_unit_of_work(path: Path) -> None:
    assert offences(path.read_text()) == []


@pytest.mark.parametrize("path", STORES, ids=lambda p: str(p.relative_to(ROOT)))
def test_stores_write_only_on_a_unit_of_work(path: Path) -> None:
    text = path.read_text()
    found = [m.group(0) for m in OWN_TRANSACTION.finditer(text)]
    found += [m.group(0) for m in OWN_CONNECTION.finditer(text)]
    assert found == []


def test_the_store_check_sees_what_it_forbids() -> None:
    sneaky = (
        "with transaction(self.engine) as conn:\n"
        "with connection(engine, autocommit=True) as conn:\n"
        "with self._engine.begin() as conn:\n"
        "with engine.connect() as conn:\n"
    )
    assert len(OWN_CONNECTION.findall(sneaky)) == 4
    allowed = "with UnitOfWork(self.engine) as uow:\nwith session(engine) as conn:\ntry_lead_transaction(conn)\n"
    assert OWN_CONNECTION.findall(allowed) == []


def test_the_check_sees_what_it_forbids() -> None:
    sneaky = (
        'conn.execute("update transfers\n   set status = %s")\n'
        "with transaction(self._ledger.engine) as conn:\n"
        "with runtime.engine.begin() as conn:\n"
        'conn.execute("DELETE FROM holds")\n'
    )
    assert len(offences(sneaky)) == 4
    assert offences("with UnitOfWork(self._engine) as uow:\n    uow.commit()\n") == []
