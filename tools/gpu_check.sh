#!/usr/bin/env bash
# Run on the GPU machine (see benchmarks/results/README.md): build featperm there, run the whole
# test suite (CUDA tests included), compute-sanitizer on a small workload, and the GPU benchmarks.
# Writes logs and JSON under $OUT. Usage: [BENCH="benchmarks/bench_x_gpu.py ..."] bash tools/gpu_check.sh [pytest args...]
set -u
OUT=${OUT:-/tmp/featperm-gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
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
  tail -40 "$OUT/build.log"; exit 1
fi
echo "build: $(( $(date +%s) - start )) s"
python3 -m pytest -q -p no:cacheprovider "${@:-tests}" 2>&1 | tee "$OUT/pytest.log" | tail -25
# memcheck on every op; racecheck on the kernels that share data through shared memory.
: > "$OUT/sanitizer.log"
for tool in memcheck racecheck; do
  checks=""; [ $tool = racecheck ] && checks="check_shuffle_bits check_block_shuffle"
  compute-sanitizer --tool $tool --error-exitcode 9 python3 tools/sanitizer_workload.py $checks >> "$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer $tool: exit $?"
done
grep -E "SUMMARY|ok$" "$OUT/sanitizer.log"
# Benchmarks last: logs in one file, results as JSON (device name, torch version and date inside).
: > "$OUT/benchmarks.log"
for bench in ${BENCH:-benchmarks/bench_*_gpu.py}; do
  name=$(basename "$bench" .py)
  echo "== $name" >> "$OUT/benchmarks.log"
  python3 "$bench" --out "$OUT/$name.json" >> "$OUT/benchmarks.log" 2>&1
  echo "== $name (exit $?)"
done
