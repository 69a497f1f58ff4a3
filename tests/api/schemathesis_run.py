"""Runs the schemathesis CLI against a running API, as an integrator would: used by
tests/api/test_schemathesis.py (bounded, in CI) and `make contract` (the long form).

Tokens come from `Api.login` (tests/api/conftest.py), the one place every test signs in, so
a change to sign-in (staff TOTP) is made once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.api.conftest import Api, bearer

ROLES = ("operator", "approver", "auditor", "admin")
# Never fuzzed: see tests/api/test_schemathesis.py's docstring; the two-factor routes because a
# wrong code counts as a failed login (the per-IP throttle that every request shares).
EXCLUDED_PATHS = r"/auth/token$|/auth/logout$|^/readyz$|/me/totp(/confirm)?$"
# Business refusals a schema-valid request may get (state the schema cannot describe);
# `schema_valid_is_well_formed` (tests/api/schemathesis_hooks.py) still refuses a
# validation_error for one.
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]
# The operations of the money flow's links (see the `links` of api/routes/*.py declarations).
FLOW_PATHS = r"^/v1/accounts$|^/v1/transfers|^/ops/v1/deposits$"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROOT = Path(__file__).resolve().parents[2]


def prepare(api: Api, http: httpx.Client) -> dict[str, str]:
    """A customer with funded accounts (two in USD, so the stateful phase can move money
    between them, one in EUR) and a token for the customer and for each staff role."""
    _, customer = api.signup(http, "Schema Thesis")
    # The money-flow pass has a customer of its own: the first pass's fuzzing spends the first
    # customer's transfer-creation budget (429 rate_limited, which account-number lookups share).
    _, flow_customer = api.signup(http, "Flow Thesis")
    tokens = {"customer": customer, "flow_customer": flow_customer, "admin": api.admin_token(http)}
    for role in ROLES[:-1]:
        tokens[role] = api.staff(http, role)
    for who in (customer, flow_customer):
        for currency in ("USD", "USD", "EUR"):
            account = api.open_account(http, who, currency)
            api.deposit(http, tokens["admin"], account, 1_000_000)
        r = http.get("/v1/accounts", headers=bearer(who))
        assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text
    return tokens


def _toml(value: object) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return json.dumps(value)


def config(
    base_url: str,
    customer: str,
    staff: str,
    *,
    max_examples: int,
    stateful_steps: int,
    stateful_examples: int,
    unexpected_methods: tuple[str, ...] | None,
) -> str:
    coverage = [] if unexpected_methods is None else [f"unexpected-methods = {_toml(list(unexpected_methods))}"]
    return "\n".join(
        [
            f"base-url = {_toml(base_url)}",
            'hooks = "tests.api.schemathesis_hooks"',
            "workers = 1",
            "seed = 20261203",
            "continue-on-failure = true",
            "request-timeout = 60",
            "",
            "[generation]",
            f"max-examples = {max_examples}",
            "deterministic = true",
            "",
            "[phases.coverage]",
            *coverage,
            "",
            "[phases.stateful]",
            f"max-steps = {stateful_steps}",
            "",
            # Only the links the document declares: inferred ones (hundreds) would dilute a short run.
            "[phases.stateful.inference]",
            "algorithms = []",
            "",
            "[phases.stateful.generation]",
            f"max-examples = {stateful_examples}",
            "",
            # RFC 6585: 428 is the answer to an edit without If-Match (the contract's code).
            "[checks.missing_required_header]",
            f"expected-statuses = {_toml(['400', '401', '403', '406', '415', '422', '428'])}",
            "",
            "[checks.positive_data_acceptance]",
            f"expected-statuses = {_toml(POSITIVE_STATUSES)}",
            "",
            "[auth.openapi.CustomerToken]",
            f"bearer = {_toml(customer)}",
            "",
            "[auth.openapi.StaffToken]",
            f"bearer = {_toml(staff)}",
            "",
        ]
    )


@dataclass
class Pass:
    name: str
    returncode: int
    output: str
    report: dict[str, object] = field(default_factory=dict)


@dataclass
class Result:
    passes: list[Pass]

    @property
    def ok(self) -> bool:
        return all(p.returncode == 0 for p in self.passes)

    def report(self) -> str:
        return "\n\n".join(f"=== {p.name}: exit {p.returncode}\n{p.output[-20000:]}" for p in self.passes)

    def summary(self) -> str:
        """Cases per pass and phase, from the runs' JSON reports."""
        lines = []
        for p in self.passes:
            cases = p.report.get("test_cases", {})
            phases = p.report.get("phases", {})
            statuses = {k: v.get("status") for k, v in phases.items()} if isinstance(phases, dict) else {}
            generated = cases.get("generated") if isinstance(cases, dict) else None
            lines.append(f"{p.name}: {generated} cases, phases {statuses}, {p.report.get('running_time', 0):.0f} s")
        return "\n".join(lines)


def run_pass(
    name: str,
    base_url: str,
    customer: str,
    staff: str,
    *,
    workdir: Path,
    max_examples: int,
    stateful_steps: int,
    stateful_examples: int,
    unexpected_methods: tuple[str, ...] | None = None,
    phases: str = "examples,coverage,fuzzing,stateful",
    include_path_regex: str | None = None,
) -> Pass:
    cfg = workdir / f"schemathesis-{name}.toml"
    cfg.write_text(
        config(
            base_url,
            customer,
            staff,
            max_examples=max_examples,
            stateful_steps=stateful_steps,
            stateful_examples=stateful_examples,
            unexpected_methods=unexpected_methods,
        )
    )
    args = [
        str(SCHEMATHESIS),
        "--config-file",
        str(cfg),
        "--no-color",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        phases,
        "--exclude-path-regex",
        EXCLUDED_PATHS,
        "--report",
        "json",
        "--report-json-path",
        str(workdir / f"report-{name}.json"),
    ]
    if include_path_regex:
        args += ["--include-path-regex", include_path_regex]
    env = dict(os.environ, PYTHONPATH=str(ROOT), SCHEMATHESIS_HOOKS="tests.api.schemathesis_hooks")
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800, check=False)
    report_path = workdir / f"report-{name}.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Pass(name, done.returncode, done.stdout + done.stderr, report)


@dataclass(frozen=True)
class Bounds:
    """How much each pass generates. CI keeps them small; `make contract` raises them."""

    max_examples: int
    stateful_examples: int
    stateful_steps: int
    role_max_examples: int
    # Methods the coverage phase tries on every path to see a 405 with a right Allow (None: all).
    unexpected_methods: tuple[str, ...] | None


CI = Bounds(
    max_examples=3,
    stateful_examples=15,
    stateful_steps=10,
    role_max_examples=2,
    unexpected_methods=("OPTIONS",),
)
LONG = Bounds(max_examples=50, stateful_examples=100, stateful_steps=20, role_max_examples=20, unexpected_methods=None)


def bounds_from_env() -> Bounds:
    """CI, or LONG when LEDGERFLOW_CONTRACT_LONG=1 (`make contract`)."""
    return LONG if os.environ.get("LEDGERFLOW_CONTRACT_LONG") == "1" else CI


def run_all(base_url: str, tokens: dict[str, str], *, workdir: Path, bounds: Bounds) -> Result:
    """Both realms with the customer and the admin (every operation, every phase), then the
    staff realm with each other role (what a role may not do must be a documented 403)."""
    workdir.mkdir(parents=True, exist_ok=True)
    passes = [
        run_pass(
            "customer+admin",
            base_url,
            tokens["customer"],
            tokens["admin"],
            workdir=workdir,
            max_examples=bounds.max_examples,
            stateful_steps=bounds.stateful_steps,
            stateful_examples=bounds.stateful_examples,
            unexpected_methods=bounds.unexpected_methods,
        )
    ]
    # The money flow on its own, so a short run surely walks its links: accounts -> deposit /
    # transfer -> OTP -> read (and cancel, review, reversal from there).
    passes.append(
        run_pass(
            "money-flow",
            base_url,
            tokens["flow_customer"],
            tokens["admin"],
            workdir=workdir,
            max_examples=bounds.max_examples,
            stateful_steps=bounds.stateful_steps,
            stateful_examples=2 * bounds.stateful_examples,
            phases="stateful",
            include_path_regex=FLOW_PATHS,
        )
    )
    # The coverage phase's cases do not depend on the token (it enumerates boundaries), so the
    # role passes run it only in the long form.
    role_phases = "examples,fuzzing,stateful" if bounds is CI else "examples,coverage,fuzzing,stateful"
    for role in ROLES[:-1]:
        passes.append(
            run_pass(
                role,
                base_url,
                tokens["customer"],
                tokens[role],
                workdir=workdir,
                max_examples=bounds.role_max_examples,
                stateful_steps=bounds.stateful_steps,
                stateful_examples=max(3, bounds.stateful_examples // 5),
                unexpected_methods=bounds.unexpected_methods,
                phases=role_phases,
                include_path_regex="^/ops/",
            )
        )
    return Result(passes)
