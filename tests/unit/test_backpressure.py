"""The bound on an endpoint's calls in flight: never exceeded, shared fairly, waits bounded."""

import asyncio

import pytest

from fleet_dagster.llm.backpressure import FairLimiter


async def _hold(limiter: FairLimiter, owner: str, log: list[str], hold_s: float = 0.01, priority: int = 0) -> None:
    await limiter.acquire(owner, timeout_s=10, priority=priority)
    try:
        log.append(owner)
        await asyncio.sleep(hold_s)
    finally:
        limiter.release(owner)


def test_never_more_in_flight_than_the_limit():
    async def scenario() -> int:
        limiter, peak = FairLimiter(3), 0

        async def call() -> None:
            nonlocal peak
            await limiter.acquire("d", timeout_s=10)
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.005)
            limiter.release("d")

        await asyncio.gather(*(call() for _ in range(30)))
        assert limiter.in_flight == 0 and limiter.waiting == 0
        return peak

    assert asyncio.run(scenario()) == 3


def test_a_small_deliberation_is_not_starved_by_a_big_one_queued_first():
    async def scenario() -> list[str]:
        limiter, order = FairLimiter(2), []
        big = [asyncio.create_task(_hold(limiter, "big", order)) for _ in range(20)]
        await asyncio.sleep(0)  # the big one's 20 calls are all queued (2 in flight) before the small one asks
        small = [asyncio.create_task(_hold(limiter, "small", order)) for _ in range(3)]
        await asyncio.gather(*big, *small)
        return order

    order = asyncio.run(scenario())
    # First come first served would run all 20 big calls first; fair share lets the small one in at once.
    assert max(i for i, owner in enumerate(order) if owner == "small") < 8, order


def test_a_higher_priority_deliberation_gets_the_next_slots():
    async def scenario() -> list[str]:
        limiter, order = FairLimiter(2), []
        normal = [asyncio.create_task(_hold(limiter, "normal", order)) for _ in range(10)]
        await asyncio.sleep(0)  # 2 in flight, 8 waiting before the urgent one asks
        urgent = [asyncio.create_task(_hold(limiter, "urgent", order, priority=1)) for _ in range(4)]
        await asyncio.gather(*normal, *urgent)
        return order

    order = asyncio.run(scenario())
    # The two normal calls in flight finish; every urgent call goes before the 8 normal ones waiting.
    assert order[:6] == ["normal", "normal", *["urgent"] * 4], order


def test_a_wait_past_its_timeout_raises_and_leaves_no_slot_taken():
    async def scenario() -> None:
        limiter = FairLimiter(1)
        await limiter.acquire("a", timeout_s=1)
        with pytest.raises(TimeoutError):
            await limiter.acquire("b", timeout_s=0.05)
        assert limiter.waiting == 0 and limiter.in_flight == 1
        limiter.release("a")
        assert await limiter.acquire("c", timeout_s=0.05) == 0.0

    asyncio.run(scenario())


def test_a_cancelled_waiter_hands_its_slot_on():
    async def scenario() -> None:
        limiter = FairLimiter(1)
        await limiter.acquire("a", timeout_s=1)
        waiter = asyncio.create_task(limiter.acquire("b", timeout_s=10))
        third = asyncio.create_task(limiter.acquire("c", timeout_s=10))
        await asyncio.sleep(0.01)
        waiter.cancel()
        limiter.release("a")
        waited = await third
        assert waited > 0 and limiter.in_flight_of("c") == 1 and limiter.in_flight_of("b") == 0

    asyncio.run(scenario())


def test_raising_the_limit_lets_waiters_in():
    async def scenario() -> None:
        limiter = FairLimiter(1)
        await limiter.acquire("a", timeout_s=1)
        waiter = asyncio.create_task(limiter.acquire("b", timeout_s=10))
        await asyncio.sleep(0.01)
        limiter.set_limit(2)
        await asyncio.wait_for(waiter, 1)
        assert limiter.in_flight == 2

    asyncio.run(scenario())
