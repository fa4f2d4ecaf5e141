#!/usr/bin/env bash
# Run on the GPU machine (see benchmarks/results/README.md): build featperm there, run the whole
# test suite (CUDA tests included), compute-sanitizer on a small workload, and the GPU benchmarks.
# Writes logs and JSON under $OUT. Usage: [BENCH="benchmarks/bench_x_gpu.py ..."] bash tools/gpu_check.sh [pytest args...]
#
# Exit status: 1 if the build failed (nothing else runs then); otherwise 1 if the tests, either
# compute-sanitizer run or any benchmark failed (every step still runs and writes its log), else 0.
# The failed steps are listed at the end and in $OUT/status.txt.
set -u -o pipefail
OUT=${OUT:-/tmp/featperm-gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
# The CUDA kernels must build (setup.py fails otherwise instead of building a CPU-only library),
# and the tests check that the library has them (test_cuda_kernels_registered_when_built):
# without them every CUDA test would skip and the suite would pass.
export FEATPERM_CUDA=${FEATPERM_CUDA:-1}

failed=()
step_failed() {  # step_failed NAME EXIT_STATUS
  echo "gpu_check: FAILED: $1 (exit $2)"
  failed+=("$1")
}

# Packages the GPU image lacks (cryptography for the interoperability tests), carried as wheels.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])" | tee -a "$OUT/gpu.txt"
date -u +%Y-%m-%dT%H:%MZ | tee -a "$OUT/gpu.txt"
start=$(date +%s)
# Build with the system compiler: the image's Python is configured with /opt/gcc/bin/g++, which
# links a private static copy of libstdc++ into the extension; streaming an integer (every
# TORCH_CHECK message with a number) then crashed inside that copy's num_put (cuda-gdb backtrace,
# 2026-11-23). /usr/bin/g++ links the shared libstdc++ that torch itself uses.
if [ -x /usr/bin/g++ ]; then
  export CC=/usr/bin/gcc CXX=/usr/bin/g++ LDSHARED="/usr/bin/g++ -shared"
fi
if ! MAX_JOBS=16 python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "gpu_check: FAILED: build (log: $OUT/build.log)" | tee "$OUT/status.txt"
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s"

# pipefail: the pipeline's status is pytest's when pytest fails (tee and tail succeed).
python3 -m pytest -q -p no:cacheprovider "${@:-tests}" 2>&1 | tee "$OUT/pytest.log" | tail -25
rc=$?
[ "$rc" -eq 0 ] || step_failed pytest "$rc"

# memcheck on every op; racecheck on the kernels that share data through shared memory.
: > "$OUT/sanitizer.log"
for tool in memcheck racecheck; do
  checks=()
  [ "$tool" = racecheck ] && checks=(check_shuffle_bits check_block_shuffle)
  compute-sanitizer --tool "$tool" --error-exitcode 9 python3 tools/sanitizer_workload.py ${checks[@]+"${checks[@]}"} \
    >> "$OUT/sanitizer.log" 2>&1
  rc=$?
  echo "compute-sanitizer $tool: exit $rc"
  [ "$rc" -eq 0 ] || step_failed "compute-sanitizer $tool" "$rc"
done
grep -E "SUMMARY|ok$" "$OUT/sanitizer.log"

# Benchmarks last: logs in one file, results as JSON (device name, torch version and date inside).
# BENCH is a space-separated list of scripts (word splitting and globbing wanted).
: > "$OUT/benchmarks.log"
# shellcheck disable=SC2086
for bench in ${BENCH:-benchmarks/bench_*_gpu.py}; do
  name=$(basename "$bench" .py)
  echo "== $name" >> "$OUT/benchmarks.log"
  python3 "$bench" --out "$OUT/$name.json" >> "$OUT/benchmarks.log" 2>&1
  rc=$?
  echo "== $name (exit $rc)"
  [ "$rc" -eq 0 ] || step_failed "benchmark $name" "$rc"
done

if [ "${#failed[@]}" -eq 0 ]; then
  echo "gpu_check: all steps passed" | tee "$OUT/status.txt"
  exit 0
fi
printf 'gpu_check: %d step(s) failed:' "${#failed[@]}" | tee "$OUT/status.txt"
printf ' [%s]' "${failed[@]}" | tee -a "$OUT/status.txt"
echo | tee -a "$OUT/status.txt"
exit 1
