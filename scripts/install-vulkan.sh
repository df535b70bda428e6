#!/usr/bin/env bash
# Installs the software Vulkan driver (Mesa lavapipe) from Debian's packages, so the `wgpu`
# backend runs on a machine without a GPU. Idempotent; needs root (or sudo).
set -euo pipefail
if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ldconfig -p | grep -q libvulkan.so.1; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
