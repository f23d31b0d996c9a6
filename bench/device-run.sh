#!/usr/bin/env bash
# Prepares one call on a lent GPU machine (../shared/device/README.md): our bench bundled into one
# module, and PyTorch's step on the same shapes (bench/torch_bench.py), in .device/. Run it here,
# then there, from the project root, in one call (carry .device):
#   OUT=$OUT bash .device/run.sh .device/device-bench.mjs; OUT=$OUT python3 .device/torch_bench.py
# Both write JSON to $OUT (device-bench: BENCH_OUT defaults to $OUT there); copy them to bench/results/.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
npx vite build --config bench/vite.device.config.ts --logLevel warn
bash ../shared/device/pack.sh .device-build/device-bench.mjs bench/torch_bench.py
node bin/ts.mjs bench/node-bench.ts --print-cases --size large > .device/bench-cases.json
echo 'on the GPU machine:'
echo '  OUT=$OUT bash .device/run.sh .device/device-bench.mjs && OUT=$OUT python3 .device/torch_bench.py'
