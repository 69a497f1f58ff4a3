"""CPU per process kind over a measured window, from each process's own kernel counters.

A part of the embedded stack is the process stack.service started (in a session of its own)
and everything below it: every process in that session and every descendant by parent pid
(PostgreSQL's backends and background workers call setsid(), so they leave the postmaster's
session but stay its children). So: PostgreSQL's postmaster with its backends and background
workers, the JVM, Temporal, each API/worker/relay process with whatever it forks. A part's CPU is the sum over
its live processes of user + system time plus the time of the children they have already
reaped (cutime/cstime): a PostgreSQL backend that exits in the middle of the window moves
its time into the postmaster's counters, so it is still counted once. Sampling counters
before and after the window gives CPU seconds, which contention on a busy machine disturbs far
less than it disturbs latency.

The load generator (this process, counting its own time only: its children are the stack)
is measured separately and left out of the total: it is the customers, not the bank.

Linux only (/proc), as the embedded stack is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.stats import result
from stack.ephemeral import EphemeralStack

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "load_generator"
# Issue #21's bar for the whole bank (every process but the load generator), in ms/transfer.
BAR_MS: Final = 70.0
# Service names as the stack gives them -> the kind in the figure's name.
STORE_KINDS = {"postgresql": "postgres", "temporal": "temporal", "kafka": "kafka"}


@dataclass(frozen=True)
class ProcStat:
    pid: int
    parent: int
    session: int
    own_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: children that exited and were waited for


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The command name (field 2) may hold spaces and parentheses,
    so fields are counted from its closing parenthesis."""
    pid = int(text.split(" ", 1)[0])
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): the parent pid is field 4, the session field 6, utime..cstime
    # fields 14..17.
    parent, session = int(rest[1]), int(rest[3])
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return ProcStat(pid, parent, session, utime + stime, cutime + cstime)


def all_stats() -> Iterator[ProcStat]:
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # gone between listing and reading
            continue


def sessions_cpu_s(sessions: Mapping[int, str]) -> dict[str, float]:
    """CPU seconds so far per kind, for the parts given as {leader pid: kind}: the processes
    in the leader's session and the leader's descendants, each counted once."""
    totals: dict[str, float] = dict.fromkeys(sessions.values(), 0.0)
    stats = {stat.pid: stat for stat in all_stats()}
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.parent, []).append(stat.pid)
    for leader, kind in sessions.items():
        members = {pid for pid, stat in stats.items() if stat.session == leader}
        todo = [leader] if leader in stats else []
        while todo:
            pid = todo.pop()
            members.add(pid)
            todo.extend(child for child in children.get(pid, ()) if child not in members)
        totals[kind] += sum(stats[pid].own_ticks + stats[pid].reaped_ticks for pid in members) / TICKS_PER_S
    return totals


def self_cpu_s() -> float:
    """This process's own CPU (all threads), without its children."""
    t = os.times()
    return t.user + t.system


def stack_sessions(stack: EphemeralStack) -> dict[int, str]:
    """{session id: kind} for every running part of the stack: the stores, and the
    application processes by kind (api-1 and api-2 both count as "api")."""
    sessions: dict[int, str] = {}
    for name, service in stack.services.items():
        if service.process is None or service.process.poll() is not None:
            continue
        kind = STORE_KINDS.get(name, name.rsplit("-", 1)[0])
        sessions[service.process.pid] = kind
    for service in stack.stack.apps:
        if service.process is not None and service.process.poll() is None:
            sessions[service.process.pid] = service.name.rsplit("-", 1)[0]
    return sessions


@dataclass(frozen=True)
class Sample:
    at_s: float
    by_kind_s: dict[str, float]


def sample(stack: EphemeralStack) -> Sample:
    by_kind = sessions_cpu_s(stack_sessions(stack))
    by_kind[LOAD_GENERATOR] = self_cpu_s()
    return Sample(time.monotonic(), by_kind)


class CpuWindow:
    """CPU per kind between `start()` and `stop()`.

    A process restarted inside the window (the watcher brings a dead one back) loses what it
    used before it died; the benchmark kills nothing, so that does not happen there.
    """

    def __init__(self, stack: EphemeralStack) -> None:
        self.stack = stack
        self.first: Sample | None = None
        self.last: Sample | None = None

    def start(self) -> None:
        self.first = sample(self.stack)

    def stop(self) -> None:
        self.last = sample(self.stack)

    def used_s(self) -> dict[str, float]:
        """CPU seconds per kind used in the window (kinds seen at both ends)."""
        if self.first is None or self.last is None:
            raise RuntimeError("CpuWindow: start() and stop() first")
        return {
            kind: max(0.0, self.last.by_kind_s[kind] - self.first.by_kind_s[kind])
            for kind in self.last.by_kind_s
            if kind in self.first.by_kind_s
        }

    def idle_row(self, name: str = "e2e.idle_cpu_cores") -> dict[str, Any]:
        """The stack's CPU with no transfers in flight, in cores (CPU seconds per second), per
        kind in `by_kind`: what pollers, timers and heartbeats cost whatever the load. Divided by
        a run's rate it is the part of CPU per transfer that is not per transfer at all."""
        used = self.used_s()
        elapsed_s = (self.last.at_s - self.first.at_s) if self.first and self.last else 0.0
        if elapsed_s <= 0:
            raise ValueError("an empty window")
        cores = {k: round(v / elapsed_s, 3) for k, v in sorted(used.items(), key=lambda kv: -kv[1])}
        bank = sum(v for k, v in cores.items() if k != LOAD_GENERATOR)
        return result(name, bank, "cores", "-", bank, lower_is_better=True, window_s=round(elapsed_s, 1), by_kind=cores)

    def rows(
        self, posted: int, *, prefix: str = "e2e.cpu_ms_per_transfer", floor: tuple[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """`<prefix>` (every process but the load generator) and `<prefix>.<kind>`, in CPU
        milliseconds per posted transfer. `floor`: (name, ms) measured in the same run (the
        bare workflow's CPU), else the issue's bar stands in the floor's place."""
        if posted <= 0:
            raise ValueError("no posted transfers to divide by")
        used = self.used_s()
        elapsed_s = (self.last.at_s - self.first.at_s) if self.first and self.last else 0.0
        bank_s = sum(v for k, v in used.items() if k != LOAD_GENERATOR)
        ms = 1000 / posted
        floor_name, floor_ms = floor or ("bar (issue 21)", BAR_MS)
        rows = [
            result(
                prefix,
                bank_s * ms,
                "ms",
                floor_name,
                floor_ms,
                lower_is_better=True,
                bar_ms=BAR_MS,
                posted=posted,
                window_s=round(elapsed_s, 1),
                # Cores the stack kept busy on average: near the core count means CPU-bound.
                cores_busy=round(bank_s / elapsed_s, 2) if elapsed_s else None,
            )
        ]
        for kind in sorted(used, key=lambda k: -used[k]):
            rows.append(result(f"{prefix}.{kind}", used[kind] * ms, "ms", "-", used[kind] * ms, lower_is_better=True))
        return rows
