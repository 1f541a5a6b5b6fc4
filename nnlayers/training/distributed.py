"""Data-parallel training over MPI: every process holds the model and trains on its shard of each batch.

The Horovod scheme, with `mpi4py` (``pip install 'nnlayers[mpi]'``): all processes draw the same
seeded order of examples; each global batch of ``B`` examples is dealt out (process ``r`` takes
every ``size``-th example from ``r``), each process computes the gradient of its part, and one
``Allreduce`` per step adds the gradients, each weighted by its share of the batch, so that every
process holds the gradient of the whole batch and takes the same optimizer step. The result is
the single-process run with batch ``B``, up to the order of floating-point additions.

Each process draws its own random numbers (Dropout's masks, the flips and crops of augmentation):
process 0 those of the single-process run, which checkpoints save, and process ``r`` generators
derived anew each epoch from the seed, ``r`` and the epoch, so that the shards of a batch are not
dropped and flipped alike and a resumed run draws the same numbers again.

`BatchNorm2D` normalises with each process's own batch statistics (as PyTorch's
``DistributedDataParallel`` by default); the running statistics are averaged over the processes
after every epoch, so that every copy of the model is the same. Metrics are summed over the
processes. Only process 0 writes files (model, checkpoints, history, plots) and prints.

Launch: ``mpiexec -n 2 nnlayers train photos/train`` or, in code, ``fit(..., distributed=True)``
in a script started with ``mpiexec -n 2 python script.py``.

An error on one process only (a failed write, a batch a layer refuses) would leave the others
waiting in the next collective call for ever; so, once the processes have begun to communicate,
the failing one prints its error and aborts them all (``MPI_Abort``), as ``python -m mpi4py``
does. Errors that every process meets alike (bad options, output paths) are raised before the
first collective call, on every process.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, List, NoReturn, Optional, Sequence

import numpy as np

from ..nn.module import Layer, Parameter
from ..nn.structure import random_generators

#: Environment variables that MPI launchers set (MPICH / Intel MPI, Open MPI, Slurm's PMI).
_LAUNCHER_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def launched_with_mpi() -> bool:
    """Whether this process was started by ``mpiexec`` with more than one process."""
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in _LAUNCHER_SIZE)


class Distributed:
    """The group of processes training together, and the few collective operations training needs.

    Args:
        comm: An ``mpi4py`` communicator (default ``MPI.COMM_WORLD``).

    Attributes:
        rank: This process's number, from 0.
        size: How many processes there are.
    """

    def __init__(self, comm: Any = None) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise ImportError("distributed training needs mpi4py and an MPI: pip install 'nnlayers[mpi]'") from None
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._buffer: Optional[np.ndarray] = None
        #: Whether a collective call has been made: from then on an error on one process must abort all.
        self.communicating = False
        _GROUPS.append(self)

    @property
    def is_root(self) -> bool:
        """Process 0: the one that writes files and prints."""
        return self.rank == 0

    def shard(self, batch: np.ndarray) -> np.ndarray:
        """This process's part of a global batch of indices: every ``size``-th, from ``rank``."""
        return batch[self.rank :: self.size]

    def allreduce_gradients(self, params: Sequence[Parameter], share: float) -> None:
        """Replace each gradient by the sum over processes of ``share * gradient``: one ``Allreduce`` for all."""
        self.communicating = True
        grads = [p.grad for p in params]
        total = sum(g.size for g in grads)
        dtype = grads[0].dtype
        if self._buffer is None or self._buffer.size != total or self._buffer.dtype != dtype:
            self._buffer = np.empty(total, dtype)
        flat, offset = self._buffer, 0
        for g in grads:  # pack (scaled) into one buffer: one collective call per step
            np.multiply(g.reshape(-1), share, out=flat[offset : offset + g.size])
            offset += g.size
        self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        offset = 0
        for g in grads:
            g.reshape(-1)[...] = flat[offset : offset + g.size]
            offset += g.size

    def sum(self, values: Sequence[float]) -> List[float]:
        """Each value summed over the processes."""
        self.communicating = True
        array = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        return array.tolist()

    def average_buffers(self, model: Layer) -> None:
        """Average the floating-point buffers (running statistics) over the processes, in place."""
        self.communicating = True
        for _, buffer in model.named_buffers():
            if np.issubdtype(buffer.dtype, np.floating):
                self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
                buffer /= self.size

    def broadcast_model(self, model: Layer) -> None:
        """Give every process process 0's weights and buffers."""
        self.communicating = True
        for array in model._state_arrays().values():
            self.comm.Bcast(array, root=0)

    def own_streams(self, seed: int, epoch: int, model: Layer) -> Optional[np.random.Generator]:
        """On processes other than 0: reseed the model's random layers from ``(seed, rank, epoch)`` and
        return the epoch's augmentation generator; on process 0 (the run's own streams) ``None``."""
        if self.is_root:
            return None
        key = [seed, self.rank, epoch]
        for index, (_, rng) in enumerate(random_generators(model)):
            if isinstance(rng, np.random.Generator):
                rng.bit_generator.state = np.random.default_rng([*key, 2, index]).bit_generator.state
            else:
                rng.seed(np.random.SeedSequence([*key, 2, index]).generate_state(4))
        return np.random.default_rng([*key, 1])

    def barrier(self) -> None:
        self.communicating = True
        self.comm.Barrier()

    def abort(self, error: BaseException) -> NoReturn:
        """Print ``error`` (with its traceback) and end every process of the group: the others cannot go on."""
        print(
            f"nnlayers: process {self.rank} of {self.size} failed, stopping every process: "
            f"{''.join(traceback.format_exception(error)).rstrip()}",
            file=sys.stderr,
            flush=True,
        )
        self.comm.Abort(1)
        raise SystemExit(1)  # not reached: Abort ends the process


#: The groups made in this process (`abort_if_communicating` looks at them).
_GROUPS: List[Distributed] = []


def abort_if_communicating(error: BaseException) -> None:
    """After an error: if this process has begun collective calls with others, abort them all (else return)."""
    for group in _GROUPS:
        if group.communicating and group.size > 1:
            group.abort(error)


def resolve(distributed: Any) -> Optional[Distributed]:
    """``fit``'s ``distributed=`` argument as a group: ``None``/``False`` (none), ``True`` (MPI's world), or a group."""
    if distributed is None or distributed is False:
        return None
    if distributed is True:
        group = Distributed()
        return group if group.size > 1 else None
    if isinstance(distributed, Distributed):
        return distributed if distributed.size > 1 else None
    raise TypeError(f"distributed must be None, True or a Distributed group, got {type(distributed).__name__}")
