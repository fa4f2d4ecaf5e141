"""A micro-batcher: concurrent requests share one forward pass; each is then encrypted under its own key.

Requests are queued on the event loop. A collector takes the first waiting request, then keeps
adding requests for up to ``window_ms`` or until ``max_batch`` images, runs one forward pass on
the concatenated images, and calls each request's ``encode`` on its slice of the features, all
in one worker thread: the event loop only moves bytes, so the server keeps answering (``/v1/info``,
errors) while a batch runs. On a GPU that thread also seals the features on the device, so only
ciphertext is copied to the host.

The collector waits only with evidence of concurrency: while more requests are on their way
(:meth:`MicroBatcher.arriving` counts requests whose body is still being read or decoded), or
when the previous batch held several requests (their clients are about to send the next ones). A
lone client's requests run at once, so batching costs a single client no latency.
``window_ms=0`` turns batching off: each request gets its own forward pass (still in the worker
thread, one at a time).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
from typing import Any, Callable, Deque, Iterator, List, Optional

import torch

from featperm import _checks

__all__ = ["MicroBatcher", "BatchStats"]

Forward = Callable[[torch.Tensor], torch.Tensor]
Encode = Callable[[torch.Tensor], Any]


@dataclasses.dataclass
class _Pending:
    images: torch.Tensor
    encode: Encode
    future: "asyncio.Future[Any]"


@dataclasses.dataclass
class BatchStats:
    """Counters of a :class:`MicroBatcher`: forward passes run, requests and images served."""

    batches: int = 0
    requests: int = 0
    images: int = 0


class MicroBatcher:
    """Gathers concurrent requests into batches for one model (see the module docstring).

    Args:
        forward: uint8 images (N, 3, H, W) -> features (N, D); called in the worker thread.
        max_batch: most images per forward pass (>= 1). A single request may bring up to this many.
        window_ms: how long the collector waits for more requests after the first (>= 0; 0
            disables batching).

    Use inside a running event loop: ``await batcher.start()`` once, ``await batcher.submit(...)``
    per request, ``await batcher.stop()`` at shutdown.
    """

    def __init__(self, forward: Forward, *, max_batch: int, window_ms: float):
        where = "MicroBatcher"
        self.forward = forward
        self.max_batch = _checks.integer(where, "max_batch", max_batch, minimum=1)
        if isinstance(window_ms, bool) or not isinstance(window_ms, (int, float)) or not window_ms >= 0:
            raise ValueError(f"{where}: window_ms must be a number >= 0, got {window_ms!r}")
        self.window_s = float(window_ms) / 1000.0
        self.stats = BatchStats()
        # One worker thread: forward passes run one at a time (torch parallelises inside each).
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="featperm-forward")
        self._queue: Deque[_Pending] = collections.deque()
        self._wake: Optional[asyncio.Event] = None
        self._collector: Optional["asyncio.Task[None]"] = None
        self._arriving = 0
        self._last_batch_requests = 0

    async def start(self) -> None:
        """Start the collector (a no-op with batching off)."""
        if self.window_s > 0 and self._collector is None:
            self._wake = asyncio.Event()
            self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Stop the collector, fail the requests still queued, and shut the worker thread down."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
            self._collector = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Wrap the reading and decoding of a request's body: while any request is inside, the
        collector waits (up to the window) for it to join the current batch."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            if self._wake is not None:
                self._wake.set()

    async def submit(self, images: torch.Tensor, encode: Encode) -> Any:
        """``encode(features of images)``, computed in the worker thread, possibly in a batch
        with other requests' images. ``images``: uint8 (n, 3, H, W) with 1 <= n <= max_batch.

        Raises:
            ValueError: more than ``max_batch`` images.
            Whatever ``forward`` or ``encode`` raises (for ``forward``: every request of the batch).
        """
        n = int(images.shape[0])
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"MicroBatcher.submit: 1 to {self.max_batch} images per request, got {n}")
        loop = asyncio.get_running_loop()
        if self._collector is None:
            return await loop.run_in_executor(self._executor, self._run_one, images, encode)
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Pending(images, encode, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    def _run_one(self, images: torch.Tensor, encode: Encode) -> Any:
        result = encode(self.forward(images))
        self.stats.batches += 1
        self.stats.requests += 1
        self.stats.images += int(images.shape[0])
        return result

    def _run_batch(self, batch: List[_Pending]) -> List[Any]:
        """In the worker thread: one forward pass, then each request's encode on its rows. Returns
        per request its result or the exception its encode raised."""
        images = batch[0].images if len(batch) == 1 else torch.cat([p.images for p in batch])
        features = self.forward(images)
        results: List[Any] = []
        start = 0
        for pending in batch:
            stop = start + int(pending.images.shape[0])
            try:
                results.append(pending.encode(features[start:stop]))
            except Exception as err:  # one request's failure is its own, not the batch's
                results.append(err)
            start = stop
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.images += int(images.shape[0])
        return results

    async def _gather(self) -> List[_Pending]:
        """The next batch: the first queued request, then more until the window closes, the batch
        is full, or no other request is on its way."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        batch = [self._queue.popleft()]
        count = int(batch[0].images.shape[0])
        deadline = loop.time() + self.window_s
        while count < self.max_batch:
            if self._queue:
                n = int(self._queue[0].images.shape[0])
                if count + n > self.max_batch:
                    break  # it opens the next batch
                batch.append(self._queue.popleft())
                count += n
                continue
            remaining = deadline - loop.time()
            # Wait only with evidence of concurrency: a request on its way, or a last batch of
            # several requests (whose clients are about to send their next ones).
            if remaining <= 0 or (self._arriving == 0 and self._last_batch_requests <= 1):
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            self._last_batch_requests = len(batch)
            batch = [p for p in batch if not p.future.done()]  # a client that went away
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except Exception as err:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(err)
                continue
            for pending, result in zip(batch, results):
                if pending.future.done():
                    continue
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
