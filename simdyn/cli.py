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


def _cmd_simulate(args: argparse.Namespace) -> int:
    from simdyn.simulate import save, simulate
    from simdyn.summary import format_summary

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
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise ConfigError(f"invalid --out {out}: folder {out.parent} does not exist")
    start = time.perf_counter()
    ds = simulate(
        config,
        seeds=args.seeds,
        key=args.key,
        chunk_size=args.chunk_size,
        checkpoint_dir=args.resume,
        progress=not args.quiet,
    )
    wall = time.perf_counter() - start
    save(ds, out)
    seed_steps = args.seeds * config.train.steps
    print(
        f"{args.preset}: {args.seeds} seeds x {config.train.steps} steps "
        f"(backend {ds.attrs['backend']}) in {wall:.1f} s = {seed_steps / wall:,.0f} "
        f"seed-steps/s (compile included); wrote {out}"
    )
    print(format_summary(ds))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simdyn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run many seeds of a preset and write a .nc dataset")
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
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="checkpoint folder: finished chunks are kept and skipped on rerun",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_simulate)

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
