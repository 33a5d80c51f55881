#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian package lazypull needs to build and test. Idempotent;
# run as root on Debian 12. Both the README and .ci/run call it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

pkgs=(
	# build
	build-essential cmake pkg-config clang clang-format
	# static checks (scripts/check-src.sh, scripts/check-static.sh)
	cppcheck perl binutils
	# libraries
	zlib1g-dev libzstd-dev libdeflate-dev libjson-c-dev libssl-dev
	# a big TOC inflated while it is parsed (format/layer.c)
	libisal-dev
	libarchive-dev libcmocka-dev libcurl4-openssl-dev
	# fs/: the lazy FUSE filesystem (libfuse3 low-level API, fusermount3)
	libfuse3-dev fuse3
	# tests and tools
	tar gzip zstd xxd busybox-static python3 attr
	docker-registry apache2-utils openssl curl
	# image conversion tests: inspect what `lazypull convert` pushed
	skopeo
	# reference implementation for interop checks (Debian's Go sources)
	golang-go golang-github-containerd-stargz-snapshotter-dev
	# snapshot/: containerd remote snapshotter (gRPC core + protobuf-c,
	# SQLite metadata, Prometheus metrics) and its end-to-end tests
	libgrpc-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev
	libprotobuf-dev libsqlite3-dev libmicrohttpd-dev
	golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
	# containerd's snapshotter conformance suite (tests/conformance) imports
	# gotest.tools/v3
	golang-github-gotestyourself-gotest.tools-dev
	containerd runc stargz-snapshotter python3-grpcio
	# podman interop: partial pulls of converted images (test_podman.sh;
	# runc above is its runtime: crun rejects this host's hybrid cgroups)
	podman
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
