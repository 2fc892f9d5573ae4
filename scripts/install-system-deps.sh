#!/usr/bin/env bash
# Debian packages the test suite uses: chromium (browser tests), libsecp256k1 (native verifier) and
# postgresql (throwaway servers for the cluster store's tests).
# Installs only what is missing; needs root (CI runs as root). Without root it says what to install.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -f /usr/include/secp256k1_schnorrsig.h ] || need+=(libsecp256k1-dev)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: please install: ${need[*]} (apt-get install -y ${need[*]})" >&2
  exit 0
fi
echo "install-system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || echo "install-system-deps: apt-get failed; tests that need ${need[*]} will install or skip" >&2
exit 0
