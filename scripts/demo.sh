#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo (README command 1). Until the snapshotter lands, it shows the
# layer format work end to end: installs dependencies, builds lazypull,
# makes a small busybox-static layer, converts it to eStargz, inspects and
# verifies it, extracts it and compares the result with GNU tar's.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLP_TESTS=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" >/dev/null
lp=$top/build-demo/cmd/lazypull

work=$(mktemp -d /tmp/lazypull-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== a sample layer: a busybox-static root filesystem"
mkdir -p "$work/root/bin" "$work/root/etc" "$work/root/tmp"
cp /bin/busybox "$work/root/bin/busybox"
for a in sh ls cat echo; do ln -s busybox "$work/root/bin/$a"; done
echo "hello from lazypull" >"$work/root/etc/motd"
chmod 1777 "$work/root/tmp"
tar -C "$work/root" --numeric-owner -czf "$work/layer.tar.gz" .
ls -l "$work/layer.tar.gz"

echo "== lazypull layer convert"
"$lp" layer convert "$work/layer.tar.gz" "$work/layer.esgz" | tee "$work/out"
toc=$(sed -n 's/^toc-digest=//p' "$work/out")

echo "== lazypull layer inspect"
"$lp" layer inspect "$work/layer.esgz"

echo "== lazypull layer verify --list"
"$lp" layer verify --toc-digest "$toc" --list "$work/layer.esgz"

echo "== lazypull layer extract, compared with GNU tar"
"$lp" layer extract "$work/layer.esgz" "$work/x-lazypull"
mkdir "$work/x-tar"
tar -C "$work/x-tar" --numeric-owner -xzf "$work/layer.tar.gz"
diff -r --no-dereference -x .no.prefetch.landmark "$work/x-tar" "$work/x-lazypull"
echo "extracted trees are identical (but for the landmark file the layer carries)"
