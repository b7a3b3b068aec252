#!/usr/bin/env bash
# Debian packages the service and tests use (installed only when missing): samba + smbclient for the SMB file
# source; qemu-utils (qemu-img, which judges every stored image) and qemu-block-extra (its http driver, for S3);
# chromium for the console's browser tests (driven by playwright-core at /usr/bin/chromium) and a CJK font.
set -euo pipefail
need=()
command -v smbd >/dev/null 2>&1 || need+=(samba)
command -v smbclient >/dev/null 2>&1 || need+=(smbclient)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
qemu-img --help 2>/dev/null | grep -q "Supported formats:.* http " || need+=(qemu-block-extra)
[ -x /usr/bin/chromium ] || need+=(chromium)
# a CJK font, so the console's screenshots show its Chinese
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing ${need[*]}: run as root: apt-get update && apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
