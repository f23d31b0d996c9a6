#!/usr/bin/env bash
# The tests run WebGPU on SwiftShader: Debian's chromium (the browser, and the SwiftShader
# Vulkan driver inside it) and libvulkan1 (the Vulkan loader that Dawn opens in Node).
# Installs them where they are missing and we are root; otherwise says what to run.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || missing+=(chromium)
dpkg -s libvulkan1 >/dev/null 2>&1 || ls /usr/lib/*/libvulkan.so.1 >/dev/null 2>&1 || missing+=(libvulkan1)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (needed to run WebGPU on the CPU)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "The tests need Debian's ${missing[*]}: run  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
