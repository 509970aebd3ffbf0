#!/usr/bin/env bash
# The one prepared accelerator check of simdyn (issue 16), for the device tool's H200 machine.
#
# What it runs, in order, each stage under its own `timeout` and its output saved as it ends:
#   0. setup  (cap 120 s): wheels from .whl/ (if any) with --no-index --no-deps into /tmp/site,
#      then `pip install --no-deps --no-build-isolation --no-index -e .` against the machine's own
#      JAX (no registry is reachable there), falling back to PYTHONPATH + a `simdyn` wrapper;
#      checks the imports simdyn and its tests need and names the missing ones.
#   1. env    (cap 60 s): jax version, backend, devices, nvidia-smi. Exits 1 if JAX's backend is
#      the CPU, unless SIMDYN_GPU_SMOKE=1 (smoke mode: tiny sizes, to check this script on a CPU).
#   2. pytest (cap 200 s): the default suite, `python -m pytest -q --maxfail=20` (not -x: the
#      copy on the device may have no .git (or git), which test_cli's check-ignore tests need, and -x would end
#      the one run there; SIMDYN_GPU_PYTEST_MAXFAIL=1 is -x), with `-n 8` when pytest-xdist is
#      installed (SIMDYN_GPU_PYTEST_WORKERS=0 turns that off). Smoke: `pytest --version` only.
#   3. step   (cap 150 s): benchmarks/gpu_step.py, fig2a structured GD step at 10^3, 10^4, 10^5
#      seeds x 500 steps: seed-steps/s and device memory per seed (memory_stats peak, XLA
#      buffers, cost model) into gpu_step.json + gpu_step.md. Smoke: 8, 16, 32 seeds x 20 steps.
#   4. fig2b  (cap 150 s): `simdyn simulate fig2b --seeds 1024` with probes on (issue 29).
#   5. verify (whatever is left, cap 150 s): `simdyn verify --full --out RESULTS/verify-full`
#      (its progress lines are in verify.log even if the timeout stops it). Smoke:
#      `simdyn verify --quick --claims CC-minnorm --seeds 4`.
# Time bounds: every stage's timeout is also cut to what is left of SIMDYN_GPU_TOTAL_S (default
# 470 s, with 10 s of kill-after margin kept back), so the whole script ends inside 8 minutes.
#
# Results: benchmarks/results/gpu_<UTC date>/ (smoke mode: gpu_<date>_smoke/; SIMDYN_GPU_RESULTS
# overrides): summary.md (stage table, env, step table, tails of failed stages) and one log per
# stage. When $OUT is set (the device tool's return folder) the 9 small files summary.md,
# setup.log, pytest.log, gpu_step.log, gpu_step.json, gpu_step.md, fig2b.log, verify.log and
# verify_report.md are copied flat into $OUT after every stage: on the device machine the
# results folder itself does not come back.
# Exit status: 0 all stages ok; 1 no accelerator (or setup failed); 2 some stage failed/timed out.
#
# Invocation through the device tool (device time is scarce: one call, then give_back). The
# machine has no h5netcdf (KINDS.md), so carry it as a wheel, prepared once here in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl h5netcdf==1.8.3
# then: run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=540)
# On a CPU (smoke): SIMDYN_GPU_SMOKE=1 bash benchmarks/gpu.sh   (about a minute; delete the
# gpu_<date>_smoke folder afterwards: CPU smoke results are not committed).
#
# Status: checked on the CPU in smoke mode on 2026-12-02, 2026-12-03 and 2026-12-07 (with the
# fig2b stage: every stage ok, 76 s under load ~6); not yet run on an accelerator.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SMOKE=${SIMDYN_GPU_SMOKE:-0}
TOTAL_S=${SIMDYN_GPU_TOTAL_S:-470}
START=$SECONDS
DATE=$(date -u +%Y-%m-%d)
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
if [[ $SMOKE == 1 ]]; then
    RES=${SIMDYN_GPU_RESULTS:-benchmarks/results/gpu_${DATE}_smoke}
else
    RES=${SIMDYN_GPU_RESULTS:-benchmarks/results/gpu_${DATE}}
fi
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
SUMMARY=$RES/summary.md
ROWS=$RES/.stages # one line per finished stage: name|rc|status|wall|timeout|log
: >"$ROWS"
export PYTHONUNBUFFERED=1
# Allocate GPU memory as needed (not 75 % up front): memory_stats' peak is then the program's
# own, and pytest's workers can share the one GPU.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

say() { echo "[gpu.sh $((SECONDS - START))s] $*"; }

# The stage's timeout: its cap, cut to what is left of TOTAL_S (10 s kept for kill-after).
budget() {
    local left=$((TOTAL_S - (SECONDS - START) - 10))
    ((left < $1)) && echo "$left" || echo "$1"
}

OUT_FILES=(summary.md setup.log pytest.log gpu_step.log gpu_step.json gpu_step.md fig2b.log verify.log
    verify_report.md)

write_summary() {
    {
        echo "# simdyn accelerator check ($([[ $SMOKE == 1 ]] && echo "SMOKE MODE, tiny sizes" || echo full))"
        echo
        echo "benchmarks/gpu.sh, started $STARTED on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), $((SECONDS - START)) s so far, total budget $TOTAL_S s."
        echo
        echo "| stage | rc | status | wall s | timeout s | log |"
        echo "|---|---|---|---|---|---|"
        while IFS='|' read -r name rc status wall tmo logf; do
            echo "| $name | $rc | $status | $wall | $tmo | $logf |"
        done <"$ROWS"
        if [[ -s $RES/env.txt ]]; then
            echo
            echo '## env'
            echo
            echo '```'
            cat "$RES/env.txt"
            echo '```'
        fi
        if [[ -s $RES/pytest.log ]]; then
            echo
            echo '## pytest (last lines)'
            echo
            echo '```'
            tail -n 5 "$RES/pytest.log"
            echo '```'
        fi
        if [[ -s $RES/gpu_step.md ]]; then
            echo
            sed 's/^# /## /' "$RES/gpu_step.md"
        fi
        while IFS='|' read -r name rc status wall tmo logf; do
            if [[ $status != ok && -s $RES/$logf ]]; then
                echo
                echo "## $name: $status (last 30 lines of $logf)"
                echo
                echo '```'
                tail -n 30 "$RES/$logf"
                echo '```'
            fi
        done <"$ROWS"
    } >"$SUMMARY"
}

copy_out() {
    write_summary
    [[ -n ${OUT:-} && -d ${OUT:-} ]] || return 0
    local f
    for f in "${OUT_FILES[@]}"; do
        [[ -f $RES/$f ]] && cp "$RES/$f" "$OUT/$f"
    done
    return 0
}
trap copy_out EXIT

record() { # name rc wall timeout log
    local status=ok
    if [[ $2 == skipped ]]; then
        status=skipped
    elif (($2 == 124 || $2 == 137)); then
        status=timeout
    elif (($2 != 0)); then
        status=failed
    fi
    echo "$1|$2|$status|$3|$4|$5" >>"$ROWS"
    say "stage $1: $status (rc $2, $3 s of $4 s); log $RES/$5"
    copy_out
}

# stage NAME CAP LOG CMD...: run CMD under `timeout` (cap cut to the budget), tee'd to LOG.
stage() {
    local name=$1 cap=$2 logf=$3
    shift 3
    local tmo
    tmo=$(budget "$cap")
    if ((tmo < 15)); then
        echo "not run: only $tmo s of the $TOTAL_S s budget left" >"$RES/$logf"
        record "$name" skipped 0 "$tmo" "$logf"
        return 0
    fi
    local shown="$*"
    shown=${shown//$'\n'/ }
    ((${#shown} > 200)) && shown="${shown:0:200}..."
    say "stage $name (timeout $tmo s): $shown"
    local t0=$SECONDS rc
    set +e
    timeout --kill-after=10 "$tmo" "$@" 2>&1 | tee "$RES/$logf"
    rc=${PIPESTATUS[0]}
    set -e
    record "$name" "$rc" $((SECONDS - t0)) "$tmo" "$logf"
    return 0
}

# ------------------------------------------------------------------ 0. setup (install)
PY=${SIMDYN_PYTHON:-python3}
setup() {
    local rc=0
    if ! "$PY" -c 'import jax' 2>/dev/null && [[ -x $ROOT/.venv/bin/python3 ]]; then
        PY=$ROOT/.venv/bin/python3 # a development checkout run without its venv activated
        export PATH=$ROOT/.venv/bin:$PATH
    fi
    echo "python: $(command -v "$PY") ($("$PY" --version 2>&1))"
    if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
        echo "installing the carried wheels: $(cd "$ROOT/.whl" && echo *.whl)"
        timeout 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target /tmp/site "$ROOT"/.whl/*.whl || rc=1
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
        echo "no .whl folder: nothing carried to install"
    fi
    # Already installed from THIS checkout (a development machine)? Then leave it alone.
    local where
    where=$(cd /tmp && "$PY" -c 'import os, simdyn; print(os.path.dirname(os.path.dirname(os.path.realpath(simdyn.__file__))))' 2>/dev/null || true)
    if [[ $where == "$ROOT" ]] && command -v simdyn >/dev/null; then
        echo "simdyn already installed from $ROOT ($(command -v simdyn)): not reinstalled"
    elif timeout 90 "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e "$ROOT"; then
        echo "installed: pip install --no-deps --no-build-isolation --no-index -e ."
    else
        echo "pip install -e . failed: using PYTHONPATH=$ROOT and a simdyn wrapper instead"
        export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
        mkdir -p /tmp/simdyn-bin
        printf '#!/bin/sh\nexec %q -m simdyn "$@"\n' "$PY" >/tmp/simdyn-bin/simdyn
        chmod +x /tmp/simdyn-bin/simdyn
        export PATH=/tmp/simdyn-bin:$PATH
    fi
    echo "simdyn command: $(command -v simdyn || echo MISSING)"
    timeout 60 "$PY" - <<'PY' || rc=1
import importlib, os, sys
os.chdir("/tmp")  # import simdyn as installed, not from the current folder
have, missing = [], []
for name in ("simdyn", "jax", "jaxlib", "optax", "flax", "chex", "numpy", "scipy", "xarray",
             "h5netcdf", "h5py", "matplotlib", "tqdm", "pytest", "hypothesis", "xdist"):
    try:
        mod = importlib.import_module(name)
        have.append(f"{name} {getattr(mod, '__version__', '?')}")
    except Exception as err:  # noqa: BLE001
        if name == "xdist":  # optional: pytest then runs in one process
            print("note: pytest-xdist not installed: the tests run in one process")
        else:
            missing.append(f"{name} ({type(err).__name__}: {err})")
print("imports:", ", ".join(have))
if missing:
    print("MISSING (carry them as wheels in .whl, see the header):", "; ".join(missing))
sys.exit(1 if any(m.split()[0] in ("simdyn", "jax") for m in missing) else 0)
PY
    return $rc
}
t0=$SECONDS
set +e
setup >"$RES/setup.log" 2>&1
rc=$?
set -e
cat "$RES/setup.log"
record setup "$rc" $((SECONDS - t0)) 120 setup.log
if ((rc != 0)) && ! "$PY" -c 'import simdyn, jax' >/dev/null 2>&1; then
    say "setup failed: simdyn or jax does not import (see $RES/setup.log)"
    exit 1
fi

# ------------------------------------------------------------------ 1. env
env_py=$(
    cat <<'PY'
import os, sys
import jax
print(f"python {sys.version.split()[0]} ({sys.executable}); jax {jax.__version__}")
print(f"backend {jax.default_backend()}; devices {jax.devices()}")
d = jax.devices()[0]
stats = d.memory_stats() if hasattr(d, "memory_stats") else None
print(f"device_kind {getattr(d, 'device_kind', '?')}; memory_stats "
      f"{ {k: stats[k] for k in ('bytes_limit', 'bytes_in_use') if k in stats} if stats else None}")
if jax.default_backend() == "cpu" and os.environ.get("SIMDYN_GPU_SMOKE") != "1":
    sys.exit(3)
PY
)
env_check=$(mktemp /tmp/simdyn_env_check.XXXXXX.py)
printf '%s\n' "$env_py" >"$env_check"
stage env 60 env.txt "$PY" "$env_check"
rm -f "$env_check"
command -v nvidia-smi >/dev/null &&
    timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$RES/env.txt" 2>&1 || true
env_rc=$(tail -n 1 "$ROWS" | cut -d'|' -f2)
if [[ $env_rc == 3 ]]; then
    say "JAX's backend is the CPU: this is the accelerator check, refusing to go on."
    say "(On a CPU, check the script itself with SIMDYN_GPU_SMOKE=1: tiny sizes.)"
    exit 1
elif [[ $env_rc != 0 ]]; then
    say "the env stage failed (rc $env_rc): JAX does not start; see $RES/env.txt"
    exit 1
fi
[[ $SMOKE == 1 ]] && say "SMOKE MODE (SIMDYN_GPU_SMOKE=1): tiny sizes; no result here is a measurement"

# ------------------------------------------------------------------ 2. pytest
if [[ $SMOKE == 1 ]]; then
    stage pytest 30 pytest.log "$PY" -m pytest --version
else
    xdist=()
    workers=${SIMDYN_GPU_PYTEST_WORKERS:-8}
    if ((workers > 0)) && "$PY" -c 'import xdist' 2>/dev/null; then
        xdist=(-n "$workers")
    fi
    # --maxfail=N, not -x: the copy there may lack what a test takes from this machine (a
    # .git for test_cli's check-ignore tests), and -x would end the one run at that failure.
    stage pytest 200 pytest.log "$PY" -m pytest -q -p no:cacheprovider --durations=10 \
        --maxfail="${SIMDYN_GPU_PYTEST_MAXFAIL:-20}" "${xdist[@]}"
fi

# ------------------------------------------------------------------ 3. step benchmark
if [[ $SMOKE == 1 ]]; then
    step_args=(--seeds 8 16 32 --steps 20)
    step_cap=90
else
    step_args=(--seeds 1000 10000 100000 --steps 500)
    step_cap=150
fi
step_tmo=$(budget $step_cap)
stage step "$step_cap" gpu_step.log "$PY" benchmarks/gpu_step.py "${step_args[@]}" \
    --budget-s $((step_tmo > 30 ? step_tmo - 20 : 10)) --out "$RES"

# ------------------------------------------------------------------ 4. fig2b
# The paper's Fig. 2b preset (p = 500) end to end with probes on, at 1024 seeds (issue 29): a
# CPU run costs about 10-20 s per seed (the p x p x D products), so its 1024-seed time is
# measured here. Smoke: 2 seeds x 20 steps.
if [[ $SMOKE == 1 ]]; then
    stage fig2b 90 fig2b.log simdyn simulate fig2b --seeds 2 --steps 20 --out "$RES/fig2b.nc"
else
    stage fig2b 150 fig2b.log simdyn simulate fig2b --seeds 1024 --out "$RES/fig2b.nc"
fi
rm -f "$RES/fig2b.nc"

# ------------------------------------------------------------------ 5. verify
if [[ $SMOKE == 1 ]]; then
    vout=$RES/verify-smoke
    stage verify 90 verify.log simdyn verify --quick --claims CC-minnorm --seeds 4 --out "$vout"
else
    vout=$RES/verify-full
    stage verify 150 verify.log simdyn verify --full --out "$vout"
fi
[[ -f $vout/report.md ]] && cp "$vout/report.md" "$RES/verify_report.md"

# ------------------------------------------------------------------ summary
copy_out
say "done in $((SECONDS - START)) s; summary: $SUMMARY"
cat "$SUMMARY"
if cut -d'|' -f3 "$ROWS" | grep -qv '^ok$'; then
    say "some stage did not pass: $(awk -F'|' '$3 != "ok" {printf "%s (%s) ", $1, $3}' "$ROWS")"
    exit 2
fi
