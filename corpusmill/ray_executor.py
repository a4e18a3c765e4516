"""The same build on Ray: same steps, checkpoints, stats, rejects and release bytes.

Chosen over Ray Data's ``map_batches``: the local executor's fixed-size shards and ordered
results are what make the output independent of the worker count, and plain Ray tasks and actors
keep exactly that (shard ``k``'s result is consumed ``k``-th), while Ray Data reorders blocks.

* CPU steps: each shard is a Ray task running the step chain (the steps travel once, by
  ``ray.put``); at most ``2 × workers`` shards are in flight.
* Model steps (``uses_model``, e.g. back-translation): an ``ActorPool`` of actors that each load the
  model once and keep it, asking Ray for ``num_gpus`` each.
* Whole-dataset steps (dedup, split) and the release writer run in the driver, as locally.

Without ``address`` a local Ray instance is started (dashboard off, a temp dir of our own) and shut
down at the end; with ``address`` (``auto`` or ``ray://host:10001``) an existing cluster is used.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console

from corpusmill.config import BuildConfig
from corpusmill.executor import ChunkResult, LocalExecutor, run_chunk
from corpusmill.reports import BuildResult
from corpusmill.steps import RecordStep


class RayExecutor(LocalExecutor):
    def __init__(
        self,
        config: BuildConfig,
        workers: int | None = None,
        address: str | None = None,
        num_gpus: float = 0,
        console: Console | None = None,
    ) -> None:
        super().__init__(config, workers, console)
        self.address = address
        self.num_gpus = num_gpus

    def build(self) -> BuildResult:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                ray.init(
                    num_cpus=self.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    _temp_dir=tempfile.mkdtemp(prefix="corpusmill-ray-"),
                )
        try:
            return super().build()
        finally:
            if started_here:
                ray.shutdown()

    def chunk_results(self, steps: list[RecordStep], chunks: Iterable[list[str]]) -> Iterator[ChunkResult]:
        import ray

        if any(getattr(step, "uses_model", False) for step in steps):
            yield from self._actor_results(steps, chunks)
            return
        remote = ray.remote(run_chunk)
        steps_ref = ray.put(steps)
        pending: list[Any] = []
        for chunk in chunks:
            pending.append(remote.remote(steps_ref, chunk))
            if len(pending) >= 2 * self.workers:
                yield ray.get(pending.pop(0))
        for ref in pending:
            yield ray.get(ref)

    def _actor_results(self, steps: list[RecordStep], chunks: Iterable[list[str]]) -> Iterator[ChunkResult]:
        import ray
        from ray.util import ActorPool

        @ray.remote
        class StepChain:
            """Holds the steps (and the models they load on first use) for the actor's lifetime."""

            def __init__(self, chain: list[RecordStep]) -> None:
                self.chain = chain

            def run(self, lines: list[str]) -> ChunkResult:
                return run_chunk(self.chain, lines)

        actors = [StepChain.options(num_gpus=self.num_gpus).remote(steps) for _ in range(self.workers)]
        pool = ActorPool(actors)
        yield from pool.map(lambda actor, chunk: actor.run.remote(chunk), chunks)
