"""`python -m stack.prefetch`: download what the stack needs ahead of time (Kafka's jars).

Run by `make setup` so that the first `ledgerflow up` and the first test run do not wait on
Maven, and so a missing JDK or Maven is reported before anything starts.
"""

from __future__ import annotations

import sys

from config.settings import Settings
from stack import kafka
from stack.service import StackError


def main() -> int:
    try:
        kafka.ensure_java()
        libs = kafka.ensure_kafka_libs(Settings().home.resolve() / "kafka-dist", progress=print)
    except StackError as err:
        print(f"ledgerflow: {err}", file=sys.stderr)
        return 1
    print(f"kafka jars ready in {libs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
