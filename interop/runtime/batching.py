"""Dynamic batching: requests queued for a model merge along the batch axis, run on a free instance, and split back.

One scheduler per model forms the batches, and forms one whenever an instance is free and a request waits. With
`max_queue_delay_us=0` no request waits for company: at low load each runs alone at once, and under load the queue
fills while the instances compute, so the next batch takes all of it (up to max_batch_size). A positive delay holds the
oldest request up to that long for a fuller batch, like Triton's `max_queue_delay_microseconds`. Only requests whose
non-batch dimensions agree merge. Each instance runs in its own thread: ONNX Runtime releases the GIL, so the event
loop keeps reading requests while a model computes. If a merged batch fails, its requests are rerun one by one, so a
request whose data the model rejects fails alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from functools import partial
from time import perf_counter
from typing import Any

import numpy as np

__all__ = ["BATCH_BUCKETS", "Batcher", "Counters"]

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Counters:
    """One model version's running totals, for /metrics. Durations are summed over requests, as Triton's are."""

    __slots__ = ("batch_counts", "compute_us", "executions", "failure", "inferences", "queue_us", "request_us",
                 "rows_run", "success")

    def __init__(self) -> None:
        self.success = self.failure = 0  # requests answered / refused or failed
        self.inferences = 0  # rows (batch elements) answered
        self.executions = 0  # model runs; rows_run / executions is the mean batch size
        self.rows_run = 0
        self.request_us = self.queue_us = self.compute_us = 0.0
        self.batch_counts = [0] * (len(BATCH_BUCKETS) + 1)  # executions by batch size, the last for larger ones

    def batch(self, rows: int) -> None:
        self.executions += 1
        self.rows_run += rows
        for i, edge in enumerate(BATCH_BUCKETS):
            if rows <= edge:
                self.batch_counts[i] += 1
                return
        self.batch_counts[-1] += 1


class _Item:
    __slots__ = ("arrays", "future", "key", "rows", "t")

    def __init__(self, arrays: list[np.ndarray], future: asyncio.Future, merge: bool):
        self.arrays, self.future, self.t = arrays, future, perf_counter()
        self.rows = arrays[0].shape[0] if merge else 1
        self.key = tuple(a.shape[1:] for a in arrays) if merge else None


class Batcher:
    """Runs `run(instance, arrays) -> outputs` on `instances` instances, merging requests up to `max_batch_size` rows
    (0: never merge). With `inline` set, runs happen on the event loop's own thread instead: for a model that runs in
    less time than a thread hop costs (about 90 us of CPU per run measured on 2 cores, against 35 us for a batch-1
    MLP 784-512-256-10), that saves CPU and holds the loop up no longer than the hop would.
    """

    def __init__(self, run: Callable[[int, list[np.ndarray]], list[np.ndarray]], instances: int, max_batch_size: int,
                 max_queue_delay_us: int, executor: Executor, counters: Counters):
        self._run, self._max, self._pool, self._counters = run, max_batch_size, executor, counters
        self.inline = False  # run on the event loop's thread (for runs shorter than a thread hop)
        self._delay = max_queue_delay_us / 1e6
        self._free = list(range(instances))
        self._queue: deque[_Item] = deque()
        self._rows = 0  # rows waiting in the queue
        self._waiter: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for one request (its rows of them when merged with others)."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._schedule())
        item = _Item(arrays, loop.create_future(), self._max > 0)
        self._queue.append(item)
        self._rows += item.rows
        self._wake()
        return await item.future

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        while self._queue:
            self._queue.popleft().future.cancel()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _sleep(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        w = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, self._wake)
        try:
            await w
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            while not (queue and self._free):
                await self._sleep(None)
            if self._delay and self._max:
                deadline = queue[0].t + self._delay
                while queue and self._rows < self._max and (left := deadline - perf_counter()) > 0:
                    await self._sleep(left)
                if not queue:
                    continue
            if self.inline and self._max:
                # An inline run blocks the loop, so requests only queue up between runs: one loop turn first lets
                # every connection with a request already on the wire join this batch.
                await asyncio.sleep(0)
            batch = self._take()
            if not batch:
                continue
            instance = self._free.pop()
            t0 = perf_counter()
            if self.inline:
                done: Future = Future()
                try:
                    done.set_result(self._execute(instance, batch))
                except Exception as e:
                    done.set_exception(e)
                self._finish(batch, instance, t0, done)
            else:
                fut = loop.run_in_executor(self._pool, self._execute, instance, batch)
                fut.add_done_callback(partial(self._finish, batch, instance, t0))

    def _take(self) -> list[_Item]:
        """The oldest live request plus the compatible ones behind it that fit, oldest first."""
        queue = self._queue
        first = queue.popleft()
        self._rows -= first.rows
        if first.future.done():  # the client went away
            return []
        batch = [first]
        room, skipped = self._max - first.rows, []
        while queue and room > 0 and len(skipped) < self._max:
            item = queue.popleft()
            if item.future.done():
                self._rows -= item.rows
            elif item.key == first.key and item.rows <= room:
                batch.append(item)
                room -= item.rows
                self._rows -= item.rows
            else:
                skipped.append(item)
        queue.extendleft(reversed(skipped))
        return batch

    def _execute(self, instance: int, batch: list[_Item]) -> tuple[list[Any], float, list[int]]:
        """In the instance's thread: (each request's outputs or exception, compute seconds, the sizes of the runs)."""
        t = perf_counter()
        if len(batch) == 1:
            return [self._run(instance, batch[0].arrays)], perf_counter() - t, [batch[0].rows]
        try:
            outs = self._run(instance, [np.concatenate(parts) for parts in zip(*(i.arrays for i in batch))])
            total = sum(i.rows for i in batch)
            bad = next((k for k, o in enumerate(outs) if o.ndim == 0 or o.shape[0] != total), None)
            if bad is not None:
                raise ValueError(f"output {bad} has shape {outs[bad].shape}, not {total} rows")
            results, start = [], 0
            for item in batch:
                results.append([o[start:start + item.rows] for o in outs])
                start += item.rows
            return results, perf_counter() - t, [total]
        except Exception:
            return [self._run_alone(instance, item) for item in batch], perf_counter() - t, [i.rows for i in batch]

    def _run_alone(self, instance: int, item: _Item) -> Any:
        try:
            return self._run(instance, item.arrays)
        except Exception as e:
            return e

    def _finish(self, batch: list[_Item], instance: int, t0: float, fut: asyncio.Future | Future) -> None:
        self._free.append(instance)
        self._wake()
        if fut.cancelled():
            for item in batch:
                item.future.cancel()
            return
        exc = fut.exception()
        if exc is not None:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        results, compute, runs = fut.result()
        c = self._counters
        for rows in runs:
            c.batch(rows)
        c.compute_us += compute * 1e6 * len(batch)
        c.queue_us += sum(t0 - item.t for item in batch) * 1e6
        for item, r in zip(batch, results):
            if item.future.done():
                continue
            if isinstance(r, Exception):
                item.future.set_exception(r)
            else:
                item.future.set_result(r)
