"""Every documented entry point runs: each preset, and each command in README.md and docs/.

A preset is run at a tiny size with its real shapes (p = 500 for fig2b: the size at which the
batched-LAPACK deadlock of issue 29 struck) and probes on. The documented shell commands are run
in order, in a scratch folder, with their sizes shrunk (seeds, steps, chunk); each one is an
example on its own, so an output it names is removed before it runs, and a command that reads
an earlier command's output (``simdyn show f.nc``) finds it. Commands that need a cluster
(``srun``, ``gcloud``, a coordinator) are covered by tests/test_distributed.py instead, and
``simdyn verify`` by CI's ``simdyn verify --quick --expect`` run.

The documented commands and the experiment scripts' tiny runs are in the slow tier (they spawn
processes and compile many programs); ``.ci/run`` runs them explicitly after the default suite,
so CI still runs every entry point.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import simdyn
from simdyn._src.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_with_probes_at_a_tiny_size(name):
    config = simdyn.preset(name)
    steps = 4
    config = simdyn.config.apply_overrides(
        config, {"steps": steps, "log_every": 1, "probe_every": 2, "n_test": 40}
    )
    ds = simdyn.simulate(config, seeds=2)
    assert ds.sizes["seed"] == 2
    assert ds["alignment"].shape[1] == steps + 1  # steps 0..4
    assert np.all(np.isfinite(ds["alignment"].values))
    probes = ds["probe_subclass"].values
    assert probes.shape == (2, 3) and np.all((probes >= 0) & (probes <= 1))
    assert not ds["diverged"].values.any()


def test_pytest_enforces_a_time_limit_on_every_test():
    """A hang fails CI instead of stalling it: pytest-timeout is installed and configured."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ini = meta["tool"]["pytest"]["ini_options"]
    assert 0 < float(ini["timeout"]) <= 600
    assert ini["timeout_method"] == "thread"  # a signal never reaches a thread stuck in XLA
    assert any(
        dep.startswith("pytest-timeout") for dep in meta["project"]["optional-dependencies"]["test"]
    )
    import pytest_timeout  # noqa: F401 - installed with the test extras


# --- the documented commands -----------------------------------------------------------------
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLUSTER = ("srun", "gcloud", "scontrol", "--coordinator", "--auto-cluster", "$")


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every ``simdyn`` line of a bash block in README.md and docs/."""
    found = []
    for path in DOCS:
        in_block, pending = False, ""
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                in_block = line.strip() in ("```bash", "```sh", "```console")
                continue
            if not in_block:
                continue
            line = pending + line.split(" #")[0].strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if re.match(r"^(\w+=\S+\s+)*simdyn\s", line):
                found.append((path.name, line))
    return found


def shrink(command: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """The command at a tiny size: argv and extra environment."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0] and not words[0].startswith("-"):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    out, i = [], 0
    sub = words[1]
    while i < len(words):
        w = words[i]
        if w in ("--seeds", "--steps", "--chunk-size") and i + 1 < len(words):
            out += [w, {"--seeds": "2", "--steps": "4", "--chunk-size": "1"}[w]]
            i += 2
            continue
        out.append(w)
        i += 1
    if sub in ("simulate", "sweep"):
        if "--steps" not in out:
            out += ["--steps", "4"]
        out += ["--set", "n_test=40"]
    if "--devices" in out:
        env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    if "--out" in out:
        target = tmp / out[out.index("--out") + 1]
        if target.exists():
            target.unlink()  # each line is an example on its own
    return [sys.executable, "-m", "simdyn", *out[1:]], env


def _runnable(command: str) -> bool:
    words = shlex.split(command)
    cmd = next(w for w in words if "=" not in w or w.startswith("-"))
    return cmd == "simdyn" and not any(c in command for c in CLUSTER) and "verify" not in words


COMMANDS = [(f, c) for f, c in documented_commands() if _runnable(c)]


def test_the_docs_document_commands():
    assert len(COMMANDS) >= 5, COMMANDS


@pytest.mark.slow  # ~85 s of subprocesses: `.ci/run` runs it explicitly
@pytest.mark.timeout(600)
def test_every_documented_command_runs_at_a_tiny_size(tmp_path):
    failures = []
    for source, command in COMMANDS:
        argv, extra = shrink(command, tmp_path)
        env = dict(os.environ) | extra
        res = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        if res.returncode != 0:
            failures.append(f"{source}: {command}\n  -> exit {res.returncode}: {res.stderr[-600:]}")
    assert not failures, "\n".join(failures)
