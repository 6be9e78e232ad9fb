#!/usr/bin/env bash
# Here, on a machine with the build's Debian dependencies (no GPU needed): build the CUDA backend
# for the GPU machine and pack what device_check.sh runs there — the CLI, the unit tests and
# bench_gpu, with every shared library they load beyond glibc — into gpu-bundle.tar.gz (ignored
# by git; the device tool carries it). MPI off: the GPU machine has no Open MPI to launch ranks.
#   bash tests/gpu/make_bundle.sh [build-dir=build-gpu]
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-gpu}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DDELTAKIT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DDELTAKIT_NATIVE=OFF -DDELTAKIT_MPI=OFF -DDELTAKIT_WERROR=ON > /dev/null
cmake --build "$B" -j "$(nproc)" --target deltakit deltakit_unit_tests bench_gpu
rm -rf gpu-bundle gpu-bundle.tar.gz
mkdir -p gpu-bundle/lib
cp "$B/apps/deltakit" "$B/tests/deltakit_unit_tests" "$B/bench/bench_gpu" gpu-bundle/
cp tests/cli/gpu_cli.py tests/cli/cli_run.py gpu-bundle/
for bin in gpu-bundle/deltakit gpu-bundle/deltakit_unit_tests gpu-bundle/bench_gpu; do
  ldd "$bin" | awk '/=> \//{print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|libpthread|librt|libcuda)\.so|/ld-linux' |
  while read -r lib; do cp -L "$lib" gpu-bundle/lib/; done
tar -czf gpu-bundle.tar.gz gpu-bundle
rm -rf gpu-bundle
ls -la gpu-bundle.tar.gz
