"""Faults injected into a running stack: kill -9 of our processes, restarts of the stores.

The stack runs several processes of each kind; a kill takes one of them, chosen at random,
and the launcher's watcher (not this module) restarts it: that restart is part of what is
tested. Faults come at random moments, from the run's seeded generator.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stack.ephemeral import EphemeralStack
from stack.service import Service

KILLS = ("kill -9 worker", "kill -9 relay", "kill -9 api")


@dataclass
class FaultLog:
    injected: list[tuple[str, float]] = field(default_factory=list)  # (fault, seconds to recover)
    # Which process each kill took (e.g. "api-2"), in order.
    victims: list[str] = field(default_factory=list)
    # Which Kafka node the broker kill took (cluster profile), e.g. "kafka-2".
    brokers_killed: list[str] = field(default_factory=list)


def _restart(service: Service, pause_s: float = 0.0) -> None:
    service.stop()
    time.sleep(pause_s)
    service.start()
    service.wait_ready()


def faults(
    stack: EphemeralStack, rng: random.Random | None = None, log: FaultLog | None = None
) -> dict[str, Callable[[], None]]:
    s = stack.services
    pick = rng or random.Random()

    def kill_one(kind: str) -> Callable[[], None]:
        def run() -> None:
            victim = pick.choice(stack.apps(kind))
            if log is not None:
                log.victims.append(victim.name)
            stack.stack.kill_and_await_restart(victim)

        return run

    table = {
        "kill -9 worker": kill_one("worker"),
        "kill -9 relay": kill_one("relay"),
        "kill -9 api": kill_one("api"),
        # On the cluster profile: the Temporal server (4 history shards on PostgreSQL).
        "restart temporal": lambda: _restart(s["temporal"]),
        "restart postgresql": lambda: _restart(s["postgres"]),
    }
    if stack.settings.profile == "cluster":
        # One of the three brokers dies; the other two hold every partition in sync
        # (RF 3, min.insync.replicas 2), so acks=all publishing goes on after the leader election.
        table["kill -9 kafka broker"] = lambda: _kill_broker(stack, pick, log)
    else:
        table["stop/start kafka"] = lambda: _restart(s["kafka"], pause_s=3.0)
    return table


def _kill_broker(stack: EphemeralStack, pick: random.Random, log: FaultLog | None, down_s: float = 5.0) -> None:
    """kill -9 one Kafka node, leave it down for a while (publishing goes on without it), then
    start it again and wait until it answers (it catches up as a follower)."""
    victim = pick.choice([svc for name, svc in stack.services.items() if name.startswith("kafka-")])
    if log is not None:
        log.brokers_killed.append(victim.name)
    victim.kill()
    time.sleep(down_s)
    victim.start()
    victim.wait_ready()


async def inject(
    stack: EphemeralStack,
    names: list[str],
    log: FaultLog,
    say: Callable[[str], None],
    rng: random.Random | None = None,
) -> None:
    """Inject faults one at a time, at random moments (1 to 6 s apart), then the process kills
    together, while the workload keeps running."""
    pick = rng or random.Random()
    table = faults(stack, pick, log)
    for name in names:
        await asyncio.sleep(pick.uniform(1.0, 6.0))
        say(f"fault: {name}")
        t0 = time.monotonic()
        await asyncio.to_thread(table[name])
        log.injected.append((name, time.monotonic() - t0))
    together = [n for n in KILLS if n in names]
    if len(together) > 1:
        await asyncio.sleep(pick.uniform(1.0, 6.0))
        say(f"faults together: {', '.join(together)}")
        t0 = time.monotonic()
        await asyncio.gather(*(asyncio.to_thread(table[n]) for n in together))
        log.injected.extend((f"{n} (together)", time.monotonic() - t0) for n in together)
