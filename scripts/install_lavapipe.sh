#!/usr/bin/env bash
# Installs Mesa's lavapipe (a Vulkan driver that runs on the CPU) so that a machine without a GPU
# can execute cubecl kernels through burn's wgpu backend (`--features wgpu`, `--device wgpu`).
# scripts/check_cube_route.sh uses it to check the cubecl route of the model before GPU time is
# spent on it. Idempotent. Debian 12 (bookworm) only, which is what the project's machines run.
#
# Why backports: bookworm's own Mesa 22.3.6 crashes (SIGSEGV inside vkCreateComputePipelines) on
# cubecl's first kernel, SPIR-V and WGSL alike; Mesa 25 from bookworm-backports runs them.
# cubecl's SPIR-V compiler (burn's `vulkan` feature) still crashes lavapipe 25 on its reduction
# kernels, which is why lmtrain's check build uses the WGSL compiler (`wgpu`).
set -euo pipefail

MIN_MESA_MAJOR=25

mesa_major() {
  vulkaninfo --summary 2>/dev/null | sed -n 's/.*driverInfo *= *Mesa \([0-9]*\)\..*/\1/p' | head -n1
}

have_lavapipe() {
  local major
  major=$(mesa_major)
  [ -n "$major" ] && [ "$major" -ge "$MIN_MESA_MAJOR" ] \
    && vulkaninfo --summary 2>/dev/null | grep -q 'deviceName *= *llvmpipe'
}

if command -v vulkaninfo >/dev/null 2>&1 && have_lavapipe; then
  echo "install_lavapipe: lavapipe from Mesa $(mesa_major) is installed" >&2
  exit 0
fi

if ! grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
  echo "install_lavapipe: this script knows Debian 12 (bookworm) only; install Mesa ≥ $MIN_MESA_MAJOR's" \
    "mesa-vulkan-drivers and vulkan-tools with this system's package manager" >&2
  exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi

LIST=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee "$LIST" >/dev/null
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq vulkan-tools libvulkan1 >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null

if ! have_lavapipe; then
  echo "install_lavapipe: after installing, vulkaninfo does not show lavapipe (llvmpipe) from" \
    "Mesa ≥ $MIN_MESA_MAJOR; it says:" >&2
  vulkaninfo --summary 2>&1 | grep -E 'deviceName|driverInfo' >&2 || true
  exit 1
fi
echo "install_lavapipe: lavapipe from Mesa $(mesa_major) is installed" >&2
