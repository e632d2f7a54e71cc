"""Where a sweep's batches are trained: here, one after another ("local", the default), or as the tasks of a
Dask cluster ("dask").

The batches of a sweep are independent (each is `experiment.fn` on configurations whose seeds fix every
random draw), so a cluster only changes where they run: the client keeps the cache (a task's result is
stored under the same key as a local run's, as it arrives, so an interrupted sweep resumes), and gathers
the same table. Dask is imported only when asked for: `pip install 'poisonlab[scale]'`.

Choosing: `sweep.run(..., executor=)`, else the environment variable POISONLAB_EXECUTOR; the cluster is
the scheduler at POISONLAB_DASK_SCHEDULER (tcp://host:port), else a LocalCluster of single-threaded worker
processes, one per core (or POISONLAB_DASK_WORKERS, or `workers=`), started once per process.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from ..errors import ParameterError

EXECUTORS = ("local", "dask")
_CLIENTS: dict = {}


def resolve(executor: str | None) -> str:
    """`executor`, or POISONLAB_EXECUTOR, or "local"; anything else is a ParameterError naming it."""
    source = "executor"
    if executor is None:
        executor, source = os.environ.get("POISONLAB_EXECUTOR", "").strip() or "local", "POISONLAB_EXECUTOR"
    if executor not in EXECUTORS:
        raise ParameterError("executor", f"{source} must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    return executor


def workers(value: int | None = None) -> int:
    """The number of workers of a LocalCluster: `value`, or POISONLAB_DASK_WORKERS, or the cores."""
    source = "workers"
    if value is None:
        raw = os.environ.get("POISONLAB_DASK_WORKERS", "").strip()
        if not raw:
            return os.cpu_count() or 1
        value, source = raw, "POISONLAB_DASK_WORKERS"
    try:
        n = int(value)
        if isinstance(value, bool) or n != float(value) or n < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError("workers", f"{source} must be a whole number >= 1, got {value!r}") from None
    return n


def client(n_workers: int | None = None):
    """The process's Dask client: connected to POISONLAB_DASK_SCHEDULER if set, else to a LocalCluster of
    `n_workers` single-threaded worker processes (started on first use, kept for the process's life)."""
    try:
        from dask import distributed
    except ImportError:
        raise ParameterError("executor", "executor 'dask' needs dask.distributed: "
                             "pip install 'poisonlab[scale]'") from None
    address = os.environ.get("POISONLAB_DASK_SCHEDULER", "").strip() or None
    key = address or ("local", workers(n_workers))
    existing = _CLIENTS.get(key)
    if existing is not None and existing.status == "running":
        return existing
    if address is not None:
        c = distributed.Client(address)
    else:
        # one thread per worker: the batches are the unit of parallelism, and a worker's torch uses one core
        cluster = distributed.LocalCluster(n_workers=key[1], threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        c = distributed.Client(cluster)
    _CLIENTS[key] = c
    return c


def close() -> None:
    """Shut down the clients (and the LocalClusters) this process started."""
    for c in list(_CLIENTS.values()):
        cluster = getattr(c, "cluster", None)
        c.close()
        if cluster is not None:
            cluster.close()
    _CLIENTS.clear()


def as_completed(call: Callable, groups: list, executor: str, n_workers: int | None = None) -> Iterator:
    """(index, call(groups[index])) for every group, in the order they finish: here one after another, or as
    Dask tasks. A task whose worker dies is rerun by Dask on another worker; an error in a task (e.g. a
    DivergenceError) is raised here, and the tasks not yet finished are cancelled."""
    if executor == "local":
        for i, group in enumerate(groups):
            yield i, call(group)
        return
    from dask import distributed

    c = client(n_workers)
    # pure=False: two equal groups of different sweeps are still two tasks (their results are cached by the
    # client, not by Dask)
    futures = {c.submit(call, group, pure=False): i for i, group in enumerate(groups)}
    try:
        for future in distributed.as_completed(list(futures)):
            yield futures[future], future.result()
    finally:
        for future in futures:
            future.cancel()
