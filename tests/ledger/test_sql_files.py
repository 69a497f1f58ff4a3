"""The SQL functions and views live in ledger/sql/, one file each, applied as repeatable
migrations (ledger.repeatable): a database upgraded in place from the last head that still
made them in versioned migrations ends identical to one built from scratch; a second upgrade
applies nothing; a changed file is re-applied; two upgraders at once apply once; and no
versioned migration makes a function or view any more."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from ledger import repeatable
from ledger.migrate import MIGRATIONS_DIR, alembic_config, downgrade, upgrade
from stack import postgres
from stack.ephemeral import PgServer

HEAD_0014 = Path(__file__).resolve().parent / "fixtures" / "head_0014_risk.sql"
ALL_FILES = [f.path for f in repeatable.FILES]


def _raw(url: str) -> str:
    return url.replace("+psycopg", "")


@pytest.fixture
def second_db_url(pg_server: PgServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(host=pg_server.host, port=pg_server.port, dbname=name)
    try:
        yield pg_server.url(name)
    finally:
        postgres.drop_database(host=pg_server.host, port=pg_server.port, dbname=name)


def _schema(pg_server: PgServer, url: str, *exclude: str) -> str:
    """pg_dump --schema-only, normalised: no comments, no blank lines, no \\restrict keys
    (random per run)."""
    dbname = url.rsplit("/", 1)[1].split("?", 1)[0]
    argv = [str(postgres.pg_bin_dir() / "pg_dump"), "-h", pg_server.host, "-p", str(pg_server.port), "-U", "postgres"]
    argv += ["--schema-only", "--no-owner", "--no-privileges", *(f"--exclude-table={t}" for t in exclude), dbname]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    lines = [
        line for line in out.splitlines() if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]
    return "\n".join(lines)


def _restore_head_0014(url: str) -> None:
    with psycopg.connect(_raw(url), autocommit=True) as conn:
        conn.execute(HEAD_0014.read_text(encoding="utf-8").encode())


def test_upgraded_from_0014_head_and_built_from_scratch_end_identical(
    pg_server: PgServer, db_url: str, second_db_url: str
) -> None:
    _restore_head_0014(db_url)
    before = _schema(pg_server, db_url)
    # The database of today's head has every function and view already: the files are all
    # new to it, so all are applied (same definitions, now recorded).
    assert upgrade(db_url) == ALL_FILES
    upgraded = _schema(pg_server, db_url)

    assert upgrade(second_db_url) == ALL_FILES
    scratch = _schema(pg_server, second_db_url)

    assert upgraded == scratch
    assert not _functions(db_url, DROPPED_IN_0015)  # gone from the upgraded one too
    # and the files hold exactly what today's head had (bodies, volatility, settings, views):
    # the only difference is the record table, once 0015's downgrade has put back the three
    # hold functions it drops (from ledger/sql/retired/). (The fixture comes from PostgreSQL
    # 18, whose ledger_uuidv7 body differs from the fallback an older server gets.)
    downgrade(second_db_url, "0014_risk")
    assert _functions(second_db_url, DROPPED_IN_0015) == sorted(DROPPED_IN_0015)
    with psycopg.connect(_raw(db_url)) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    if version is not None and int(version[0]) // 10000 == 18:
        assert _schema(pg_server, second_db_url, repeatable.RECORD_TABLE) == before


DROPPED_IN_0015 = ("ledger_expire_due_holds", "ledger_place_hold", "ledger_release_hold")


def _functions(url: str, names: tuple[str, ...]) -> list[str]:
    with psycopg.connect(_raw(url)) as conn:
        rows = conn.execute(
            "SELECT proname FROM pg_proc WHERE proname = ANY(%s) ORDER BY proname", (list(names),)
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_second_upgrade_applies_nothing_and_a_changed_file_is_reapplied(db_url: str) -> None:
    assert upgrade(db_url) == ALL_FILES
    assert upgrade(db_url) == []
    with psycopg.connect(_raw(db_url), autocommit=True) as conn:
        # what a changed file looks like to the step: a checksum that differs from the record
        conn.execute(
            f"UPDATE {repeatable.RECORD_TABLE} SET checksum = 'edited' WHERE name = 'functions/ledger_rfc3339.sql'"
        )
        conn.execute(f"DELETE FROM {repeatable.RECORD_TABLE} WHERE name = 'views/outbox_waiting.sql'")
        conn.execute("DROP VIEW outbox_waiting")
    assert upgrade(db_url) == ["functions/ledger_rfc3339.sql", "views/outbox_waiting.sql"]
    assert upgrade(db_url) == []
    with psycopg.connect(_raw(db_url), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM outbox_waiting").fetchone() == (0,)


def test_an_older_revision_gets_only_the_files_its_tables_allow(db_url: str) -> None:
    applied = upgrade(db_url, "0009_outbox_cursor")
    assert "views/outbox_state.sql" in applied
    assert "functions/ledger_account_number.sql" not in applied  # 0013's
    rest = upgrade(db_url)
    assert set(rest) == {f.path for f in repeatable.FILES if f.requires in {"0011_retention", "0013_payees"}}


def test_two_upgraders_at_once_apply_the_files_once(db_url: str) -> None:
    # Two processes (alembic's context is per process, not per thread), started together.
    script = "import json, sys; from ledger.migrate import upgrade; print(json.dumps(upgrade(sys.argv[1])))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    # the later one waited on the advisory lock, then found every file recorded
    assert sorted(results, key=len) == [[], ALL_FILES]


def test_every_file_is_listed_once_with_a_real_revision_and_is_repeatable() -> None:
    on_disk = sorted(
        str(p.relative_to(repeatable.SQL_DIR))
        for p in repeatable.SQL_DIR.rglob("*.sql")
        if repeatable.RETIRED_DIR not in p.parents  # dropped functions' last text: never applied
    )
    assert sorted(ALL_FILES) == on_disk
    assert len(set(ALL_FILES)) == len(ALL_FILES)
    revisions = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    for sql_file in repeatable.FILES:
        assert sql_file.requires in revisions, sql_file
        text = sql_file.text()
        # re-runnable: every definition replaces, none merely creates
        assert not re.search(r"\bCREATE\s+(FUNCTION|VIEW)\b", text, re.I), sql_file.path
        assert re.search(r"\bCREATE OR REPLACE (FUNCTION|VIEW)\b", text), sql_file.path


# Versioned migrations hold tables, types, triggers and data moves. Every revision up to this
# one had its functions and views moved to ledger/sql/; none after it may add any. (DO blocks,
# a downgrade's guard, are not definitions and stay allowed.)
DEFINITIONS_CUTOFF = "0001_ledger"
DEFINITION = re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|(MATERIALIZED\s+)?VIEW)\b", re.I)


def test_no_versioned_migration_defines_a_function_or_view() -> None:
    offenders = [
        path.name
        for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py"))
        if path.name >= DEFINITIONS_CUTOFF and DEFINITION.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "put functions and views in ledger/sql/ (ledger.repeatable.FILES), not in migrations"
