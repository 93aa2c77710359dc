#!/usr/bin/env bash
# Install everything pallet and its test suite need on a fresh Debian machine (as root):
# the Debian packages it drives or tests against, and a venv in .venv with pallet in it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  crun runc busybox-static debootstrap   # runtime and base images
  catatonit                              # the init of run --init (static)
  git openssh-client                     # ADD of git repositories, RUN --mount=type=ssh
  skopeo umoci podman buildah docker-registry  # interop peers for the tests
  docker.io                              # dockerd + client: a peer (tests start private daemons)
  fuse-overlayfs uidmap slirp4netns      # podman's helpers
  iproute2 tar gzip zstd xz-utils bzip2 ca-certificates
  wrk time                               # registry load generator; GNU time for peak RSS in bench/
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: missing Debian packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Packages with daemons (docker.io, containerd, docker-registry) must not start them:
  # tests and benchmarks start private instances. A policy-rc.d answering 101 holds back
  # both invoke-rc.d (sysvinit, no systemd) and deb-systemd-invoke; keep one already there.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi
# Where a service started anyway (a policy-rc.d that lets it), stop it: the distribution
# registry package listens on port 5000, docker.io's dockerd on /run/docker.sock. A dockerd
# that was there before this run is left alone.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop docker-registry >/dev/null 2>&1 || true
fi
if [[ " ${missing[*]} " == *" docker.io "* ]]; then
  if command -v systemctl >/dev/null 2>&1; then
    systemctl stop docker.service docker.socket >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/docker ]; then
    /etc/init.d/docker stop >/dev/null 2>&1 || true
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/pallet --version >/dev/null
# An editable install writes no bytecode, and with PYTHONDONTWRITEBYTECODE set none is ever
# cached: every command would compile pallet's modules again (about 50 ms). A wheel install
# compiles them at install time; do the same.
.venv/bin/python -m compileall -q src/pallet >/dev/null
# and the code of the methods @dataclass generates, which pallet caches beside it
.venv/bin/python -c 'import pallet._dataclass_code as m; m.warm()'
