#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds containerd's snapshotter conformance suite, wired to lazypull by
# tests/conformance/conformance_test.go, into OUT_DIR/conformance.test,
# offline, from Debian's packaged Go sources (golang-go,
# golang-github-containerd-containerd-dev and
# golang-github-gotestyourself-gotest.tools-dev; see scripts/install-deps.sh).
# Nothing is written to the source tree or /usr/share: a private GOPATH in
# OUT_DIR holds this package (a symlink to tests/conformance) and
# gotest.tools/v3 (Debian installs gotest.tools v3 at gotest.tools, without
# the /v3 its import path has), and the Go build cache lives in OUT_DIR.
#
# usage: build.sh OUT_DIR      -> OUT_DIR/conformance.test
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

command -v go >/dev/null || { echo "build.sh: go not found (install golang-go)" >&2; exit 1; }
gocode=/usr/share/gocode/src
need() {
	[ -d "$gocode/$1" ] || { echo "build.sh: $gocode/$1 missing (install $2)" >&2; exit 1; }
}
need github.com/containerd/containerd/snapshots/testsuite golang-github-containerd-containerd-dev
need gotest.tools/assert golang-github-gotestyourself-gotest.tools-dev

gopath="$out/gopath"
mkdir -p "$gopath/src/gotest.tools"
ln -sfn "$gocode/gotest.tools" "$gopath/src/gotest.tools/v3"
ln -sfn "$here" "$gopath/src/lpconformance"

export GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= CGO_ENABLED=0
export GOCACHE="$out/.gocache" GOTMPDIR="$out/.gotmp"
mkdir -p "$GOTMPDIR"
cd "$gopath/src/lpconformance"
go test -c -trimpath -o "$out/conformance.test.tmp" .
mv "$out/conformance.test.tmp" "$out/conformance.test"
echo "$out/conformance.test"
