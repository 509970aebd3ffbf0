#!/usr/bin/env bash
# Run the simdyn benchmark on an accelerator and write its table (benchmarks/results/gpu.md,
# gpu.json). Needs a JAX install that sees the accelerator (e.g. `pip install -e . "jax[cuda12]"`
# done beforehand: the device machine may have no network). Bounded to 5 minutes (180 s + 110 s).
#
# Usage: bash benchmarks/gpu.sh [extra run.py args]
#
# Status: written and checked for syntax on the CPU machine; it has NOT been run on an
# accelerator yet (none was available to the session that wrote it).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY'
import jax
backend = jax.default_backend()
print(f"[gpu.sh] jax {jax.__version__}, backend {backend}, devices {jax.devices()}")
if backend == "cpu":
    raise SystemExit("[gpu.sh] JAX sees no accelerator: install a CUDA/ROCm jaxlib first")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv || true

# Let XLA take what it needs instead of preallocating 75 % (the benchmark sizes chunks itself).
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# Two bounded runs (run.py writes its table only at the end, so one run killed by the timeout
# would leave nothing): the headline table + compile times first, then the scaling curves and
# the cost-model check with the time that is left (allowed to time out).
timeout 180 python3 benchmarks/run.py --gpu --repeats 3 --sections fig2a,compile \
    --out benchmarks/results "$@"
echo "[gpu.sh] headline table written to benchmarks/results/gpu.md"
if timeout 110 python3 benchmarks/run.py --gpu --repeats 1 --sections scaling,cost \
    --out benchmarks/results/gpu_scaling "$@"; then
    echo "[gpu.sh] scaling table written to benchmarks/results/gpu_scaling/gpu.md"
else
    echo "[gpu.sh] scaling run did not finish in its 110 s (headline table above is complete)"
fi
