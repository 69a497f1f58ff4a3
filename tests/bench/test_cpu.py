"""bench/cpu.py: a process tree's CPU from its own counters, including children that exited
inside the window (PostgreSQL's backends come and go)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bench.cpu import parse_stat, sessions_cpu_s

# A session leader that forks a child burning ~0.4 s of CPU; the child exits and is reaped
# (its time moves into the parent's cutime), then the parent waits to be killed.
TREE = """
import os, sys, time
pid = os.fork()
if pid == 0:
    t = time.process_time()
    while time.process_time() - t < 0.4:
        pass
    os._exit(0)
os.waitpid(pid, 0)
print("reaped", flush=True)
time.sleep(120)
"""


# A leader whose child leaves the session (setsid, as PostgreSQL's backends do) and burns
# ~0.4 s of CPU while still alive.
ESCAPING_CHILD = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    t = time.process_time()
    while time.process_time() - t < 0.4:
        pass
    print("burnt", flush=True)
    time.sleep(120)
    os._exit(0)
time.sleep(120)
"""


def test_parse_stat_reads_fields_after_a_command_name_with_spaces_and_parentheses() -> None:
    line = "4242 (odd) name)) S 1 4240 4240 0 -1 4194560 1 0 0 0 150 30 7 3 20 0 1 0 100 0 0"
    stat = parse_stat(line)
    assert (stat.pid, stat.parent, stat.session, stat.own_ticks, stat.reaped_ticks) == (4242, 1, 4240, 180, 10)


def test_a_session_counts_the_cpu_of_children_that_already_exited() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"reaped"
        # Only the child burned CPU, and it is gone: what the session shows is its reaped time.
        used = sessions_cpu_s({proc.pid: "tree"})
        assert used["tree"] >= 0.3
        # A session nobody runs in reads as nothing, not as an error.
        assert sessions_cpu_s({2**22 + 17: "none"}) == {"none": 0.0}
    finally:
        proc.kill()
        proc.wait()


def test_the_load_generator_is_this_process_alone() -> None:
    from bench.cpu import self_cpu_s

    before = self_cpu_s()
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    assert self_cpu_s() - before >= 0.15


def test_a_part_counts_live_descendants_that_left_its_session() -> None:
    proc = subprocess.Popen([sys.executable, "-c", ESCAPING_CHILD], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"burnt"
        assert sessions_cpu_s({proc.pid: "tree"})["tree"] >= 0.3
    finally:
        escaped = _children(proc.pid)  # before the leader dies and they are re-parented
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in escaped:
            os.kill(pid, signal.SIGKILL)
        proc.wait()


def _children(pid: int) -> list[int]:
    from bench.cpu import all_stats

    return [s.pid for s in all_stats() if s.parent == pid]


def test_rows_divide_by_posted_transfers_and_leave_the_load_generator_out() -> None:
    from bench.cpu import CpuWindow, Sample

    window = CpuWindow.__new__(CpuWindow)
    window.first = Sample(100.0, {"api": 1.0, "worker": 2.0, "load_generator": 5.0})
    window.last = Sample(110.0, {"api": 3.0, "worker": 5.0, "load_generator": 6.0})
    by_name = {r["name"]: r for r in window.rows(50)}
    assert by_name["e2e.cpu_ms_per_transfer"]["value"] == 100.0  # (2 + 3) s / 50
    assert by_name["e2e.cpu_ms_per_transfer.worker"]["value"] == 60.0
    assert by_name["e2e.cpu_ms_per_transfer.load_generator"]["value"] == 20.0
    assert by_name["e2e.cpu_ms_per_transfer"]["cores_busy"] == 0.5
    idle = window.idle_row()
    assert idle["value"] == 0.5
    assert idle["by_kind"] == {"worker": 0.3, "api": 0.2, "load_generator": 0.1}
