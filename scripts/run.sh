#!/bin/sh
# Installs what is missing, builds phivk (release) and runs the main job: list the
# Vulkan devices and the capabilities phivk chooses kernels by.
set -e
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build ] || meson setup build -Dbuildtype=release
meson compile -C build
build/apps/phivk devices
