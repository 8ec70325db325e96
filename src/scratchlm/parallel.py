"""Data parallelism: the shards of every update on threads inside a process and on processes (MPI
ranks) across cores and machines, by ONE mechanism (docs/parallel.md).

Every rank draws the same global micro-batches (same seed, same data). `shard_rows` cuts each
micro-batch into S = ranks x threads slices of rows, the same way everywhere; shard s belongs to
thread s % threads of rank s // threads. A shard runs `model.loss_and_grads`, and its gradients are
added into ONE preallocated contiguous buffer (`GradBuffer`, a view per parameter) with weight
count / C: count is the shard's counted targets, C those of the whole update. The masks give every
rank all the counts, so the weights need no communication. Summing the ranks' buffers in place (one
MPI Allreduce) then leaves on every rank the gradient of the global batch that one process computes
(docs/design.md section 2.10), up to the order of the float additions. The buffer ends in a small
table of per-shard statistics (loss, counted targets, depth), so the same Allreduce reduces them
too, and every rank takes the same decisions (skip, stop) from the same numbers.

One shard (one thread, no mpiexec) runs the micro-batches one after another and sums them exactly as
`Trainer.update` always has, bit for bit; the BLAS thread count is left alone then.

Handles: uneven shards (a shard with no counted target is skipped), adaptive-depth statistics,
finding out whether mpiexec started us (`get_world`), ending every rank on an error (`error_exit`,
`stop_all`). Not handled: model or pipeline parallelism, overlapping the reduction with the
backward pass, gradients sent in another dtype, surviving the loss of a rank (the job stops; resume
from the checkpoint).
"""

import contextlib
import functools
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .act import Depth
from .checks import is_int
from .errors import ConfigError, InputError
from .examples import Batch
from .optim import accumulate

logger = logging.getLogger("scratchlm")

# The statistics of one shard of one micro-batch: a row of the table at the end of the buffer, the
# shard's loss and then its `Depth` (whose count is the shard's counted targets).
STATS = ("loss", *Depth._fields)

# mpiexec tells each process its rank and the number of processes in its environment: MPICH, Intel
# MPI and Slurm's PMI in the first pair, Open MPI in the second.
LAUNCH_VARIABLES = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))

# How long a rank other than 0 waits before reporting an error: see `error_exit`.
ERROR_GRACE_S = 1.0


# ------------------------------------------------------------------------------ the processes


@dataclass(frozen=True)
class World:
    """The processes of this run. Without mpiexec (or with one process): rank 0 of 1, no `comm`."""

    comm: Any = None  # mpi4py's COMM_WORLD
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # among the processes on this machine
    local_size: int = 1

    @property
    def is_root(self) -> bool:
        """Rank 0 alone logs, evaluates and writes files."""
        return self.rank == 0

    def sum_in_place(self, buf: np.ndarray) -> None:
        """buf <- the sum of every rank's buf (one Allreduce of the raw array, no pickling)."""
        if self.comm is not None:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def root_decides(self, value):
        """Rank 0's `value` on every rank: for decisions each rank could take differently (its
        own clock says the time is up)."""
        return value if self.comm is None else self.comm.bcast(value, root=0)

    def in_turn(self, fn: Callable[[], Any]):
        """fn() on rank 0, then on the first rank of each other machine, then on all the others.

        For work that writes a file the ranks then share (a corpus's token file): rank 0 writes
        it, the ranks that see the same folder find it and reuse it, and a machine that sees
        another folder has it written once by its first rank, never by two processes at once.
        """
        if self.comm is None:
            return fn()
        turn = 0 if self.rank == 0 else 1 if self.local_rank == 0 else 2
        result = None
        for t in range(3):
            if t == turn:
                result = fn()
            self.comm.Barrier()
        return result


_world: World | None = None


def get_world() -> World:
    """The processes of this run, found once per process: under mpiexec with more than one process
    this starts MPI (mpi4py, the optional extra `mpi`); otherwise MPI is never imported."""
    global _world
    if _world is None:
        _world = _start_world()
    return _world


def _launch() -> tuple[int, int]:
    """(rank, number of processes) that mpiexec put in our environment; (0, 1) without it."""
    for rank, size in LAUNCH_VARIABLES:
        if os.environ.get(size, "").isdigit():
            return int(os.environ.get(rank, "0")), int(os.environ[size])
    return 0, 1


def _start_world() -> World:
    rank, size = _launch()
    if size <= 1:
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError(
            f"started by mpiexec as one of {size} processes, but mpi4py is not installed: "
            "pip install 'scratchlm[mpi]' (make setup does)"
        ) from None
    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the processes on this machine
    world = World(comm, comm.Get_rank(), comm.Get_size(), node.Get_rank(), node.Get_size())
    # The processes of one machine share its cores: BLAS gets each its part, not all of them each
    # (OpenBLAS threads that outnumber the cores spin against each other).
    _blas_threads(cores_per_process(world))  # applied at once, kept for the process's life
    if not world.is_root:
        logger.setLevel(logging.ERROR)  # rank 0 alone logs; errors still show (error_exit)
    return world


def cores_per_process(world: World) -> int:
    """The cores this process may use, shared among the ranks on its machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // world.local_size)


def error_exit(text: str, code: int = 2) -> int:
    """Print the one `error: ...` line of a failed command, end every rank, return `code`.

    Under mpiexec the other ranks would wait for this one at their next collective step forever,
    so this rank ends them all (`stop_all`). A rank other than 0 names itself in the line, and
    first waits ERROR_GRACE_S: an error that every rank meets (a bad option, a missing file) is
    then printed once, by rank 0, whose exit ends the others while they wait.
    """
    rank, size = _launch()
    if size > 1 and rank != 0:
        time.sleep(ERROR_GRACE_S)
        text = f"rank {rank}: {text}"
    print(f"error: {text}", file=sys.stderr)
    return stop_all(code)


def stop_all(code: int) -> int:
    """Under mpiexec, end every rank now with exit status `code`; otherwise return `code`.

    This process leaves at once, without MPI's goodbye (`MPI_Finalize`, which would wait for the
    others), and mpiexec then ends all the others. That is what `MPI_Abort` does too, but Abort
    can overtake the last lines this process printed, which mpiexec then never shows; a plain
    exit lets mpiexec read them first. mpiexec acts only for a process that joined MPI, so this
    one joins first if it has not yet.
    """
    if _launch()[1] > 1:
        with contextlib.suppress(ConfigError):  # without mpi4py there is no MPI job to end
            get_world()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


def threads_per_process(threads: int | None) -> int:
    """`threads` checked, or None: this process's share of the machine's cores."""
    return cores_per_process(get_world()) if threads is None else check_threads(threads)


def check_threads(threads) -> int:
    if not is_int(threads) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    return threads


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # scans the loaded libraries once

    return ThreadpoolController()


def _blas_threads(n: int):
    """Limit BLAS to at most `n` threads (never more than it was set to use) until the returned
    limiter is used as a context and left."""
    blas = _blas_controller().select(user_api="blas")
    current = max((lib["num_threads"] for lib in blas.info()), default=n)
    return blas.limit(limits=min(n, current))


# ------------------------------------------------------------------------------ the shards


def shard_rows(n_rows: int, n_shards: int) -> list[slice]:
    """The rows of a batch cut into `n_shards` contiguous slices whose sizes differ by at most one
    (some empty when there are fewer rows than shards)."""
    bounds = [n_rows * s // n_shards for s in range(n_shards + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _shard(dropout, rows: slice):
    return None if dropout is None else dropout.shard(rows)


class GradBuffer:
    """ONE contiguous array for an update: every parameter's gradient (`grads`, a view per name),
    then the statistics table (`stats`, one row of STATS per shard of each micro-batch)."""

    def __init__(self, params: dict[str, np.ndarray], n_rows: int):
        n_grads = sum(p.size for p in params.values())
        dtype = next(iter(params.values())).dtype
        self.flat = np.zeros(n_grads + n_rows * len(STATS), dtype=dtype)
        self.grads, offset = {}, 0
        for name, p in params.items():
            self.grads[name] = self.flat[offset : offset + p.size].reshape(p.shape)
            offset += p.size
        self.stats = self.flat[offset:].reshape(n_rows, len(STATS))


class Gradients(NamedTuple):
    """What one update's micro-batches give, summed over every shard of every rank."""

    loss: float
    grads: dict[str, np.ndarray]  # views into the buffer: valid until the next call
    tokens: float  # counted targets of the whole update
    depth: list[Depth]  # of each shard that counted (Depth.merged: of the whole update)


class DataParallel:
    """Computes an update's gradient on `threads` threads here and on every rank of `world`."""

    def __init__(self, model, threads: int = 1, world: World | None = None):
        self.model, self.threads = model, check_threads(threads)
        self.world = world or get_world()
        self.n_shards = self.world.size * threads
        first = self.world.rank * threads
        self.mine = range(first, first + threads)  # the shards this process computes
        self.buffer: GradBuffer | None = None  # made by the first update
        self._pool = None
        if threads > 1:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="shard")
            weakref.finalize(self, self._pool.shutdown, wait=False)
            self._blas = max(1, cores_per_process(self.world) // threads)

    def gradients(self, micro_batches: list[Batch], dropouts: list | None = None) -> Gradients:
        """The count-weighted gradient of all `micro_batches` (the same on every rank);
        dropouts: None, or one `Dropout` (or None) per micro-batch, which its shards share out."""
        dropouts = dropouts or [None] * len(micro_batches)
        slices = [shard_rows(len(b.mask), self.n_shards) for b in micro_batches]
        counts = [  # (micro-batch, shard): every rank knows them all
            [float(b.mask[rows].sum()) for rows in shards]
            for b, shards in zip(micro_batches, slices, strict=True)
        ]
        total = sum(float(b.mask.sum()) for b in micro_batches)
        if total == 0:
            raise InputError("the update's masks are all zero: no target counts towards the loss")
        jobs = [  # (row of the statistics table, the shard's rows of its micro-batch, dropout)
            (
                k * self.n_shards + s,
                Batch(*(x[slices[k][s]] for x in b)),
                _shard(drop, slices[k][s]),
            )
            for k, (b, drop) in enumerate(zip(micro_batches, dropouts, strict=True))
            for s in self.mine
            if counts[k][s] > 0
        ]
        buf = self._buffer_for(len(micro_batches) * self.n_shards)
        buf.flat.fill(0.0)
        rows = {}
        with self.blas_limit():
            for (row, *_), (loss, grads, stats) in zip(jobs, self._run(jobs), strict=True):
                count = counts[row // self.n_shards][row % self.n_shards]
                accumulate(buf.grads, grads, count / total)
                rows[row] = (loss, count, *stats["depth"][1:])  # the shard's Depth with its count
        if self.world.size > 1:
            for row, values in rows.items():
                buf.stats[row] = values
            self.world.sum_in_place(buf.flat)
            rows = {row: tuple(v) for row, v in enumerate(buf.stats.tolist()) if v[1] > 0}
        loss, depth = 0.0, []
        for row in sorted(rows):
            part, *shard_depth = rows[row]
            depth.append(Depth(*shard_depth))
            loss += depth[-1].count / total * part
        return Gradients(loss, buf.grads, total, depth)

    def _run(self, jobs):
        """model.loss_and_grads of each job's batch, in the order of `jobs`."""

        def run(job):
            _, batch, dropout = job
            return self.model.loss_and_grads(*batch, return_stats=True, dropout=dropout)

        return map(run, jobs) if self._pool is None else self._pool.map(run, jobs)

    def blas_limit(self):
        """A context in which BLAS keeps to this process's share of the cores per thread: threads
        that each call a multi-threaded BLAS would oversubscribe the cores, and BLAS threads left
        spinning after a multi-threaded call (Muon's Newton-Schulz products) slow the next shards."""
        return contextlib.nullcontext() if self._pool is None else _blas_threads(self._blas)

    def _buffer_for(self, n_rows: int) -> GradBuffer:
        """The buffer, made once (again only for an update with more micro-batches than before)."""
        if self.buffer is None or self.buffer.stats.shape[0] < n_rows:
            self.buffer = GradBuffer(self.model.params, n_rows)
        return self.buffer
