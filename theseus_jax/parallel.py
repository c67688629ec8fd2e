r"""Run one function over many items on worker processes, results in item order.

F1 evaluations are independent and take seconds to minutes each: an exploration's ``q``
proposals, or a batch given to ``make_evaluator(..., fidelity="f1")``, can run on several
workers (:func:`theseus_jax.fidelity.open_f1_executor`). An executor hands the results back
**in item order**, not in finishing order, so a parallel run writes, tells and replays
exactly what a serial run does.

.. code-block:: python

    with open_executor(Parallel(workers=4), setup=make_state, setup_args=(ctx,)) as ex:
        for result in ex.imap(task, items):   # task(state, item) in a worker; item order
            ...

Each worker calls ``setup(*setup_args)`` once (e.g. to hold its own compiled-simulator
cache) and then ``task(state, item)`` per item. Both must be importable top-level
functions (they are pickled by reference).

Back ends (the scheduling is theirs; this module only keeps the order and retries):

* ``"process"`` -- local processes, :class:`concurrent.futures.ProcessPoolExecutor` with
  the ``spawn`` start method (JAX is multithreaded: forking it is unsafe). A worker that
  dies (killed, out of memory) breaks the pool; the pool is rebuilt and every item that had
  not returned is submitted again, at most ``max_retries`` times each.
* ``"ray"`` -- a Ray cluster (``address=None``: the instance this process already joined,
  else a new local one; ``"auto"`` or ``"ray://host:10001"``: an existing cluster). One actor
  per worker, dispatched by :class:`ray.util.ActorPool`; an actor that dies is restarted
  and its call retried by Ray (``max_restarts`` / ``max_task_retries`` = ``max_retries``).

Workers inherit this process's JAX settings that change results or reuse compilations
(:data:`JAX_FLAGS`), and do not pre-allocate accelerator memory (several share one GPU).
With ``"process"`` the parent's ``__main__`` module is imported by every worker, as with
any ``spawn`` pool: a script must keep its work under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Parallel",
    "WorkerDied",
    "open_executor",
    "quiet_fork_exec",
    "BACKENDS",
    "JAX_FLAGS",
]

BACKENDS = ("process", "ray")
# JAX settings copied into every worker: numerics (x64) and the persistent compilation cache
JAX_FLAGS = (
    "jax_enable_x64",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
)


class WorkerDied(RuntimeError):
    """A worker process died on the same item more often than ``max_retries`` allows."""


@dataclass(frozen=True)
class Parallel:
    """How to run independent evaluations (not part of a run's configuration: the results do
    not depend on it).

    Attributes:
        workers: concurrent workers (1 with ``"process"``: in this process, no pool).
        backend: ``"process"`` (local processes) or ``"ray"``.
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None: the Ray
            instance this process already joined, or a new local one. ``"ray"`` only.
        max_retries: times an item is resubmitted after its worker died.
        gpus_per_worker: accelerators Ray reserves for each worker (``"ray"`` only; 0: the
            workers run on CPUs, as Ray hides the GPUs from them).
    """

    workers: int = 1
    backend: str = "process"
    address: str | None = None
    max_retries: int = 2
    gpus_per_worker: float = 0.0

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if int(self.workers) != self.workers or self.workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {self.workers!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.address is not None and self.backend != "ray":
            raise ValueError("address= is a Ray cluster address: use it with backend='ray'")
        if self.gpus_per_worker and self.backend != "ray":
            raise ValueError("gpus_per_worker= applies to backend='ray' only")

    @property
    def in_process(self) -> bool:
        """Whether items run in the calling process (one local worker)."""
        return self.backend == "process" and self.workers == 1


def _jax_flags() -> dict[str, Any]:
    import jax

    return {k: getattr(jax.config, k) for k in JAX_FLAGS}


def _worker_setup(flags: dict, setup: Callable, args: tuple):
    """In a worker: this process's JAX settings, then the caller's ``setup``."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    for k, v in flags.items():
        if v is not None:
            jax.config.update(k, v)
    return setup(*args)


def _process_init(flags, setup, args) -> None:
    """In a spawned worker: its state lives on the worker's own process object."""
    mp.current_process().theseus_state = _worker_setup(flags, setup, args)


def _process_call(task: Callable, item):
    return task(mp.current_process().theseus_state, item)


class _InProcess:
    """One worker: this process (no pickling, no pool)."""

    def __init__(self, setup, setup_args):
        self._state = setup(*setup_args)

    def imap(self, task: Callable, items: Iterable) -> Iterator:
        for item in items:
            yield task(self._state, item)

    def close(self) -> None:
        self._state = None


class _ProcessPool:
    """Local spawned processes; a pool broken by a dead worker is rebuilt."""

    def __init__(self, spec: Parallel, setup, setup_args):
        self._spec = spec
        self._init = (_jax_flags(), setup, tuple(setup_args))
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self._spec.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_process_init,
            initargs=self._init,
        )

    def _submit(self, task: Callable, item) -> cf.Future:
        try:
            return self._pool.submit(_process_call, task, item)
        except cf.process.BrokenProcessPool:  # a worker died while the pool was idle
            self._renew()
            return self._pool.submit(_process_call, task, item)

    def _renew(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def imap(self, task: Callable, items: Iterable) -> Iterator:
        items = list(items)
        tries = [0] * len(items)
        futs = [self._submit(task, it) for it in items]
        for i in range(len(items)):
            while True:
                try:
                    result = futs[i].result()
                    break
                except cf.process.BrokenProcessPool:
                    # every item not yet returned was lost with the pool: submit them again
                    lost = [j for j in range(i, len(items)) if not _returned(futs[j])]
                    for j in lost:
                        tries[j] += 1
                        if tries[j] > self._spec.max_retries:
                            raise WorkerDied(
                                f"a worker died while item {j} was pending, {tries[j]} times "
                                f"(max_retries={self._spec.max_retries}); look for "
                                "out-of-memory kills, or raise max_retries"
                            ) from None
                    self._renew()
                    for j in lost:
                        futs[j] = self._submit(task, items[j])
            yield result

    def close(self) -> None:
        """Stop now: pending items are dropped and running ones killed (after a finished run
        there are none; after an interrupt nobody waits for them)."""
        # the pool's worker processes (no public handle before Python 3.14's terminate_workers)
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        self._pool.shutdown(wait=True)


def _returned(f: cf.Future) -> bool:
    return f.done() and not f.cancelled() and f.exception() is None


class _RayPool:
    """One Ray actor per worker; Ray restarts dead actors and retries their calls."""

    def __init__(self, spec: Parallel, setup, setup_args):
        try:
            import ray
            from ray.util import ActorPool
        except ImportError as e:  # pragma: no cover - ray is a declared dependency
            raise ImportError(
                "backend='ray' (--executor ray) needs Ray: pip install -e \".[ray]\" "
                "(or pip install 'ray>=2.9')"
            ) from e
        self._ray = ray
        self._own = not ray.is_initialized()
        if self._own:
            with quiet_fork_exec():
                ray.init(address=spec.address, include_dashboard=False, log_to_driver=False)
        elif spec.address is not None:
            raise RuntimeError(
                f"this process already joined a Ray cluster; address={spec.address!r} cannot "
                "be honoured (call ray.shutdown() first, or pass address=None)"
            )
        actor = ray.remote(_RayWorker).options(
            num_cpus=1,
            num_gpus=spec.gpus_per_worker,
            max_restarts=spec.max_retries,
            max_task_retries=spec.max_retries,
        )
        flags = _jax_flags()
        self._actors = [actor.remote(flags, setup, tuple(setup_args)) for _ in range(spec.workers)]
        self._pool = ActorPool(self._actors)

    def imap(self, task: Callable, items: Iterable) -> Iterator:
        try:
            yield from self._pool.map(lambda a, it: a.run.remote(task, it), list(items))
        except self._ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None
        except self._ray.exceptions.RayActorError as e:
            raise WorkerDied(
                f"a Ray worker died more often than max_retries allows ({e}); look for "
                "out-of-memory kills on the cluster's nodes, or raise max_retries"
            ) from None

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
        if self._own:
            self._ray.shutdown()


@contextlib.contextmanager
def quiet_fork_exec():
    """Silence JAX's fork warning for code that forks only to ``exec`` a new program
    (``ray.init`` starting its daemons), which is safe in a multithreaded process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        yield


class _RayWorker:
    """A Ray actor: the caller's ``setup`` state, then ``task(state, item)`` per call."""

    def __init__(self, flags, setup, args):
        self._state = _worker_setup(flags, setup, args)

    def run(self, task, item):
        return task(self._state, item)


class _Executor:
    """What :func:`open_executor` returns: ``imap(task, items)`` and ``close()``."""

    def __init__(self, spec: Parallel, impl):
        self.spec = spec
        self._impl = impl

    @property
    def workers(self) -> int:
        return self.spec.workers

    def imap(self, task: Callable, items: Iterable) -> Iterator:
        """``task(state, item)`` of every item, in item order (as each becomes available)."""
        return self._impl.imap(task, items)

    def close(self) -> None:
        self._impl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_executor(spec: Parallel, *, setup: Callable, setup_args: tuple = ()) -> _Executor:
    """Start the workers of ``spec``; each runs ``setup(*setup_args)`` once.

    Use it as a context manager (or call ``close()``): the workers are stopped on exit, and
    a Ray instance this call started is shut down.
    """
    if spec.in_process:
        impl = _InProcess(setup, setup_args)
    elif spec.backend == "process":
        impl = _ProcessPool(spec, setup, setup_args)
    else:
        impl = _RayPool(spec, setup, setup_args)
    return _Executor(spec, impl)
