"""Which exceptions mean "a dependency is unavailable, retry later" rather than a bug."""

from __future__ import annotations

from typing import Final

import psycopg
import sqlalchemy.exc

# PostgreSQL unreachable, restarting, or the pool exhausted: back off and try again.
DATABASE_DOWN: Final = (psycopg.OperationalError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError)
