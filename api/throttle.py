"""Login throttling: a sliding window of failed attempts in PostgreSQL, per username and per IP.

Kept in the database rather than in process memory so that every API replica sees the same
count and a restart does not reset an attacker's budget. Only failures are counted; once the
window is full, even the right password is refused until old failures slide out of it (or a
successful login clears the username's own failures).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

WINDOW_S: Final = 15 * 60
MAX_FAILURES_PER_USERNAME: Final = 10
# Higher than per username: many people can share one NAT address.
MAX_FAILURES_PER_IP: Final = 50


def normalise(username: str) -> str:
    return username.strip().lower().replace("\x00", "")[:320]


def serialise(conn: Connection, realm: str, username: str) -> None:
    """Take a transaction-scoped lock on this username's login attempts.

    Without it the count is checked before any concurrent attempt has recorded its failure,
    so N parallel guesses all pass a check that allows 10 (measured: 30 of 30 got through).
    Held until commit; the throttled path under it is a single count query, so a flood of
    guesses for one username queues briefly instead of each being verified.
    """
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"login:{realm}:{normalise(username)}"}
    )


def retry_after_s(conn: Connection, realm: str, username: str, ip: str) -> int | None:
    """Seconds until a login may be tried again, or None when the attempt may go ahead."""
    row = conn.execute(
        text(
            """
            SELECT
              (SELECT count(*) FROM login_failures
                WHERE realm = :realm AND username = :u AND failed_at > now() - make_interval(secs => :w)) AS by_user,
              (SELECT count(*) FROM login_failures
                WHERE ip = :ip AND failed_at > now() - make_interval(secs => :w)) AS by_ip
            """
        ),
        {"realm": realm, "u": normalise(username), "ip": ip, "w": WINDOW_S},
    ).one()
    if int(row.by_user) >= MAX_FAILURES_PER_USERNAME or int(row.by_ip) >= MAX_FAILURES_PER_IP:
        # Simple and safe upper bound: the whole window. Precise enough for a Retry-After hint.
        return WINDOW_S
    return None


def record_failure(conn: Connection, realm: str, username: str, ip: str) -> None:
    conn.execute(
        text("INSERT INTO login_failures (realm, username, ip, failed_at) VALUES (:realm, :u, :ip, now())"),
        {"realm": realm, "u": normalise(username), "ip": ip},
    )
    # Rows older than the window are never read again: prune them while we are here.
    conn.execute(
        text("DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => :w) * 2"),
        {"w": WINDOW_S},
    )


def clear(conn: Connection, realm: str, username: str) -> None:
    conn.execute(
        text("DELETE FROM login_failures WHERE realm = :realm AND username = :u"),
        {"realm": realm, "u": normalise(username)},
    )
