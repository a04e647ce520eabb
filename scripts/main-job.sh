#!/usr/bin/env bash
# The main job on the built-in default (no checkpoint needed): show the CPU backends, measure the
# machine's peak, and benchmark the kernels against it and against OpenBLAS.
set -euo pipefail
build=${1:-build}
bin="$build/bin/dsinfer"
"$bin" info
echo
"$bin" bench gemm --json "$build/bench-gemm.json"
echo
echo "JSON written to $build/bench-gemm.json"
