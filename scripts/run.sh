#!/bin/sh
# Installs what is missing, builds phivk (release) and runs the main job: list the
# Vulkan devices, then benchmark a ~150M-parameter synthetic model (built in memory)
# on the default device: prompt and generation tokens/s against the device's copy
# bandwidth.
set -e
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build ] || meson setup build -Dbuildtype=release
meson compile -C build
build/apps/phivk devices
build/apps/phivk bench --shape 150m --type f16 -p 64 -n 32 -r 2
