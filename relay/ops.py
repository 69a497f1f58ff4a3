"""`python -m relay.ops`: what an operator needs to see and do about the relay's stuck events.

    python -m relay.ops dead-letters [--all] [--consumer NAME]   events consumers parked
    python -m relay.ops replay ID                                apply a dead letter again
    python -m relay.ops dismiss ID [ID ...]                      close dead letters unapplied
    python -m relay.ops parked                                   outbox rows Kafka refused

The database comes from the usual settings (LEDGERFLOW_DATABASE_URL and friends).
"""

from __future__ import annotations

import argparse
import sys

from config.settings import get_settings
from ledger.db import make_engine
from relay.activity import ActivityProjection
from relay.consumer import Handler
from relay.dead_letters import DeadLetterNotFound, dead_letter, dead_letters, dismiss, replay
from relay.envelope import MalformedEvent
from relay.notifier import Notifier
from relay.outbox_store import parked_rows


class UnknownConsumer(LookupError):
    """A dead letter names a consumer this process does not run."""


def handler_for(name: str) -> Handler:
    """The handler of a consumer by its name (the `consumer` column of a dead letter).

    Raises:
        UnknownConsumer: no such consumer.
    """
    handlers: dict[str, Handler] = {h.name: h for h in (Notifier(), ActivityProjection())}
    try:
        return handlers[name]
    except KeyError:
        raise UnknownConsumer(name) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relay.ops", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("dead-letters", help="list dead letters, oldest first")
    listing.add_argument("--all", action="store_true", help="include resolved ones")
    listing.add_argument("--consumer")
    listing.add_argument("--limit", type=int, default=100)
    again = commands.add_parser("replay", help="apply a dead letter again (after fixing the cause)")
    again.add_argument("id", type=int)
    close = commands.add_parser("dismiss", help="close dead letters without applying them")
    close.add_argument("ids", type=int, nargs="+")
    commands.add_parser("parked", help="outbox rows parked by the publisher")
    args = parser.parse_args(argv)

    engine = make_engine(get_settings().sqlalchemy_url, pool_size=1, application_name="ledgerflow-relay-ops")
    try:
        if args.command == "dead-letters":
            for d in dead_letters(engine, consumer=args.consumer, include_resolved=args.all, limit=args.limit):
                state = f"resolved {d.resolved_at:%Y-%m-%d %H:%M:%S}" if d.resolved_at else "open"
                print(
                    f"{d.id}\t{d.failed_at:%Y-%m-%d %H:%M:%S}\t{d.consumer}\t{d.topic}[{d.partition}]@{d.offset}\t"
                    f"{d.event_type or '-'}\t{d.event_id or '-'}\t{state}\t{d.error}"
                )
        elif args.command == "replay":
            row = dead_letter(engine, args.id)
            if row is None or row.resolved_at is not None:
                print(f"no open dead letter {args.id}", file=sys.stderr)
                return 1
            try:
                replay(engine, handler_for(row.consumer), args.id)
            except (DeadLetterNotFound, UnknownConsumer, MalformedEvent) as exc:
                print(f"not replayed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            print(f"replayed {args.id}")
        elif args.command == "dismiss":
            print(f"dismissed {dismiss(engine, args.ids)}")
        else:
            for p in parked_rows(engine):
                print(
                    f"{p.id}\t{p.seq}\t{p.topic}\t{p.type}\t{p.key}\t{p.attempts}\t{p.payload_bytes}B\t{p.last_error}"
                )
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
