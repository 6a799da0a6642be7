#!/usr/bin/env bash
# Install the Debian packages fieldterm runs for real in tests and the demo, when missing.
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v openssl >/dev/null || need+=(openssl)
# libfaketime: the kiosk-clock tests run the kiosk process with a shifted wall clock.
command -v faketime >/dev/null || need+=(faketime)
# libfuse 3: the chaos harness's power-cut file system (host_tools/chaos/lazyfs.py, mfusepy).
ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so' || need+=(libfuse3-3)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The operator console's browser tests (tests/console): headless Chromium driven by Selenium.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ "${FIELDTERM_HIL:-auto}" != "off" ]; then
  # Hardware-in-the-loop needs QEMU and debootstrap; see docs/hil.md.
  command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static binfmt-support)
  command -v mke2fs >/dev/null || need+=(e2fsprogs)
  command -v fdtput >/dev/null || need+=(device-tree-compiler)
  command -v socat >/dev/null || need+=(socat)   # guestfwd helper: one per guest connection
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: missing ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
