"""Seeds split over devices (4 simulated CPU devices) and over two real jax.distributed processes.

Each scenario runs in SUBPROCESSES: XLA_FLAGS=--xla_force_host_platform_device_count must be set
before JAX starts, and jax.distributed.initialize can run once per process; the pytest process
stays untouched. All runs use the same tiny float64 config; results are compared here.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from simdyn import load

KEY = 5
SEEDS = 7  # uneven: 7 seeds on 4 devices (one padding seed) and on 2 processes (4 + 3)
SETS = {
    "n": 16,
    "m": 2,
    "d": 40,
    "n_test": 16,
    "model.p": 3,
    "model.sigma_0": 0.1,
    "dtype": "float64",
    "probe_every": -1,
    "steps": 10,
    "log_every": 2,
}
VARS = ("alignment", "loss", "diverged", "diverged_step")

DEVICES_SCRIPT = textwrap.dedent(
    f"""
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    from simdyn import apply_overrides, preset, save, simulate
    from simdyn._src.sweep import sweep

    out = sys.argv[1]
    assert jax.local_device_count() == 4, jax.devices()
    cfg = apply_overrides(preset("fig1"), {SETS!r})
    save(simulate(cfg, {SEEDS}, {KEY}, chunk_size=2, devices=1), out + "/one.nc")
    save(simulate(cfg, {SEEDS}, {KEY}, chunk_size=2), out + "/four.nc")
    # Random inputs: each seed's training set drawn under the 4-device seed mesh vs one device.
    import numpy as np
    from jax.sharding import PartitionSpec
    from simdyn.data import sample_training_set
    from simdyn.distributed import seed_mesh
    from simdyn.seeds import as_key, seed_keys
    from simdyn.seeds import DATA

    keys = seed_keys(as_key({KEY}), np.arange(8))
    draw = jax.vmap(lambda k: sample_training_set(jax.random.fold_in(k, DATA), cfg.data))
    spec = PartitionSpec("seeds")
    on4 = jax.jit(jax.shard_map(draw, mesh=seed_mesh(4), in_specs=spec, out_specs=spec))(keys)
    on1 = jax.jit(draw)(keys)
    np.savez(out + "/inputs.npz", on4=np.concatenate([np.ravel(x) for x in jax.tree.leaves(on4)]),
             on1=np.concatenate([np.ravel(x) for x in jax.tree.leaves(on1)]))
    grid = {{"lr": [0.05, 0.08]}}
    save(sweep(cfg, grid, {SEEDS}, {KEY}, chunk_size=2, devices=4), out + "/sweep4.nc")
    """
)


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_same(a, b, names=VARS):
    for name in names:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def _cli_process(out, port: int, process_id: int) -> list[str]:
    sets = [arg for k, v in SETS.items() if k != "steps" for arg in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "simdyn", "simulate", "fig1", "--seeds", str(SEEDS)]
    cmd += ["--key", str(KEY), "--chunk-size", "2", "--devices", "1", "--steps", "10"]
    cmd += [*sets, "--out", str(out), "--quiet"]
    cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    return [*cmd, "--process-id", str(process_id)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start the 4-device script and the two CLI processes together (they share 2 cores)."""
    out = tmp_path_factory.mktemp("runs")
    port = _free_port()
    jobs = {
        "devices": subprocess.Popen(
            [sys.executable, "-c", DEVICES_SCRIPT, str(out)],
            env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    }
    for i in range(2):
        jobs[f"process{i}"] = subprocess.Popen(
            _cli_process(out / "two.nc", port, i),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    outputs = {}
    try:
        for name, job in jobs.items():
            outputs[name] = job.communicate(timeout=300)
    finally:
        for job in jobs.values():
            if job.poll() is None:
                job.kill()
    for name, job in jobs.items():
        assert job.returncode == 0, f"{name}: {outputs[name][1][-3000:]}"
    results = {p.stem: load(p) for p in out.glob("*.nc")}
    results["inputs"] = dict(np.load(out / "inputs.npz"))
    return results, outputs


@pytest.mark.slow
def test_sharded_equals_unsharded_with_uneven_seeds(runs):
    one, four = runs[0]["one"], runs[0]["four"]
    assert four.attrs["devices"] == 4 and one.attrs["devices"] == 1  # default: all devices
    assert list(four["seed"].values) == list(range(SEEDS))  # none dropped, padding gone
    # Same per-device chunk (2 seeds) => each device runs the one-device program: bit-identical.
    _assert_same(one, four)
    # Non-vacuous: seeds differ from each other (a broadcast/mix-up would make rows equal).
    final = four["alignment"].isel(step=-1).values
    assert len({tuple(np.round(r, 12)) for r in final}) == SEEDS
    assert np.isfinite(final).all() and not four["diverged"].any()


@pytest.mark.slow
def test_random_inputs_bit_identical_on_any_device_count(runs):
    inputs = runs[0]["inputs"]
    assert inputs["on4"].size > 8 * 16 * 2  # all leaves of 8 training sets, not empty
    np.testing.assert_array_equal(inputs["on4"], inputs["on1"])


@pytest.mark.slow
def test_sweep_spreads_over_devices(runs):
    s4, one = runs[0]["sweep4"], runs[0]["one"]
    assert dict(s4.sizes)["lr"] == 2 and s4.attrs["devices"] == 4
    # 14 runs (lr-major) in calls of 8 over 4 devices: the lr = 0.08 runs share calls and
    # devices with lr = 0.05 ones. The lr = config-lr slice must reproduce the one-device
    # plain run (per-run vs shared hyper-parameter program: float64 rounding at most; the
    # 1e-12 bound is derived in tests/test_simulate.py); a row mix-up moves values by O(1).
    for name in ("alignment", "loss"):
        np.testing.assert_allclose(
            s4[name].sel(lr=0.05).values, one[name].values, rtol=1e-12, atol=1e-14
        )
    assert not np.allclose(s4["alignment"].sel(lr=0.08).values, one["alignment"].values)
    assert np.isfinite(s4["alignment"].values).all() and not s4["diverged"].any()


@pytest.mark.slow
def test_two_processes_gather_equals_single_process(runs):
    """A real two-process jax.distributed run on localhost, launched through the CLI."""
    results, outputs = runs
    assert "2 process(es)" in outputs["process0"][0]
    assert "fig1:" not in outputs["process1"][0]  # only process 0 writes and prints
    for name in ("process0", "process1"):  # Gloo's connection lines are dropped (issue 14)
        assert "[Gloo]" not in outputs[name][0] + outputs[name][1], name
    two = results["two"]
    assert two.attrs["process_count"] == 2
    assert list(two["seed"].values) == list(range(SEEDS))
    # Process 0 owns seeds 0-3, process 1 seeds 4-6: per-process chunks of 2 are the chunks of
    # the one-process run, so the very same program ran on every seed: bit-identical.
    _assert_same(results["one"], two)
    assert json.loads(two.attrs["key"]) == json.loads(results["one"].attrs["key"])


def test_native_line_filter_drops_only_whole_noise_lines():
    """distributed.drop_native_lines on fd 1 in a fresh process: native-style os.write calls,
    a noise line split over two writes, a look-alike and a prefix inside a line."""
    code = textwrap.dedent(
        r"""
        import os, sys
        from simdyn.distributed import drop_native_lines
        drop_native_lines((b"[Gloo] ",))
        os.write(1, b"[Gloo] Rank 0 is connected\nkeep 1\n")
        os.write(1, b"[Gl")
        os.write(1, b"oo] split over two writes\n")
        os.write(1, b"[Gx] kept\n")
        print("partial ", end="")
        sys.stdout.flush()
        os.write(1, b"[Gloo] inside a line stays\n")
        print("last line without newline", end="")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        b"keep 1\n[Gx] kept\npartial [Gloo] inside a line stays\nlast line without newline"
    )
