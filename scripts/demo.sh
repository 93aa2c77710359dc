#!/usr/bin/env bash
# Install everything, then run pallet's main job end to end in a scratch store:
# bootstrap a base image, build the example, run it, and ship it through an archive.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PALLET_ROOT=${PALLET_ROOT:-$PWD/.work/demo-root}
mkdir -p .work
P=.venv/bin/pallet
set -x
$P bootstrap busybox busybox:latest
$P build -t hello:latest examples/hello
$P run --rm hello
$P run --rm hello pallet users
$P images
$P history hello
$P save -o .work/hello.tar hello
$P rmi hello
$P load -i .work/hello.tar
$P run --rm hello again
$P system check
