"""Checks made before a run computes anything: can its result be written, and can it finish?

A long run must not fail at its end for a reason known at its start. :func:`check_output_path`
answers in milliseconds, before JAX is imported: the output folder exists and accepts a new
file, and an existing result is not replaced unless asked. :func:`check_resources` compares
the run's estimated result size (:func:`result_bytes`, from the config alone) with the free
memory and disk, and refuses a run that cannot finish, with the estimate and the largest
``--seeds`` or ``--chunk-size`` that would fit.

No JAX here: the numbers (free memory, the chunk's memory) are passed in, so every rule is a
pure function of them and is tested with made-up machines.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from simdyn.config import Config, ConfigError

# The host holds the result twice at its peak: the finished chunks, and the one array they are
# concatenated into (the dataset, the sweep reshape and the checksum reuse that array).
HOST_COPIES = 2


def format_bytes(n: float) -> str:
    """A byte count in words, powers of 1024: ``format_bytes(3 << 30) == '3.0 GiB'``.

    Args:
      n: bytes (>= 0).

    Returns:
      e.g. ``'512 B'``, ``'1.5 MiB'``, ``'2.0 PiB'``.
    """
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def result_bytes_per_run(config: Config) -> int:
    """Bytes one run (a seed at one grid point) adds to a result file's data variables.

    Counts what :func:`simdyn._src.simulation.trajectories_to_dataset` stores: the alignments
    (recorded steps x (K + 1)), the loss per recorded step, the two probe accuracies per probe
    step, the divergence flag and step, and Theta (p x (d + 1)) when ``train.save_theta``.
    Integers are counted at 8 bytes, an upper bound for either integer width.

    Args:
      config: the run's config.

    Returns:
      Bytes per run (the coordinates, shared by all runs, are not counted).
    """
    t = config.train
    item = 8 if t.dtype == "float64" else 4
    # Counted, not listed: train.record_steps of an absurd --steps would not fit in memory.
    steps = t.steps // t.log_every + 1
    probes = 0 if t.probe_every < 0 else t.steps // (t.probe_every or t.steps) + 1
    floats = steps * (config.data.K + 1) + steps + 2 * probes
    if t.save_theta:
        floats += config.model.p * (config.data.d + 1)
    return floats * item + 1 + 8


def host_available_bytes() -> int:
    """Memory the host can still give this process (bytes): MemAvailable of /proc/meminfo
    (free plus reclaimable caches), else free pages from sysconf, else 4 GiB.

    Returns:
      Bytes.
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def free_disk_bytes(folder: str | os.PathLike) -> int:
    """Free bytes on the file system of ``folder`` (for an unprivileged writer).

    Args:
      folder: an existing folder.

    Returns:
      Bytes.
    """
    return int(shutil.disk_usage(folder).free)


def check_resources(
    config: Config,
    seeds: int,
    *,
    free_memory: int,
    runs_per_seed: int = 1,
    chunk_bytes: int = 0,
    free_disk: int | None = None,
    checkpoint: bool = False,
    chunk_size: int | None = None,
    per_chunk_bytes: int | None = None,
    free_device_memory: int | None = None,
    option: str = "--seeds",
) -> int:
    """Refuse (ConfigError) a run that cannot finish here, with the estimate and what would fit.

    The host must hold the result HOST_COPIES times at the end, next to the chunk being computed
    (``chunk_bytes``: its working memory where it lives on the host, 0 on an accelerator); the
    disk must hold the result file, and as much again for the checkpoint chunks when
    ``checkpoint``; an explicit ``chunk_size`` must fit the device (``per_chunk_bytes`` per seed
    against ``free_device_memory``).

    Args:
      config: the run's config.
      seeds: seeds asked for (each runs at ``runs_per_seed`` grid points).
      free_memory: bytes the host can give (:func:`host_available_bytes`).
      runs_per_seed: grid points of a sweep (1 for simulate).
      chunk_bytes: host bytes of the chunk being computed.
      free_disk: free bytes where the result goes; None skips the disk check.
      checkpoint: chunks are also written to disk until the result is saved.
      chunk_size: an explicitly chosen chunk (runs per device per call), or None.
      per_chunk_bytes: device bytes per run of a chunk (with ``chunk_size``).
      free_device_memory: free device bytes (with ``chunk_size``).
      option: how messages name the seed count (``--seeds`` on the command line, ``seeds`` in
        Python).

    Returns:
      The estimated result size in bytes.

    Raises:
      ConfigError: naming ``--seeds`` or ``--chunk-size``, the estimate, what is free, and the
        largest value that fits.
    """
    per_seed = result_bytes_per_run(config) * runs_per_seed
    total = per_seed * seeds
    host_need = HOST_COPIES * total + chunk_bytes
    if host_need > free_memory:
        fit = max(0, (free_memory - chunk_bytes) // (HOST_COPIES * per_seed))
        raise ConfigError(
            f"invalid {_spell(option, seeds)}: the run cannot finish here: its result is about "
            f"{format_bytes(total)}, and assembling it needs about {format_bytes(host_need)} of "
            f"memory ({HOST_COPIES} copies + the chunk being computed) but "
            f"{format_bytes(free_memory)} is available; {_fit_hint(fit, option)}"
        )
    if free_disk is not None:
        disk_need = total * (2 if checkpoint else 1)
        if disk_need > free_disk:
            fit = free_disk // (per_seed * (2 if checkpoint else 1))
            also = " (the file + its checkpoint chunks until it is saved)" if checkpoint else ""
            raise ConfigError(
                f"invalid {_spell(option, seeds)}: the run cannot finish here: it needs about "
                f"{format_bytes(disk_need)} of disk{also} but {format_bytes(free_disk)} is free "
                f"there; {_fit_hint(fit, option)}"
            )
    if chunk_size is not None and per_chunk_bytes and free_device_memory is not None:
        need = chunk_size * per_chunk_bytes
        if need > free_device_memory:
            fit = free_device_memory // per_chunk_bytes
            hint = (
                f"use --chunk-size {fit} or less (or leave it out to size it from free memory)"
                if fit >= 1
                else "not even one run fits: a smaller config (steps, d, n) is needed"
            )
            raise ConfigError(
                f"invalid --chunk-size {chunk_size}: a chunk needs about {format_bytes(need)} of "
                f"device memory but {format_bytes(free_device_memory)} is free; {hint}"
            )
    return total


def _spell(option: str, value: int) -> str:
    return f"{option} {value}" if option.startswith("--") else f"{option}={value}"


def _fit_hint(fit: int, option: str) -> str:
    if fit >= 1:
        return f"at most {fit:,} seeds fit: use {_spell(option, fit)} or fewer"
    return "not even one seed fits: free some memory or disk, or record fewer steps (log_every)"


def check_output_path(
    path: str | os.PathLike, *, overwrite: bool, what: str = "--out", example: str = "r.nc"
) -> Path:
    """Check, before anything is computed, that a result can be written at ``path``.

    The folder must exist and accept a new file (a probe file is created and removed, so a
    read-only folder, a full quota or ``/proc`` is found now, not after the run); an existing
    file is refused unless ``overwrite``, and only a regular file is ever replaced. Leftover
    temporary files of an earlier writer of ``path`` that was killed are removed.

    Args:
      path: the output file.
      overwrite: whether an existing file may be replaced.
      what: the option's name for messages.
      example: an example file name for messages.

    Returns:
      The path.

    Raises:
      ConfigError: naming the option, the path and what is wrong.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"invalid {what} {p}: it is a folder, expected a file name like {example}"
        )
    folder = p.parent
    if not folder.exists():
        raise ConfigError(f"invalid {what} {p}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"invalid {what} {p}: {folder} is not a folder")
    if p.exists() or p.is_symlink():
        if not overwrite:
            raise ConfigError(
                f"invalid {what} {p}: the file exists; pass --overwrite to replace it, or choose "
                "another name"
            )
        if not p.is_file():
            raise ConfigError(f"invalid {what} {p}: it exists and is not a regular file")
    probe = folder / f".{p.name}.probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"invalid {what} {p}: cannot create a file in {folder} ({err.strerror or err})"
        ) from None
    remove_stale_temporaries(p)
    return p


_PID_TAIL = re.compile(r"-(\d+)$")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete hidden temporary files that a killed writer of ``path`` left in its folder.

    They are named ``.NAME.tmp-PID``, ``.NAME.part-PID`` or ``..NAME.part-PID.tmp-PID``
    (:func:`simdyn.save`); one is removed only when no process ``PID`` is alive.

    Args:
      path: the result file.

    Returns:
      The files removed.
    """
    p = Path(path)
    removed: list[Path] = []
    prefixes = (f".{p.name}.tmp-", f".{p.name}.part-", f"..{p.name}.part-")
    try:
        entries = list(p.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefixes):
            continue
        match = _PID_TAIL.search(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True
