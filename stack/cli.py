"""`ledgerflow` console script: run, stop and inspect the embedded stack."""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import threading
import time
from types import FrameType

from config.settings import Settings
from stack.launcher import Stack, stop_leftovers
from stack.service import StackError


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.profile is not None:
        settings = settings.model_copy(update={"profile": args.profile})
    stack = Stack(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    try:
        stack.up(with_apps=not args.infra_only)
    except StackError as err:
        print(f"ledgerflow: {err}", file=sys.stderr)
        return 1
    print(f"\nLedgerflow is up in {time.monotonic() - t0:.1f}s. Logs: {stack.logs}")
    for name, url in stack.urls().items():
        print(f"  {name:<22} {url}")
    print(f"  {'Environment':<22} {stack.home / 'stack.env'}")
    print("Press Ctrl-C to stop (data is kept under .ledgerflow/).", flush=True)
    try:
        while not stop.wait(1.0):
            # Application processes that die are restarted by the launcher's watcher; the
            # stores are not (restarting one under its clients is an operator's decision).
            for svc in stack.started:
                if svc not in stack.apps and not svc.alive():
                    print(f"ledgerflow: {svc.name} exited unexpectedly; see {svc.log_path}", file=sys.stderr)
                    stop.set()
    finally:
        print("\nstopping…", flush=True)
        stack.down()
        print("stopped; data kept for the next start.")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    count = stop_leftovers(Settings().home.resolve())
    print("nothing was running" if count == 0 else "stopped")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ledger.migrate import upgrade

    upgrade(Settings().sqlalchemy_url)
    print("migrations applied")
    return 0


def cmd_staff_create(args: argparse.Namespace) -> int:
    from api.seed import StaffExists, create_staff

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.email}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    settings = Settings()
    try:
        staff = create_staff(settings.sqlalchemy_url, args.email, password, args.role, settings=settings)
    except StaffExists:
        print(f"ledgerflow: staff {args.email} already exists", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"ledgerflow: {err}", file=sys.stderr)
        return 1
    print(f"created staff {args.email} ({args.role}), id {staff.staff_id}")
    # Shown once, never stored in clear: the member adds it to an authenticator app, then signs
    # in at /ops/ and confirms it with a first code (which also gives them their recovery codes).
    print("two-factor enrolment (add to an authenticator app, then confirm at /ops/ with a first code):")
    print(f"  {staff.otpauth_uri}")
    return 0


def cmd_totp(args: argparse.Namespace) -> int:
    """The dev admin's current TOTP code, from <home>/secrets/dev-admin-totp (local development)."""
    from datetime import UTC, datetime

    from api.seed import dev_admin_totp_path
    from mfa.codes import now_code, secret_of_uri

    path = dev_admin_totp_path(Settings().home.resolve())
    try:
        secret = secret_of_uri(path.read_text().strip())
    except FileNotFoundError:
        print(f"ledgerflow: no {path}; start the stack (or run `ledgerflow seed`) first", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"ledgerflow: {path}: {err}", file=sys.stderr)
        return 1
    print(now_code(secret, datetime.now(UTC)))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from api.seed import seed_dev

    settings = Settings()
    seed_dev(settings.sqlalchemy_url, settings)
    print("dev seed in place")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from recon.audit_cli import verify_audit

    return verify_audit(Settings().sqlalchemy_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledgerflow", description="Ledgerflow money-transfer engine")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole embedded stack in the foreground (Ctrl-C stops it)")
    up.add_argument("--infra-only", action="store_true", help="PostgreSQL, Temporal and Kafka only")
    up.add_argument(
        "--profile",
        choices=["dev", "cluster"],
        default=None,
        help="dev (default, LEDGERFLOW_PROFILE): the embedded stack; cluster: the Temporal server on "
        "PostgreSQL (built from its Go module once) and three Kafka brokers",
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop a stack left running").set_defaults(func=cmd_down)
    sub.add_parser("migrate", help="apply database migrations to LEDGERFLOW_DATABASE_URL").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("seed", help="create the dev admin and house accounts if missing").set_defaults(func=cmd_seed)
    staff = sub.add_parser("staff", help="manage staff users").add_subparsers(dest="staff_command", required=True)
    create = staff.add_parser(
        "create",
        help="create a staff user (password read from the terminal or stdin); prints their TOTP enrolment URI once",
    )
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=["operator", "approver", "auditor", "admin"])
    create.set_defaults(func=cmd_staff_create)
    sub.add_parser(
        "totp",
        help="print the dev admin's current TOTP code (local development only: reads the secret the dev "
        "seed wrote to .ledgerflow/secrets/dev-admin-totp; real staff use an authenticator app)",
    ).set_defaults(func=cmd_totp)
    audit = sub.add_parser("audit", help="audit trail tools").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check the audit log's hash chain (exit 1 if broken)").set_defaults(
        func=cmd_audit_verify
    )
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as err:
        print(f"ledgerflow: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
