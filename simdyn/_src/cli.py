"""simdyn: simulate (S)GD training of linear contrastive learners over many seeds at once, and
check the results against the paper's closed forms (Xue et al., ICML 2023).

Commands: simulate (one preset, many seeds -> .nc), sweep (a grid of lr/beta/sigma_0), show
(summarise or plot a .nc), presets (the named settings), verify (statistical checks of the
paper's claims). Add --help after any command for its options. Exit status: 0 ok, 2 bad input
or a run that cannot finish here, 3 every run diverged, 4 a chunk stalled, 130 Ctrl-C, 143
SIGTERM.
The theory, a user guide and this reference are in docs/ (theory.md, guide.md, cli.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from simdyn._src.presets import PRESETS, preset
from simdyn.config import ConfigError, apply_overrides


def _parse_sets(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"invalid --set {item!r}: expected field=value, e.g. p=5")
        out[name.strip()] = value
    return out


def _config_from_args(args: argparse.Namespace):
    config = preset(args.preset)
    overrides = _parse_sets(args.set or [])
    if args.steps is not None:
        overrides["steps"] = str(args.steps)
        if "log_every" not in overrides and args.steps % config.train.log_every:
            overrides["log_every"] = "1"
    config = apply_overrides(config, overrides)
    if config.train.dtype == "float64":
        from simdyn import enable_x64

        enable_x64()
    return config


def _prepare_run(args: argparse.Namespace) -> None:
    """Check run flags and start JAX's multi-process runtime; before any JAX computation."""
    from simdyn import distributed

    if args.deterministic:
        distributed.enable_deterministic()
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"invalid --steps {args.steps}: must be >= 1")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError(f"invalid --chunk-size {args.chunk_size}: must be >= 1")
    if args.key < 0:
        raise ConfigError(f"invalid --key {args.key}: must be >= 0")
    if args.resume is not None and Path(args.resume).exists() and not Path(args.resume).is_dir():
        raise ConfigError(f"invalid --resume {args.resume}: it is a file, expected a folder")
    multi = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in multi):
        if any(v is None for v in multi):
            raise ConfigError(
                "invalid multi-process flags: give --coordinator, --num-processes and "
                "--process-id together"
            )
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    elif args.auto_cluster:
        distributed.initialize()
    if args.devices is not None:
        distributed.resolve_devices(args.devices)  # clear error before compiling anything


def _progress(args: argparse.Namespace, desc: str, unit: str):
    """Progress callback for simulate/sweep: a tqdm bar on a terminal, plain lines in a log,
    nothing with --quiet or on processes other than 0."""
    if args.quiet or not _is_writer():
        return False
    from simdyn._src.progress import progress_bar

    return progress_bar(f"{args.preset} {desc}", unit=unit)


def _is_writer() -> bool:
    """Only process 0 writes files and prints summaries in a multi-process run."""
    import jax

    return jax.process_index() == 0


# Exit statuses (docs/cli.md): 0 ok, 2 bad input or a run that cannot finish here, 3 every run
# diverged (the file is written; it holds no usable run), 4 a chunk stalled (the watchdog ended
# the run), 130 Ctrl-C, 143 SIGTERM.
EXIT_BAD_INPUT = 2
EXIT_ALL_DIVERGED = 3
EXIT_STALLED = 4  # a chunk stalled (simdyn.engine.Watchdog); finished chunks are kept
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is running so the run unwinds like Ctrl-C."""


# Signals received during a run. Python runs a handler between any two bytecodes, also inside
# a destructor or a gc callback, where the exception it raises is printed and swallowed; the
# run then checks this list after every chunk and raises again.
_PENDING_SIGNALS: list[int] = []


def _on_signal(signum, frame) -> None:
    _PENDING_SIGNALS.append(signum)
    raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _checked_progress(progress):
    """The progress callback, preceded by the pending-signal check (after every chunk)."""

    def callback(done: int, total: int, elapsed: float) -> None:
        if _PENDING_SIGNALS:
            raise _Terminated() if _PENDING_SIGNALS[-1] == signal.SIGTERM else KeyboardInterrupt()
        if progress:
            progress(done, total, elapsed)

    return callback


def _quiet_teardown() -> None:
    """After an interruption, silence errors from destructors of objects the signal left half
    built (h5netcdf's File.__del__ then prints "Exception ignored ... Traceback"): the process
    is ending, and the one line that matters is ours."""
    sys.unraisablehook = lambda unraisable: None


def auto_checkpoint_dir(out: Path) -> Path:
    """The checkpoint folder a run uses when --resume is not given: hidden, beside --out.

    Args:
      out: the result file.

    Returns:
      ``<folder of out>/.<name of out>.partial``; removed once the result is saved.
    """
    return out.with_name(f".{out.name}.partial")


def _checkpoint_dir(args: argparse.Namespace, out: Path) -> tuple[Path | None, bool]:
    """(folder, automatic): --resume, else the automatic folder for a single process."""
    if args.resume is not None:
        return Path(args.resume), False
    import jax

    if jax.process_count() > 1:  # processes may not share a file system: only with --resume
        return None, False
    return auto_checkpoint_dir(out), True


def _check_resources(args, config, out: Path, runs_per_seed: int, checkpoint: bool) -> None:
    """Refuse, before compiling, a run whose result cannot fit in memory or on disk, or whose
    explicit --chunk-size cannot fit the device (simdyn._src.preflight)."""
    import jax

    from simdyn import objectives
    from simdyn._src import preflight
    from simdyn.chunking import auto_chunk_size, available_memory

    per_run = objectives.get(objectives.resolve(config)).memory_per_seed(config)
    chunk = args.chunk_size or auto_chunk_size(config, args.seeds * runs_per_seed)
    preflight.check_resources(
        config,
        args.seeds,
        free_memory=preflight.host_available_bytes(),
        runs_per_seed=runs_per_seed,
        chunk_bytes=chunk * per_run if jax.default_backend() == "cpu" else 0,
        free_disk=preflight.free_disk_bytes(out.parent) if _is_writer() else None,
        checkpoint=checkpoint,
        chunk_size=args.chunk_size,
        per_chunk_bytes=per_run,
        free_device_memory=available_memory(),
    )


def _resume_line(args: argparse.Namespace, ckpt: Path | None, automatic: bool) -> str:
    """What an interrupted run says: what is kept and the command that continues it."""
    import shlex

    if ckpt is None:
        return "nothing kept (a multi-process run keeps chunks only with --resume DIR)"
    kept = len(list(ckpt.glob("chunk_*.nc.sha256"))) if ckpt.is_dir() else 0
    command = shlex.join(["simdyn", *args.argv])
    where = f"{kept} finished chunk{'s' if kept != 1 else ''} kept in {ckpt}"
    if automatic:
        return f"{where}; the same command resumes: {command}"
    return f"{where}; resume with: {command}"


def _exit_now(message: str, code: int) -> None:
    """Print the interruption line and end the process at once: an interpreter exit with the
    chunk thread still inside XLA aborts ('terminate called ...', status -6) instead of
    returning ``code``. Finished chunks are already on disk."""
    print(f"simdyn: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_stalled(err: Exception, resume: str) -> None:
    """End the process at once after a stalled chunk: its thread waits inside compiled code and
    cannot be stopped, and a normal interpreter exit could wait on it forever."""
    print(f"simdyn: error: {err}", file=sys.stderr)
    print(f"simdyn: {resume}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STALLED)


def _run(args: argparse.Namespace, kind: str) -> int:
    """simulate or sweep: check everything, compute (interruptibly), save, summarise."""
    from simdyn._src.preflight import check_output_path

    out = check_output_path(args.out, overwrite=args.overwrite)  # before JAX: milliseconds
    config = _config_from_args(args)
    grid = None
    if kind == "sweep":
        from simdyn._src.sweep import validate_grid

        grid = validate_grid(config, _parse_grid(args.grid or []))
    _prepare_run(args)
    ckpt, automatic = _checkpoint_dir(args, out)
    points = 1
    for values in (grid or {}).values():
        points *= len(values)
    _check_resources(args, config, out, points, checkpoint=ckpt is not None)
    common = dict(
        seeds=args.seeds,
        key=args.key,
        chunk_size=args.chunk_size,
        devices=args.devices,
        checkpoint_dir=ckpt,
        progress=_checked_progress(
            _progress(args, kind, "seeds" if kind == "simulate" else "runs")
        ),
    )
    _PENDING_SIGNALS.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    start = time.perf_counter()
    try:
        if kind == "sweep":
            from simdyn._src.sweep import sweep

            assert grid is not None  # validated above for a sweep
            ds = sweep(config, grid, **common)
        else:
            from simdyn._src.simulation import simulate

            ds = simulate(config, **common)
        wall = time.perf_counter() - start
        if not _is_writer():
            return 0
        _save(args, ds, out, ckpt if automatic else None)
    except KeyboardInterrupt as err:
        _quiet_teardown()
        code = EXIT_TERMINATED if isinstance(err, _Terminated) else EXIT_INTERRUPTED
        what = "terminated (SIGTERM)" if code == EXIT_TERMINATED else "interrupted"
        # Always end at once: JAX's threads may still be inside compiled code (the chunk
        # thread, or work it queued), and an interpreter exit around them can abort
        # ('terminate called ...', status -6; seen in a clean-clone CI run) instead of
        # returning ``code``. Finished chunks are already on disk.
        _exit_now(f"{what}: {_resume_line(args, ckpt, automatic)}", code)
    except RuntimeError as err:
        from simdyn.engine import StalledChunkError

        if not isinstance(err, StalledChunkError):
            raise
        _exit_stalled(err, _resume_line(args, ckpt, automatic))
    except ConfigError as err:
        if automatic and "holds a different run" in str(err):
            raise ConfigError(
                f"{err}. That folder was left by an interrupted run writing {out}: rerun that "
                f"command to finish it, or delete {ckpt} to start over"
            ) from None
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _report(args, kind, config, ds, out, wall)


def _save(args: argparse.Namespace, ds, out: Path, auto_ckpt: Path | None) -> None:
    """Write the result (atomic; never over an existing file without --overwrite), then drop
    the automatic checkpoints it no longer needs."""
    import shutil

    from simdyn._src.simulation import save

    ds.attrs["preset"] = args.preset
    ds.attrs["overrides"] = json.dumps(list(args.set or []))
    save(ds, out, overwrite=args.overwrite)
    if auto_ckpt is not None:
        shutil.rmtree(auto_ckpt, ignore_errors=True)


def _report(args, kind: str, config, ds, out: Path, wall: float) -> int:
    """Print the run line, the summary and the verdict on divergence; the exit status."""
    from simdyn.summary import divergence_verdict, format_summary

    runs = int(ds["diverged"].size)
    if kind == "simulate":
        print(
            f"{args.preset}: {args.seeds} seeds x {config.train.steps} steps "
            f"(backend {ds.attrs['backend']}, {ds.attrs['devices']} device(s) x "
            f"{ds.attrs['process_count']} process(es)) in {wall:.1f} s = "
            f"{runs * config.train.steps / wall:,.0f} seed-steps/s (compile included); wrote {out}"
        )
    else:
        print(
            f"{args.preset}: {runs} runs x {config.train.steps} steps in {wall:.1f} s; wrote {out}"
        )
    print(format_summary(ds))
    level, message = divergence_verdict(ds)
    if message:
        print(f"simdyn: {level}: {message}", file=sys.stderr)
    return EXIT_ALL_DIVERGED if level == "error" else 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    return _run(args, "simulate")


def _parse_grid(items: list[str]) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ConfigError(
                f"invalid --grid {item!r}: expected field=v1,v2,..., e.g. lr=0.01,0.05"
            )
        if name in grid:
            raise ConfigError(f"invalid --grid {item!r}: {name} given twice")
        parts = [v.strip() for v in values.split(",")]
        if parts and parts[-1] == "":  # one trailing comma is harmless: lr=0.1,0.2,
            parts.pop()
        if any(v == "" for v in parts):
            raise ConfigError(
                f"invalid --grid {item!r}: an empty value between commas; expected "
                "field=v1,v2,..., e.g. lr=0.01,0.05"
            )
        try:
            grid[name] = [float(v) for v in parts]
        except ValueError:
            raise ConfigError(f"invalid --grid {item!r}: values must be numbers") from None
    return grid


def _cmd_sweep(args: argparse.Namespace) -> int:
    return _run(args, "sweep")


def _check_input_file(path: str) -> Path:
    """A clear error for a missing or unusable input file, before JAX is imported."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such file: {p}")
    if p.is_dir():
        raise ConfigError(f"{p} is a folder, expected a result file like f.nc")
    return p


def _cmd_show(args: argparse.Namespace) -> int:
    from simdyn._src.preflight import check_output_path

    path = _check_input_file(args.file)
    # A figure is cheap to redraw from the data: --plot replaces an existing one.
    plot = (
        check_output_path(args.plot, overwrite=True, what="--plot", example="a.png")
        if (args.plot)
        else None
    )
    from simdyn._src.simulation import load
    from simdyn.summary import describe_origin, divergence_verdict, format_summary

    ds = load(path)
    print(f"{path.name}: {describe_origin(ds)}")
    print(format_summary(ds))
    level, message = divergence_verdict(ds)
    if message:
        print(f"simdyn: {level}: {message}", file=sys.stderr)
    if plot is not None:
        from simdyn._src.plots import plot_result

        plot_result(ds, plot, title=path.name)
        print(f"wrote {plot}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    for name, cfg in PRESETS.items():
        print(f"{name:8s} {cfg.to_json() if args.json else _brief(cfg)}")
    return 0


def _brief_phi(phi: tuple[float, ...]) -> str:
    """phi as a tuple, or its first two and last values and its length when long."""
    if len(phi) <= 4:
        return "(" + ", ".join(f"{x:g}" for x in phi) + ")"
    return f"({phi[0]:g}, {phi[1]:g}, ..., {phi[-1]:g}) ({len(phi)} values)"


def _brief(cfg) -> str:
    d, m, t = cfg.data, cfg.model, cfg.train
    return (
        f"{t.loss} p={m.p} n={d.n} m={d.m} d={d.d} K={d.K} phi={_brief_phi(d.phi)} mu={d.mu} "
        f"sigma_xi={d.sigma_xi} lr={t.lr} steps={t.steps}"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from simdyn.verify.cli import run_verify

    # SIGTERM unwinds like Ctrl-C (exit 143): the verifier stops its worker processes on the
    # way out, which the default action (the parent killed at once) would leave running.
    _PENDING_SIGNALS.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run_verify(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the descriptions' line breaks; a little wider option column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _flag(*names: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    return names, kwargs


# The options of simulate and sweep, as data ({unit}: what a run counts, seeds or runs).
_RUN_FLAGS = (
    _flag(
        "preset",
        choices=sorted(PRESETS),
        metavar="PRESET",
        help="named setting to start from: " + ", ".join(sorted(PRESETS)) + " (simdyn presets)",
    ),
    _flag(
        "--seeds",
        type=int,
        default=16,
        metavar="N",
        help="independent seeds (data draw + init) per run, N >= 1 (default: 16)",
    ),
    _flag(
        "--steps",
        type=int,
        default=None,
        metavar="T",
        help="training steps, T >= 1 (default: the preset's train.steps; see `simdyn presets`)",
    ),
    _flag(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="override a config field, repeatable: unique name like p=5 or dotted model.p=5; "
        "ranges are checked (default: none)",
    ),
    _flag(
        "--key",
        type=int,
        default=0,
        metavar="K",
        help="base PRNG key, K >= 0; seed i uses fold_in(K, i) (default: 0)",
    ),
    _flag(
        "--chunk-size",
        type=int,
        default=None,
        metavar="C",
        help="seeds per device per compiled call, C >= 1 (default: sized from free memory)",
    ),
    _flag(
        "--devices",
        type=int,
        default=None,
        metavar="D",
        help="local devices to split the seeds over, 1 <= D <= available (default: all)",
    ),
    _flag(
        "--resume",
        metavar="DIR",
        default=None,
        help="checkpoint folder: finished chunks are kept and skipped on rerun (default: a "
        "hidden .NAME.partial folder beside --out, removed once the result is saved; none in "
        "multi-process runs)",
    ),
    _flag(
        "--out",
        required=True,
        metavar="FILE.nc",
        help="result file to write (required; its folder must exist and be writable; an "
        "existing file is refused unless --overwrite)",
    ),
    _flag(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file (default: refuse, so a result is never lost)",
    ),
    _flag(
        "--quiet",
        action="store_true",
        help="no progress output; a resumed run still says what it reused (default: a bar on "
        "a terminal, one line per chunk of {unit} in a log)",
    ),
    _flag(
        "--deterministic",
        action="store_true",
        help="deterministic GPU kernels (XLA_FLAGS=--xla_gpu_deterministic_ops=true; default: off)",
    ),
)
_MULTI_PROCESS_FLAGS = (
    _flag(
        "--coordinator",
        metavar="HOST:PORT",
        default=None,
        help="address of process 0, port in [1, 65535] (default: single process)",
    ),
    _flag(
        "--num-processes",
        type=int,
        default=None,
        metavar="N",
        help="number of processes, N >= 1 (give with --coordinator and --process-id)",
    ),
    _flag(
        "--process-id",
        type=int,
        default=None,
        metavar="I",
        help="this process's index, 0 <= I < N (give with --coordinator and --num-processes)",
    ),
    _flag(
        "--auto-cluster",
        action="store_true",
        help="let JAX detect the cluster (SLURM, TPU pod, Open MPI) and its process layout "
        "(default: off)",
    ),
)


def _add_flags(p, flags: tuple, **fmt: str) -> None:
    """Add options given as (names, kwargs); help strings may use ``{unit}``-style fields."""
    for names, kwargs in flags:
        if "help" in kwargs and fmt:
            kwargs = kwargs | {"help": kwargs["help"].replace("{unit}", fmt.get("unit", ""))}
        p.add_argument(*names, **kwargs)


def _add_run_flags(p: argparse.ArgumentParser, unit: str = "seeds") -> None:
    _add_flags(p, _RUN_FLAGS, unit=unit)
    m = p.add_argument_group("multi-process (jax.distributed; see docs/scaling.md)")
    _add_flags(m, _MULTI_PROCESS_FLAGS)


_SIMULATE_DOC = """Run many seeds of one preset (optionally changed with --set/--steps) and write
the labelled (seed, step, feature) alignments, losses and probes to a .nc file, then print a
summary. Example:
  simdyn simulate fig2a --seeds 64 --out f.nc
  simdyn simulate fig2a --seeds 8 --set p=5 --set lr=0.02 --steps 200 --out g.nc"""

_SWEEP_DOC = """Run every seed at every point of a grid of lr, beta (loss=joint) or sigma_0, in
one compiled program, and write one .nc file. Example:
  simdyn sweep joint --grid beta=0.25,0.5,0.75 --seeds 64 --out sweep.nc"""

_SHOW_DOC = """Print the summary of a result file written by simulate or sweep (a corrupted file
is refused); with --plot also draw the median and 5-95% band of every feature's alignment over
the steps, or for a sweep each feature's peak and its step against the swept value. Example:
  simdyn show f.nc --plot f.png"""

_VERIFY_DOC = """Check the paper's claims statistically: each claim runs its seeds, compares them
with the closed form under its conditions, and gets a verdict; negative controls must fail.
Prints a table and writes OUT/report.json and OUT/report.md. `simdyn verify --list` names the
claims, `simdyn verify --rules` prints their pre-registered rules. Example:
  simdyn verify --claims CC-unlearn --seeds 32"""


_VERIFY_FLAGS = (
    _flag(
        "--claims",
        nargs="*",
        default=None,
        metavar="NAME",
        help="claims to check, names from --list, space- or comma-separated, case-insensitive "
        "(default: all)",
    ),
    _flag(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="seeds per design point, N >= 2 (default: the scale's registered count)",
    ),
    _flag(
        "--quick",
        action="store_true",
        default=True,
        help="the small registered scale, minutes on a laptop (default)",
    ),
    _flag(
        "--full",
        dest="quick",
        action="store_false",
        help="the thousands-of-seeds scale: quick sizes, >= 1000 independent seeds per design "
        "point, the confirmatory key derived from the declared rules (default: off)",
    ),
    _flag(
        "--key",
        type=int,
        default=None,
        metavar="K",
        help="base PRNG key, K >= 0 (default: the scale's registered key)",
    ),
    _flag(
        "--out",
        default="verify-report",
        metavar="DIR",
        help="folder for report.json, report.md and figures; a rerun into the same folder "
        "resumes an interrupted run's finished claims (default: verify-report, git-ignored)",
    ),
    _flag(
        "--self-test",
        action="store_true",
        help="run the verifier against deliberately broken simulators, each of which must be "
        "caught; with --paper NAME, the ones that paper declares (default: off)",
    ),
    _flag(
        "--paper",
        default=None,
        metavar="NAME",
        help="the paper whose claims to check: which-features (Xue et al. 2023), "
        "projection-head (Xue et al. 2024) or all (default: all)",
    ),
    _flag(
        "--compile-cache",
        default="auto",
        metavar="DIR",
        help="keep compiled XLA programs in DIR, so that a rerun loads them instead of "
        "compiling; 'none' turns it off; results are the same either way (default: auto, "
        "$XDG_CACHE_HOME/simdyn/xla or ~/.cache/simdyn/xla)",
    ),
    _flag(
        "--jobs",
        default="auto",
        metavar="N",
        help="claims run side by side in N worker processes; the verdicts do not depend on N "
        "(default: auto, the CPU's cores up to 4 when JAX runs on the CPU, else 1)",
    ),
    _flag(
        "--list",
        action="store_true",
        help="print the claim names (with their conditions) and exit",
    ),
    _flag(
        "--rules",
        action="store_true",
        help="print the pre-registered rules and controls of each table row (of --claims) "
        "and exit (default: off)",
    ),
    _flag(
        "--expect",
        default=None,
        metavar="FILE",
        help="expected verdicts (JSON, e.g. simdyn/verify/expected/quick.json, or a report.json): "
        "exit 1 and print the rows that deviate (default: none)",
    ),
    _flag(
        "--ledger",
        default=None,
        metavar="FILE",
        help="append this confirmatory run (--full, one --paper, every claim, the derived key) "
        "to the ledger FILE, e.g. experiments/verify-full/ledger.json (default: none)",
    ),
)


def _subcommand(sub, name: str, help: str, description: str, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=description, formatter_class=_Formatter)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``simdyn`` argument parser: simulate, sweep, show, presets, verify."""
    parser = argparse.ArgumentParser(
        prog="simdyn",
        description=__doc__,
        formatter_class=_Formatter,
        epilog="examples:\n  simdyn presets\n  simdyn simulate fig2a --seeds 64 --out f.nc\n"
        "  simdyn show f.nc --plot f.png\n  simdyn verify",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = _subcommand(
        sub,
        "simulate",
        "run many seeds of a preset and write a .nc dataset",
        _SIMULATE_DOC,
        _cmd_simulate,
    )
    _add_run_flags(p)
    w = _subcommand(
        sub,
        "sweep",
        "run every seed at every point of a lr/beta/sigma_0 grid (one program)",
        _SWEEP_DOC,
        _cmd_sweep,
    )
    _add_run_flags(w, unit="runs")
    _add_flags(w, _SWEEP_FLAGS)
    s = _subcommand(
        sub, "show", "summarise (and optionally plot) a result file", _SHOW_DOC, _cmd_show
    )
    _add_flags(s, _SHOW_FLAGS)
    r = _subcommand(
        sub,
        "presets",
        "list the named presets",
        "List the named presets with their main settings.",
        _cmd_presets,
    )
    _add_flags(r, _PRESETS_FLAGS)
    v = _subcommand(
        sub, "verify", "check the paper's claims statistically", _VERIFY_DOC, _cmd_verify
    )
    _add_flags(v, _VERIFY_FLAGS)
    return parser


_SWEEP_FLAGS = (
    _flag(
        "--grid",
        action="append",
        required=True,
        metavar="FIELD=V1,V2,...",
        help="grid values of lr (> 0), beta (loss=joint, in [0, 1]) or sigma_0 (> 0); "
        "repeat for a product grid (required)",
    ),
)
_SHOW_FLAGS = (
    _flag("file", metavar="FILE.nc", help="a result file written by simulate or sweep"),
    _flag(
        "--plot",
        metavar="OUT.png",
        default=None,
        help="also write a figure (replaced if it exists): a simulate result's median and "
        "5-95%% band of each feature's alignment over steps; a sweep's peak of each feature and "
        "its step against the swept value (default: no figure)",
    ),
)
_PRESETS_FLAGS = (
    _flag(
        "--json",
        action="store_true",
        help="print each preset's full config as JSON (default: brief)",
    ),
)


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """While a command runs, the library's log messages (logger ``simdyn``, level INFO and up)
    go to stderr as plain lines (``%(message)s``), as the command line has always shown them.
    The handler is removed afterwards, so repeated in-process calls never print twice."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("simdyn")
    level = log.level
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``simdyn ARGS`` (``argv``: the arguments, default sys.argv[1:]).

    Returns the exit status: 0 ok, 2 bad input, 3 every run diverged, 4 a chunk stalled (the
    process exits at once), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); verify has its
    own rule (docs/cli.md).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        parser.error(f"invalid --seeds {args.seeds}: must be >= 1")
    try:
        with _log_to_stderr():
            return args.func(args)
    except ConfigError as err:
        print(f"simdyn: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # unreadable/unwritable paths: one line, not a traceback
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        print(f"simdyn: error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:
        _quiet_teardown()
        terminated = isinstance(err, _Terminated)
        print(f"simdyn: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
