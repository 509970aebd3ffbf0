"""Command line: argument parsing and printing only."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from simdyn.config import ConfigError, apply_overrides
from simdyn.presets import PRESETS, preset


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
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"invalid --out {out}: it is a folder, expected a file name like r.nc")
    if out.parent and not out.parent.exists():
        raise ConfigError(f"invalid --out {out}: folder {out.parent} does not exist")
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


def _is_writer() -> bool:
    """Only process 0 writes files and prints summaries in a multi-process run."""
    import jax

    return jax.process_index() == 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from simdyn.simulate import save, simulate
    from simdyn.summary import format_summary

    config = _config_from_args(args)
    _prepare_run(args)
    out = Path(args.out)
    start = time.perf_counter()
    ds = simulate(
        config,
        seeds=args.seeds,
        key=args.key,
        chunk_size=args.chunk_size,
        devices=args.devices,
        checkpoint_dir=args.resume,
        progress=not args.quiet,
    )
    wall = time.perf_counter() - start
    if not _is_writer():
        return 0
    save(ds, out)
    seed_steps = args.seeds * config.train.steps
    print(
        f"{args.preset}: {args.seeds} seeds x {config.train.steps} steps "
        f"(backend {ds.attrs['backend']}, {ds.attrs['devices']} device(s) x "
        f"{ds.attrs['process_count']} process(es)) in {wall:.1f} s = "
        f"{seed_steps / wall:,.0f} seed-steps/s (compile included); wrote {out}"
    )
    print(format_summary(ds))
    return 0


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
        try:
            grid[name] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"invalid --grid {item!r}: values must be numbers") from None
    return grid


def _cmd_sweep(args: argparse.Namespace) -> int:
    from simdyn.simulate import save
    from simdyn.summary import format_sweep_summary
    from simdyn.sweep import sweep, validate_grid

    config = _config_from_args(args)
    grid = validate_grid(config, _parse_grid(args.grid or []))
    _prepare_run(args)
    start = time.perf_counter()
    ds = sweep(
        config,
        grid,
        seeds=args.seeds,
        key=args.key,
        chunk_size=args.chunk_size,
        devices=args.devices,
        checkpoint_dir=args.resume,
        progress=not args.quiet,
    )
    wall = time.perf_counter() - start
    if not _is_writer():
        return 0
    save(ds, Path(args.out))
    runs = int(ds["diverged"].size)
    print(
        f"{args.preset}: {runs} runs x {config.train.steps} steps in {wall:.1f} s; wrote {args.out}"
    )
    print(format_sweep_summary(ds))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from simdyn.simulate import load
    from simdyn.summary import format_summary

    ds = load(args.file)
    print(format_summary(ds))
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    for name, cfg in PRESETS.items():
        print(f"{name:8s} {cfg.to_json() if args.json else _brief(cfg)}")
    return 0


def _brief(cfg) -> str:
    d, m, t = cfg.data, cfg.model, cfg.train
    return (
        f"{t.loss} p={m.p} n={d.n} m={d.m} d={d.d} K={d.K} phi={d.phi} mu={d.mu} "
        f"sigma_xi={d.sigma_xi} lr={t.lr} steps={t.steps}"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from simdyn.verify.cli import run_verify

    return run_verify(args)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="override a config field (unique name like p=5, or dotted model.p=5)",
    )
    p.add_argument("--key", type=int, default=0, help="base PRNG key")
    p.add_argument("--chunk-size", type=int, default=None, help="seeds per device per call")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="local devices to split the seeds over (default: all local devices)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="checkpoint folder: finished chunks are kept and skipped on rerun",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic GPU kernels (XLA_FLAGS=--xla_gpu_deterministic_ops=true)",
    )
    m = p.add_argument_group("multi-process (jax.distributed; see docs/scaling.md)")
    m.add_argument("--coordinator", metavar="HOST:PORT", default=None)
    m.add_argument("--num-processes", type=int, default=None)
    m.add_argument("--process-id", type=int, default=None)
    m.add_argument(
        "--auto-cluster",
        action="store_true",
        help="let JAX detect the cluster (SLURM, TPU pod, Open MPI) and its process layout",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simdyn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run many seeds of a preset and write a .nc dataset")
    _add_run_flags(p)
    p.set_defaults(func=_cmd_simulate)

    w = sub.add_parser(
        "sweep", help="run every seed at every point of a lr/beta/sigma_0 grid (one program)"
    )
    _add_run_flags(w)
    w.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="FIELD=V1,V2,...",
        help="grid values of lr, beta (loss=joint) or sigma_0; repeat for a product grid",
    )
    w.set_defaults(func=_cmd_sweep)

    s = sub.add_parser("show", help="summarise a result file")
    s.add_argument("file")
    s.set_defaults(func=_cmd_show)

    r = sub.add_parser("presets", help="list the named presets")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_presets)

    v = sub.add_parser("verify", help="check the paper's claims statistically")
    v.add_argument("--claims", nargs="*", default=None)
    v.add_argument("--seeds", type=int, default=None)
    v.add_argument("--quick", action="store_true", default=True)
    v.add_argument("--full", dest="quick", action="store_false")
    v.add_argument("--out", default="verify-report")
    v.add_argument("--key", type=int, default=0)
    v.set_defaults(func=_cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        parser.error(f"invalid --seeds {args.seeds}: must be >= 1")
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"simdyn: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
