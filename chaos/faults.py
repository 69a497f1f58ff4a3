"""Faults injected into a running stack: kill -9 of our processes, restarts of the stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stack.ephemeral import EphemeralStack
from stack.service import Service


@dataclass
class FaultLog:
    injected: list[tuple[str, float]] = field(default_factory=list)  # (fault, seconds to recover)


def _kill9_and_restart(service: Service) -> None:
    service.kill()
    service.start()
    service.wait_ready()


def _restart(service: Service, pause_s: float = 0.0) -> None:
    service.stop()
    time.sleep(pause_s)
    service.start()
    service.wait_ready()


def faults(stack: EphemeralStack) -> dict[str, Callable[[], None]]:
    s = stack.services
    return {
        "kill -9 worker": lambda: _kill9_and_restart(s["worker"]),
        "kill -9 relay": lambda: _kill9_and_restart(s["relay"]),
        "kill -9 api": lambda: _kill9_and_restart(s["api"]),
        "restart temporal": lambda: _restart(s["temporal"]),
        "restart postgresql": lambda: _restart(s["postgres"]),
        "stop/start kafka": lambda: _restart(s["kafka"], pause_s=3.0),
    }


async def inject(stack: EphemeralStack, names: list[str], log: FaultLog, say: Callable[[str], None]) -> None:
    """Inject faults one at a time, then a few together, while the workload keeps running."""
    table = faults(stack)
    for name in names:
        await asyncio.sleep(2.0)
        say(f"fault: {name}")
        t0 = time.monotonic()
        await asyncio.to_thread(table[name])
        log.injected.append((name, time.monotonic() - t0))
    together = [n for n in ("kill -9 worker", "kill -9 relay", "kill -9 api") if n in names]
    if len(together) > 1:
        await asyncio.sleep(2.0)
        say(f"faults together: {', '.join(together)}")
        t0 = time.monotonic()
        await asyncio.gather(*(asyncio.to_thread(table[n]) for n in together))
        log.injected.extend((f"{n} (together)", time.monotonic() - t0) for n in together)
