#!/usr/bin/env bash
# Installs the system packages the test suite uses, when they are missing.
# Idempotent: a machine that already has them changes nothing.
set -euo pipefail

need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The KMS is tested with a Vault client written by others (npm node-vault).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Serving sandboxes instances with bubblewrap where it is present; test that path.
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
# PKCS#11 auto-unseal is tested against a real SoftHSM2 token.
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
# The KMS's PostgreSQL storage and HA tests start a real server (initdb, pg_ctl) from Debian's package.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
