"""Schemathesis over /openapi.json, as a client would run it: every phase (examples, coverage,
fuzzing, stateful with the document's links: accounts -> transfer -> OTP -> read), every check,
both realms with valid tokens (a customer, and staff of each role), 0 failures.

The API runs on a database of its own (fuzzing signs customers up, freezes accounts, sets FX
rates: nothing another test should see). The run is the `schemathesis` CLI with a config file
(tests/api/schemathesis_run.py builds both); `make contract` runs the long form.

Left out of every run: the token endpoints (argon2 on every example, and random failures fill
the per-IP login throttle that other requests share), logout (it would revoke the run's own
tokens) and /readyz (it reports this setup's absent Kafka with a 503, on purpose).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.ephemeral import PgServer
from tests.api import schemathesis_run
from tests.api.conftest import Api, copied_database, running_api

pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def contract_api(pg_server: PgServer, migrated_template: str, temporal_address: str) -> Iterator[Api]:
    with (
        copied_database(pg_server, migrated_template, prefix="contract") as url,
        running_api(url, temporal_address) as running,
    ):
        yield running


# Generous: the bound is the number of cases, not the clock (2-3 minutes on an idle 2-core
# machine; several times that when other suites share the cores).
@pytest.mark.timeout(1800 if schemathesis_run.bounds_from_env() is schemathesis_run.CI else 4 * 3600)
def test_schemathesis_every_phase_both_realms(contract_api: Api, tmp_path: Path) -> None:
    with httpx.Client(base_url=contract_api.base_url, timeout=60) as http:
        tokens = schemathesis_run.prepare(contract_api, http)
    result = schemathesis_run.run_all(
        contract_api.base_url, tokens, workdir=tmp_path, bounds=schemathesis_run.bounds_from_env()
    )
    print(result.summary())
    assert result.ok, result.report()
    main = result.passes[0].report
    assert isinstance(main, dict), main
    phases: Any = main.get("phases", {})
    assert phases.get("stateful", {}).get("status") == "success", phases
    # The stateful phase followed the declared links: it moved money and submitted a code.
    transfers = contract_api.sql("SELECT count(*) FROM transfers")[0][0]
    attempts = contract_api.sql("SELECT count(*) FROM otp_attempts")[0][0]
    assert transfers > 0 and attempts > 0, (transfers, attempts)
