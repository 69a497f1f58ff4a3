"""bench/open_loop.py: arrivals follow their own schedule, not the answers (an open loop)."""

from __future__ import annotations

import asyncio

import pytest

from bench.open_loop import Phases, arrivals_for, arrive, duration_for, rows


async def test_arrivals_do_not_wait_for_earlier_transfers() -> None:
    release = asyncio.Event()
    started = 0
    finished = 0

    async def stuck_transfer() -> None:
        nonlocal started, finished
        started += 1
        await release.wait()  # no transfer ends until every arrival has come
        finished += 1

    tasks, _late = await arrive(stuck_transfer, rate_per_s=200.0, duration_s=0.5, seed=3)
    await asyncio.sleep(0)
    # A closed loop would have started one and waited; here all of them are in flight at once.
    assert len(tasks) > 20
    assert started == len(tasks)
    assert finished == 0
    release.set()
    await asyncio.gather(*tasks)
    assert finished == started


async def test_the_schedule_is_the_seeds_not_the_machines() -> None:
    async def nothing() -> None:
        return None

    first, _ = await arrive(nothing, rate_per_s=400.0, duration_s=0.2, seed=5)
    second, _ = await arrive(nothing, rate_per_s=400.0, duration_s=0.2, seed=5)
    await asyncio.gather(*first, *second)
    assert len(first) == len(second)


def test_half_the_closed_loop_rate_for_at_least_a_minute() -> None:
    assert arrivals_for(10.0) == 5.0
    assert duration_for(5.0) == 60.0
    assert duration_for(2.0) == 150.0  # 300 transfers at least, for a p99 worth reading


def test_rows_name_the_figures_and_refuse_an_empty_run() -> None:
    phases = Phases(
        initiate_s=[0.1] * 100, otp_delivery_s=[0.3] * 100, otp_to_posted_s=[0.2] * 99 + [2.0], total_s=[0.6] * 100
    )
    by_name = {r["name"]: r["value"] for r in rows(phases, 5.0, 60.0)}
    assert by_name["e2e.half_load_p50_ms"] == 600.0
    assert by_name["e2e.half_load_otp_to_posted_p99_ms"] == 2000.0
    assert by_name["e2e.half_load_initiate_p50_ms"] == 100.0
    with pytest.raises(RuntimeError):
        rows(Phases(), 5.0, 60.0)
