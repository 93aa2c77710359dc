#!/usr/bin/env bash
# Install everything, then run pallet's main job end to end in a scratch store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PALLET_ROOT=${PALLET_ROOT:-$PWD/.work/demo-root}
P=.venv/bin/pallet
set -x
$P bootstrap busybox demo/busybox:latest
$P images
$P history demo/busybox:latest
$P save -o .work/demo-busybox.tar demo/busybox:latest
$P load -i .work/demo-busybox.tar
$P system check
