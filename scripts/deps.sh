#!/bin/sh
# Installs the Debian 12 packages phivk needs, only those that are missing.
set -e
pkgs="build-essential pkg-config meson ninja-build python3 glslc glslang-tools spirv-tools
libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers libpcre2-dev libcjson-dev
libsdl2-dev libsdl2-ttf-dev libmd4c-dev libedit-dev libfontconfig-dev zlib1g-dev fonts-dejavu-core xvfb xauth
libmicrohttpd-dev curl nginx-light"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
