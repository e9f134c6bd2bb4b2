#!/usr/bin/env bash
# Installs what the benchmarks in bench/ need from Debian, when it is missing; a no-op when everything is there.
#   nginx (+ libnginx-mod-stream): the `stream` proxy with `ssl_preread` the warm-gateway scenario compares against.
# The C# harness itself needs only the .NET SDK. Run as root (as CI and the dev machines are), or with sudo.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
# Debian 12 builds the stream module as a dynamic module in its own package; nginx loads it through
# /usr/lib/nginx/modules/ngx_stream_module.so, which the scenario's config names explicitly.
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench/setup.sh: nothing to install (nginx and its stream module are present)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "bench/setup.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: no nginx service gets enabled beyond what the package itself does; the bench starts its
# own nginx as a child process with its own prefix and config and never touches the system one.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts the system nginx where an init system runs; the bench does not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  $SUDO systemctl stop nginx || true
fi
echo "bench/setup.sh: $(nginx -v 2>&1)"
