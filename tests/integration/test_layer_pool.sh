#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The snapshotter's layer pool (snapshot/layers.c) over Debian's
# docker-registry on loopback, without containerd (tests/layer_pool): a
# mount point handed to a request stays mounted while another thread
# cleans up or releases the same layer (a layer mounted ahead of use, then
# asked for, survives a cleanup right after the request; a release racing
# a request for the same layer never takes the path from the new mount).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

POOL="$LP_BUILD_DIR/tests/layer_pool"
CLIENT="$LP_BUILD_DIR/tests/reg_client"
lp_require docker-registry
lp_require_root "the layer pool mounts"
lp_require_fuse
[ -x "$POOL" ] || fail "$POOL not built (target layer_pool)"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"

PIDS=()
cleanup() {
	local p m
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for m in $(mounts_under "$T"); do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
lp_start_registry

say "push an image of two eStargz layers"
descs=() args=()
for v in v1-default v1-chunk64k; do
	read -r dg size < <(timeout 60 "$CLIENT" push-blob "$R/pool/img:v1" "$LP_VECTORS_DIR/$v.esgz")
	toc=$(cat "$LP_VECTORS_DIR/$v.toc-digest")
	descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$dg\",\"size\":$size,\"annotations\":{\"containerd.io/snapshot/stargz/toc.digest\":\"$toc\"}}")
	args+=("$dg" "$toc")
done
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
read -r cdg csize < <(timeout 60 "$CLIENT" push-blob "$R/pool/img:v1" "$T/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s,%s]}' \
	"$cdg" "$csize" "${descs[0]}" "${descs[1]}" >"$T/manifest"
timeout 60 "$CLIENT" push-manifest "$R/pool/img:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null
ok "pushed $R/pool/img:v1"

say "requests, cleanups and releases of the same layers at once"
mkdir -p "$T/root"
timeout 300 "$POOL" "$T/root" "$R/pool/img:v1" "$R" "${args[@]}" >"$T/pool.out" 2>"$T/pool.log" || {
	cat "$T/pool.out"
	show_err "$T/pool.log"
	fail "layer_pool failed"
}
while read -r line; do ok "${line#ok: }"; done <"$T/pool.out"
[ -z "$(mounts_under "$T/root")" ] || fail "mounts left: $(mounts_under "$T/root")"
ok "every layer unmounted at the end"
done_ok
