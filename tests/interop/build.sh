#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the reference checker tests/interop/estargz-ref into OUT_DIR,
# offline, from Debian's packaged Go sources (golang-go and
# golang-github-containerd-stargz-snapshotter-dev; see scripts/install-deps.sh).
# Nothing is written to the source tree: the Go build cache lives in OUT_DIR.
#
# usage: build.sh OUT_DIR      -> OUT_DIR/estargz-ref
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

command -v go >/dev/null || { echo "build.sh: go not found (install golang-go)" >&2; exit 1; }
ref=/usr/share/gocode/src/github.com/containerd/stargz-snapshotter/estargz
[ -d "$ref" ] || {
	echo "build.sh: $ref missing (install golang-github-containerd-stargz-snapshotter-dev)" >&2
	exit 1
}

export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= CGO_ENABLED=0
export GOCACHE="$out/.gocache" GOTMPDIR="$out/.gotmp"
mkdir -p "$GOTMPDIR"
cd "$here/estargz-ref"
go build -trimpath -o "$out/estargz-ref.tmp" .
mv "$out/estargz-ref.tmp" "$out/estargz-ref"
echo "$out/estargz-ref"
