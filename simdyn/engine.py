"""The seed engine: runs a per-seed program over many seeds, in chunks, on devices, resumably.

``run_seeds(program_for, key, seeds, ...)`` is the one chunk runner of simdyn; ``simulate``, the
generic (encoder) path, ``sweep`` and ``verify`` all use it. No maths lives here.

* Seed ``seeds[r]``'s key is ``fold_in(key, seeds[r])`` (:mod:`simdyn.seeds`) whatever the chunk
  size, device count or process count, so each seed's random inputs are bit-identical under any
  layout.
* ``chunk_size`` is seeds per device per compiled call; a call covers ``chunk_size * devices``
  seeds, the seed axis split over a 1-D device mesh (:mod:`simdyn.distributed`, see
  :func:`shard_seeds`). The last call is padded with extra seed indices (results dropped, real
  seeds never dropped) so one compiled program serves every call.
* Under ``jax.distributed`` each process owns a contiguous block of seeds and the blocks are
  gathered at the end, so every process returns every run.
* With ``checkpoint_dir`` every finished chunk is written atomically (tmp file + rename) with a
  SHA-256 sidecar, next to a manifest of the run (``identity``, layout, versions). Rerunning with
  the same folder resumes and says how many chunks it reused; a different run is refused; a
  chunk whose checksum, identity or shapes do not match is reported and recomputed, never used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import jax
import numpy as np
import xarray as xr
from jax.sharding import PartitionSpec

from simdyn import distributed
from simdyn.config import ConfigError, ResultFileError
from simdyn.seeds import seed_keys

logger = logging.getLogger(__name__)

Array = jax.Array


class _Fields(Protocol):
    """What the engine uses of a result: a NamedTuple's ``_asdict``."""

    def _asdict(self) -> dict[str, Any]: ...


Result = TypeVar("Result", bound=_Fields)  # a NamedTuple of arrays with a leading run axis
Program = Callable[[Array, Any], Any]

RESULT_FORMAT = 2
CHUNK_FORMAT = 1
MANIFEST = "manifest.json"


def shard_seeds(batched: Program, num_devices: int, per_run_hparams: bool) -> Program:
    """``jit(batched)``, the seed axis split over ``num_devices`` local devices when > 1.

    ``batched(keys (G,), hparams)`` is a vmapped per-seed program; hparams are shared (scalars)
    or per run (leading axis G) as ``per_run_hparams`` says.
    """
    if num_devices == 1:
        return jax.jit(batched)
    # shard_map, not sharding propagation: each device provably runs the one-device program on
    # its block of seeds, with no collectives (seeds never interact).
    seeds = PartitionSpec(distributed.SEED_AXIS)
    return jax.jit(
        jax.shard_map(
            batched,
            mesh=distributed.seed_mesh(num_devices),
            in_specs=(seeds, seeds if per_run_hparams else PartitionSpec()),
            out_specs=seeds,
        )
    )


def environment_attrs() -> dict[str, Any]:
    """Versions and numerics switches recorded in every result and chunk file."""
    import jaxlib

    from simdyn import __version__

    return {
        "simdyn_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "jax_enable_x64": int(bool(jax.config.read("jax_enable_x64"))),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "platform": jax.default_backend(),
        "device": str(jax.local_devices()[0].device_kind),
        "python": platform.python_version(),
        "result_format": RESULT_FORMAT,
    }


def _versions() -> dict[str, Any]:
    env = environment_attrs()
    keep = ("simdyn_version", "jax_version", "jaxlib_version", "jax_enable_x64", "platform")
    return {k: env[k] for k in keep}


def write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Layout(NamedTuple):
    """How runs are split: ``chunk_size`` runs per device per call on ``devices`` devices."""

    chunk_size: int
    devices: int
    process_count: int


def _dims_of(name: str, ndim: int, dims: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A field's dimension names: given in ``dims``, else run + numbered."""
    return dims.get(name) or ("run", *(f"{name}_{k}" for k in range(1, ndim)))


def _chunk_dataset(
    traj: Any,
    positions: np.ndarray,
    seeds: np.ndarray,
    identity: str,
    dims: Mapping[str, tuple[str, ...]],
) -> xr.Dataset:
    data_vars = {}
    for name, value in traj._asdict().items():
        names = _dims_of(name, np.ndim(value), dims)
        if np.ndim(value) == len(names):  # theta is (run, 0) unless save_theta: not stored
            data_vars[name] = (names, np.asarray(value))
    ds = xr.Dataset(data_vars, coords={"run": positions, "seed": ("run", seeds)})
    ds.attrs.update(environment_attrs())
    ds.attrs["run_identity"] = identity
    ds.attrs["chunk_format"] = CHUNK_FORMAT
    return ds


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_chunk(
    path: Path,
    positions: np.ndarray,
    seeds: np.ndarray,
    identity: str,
    empty: Result,
    dims: Mapping[str, tuple[str, ...]],
) -> Result | None:
    """The chunk's trajectory if the file is complete and belongs here; None (warned) else."""
    digest_path = path.with_name(path.name + ".sha256")
    if not path.exists():
        return None
    reason = None
    try:
        if not digest_path.exists():
            reason = "no checksum file (interrupted while finishing the chunk)"
        elif digest_path.read_text().strip() != _sha256(path):
            reason = "checksum mismatch (truncated or modified file)"
        else:
            ds = xr.load_dataset(path, engine="h5netcdf")
            if ds.attrs.get("run_identity") != identity:
                reason = "it belongs to a different run"
            elif not (
                np.array_equal(ds["run"].values, positions)
                and np.array_equal(ds["seed"].values, seeds)
            ):
                reason = "its seeds do not match the manifest"
            else:
                parts = {}
                for name, ref in empty._asdict().items():
                    if name not in ds and ref.ndim != len(_dims_of(name, ref.ndim, dims)):
                        parts[name] = np.zeros((len(positions), *ref.shape[1:]), ref.dtype)
                        continue
                    a = ds[name].values
                    if a.shape[1:] != ref.shape[1:] or a.shape[0] != len(positions):
                        reason = f"variable {name} has shape {a.shape}"
                        break
                    parts[name] = a.astype(ref.dtype, copy=False)
                else:
                    return type(empty)(**parts)
    except Exception as err:  # noqa: BLE001 - any unreadable file is recomputed
        reason = f"unreadable ({type(err).__name__}: {err})"
    warnings.warn(f"checkpoint chunk {path} is not usable: {reason}; recomputing it", stacklevel=3)
    return None


def _prepare_checkpoint_dir(ckpt: Path, identity: dict[str, Any]) -> str:
    """Create or validate the folder's manifest; refuse a different run. Returns its digest."""
    if ckpt.exists() and not ckpt.is_dir():
        raise ConfigError(f"invalid checkpoint folder {ckpt}: it is a file")
    ckpt.mkdir(parents=True, exist_ok=True)
    manifest = ckpt / MANIFEST
    text = json.dumps(identity, sort_keys=True, indent=1)
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ResultFileError(
                f"checkpoint folder {ckpt} has an unreadable {MANIFEST}; use a new folder"
            ) from None
        new = json.loads(text)
        if old != new:
            diff = _diff_paths(old, new)
            details = "; ".join(
                f"{path}: folder has {_short(a)}, this run has {_short(b)}"
                for path, a, b in diff[:4]
            )
            raise ConfigError(
                f"checkpoint folder {ckpt} holds a different run (differs in "
                f"{[path for path, _, _ in diff]}: {details}); resume with the same settings "
                "or use a new folder"
            )
    else:
        write_text_atomic(text, manifest)
    return hashlib.sha256(text.encode()).hexdigest()


def _diff_paths(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted paths (and both values) where two JSON trees differ, e.g. config.train.lr."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff_paths(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if old == new else [(prefix, old, new)]


def _short(value: Any, limit: int = 80) -> str:
    s = json.dumps(value, sort_keys=True)
    return s if len(s) <= limit else s[: limit - 3] + "..."


class StalledChunkError(RuntimeError):
    """A chunk made no progress for far longer than its estimate (see :class:`Watchdog`)."""


@dataclass(frozen=True)
class Watchdog:
    """When a chunk counts as stalled, so a run never waits forever.

    A chunk is one opaque compiled call, so progress inside it cannot be observed; what can be
    observed is the process's CPU time. A chunk is stalled when it has run past its deadline,
    ``max(floor_s, factor * estimate)``, and the process used less than ``idle_cpu`` of one
    core over the last ``window_s`` seconds (a deadlock sits at 0% CPU; a slow chunk computes).
    A chunk still computing at ``hard_factor`` times its deadline is ended too. The CPU rule
    applies on the CPU backend only: on an accelerator the host idles while the device works,
    so there only the hard limit ends a chunk.

    The estimate of a chunk is the longest finished chunk of this run so far (the first one
    includes compilation, which makes it generous); before any chunk has finished it is
    ``first_estimate_s`` (callers pass their cost model's figure), or ``floor_s`` alone when
    that is None.

    Args:
      floor_s: the shortest deadline, seconds.
      factor: deadline / estimate.
      first_estimate_s: the estimate of the first chunk (compile included), or None.
      idle_cpu: below this many cores of CPU use the process counts as idle.
      window_s: how far back the CPU use is measured, seconds.
      hard_factor: a chunk still busy at ``hard_factor`` deadlines is ended anyway.

    Example:
      >>> Watchdog(floor_s=60.0).deadline(2.0)
      60.0
      >>> Watchdog(floor_s=60.0).deadline(10.0)
      200.0
    """

    floor_s: float = 600.0
    factor: float = 20.0
    first_estimate_s: float | None = None
    idle_cpu: float = 0.05
    window_s: float = 30.0
    hard_factor: float = 10.0

    def __post_init__(self) -> None:
        for name in ("floor_s", "factor", "idle_cpu", "window_s", "hard_factor"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
                raise ConfigError(f"invalid Watchdog.{name}={value!r}: must be a finite number > 0")
        first = self.first_estimate_s
        if first is not None and not (np.isfinite(first) and first > 0):
            raise ConfigError(f"invalid Watchdog.first_estimate_s={first!r}: must be > 0 or None")

    def deadline(self, estimate_s: float | None) -> float:
        """Seconds a chunk with this estimate may run before it can count as stalled."""
        return max(self.floor_s, self.factor * (estimate_s or 0.0))


def _watched(
    work: Callable[[], Result],
    watchdog: Watchdog,
    estimate_s: float | None,
    label: str,
    idle_rule: bool = True,
) -> Result:
    """Run ``work()`` in a daemon thread; raise :class:`StalledChunkError` if it stalls.

    The stalled thread cannot be killed (it waits inside compiled code); it is left behind as a
    daemon, and the caller ends the process (the CLI exits at once).
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
            box["error"] = err

    thread = threading.Thread(target=target, name=f"simdyn-{label}", daemon=True)
    start = time.monotonic()
    thread.start()
    deadline = watchdog.deadline(estimate_s)
    poll = min(watchdog.window_s, max(deadline / 4, 0.05))
    cpu_marks: list[tuple[float, float]] = [(start, time.process_time())]
    while True:
        thread.join(timeout=poll)
        if not thread.is_alive():
            break
        now, cpu = time.monotonic(), time.process_time()
        cpu_marks.append((now, cpu))
        while len(cpu_marks) > 2 and now - cpu_marks[1][0] >= watchdog.window_s:
            cpu_marks.pop(0)  # keep one mark at least window_s back
        waited = now - start
        if waited < deadline:
            continue
        t0, c0 = cpu_marks[0]
        cores = (cpu - c0) / max(now - t0, 1e-9)
        idle = idle_rule and cores < watchdog.idle_cpu
        if idle or waited >= watchdog.hard_factor * deadline:
            what = "idle" if idle else f"still running ({cores:.2f} host cores busy)"
            est = "no estimate" if estimate_s is None else f"its estimate was {estimate_s:.1f} s"
            raise StalledChunkError(
                f"{label} made no progress: {waited:.0f} s without finishing, {what}; "
                f"{est}, deadline {deadline:.0f} s"
            )
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_seeds(
    program_for: Callable[[int], Program],
    key: Array,
    seeds: np.ndarray,
    hparams: Any,
    per_run_hparams: bool,
    *,
    empty: Result,
    chunk_size: int | Callable[[int], int],
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    identity: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    watchdog: Watchdog | None = None,
) -> tuple[Result, Layout]:
    """Run ``program(seed_keys(key, seeds), hparams)`` for runs ``r = 0..R-1`` in chunks.

    Args:
      program_for: ``num_devices -> program(keys (G,), hparams) -> Result`` (stacked, leading
        axis G), jitted and split over the devices (see :func:`shard_seeds`); cache it.
      key: the base key (:func:`simdyn.seeds.as_key`).
      seeds: (R,) seed indices, distinct and >= 0.
      hparams: a pytree of scalars shared by all runs, or of (R,) arrays when
        ``per_run_hparams`` (row r goes with run r); None if the program takes none.
      empty: the zero-run Result (numpy, leading axis 0): the shapes and dtypes of a run.
      chunk_size: seeds per device per call, or ``fn(seeds per device) -> chunk size``.
      devices: local devices to split over (None = all).
      checkpoint_dir: write every chunk there; a rerun with the same folder resumes.
      identity: JSON-able description of the runs for the manifest (layout and versions added).
      progress: ``callback(done, total, elapsed_s)`` after every chunk.
      dims: dimension names of the Result's fields in checkpoint files (default numbered).
      watchdog: when a chunk counts as stalled (default ``Watchdog()``); a stalled chunk raises
        :class:`StalledChunkError` naming the chunk and its estimate, after every finished
        chunk has been written to ``checkpoint_dir``.

    Returns the stacked numpy Result (leading axis R, run order; identical on every process)
    and the layout used.
    """
    dims = dict(dims or {})
    seeds = np.asarray(seeds, np.int64)
    layout, block = _layout(len(seeds), chunk_size, devices)
    local = block.stop - block.start
    per_call = layout.chunk_size * layout.devices
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    manifest_id = _open_checkpoint(ckpt, identity, layout) if ckpt is not None else ""

    runner = program_for(layout.devices)
    pad_seed = int(seeds.max()) + 1
    parts = [empty]
    start_time = time.perf_counter()
    reused = chunks = 0
    n_chunks = -(-local // per_call)
    watchdog = Watchdog() if watchdog is None else watchdog
    longest: float | None = None  # the slowest computed chunk so far, seconds
    for start in range(block.start, block.stop, per_call):
        chunks += 1
        positions = np.arange(start, min(start + per_call, block.stop))
        path = ckpt / f"chunk_{start:08d}.nc" if ckpt is not None else None
        traj = None
        if path is not None:
            traj = _read_chunk(path, positions, seeds[positions], manifest_id, empty, dims)
            reused += traj is not None
        if traj is None:
            label = (
                f"chunk {chunks} of {n_chunks} (runs {positions[0]}..{positions[-1]}"
                f" of {len(seeds)})"
            )
            began = time.monotonic()
            try:
                traj = _watched(
                    functools.partial(
                        _compute_chunk,
                        runner,
                        key,
                        seeds,
                        positions,
                        per_call,
                        pad_seed,
                        hparams,
                        per_run_hparams,
                    ),
                    watchdog,
                    longest if longest is not None else watchdog.first_estimate_s,
                    label,
                    idle_rule=jax.default_backend() == "cpu",
                )
            except StalledChunkError as err:
                kept = (
                    f"the {chunks - 1} finished chunks are kept in {ckpt}: rerun the same "
                    "command to resume"
                    if ckpt is not None
                    else "run with a checkpoint folder (--resume DIR) to keep finished chunks"
                )
                raise StalledChunkError(f"{err}; {kept}") from None
            took = time.monotonic() - began
            longest = took if longest is None else max(longest, took)
            if path is not None:
                ds = _chunk_dataset(traj, positions, seeds[positions], manifest_id, dims)
                write_atomic(ds, path)
                write_text_atomic(_sha256(path), path.with_name(path.name + ".sha256"))
        parts.append(traj)
        if progress is not None:
            progress(int(positions[-1]) + 1 - block.start, local, time.perf_counter() - start_time)
    if reused:  # a resumed run says what it did not recompute
        logger.info(
            "[simdyn] resumed from %s: reused %d of %d chunks, computed %d",
            ckpt,
            reused,
            chunks,
            chunks - reused,
        )
    mine = jax.tree.map(lambda *a: np.concatenate(a, axis=0), *parts)
    return distributed.gather_blocks(mine, local, block.size), layout


@functools.lru_cache(maxsize=32)
def _seed_program(per_seed: Callable[[Array, Any], Any], devices: int, per_run: bool) -> Program:
    """``jit(vmap(per_seed))`` split over ``devices``; cached by the function's identity, so
    repeated runs of one per-seed function (chunks, resumes, sweeps) reuse the compilation."""
    return shard_seeds(jax.vmap(per_seed, in_axes=(0, 0 if per_run else None)), devices, per_run)


def empty_result(per_seed: Callable[[Array, Any], Result], hparams: Any, per_run: bool) -> Result:
    """The zero-run numpy result of ``per_seed(key, hparams)``: its shapes and dtypes with a
    leading run axis of length 0 (no computation: ``jax.eval_shape``)."""
    one = jax.tree.map(lambda a: a[0], hparams) if per_run else hparams
    shapes = jax.eval_shape(per_seed, jax.random.key(0), one)
    return jax.tree.map(lambda s: np.zeros((0, *s.shape), s.dtype), shapes)


def run_per_seed(
    per_seed: Callable[[Array, Any], Result],
    key: Array,
    seeds: np.ndarray,
    hparams: Any = None,
    per_run_hparams: bool = False,
    **engine: Any,
) -> tuple[Result, Layout]:
    """:func:`run_seeds` for an un-batched per-seed function: the engine does the vmap, the
    sharding, the program cache and the empty-result shapes.

    Args:
      per_seed: ``(seed_key, hparams) -> Result`` (a NamedTuple of arrays) for ONE seed; pure,
        jit- and vmap-compatible. Keep one function object per configuration (the compiled
        program is cached by its identity).
      key: as :func:`run_seeds`.
      seeds: as :func:`run_seeds`.
      hparams: as :func:`run_seeds`.
      per_run_hparams: as :func:`run_seeds`.
      **engine: the other keyword arguments of :func:`run_seeds` (chunk_size is required).

    Returns:
      As :func:`run_seeds`: the stacked numpy Result and the layout.

    Example:
      >>> import jax.numpy as jnp
      >>> from simdyn.seeds import as_key
      >>> from typing import NamedTuple
      >>> class Out(NamedTuple):
      ...     u: jax.Array
      >>> def draw(k, hp):
      ...     return Out(jax.random.uniform(k, dtype=jnp.float32) * hp)
      >>> out, layout = run_per_seed(draw, as_key(0), np.arange(5), 2.0, chunk_size=2, devices=1)
      >>> out.u.shape, layout.chunk_size
      ((5,), 2)
    """
    empty = empty_result(per_seed, hparams, per_run_hparams)
    return run_seeds(
        lambda devices: _seed_program(per_seed, devices, per_run_hparams),
        key,
        seeds,
        hparams,
        per_run_hparams,
        empty=empty,
        **engine,
    )


def _open_checkpoint(ckpt: Path, identity: dict[str, Any] | None, layout: Layout) -> str:
    """Create or check the folder's manifest (identity + layout + versions); its digest."""
    full_identity = dict(identity or {}) | {
        "layout": layout._asdict(),
        "versions": _versions(),
        "format": CHUNK_FORMAT,
    }
    return _prepare_checkpoint_dir(ckpt, full_identity)


def _layout(
    total: int, chunk_size: int | Callable[[int], int], devices: int | None
) -> tuple[Layout, Any]:
    """The layout of ``total`` runs and this process's block of them (checked chunk size)."""
    num_devices = distributed.resolve_devices(devices)
    nproc, pid = jax.process_count(), jax.process_index()
    block = distributed.process_block(total, pid, nproc)
    per_device = max(1, -(-(block.stop - block.start) // num_devices))
    if callable(chunk_size):
        chunk_size = chunk_size(per_device)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise ConfigError(f"invalid chunk_size={chunk_size!r}: must be an integer >= 1")
    if chunk_size < 1:
        raise ConfigError(f"invalid chunk_size={chunk_size}: must be an integer >= 1")
    # Never pad a call beyond what one process needs (same clamp on every process).
    chunk_size = int(min(chunk_size, max(1, -(-block.size // num_devices))))
    return Layout(chunk_size, num_devices, nproc), block


def _compute_chunk(
    runner: Program,
    key: Array,
    seeds: np.ndarray,
    positions: np.ndarray,
    per_call: int,
    pad_seed: int,
    hparams: Any,
    per_run_hparams: bool,
) -> Any:
    """One call of the program on the runs at ``positions`` (numpy out, padding dropped)."""
    # Pad with extra seed indices (dropped below) so one program serves every call.
    n_pad = per_call - len(positions)
    padded = np.concatenate([seeds[positions], pad_seed + np.arange(n_pad)])
    hp = hparams
    if per_run_hparams:
        rows = np.concatenate([positions, np.full(n_pad, positions[0])])
        hp = jax.tree.map(lambda a: a[rows], hparams)
    out = runner(seed_keys(key, padded), hp)
    return jax.tree.map(lambda a: np.asarray(a)[: len(positions)], out)
