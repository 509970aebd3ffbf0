"""Devices and processes: the seed mesh, multi-process start-up, gathering, deterministic mode.

One concept: *where* seeds run. No maths and no result files live here.

* Inside a process, the seed axis of every compiled call is split over a 1-D mesh of local
  devices (axis ``"seeds"``) with ``jax.shard_map``: each device runs exactly the program a
  single device would run on its block of seeds, so a seed's computation does not depend on
  how many devices share the call.
* Across processes (``jax.distributed``), each process owns one contiguous block of the runs
  (block ``i`` for process ``i``), computes it on its own devices with no communication, and
  the blocks are gathered at the end with ``multihost_utils.process_allgather`` (why, rather
  than assembling per-process files on a shared disk: see :func:`gather_blocks`).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from simdyn.config import ConfigError

SEED_AXIS = "seeds"

DETERMINISTIC_XLA_FLAGS = ("--xla_gpu_deterministic_ops=true",)


class Block(NamedTuple):
    """The runs one process owns: positions ``start .. stop - 1`` of the global run list.

    ``size`` is the common (padded) block length every process gathers, >= stop - start.
    """

    start: int
    stop: int
    size: int


def process_block(num_runs: int, process_index: int, num_processes: int) -> Block:
    """Contiguous block of ``num_runs`` owned by ``process_index`` (ceil-sized, last ones short).

    With 7 runs on 2 processes: process 0 owns 0..3, process 1 owns 4..6 (size 4 for both).
    """
    if num_processes < 1 or not 0 <= process_index < num_processes:
        raise ConfigError(
            f"invalid process_index={process_index}: must be in [0, {num_processes - 1}]"
        )
    size = -(-num_runs // num_processes)
    start = min(process_index * size, num_runs)
    return Block(start, min(start + size, num_runs), size)


def resolve_devices(devices: int | None) -> int:
    """Number of local devices to shard seeds over: ``None`` = all local devices."""
    available = jax.local_device_count()
    if devices is None:
        return available
    if isinstance(devices, bool) or not isinstance(devices, int | np.integer):
        raise ConfigError(f"invalid devices={devices!r}: must be an integer or None")
    if not 1 <= devices <= available:
        raise ConfigError(
            f"invalid devices={devices}: must be in [1, {available}] "
            f"(local {jax.default_backend()} devices of this process)"
        )
    return int(devices)


def seed_mesh(num_devices: int) -> Mesh:
    """1-D mesh over the first ``num_devices`` local devices, axis ``"seeds"``."""
    return Mesh(np.asarray(jax.local_devices()[:num_devices]), (SEED_AXIS,))


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    **kwargs: Any,
) -> None:
    """Validated ``jax.distributed.initialize``; call before any other JAX use.

    All three arguments ``None`` lets JAX detect the cluster (SLURM, TPU pods, Open MPI).
    ``coordinator_address`` is ``host:port`` of process 0. Idempotent for the same layout.
    """
    given = [a is not None for a in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError(
            "invalid distributed settings: give coordinator_address, num_processes and "
            "process_id together (or none of them to auto-detect a SLURM/TPU cluster)"
        )
    if coordinator_address is not None:
        if not re.fullmatch(r"[^\s:]+:\d{1,5}", coordinator_address) or not (
            0 < int(coordinator_address.rsplit(":", 1)[1]) < 65536
        ):
            raise ConfigError(
                f"invalid coordinator_address={coordinator_address!r}: must be host:port "
                "with port in [1, 65535], e.g. 10.0.0.1:1234"
            )
        if isinstance(num_processes, bool) or not isinstance(num_processes, int):
            raise ConfigError(f"invalid num_processes={num_processes!r}: must be an integer >= 1")
        if num_processes < 1:
            raise ConfigError(f"invalid num_processes={num_processes}: must be >= 1")
        if isinstance(process_id, bool) or not isinstance(process_id, int):
            raise ConfigError(f"invalid process_id={process_id!r}: must be an integer")
        if not 0 <= process_id < num_processes:
            raise ConfigError(
                f"invalid process_id={process_id}: must be in [0, {num_processes - 1}]"
            )
    if is_initialized():
        if num_processes is not None and (
            jax.process_count() != num_processes or jax.process_index() != process_id
        ):
            raise ConfigError(
                "jax.distributed is already initialised with a different layout "
                f"({jax.process_index()} of {jax.process_count()})"
            )
        return
    drop_native_lines(NATIVE_NOISE)
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)


# Lines the CPU collectives' C++ library (Gloo) prints on connecting: "[Gloo] Rank 0 is connected
# to 1 peer ranks. Expected number of connected peer ranks is : 1", once per process.
NATIVE_NOISE = (b"[Gloo] ",)
_FILTERS: dict[int, tuple[int, threading.Thread]] = {}


def drop_native_lines(prefixes: tuple[bytes, ...], fds: tuple[int, ...] = (1,)) -> None:
    """From now on, drop lines starting with one of ``prefixes`` written to ``fds`` (default:
    stdout, where Gloo prints; stderr stays a terminal for the progress bar) by this process,
    native libraries included; every other byte passes unchanged and at once.

    Native code writes to the file descriptors directly, so Python-level redirection cannot
    catch it: each fd is replaced by a pipe that a thread forwards line by line. At exit the
    original fds come back and the threads drain what is left (nothing is lost).
    """
    for fd in fds:
        if fd in _FILTERS:
            continue
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        original = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        pump = threading.Thread(
            target=_forward, args=(read_end, original, prefixes), daemon=True, name=f"fd{fd}"
        )
        pump.start()
        _FILTERS[fd] = (original, pump)
    atexit.register(_restore_fds)


def _forward(read_end: int, original: int, prefixes: tuple[bytes, ...]) -> None:
    """Copy ``read_end`` to ``original`` as bytes arrive, dropping whole lines that start with
    a prefix; only the start of a line that could still become one is held back."""
    pending, mid_line = b"", False
    while chunk := os.read(read_end, 65536):
        pending += chunk
        out = []
        while pending:
            if mid_line:  # the rest of a line already let through
                end = pending.find(b"\n")
                if end < 0:
                    out.append(pending)
                    pending = b""
                    break
                out.append(pending[: end + 1])
                pending, mid_line = pending[end + 1 :], False
                continue
            end = pending.find(b"\n")
            head = pending if end < 0 else pending[: end + 1]
            if head.startswith(prefixes):
                if end < 0:
                    break  # a noise line still being written: wait for its end
                pending = pending[end + 1 :]
                continue
            if end < 0 and any(p.startswith(head) for p in prefixes):
                break  # too short to tell yet
            mid_line = True
        os.write(original, b"".join(out))
    if pending and not pending.startswith(prefixes):
        os.write(original, pending)
    os.close(read_end)


def _restore_fds() -> None:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for fd, (original, pump) in list(_FILTERS.items()):
        os.dup2(original, fd)  # closes the pipe's last write end: the pump sees end of file
        pump.join(timeout=10)
        os.close(original)
        del _FILTERS[fd]


def is_initialized() -> bool:
    """Whether ``jax.distributed.initialize`` has run in this process."""
    try:
        from jax._src import distributed as _dist  # private: no public query exists

        return _dist.global_state.client is not None
    except (ImportError, AttributeError):  # pragma: no cover - future JAX
        return jax.process_count() > 1


def gather_blocks(local: Any, num_local: int, block_size: int) -> Any:
    """Concatenate every process's block of runs, in process order, on every process.

    Args:
      local: pytree of numpy arrays with leading axis ``num_local`` (this process's runs).
      num_local: real runs here (the last processes may own fewer, even none).
      block_size: the common block length (``Block.size``).

    Returns the pytree with leading axis = total runs, identical on every process.

    Why process_allgather rather than per-process files assembled by process 0: it needs no
    shared file system (TPU VMs and many cloud GPU nodes have only local disks), it cannot read
    a file another host has not finished flushing (NFS attribute caching), and the payload is
    small (recorded metrics, not training data). Resumability does not suffer: each process
    still checkpoints its own finished chunks (see :func:`simdyn.simulate`).
    """
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    def pad(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype == bool:  # gather as uint8: collectives do not all support bool
            a = a.astype(np.uint8)
        out = np.zeros((block_size, *a.shape[1:]), a.dtype)
        out[:num_local] = a[:num_local]
        return out

    counts = multihost_utils.process_allgather(np.asarray([num_local], np.int64))
    gathered = multihost_utils.process_allgather(jax.tree.map(pad, local))
    counts = np.asarray(counts).reshape(-1)

    def unpad(g: np.ndarray, ref: np.ndarray) -> np.ndarray:
        g = np.asarray(g)
        parts = [g[i, : int(c)] for i, c in enumerate(counts)]
        out = np.concatenate(parts, axis=0)
        return out.astype(bool) if np.asarray(ref).dtype == bool else out

    return jax.tree.map(unpad, gathered, local)


def enable_deterministic() -> None:
    """Ask XLA for run-to-run deterministic GPU kernels (no atomics-based reductions).

    Must run before JAX initialises a backend (before the first computation or device query),
    because XLA reads ``XLA_FLAGS`` once at start-up; it raises ``ConfigError`` otherwise. It
    is a no-op on CPU (already deterministic) and costs some GPU speed (scatter/reduction
    kernels). Equivalent: ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` in the environment.
    Call it first thing in a script, before anything computes.

    Returns:
      None; ``XLA_FLAGS`` in ``os.environ`` then holds the flag (unchanged if it already did).

    Raises:
      ConfigError: a backend has already started and the flag is not set yet.

    Examples:
      >>> import os, unittest.mock
      >>> import jax.numpy as jnp, simdyn
      >>> on = {"XLA_FLAGS": "--xla_gpu_deterministic_ops=true"}
      >>> with unittest.mock.patch.dict(os.environ, on):
      ...     simdyn.enable_deterministic()  # already on: a no-op, at any time
      >>> _ = jnp.zeros(1).block_until_ready()  # a computation starts a backend
      >>> with unittest.mock.patch.dict(os.environ, {"XLA_FLAGS": ""}):
      ...     simdyn.enable_deterministic()  # too late
      Traceback (most recent call last):
        ...
      simdyn.config.ConfigError: enable_deterministic() must be called before JAX starts ...
    """
    flags = os.environ.get("XLA_FLAGS", "").split()
    missing = [f for f in DETERMINISTIC_XLA_FLAGS if f not in flags]
    if not missing:
        return
    if _backends_initialized():
        raise ConfigError(
            "enable_deterministic() must be called before JAX starts a backend (before the "
            "first computation); set XLA_FLAGS=--xla_gpu_deterministic_ops=true in the "
            "environment instead"
        )
    os.environ["XLA_FLAGS"] = " ".join([*flags, *missing])


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge  # private: no public query exists

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # pragma: no cover - future JAX
        return True
