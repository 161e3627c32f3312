"""The dynamic batcher on its own, with a stub model: what merges, what splits, what fails alone."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from interop.runtime.batching import Batcher, Counters


class Stub:
    """A 'model' that doubles its input, records the batch sizes it ran, and fails on rows holding -1."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.running = self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, instance: int, arrays: list[np.ndarray]) -> list[np.ndarray]:
        (x,) = arrays
        self.batches.append(x.shape[0])
        self.threads.add(threading.current_thread().name)
        if self.delay:
            with self.lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            time.sleep(self.delay)
            with self.lock:
                self.running -= 1
        if (x == -1).any():
            raise ValueError("poisoned row")
        return [x * 2, x.sum(axis=tuple(range(1, x.ndim)))]


def run(coro_fn, *args, instances: int = 1, max_batch_size: int = 8, delay_us: int = 0, inline: bool = False,
        stub: Stub | None = None):
    stub = stub or Stub()
    counters = Counters()
    with ThreadPoolExecutor(instances) as pool:
        b = Batcher(stub, instances, max_batch_size, delay_us, pool, counters)
        b.inline = inline

        async def main():
            try:
                return await coro_fn(b, *args)
            finally:
                b.close()

        return asyncio.run(main()), stub, counters


def rows(n: int, value: float | None = None, width: int = 3) -> list[np.ndarray]:
    a = np.arange(n * width, dtype=np.float32).reshape(n, width) if value is None else np.full((n, width), value,
                                                                                              np.float32)
    return [a]


async def submit_all(b: Batcher, requests: list[list[np.ndarray]]) -> list:
    return await asyncio.gather(*(b.submit(r) for r in requests), return_exceptions=True)


@pytest.mark.parametrize("inline", [False, True])
def test_queued_requests_merge_and_split(inline):
    requests = [rows(1, float(k)) for k in range(5)] + [rows(2, 10.0)]
    results, stub, c = run(submit_all, requests, inline=inline)
    assert stub.batches == [7]  # all were queued before the scheduler ran
    for req, (doubled, summed) in zip(requests, results):
        np.testing.assert_array_equal(doubled, req[0] * 2)
        np.testing.assert_array_equal(summed, req[0].sum(axis=1))
    assert c.executions == 1 and c.rows_run == 7 and c.batch_counts[3] == 1  # one batch of 5..8 rows
    assert (stub.threads == {threading.current_thread().name}) == inline


def test_max_batch_size_is_respected():
    results, stub, c = run(submit_all, [rows(1, float(k)) for k in range(10)], max_batch_size=4)
    assert stub.batches == [4, 4, 2]
    assert [float(r[0][0, 0]) for r in results] == [2.0 * k for k in range(10)]
    assert c.executions == 3


def test_no_merging_when_max_batch_size_is_0():
    _, stub, _ = run(submit_all, [rows(2) for _ in range(4)], max_batch_size=0)
    assert stub.batches == [2, 2, 2, 2]


def test_only_compatible_shapes_merge():
    requests = [rows(1, 1.0, width=3), rows(1, 2.0, width=5), rows(1, 3.0, width=3), rows(1, 4.0, width=5)]
    results, stub, _ = run(submit_all, requests)
    assert sorted(stub.batches) == [2, 2]
    for req, (doubled, _) in zip(requests, results):
        np.testing.assert_array_equal(doubled, req[0] * 2)


@pytest.mark.parametrize("inline", [False, True])
def test_a_failing_request_fails_alone(inline):
    requests = [rows(1, 1.0), rows(1, -1.0), rows(2, 3.0)]
    results, stub, c = run(submit_all, requests, inline=inline)
    assert stub.batches == [4, 1, 1, 2]  # the merged run failed, so each request ran alone
    assert isinstance(results[1], ValueError)
    np.testing.assert_array_equal(results[0][0], requests[0][0] * 2)
    np.testing.assert_array_equal(results[2][0], requests[2][0] * 2)
    assert c.executions == 3


def test_a_lone_failure_is_raised():
    results, _, _ = run(submit_all, [rows(1, -1.0)])
    assert isinstance(results[0], ValueError)


def test_queue_delay_waits_for_a_fuller_batch():
    async def spaced(b: Batcher) -> list:
        tasks = []
        for k in range(4):
            tasks.append(asyncio.ensure_future(b.submit(rows(1, float(k)))))
            await asyncio.sleep(0.005)
        return await asyncio.gather(*tasks)

    _, stub, c = run(spaced, delay_us=500_000, max_batch_size=4)
    assert stub.batches == [4]  # held until full, well before the 0.5 s delay ran out
    assert c.queue_us > 0
    _, stub, _ = run(spaced, delay_us=0, max_batch_size=4)
    assert len(stub.batches) > 1  # without a delay nobody waits for company


def test_queue_delay_runs_a_partial_batch_when_it_expires():
    async def two(b: Batcher) -> float:
        t = time.perf_counter()
        await asyncio.gather(b.submit(rows(1)), b.submit(rows(1)))
        return time.perf_counter() - t

    took, stub, _ = run(two, delay_us=20_000, max_batch_size=8)
    assert stub.batches == [2] and took >= 0.019


def test_instances_run_in_parallel():
    _, stub, _ = run(submit_all, [rows(1, float(k)) for k in range(4)], instances=4, max_batch_size=1,
                     stub=Stub(delay=0.2))
    assert stub.most_at_once > 1 and len(stub.threads) > 1
    _, stub, _ = run(submit_all, [rows(1, float(k)) for k in range(3)], instances=1, max_batch_size=1,
                     stub=Stub(delay=0.01))
    assert stub.most_at_once == 1


def test_cancelled_requests_are_skipped():
    async def cancel_one(b: Batcher) -> list:
        tasks = [asyncio.ensure_future(b.submit(rows(1, float(k)))) for k in range(3)]
        await asyncio.sleep(0)  # queued
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results, stub, _ = run(cancel_one)
    assert isinstance(results[1], asyncio.CancelledError)
    assert sum(stub.batches) == 2
