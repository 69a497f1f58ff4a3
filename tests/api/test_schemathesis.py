"""Schemathesis over /openapi.json, as a client would run it: every phase (examples, coverage,
fuzzing, stateful with the document's links: account -> deposit -> transfer -> OTP -> read),
every check, both realms with valid tokens (a customer, and staff of each role), 0 failures.

The API runs on a database of its own (fuzzing signs customers up, freezes accounts, sets FX
rates: nothing another test should see). The run is the `schemathesis` CLI with a config file
written here (tests/api/schemathesis.py builds both, and `make contract` runs the long form).

Left out of every run: the token endpoints (argon2 on every example, and random failures fill
the per-IP login throttle that other requests share), logout (it would revoke the run's own
tokens) and /readyz (it reports this setup's absent Kafka with a 503, on purpose).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api import schemathesis_run
from tests.api.conftest import Api, copied_database, running_api
from tests.conftest import PgServer

pytest.importorskip("schemathesis")

# CI bounds: a few examples per operation and phase, a short stateful run. ~2 minutes on 2 cores.
CI_MAX_EXAMPLES = 4
CI_STATEFUL_STEPS = 6


@pytest.fixture(scope="module")
def contract_api(pg_server: PgServer, migrated_template: str, temporal_address: str) -> Iterator[Api]:
    with (
        copied_database(pg_server, migrated_template, prefix="contract") as url,
        running_api(url, temporal_address) as running,
    ):
        yield running


def test_schemathesis_every_phase_both_realms(contract_api: Api, tmp_path: pytest.TempPathFactory) -> None:
    with httpx.Client(base_url=contract_api.base_url, timeout=60) as http:
        tokens = schemathesis_run.prepare(contract_api, http)
    result = schemathesis_run.run_all(
        contract_api.base_url,
        tokens,
        workdir=tmp_path,  # type: ignore[arg-type]
        max_examples=CI_MAX_EXAMPLES,
        stateful_steps=CI_STATEFUL_STEPS,
    )
    assert result.ok, result.report()
