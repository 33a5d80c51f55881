#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# containerd's hosts.toml, wired in: a pull-through-cache docker-registry
# mirror (`proxy: remoteurl:`) in front of an origin docker-registry, both on
# loopback, named in DIR/ORIGIN/hosts.toml. Checks:
#   1. `ctr-remote images rpull --hosts-dir DIR` with `lazypull snapshotter
#      --registry-config-dir DIR`: both layers are mounted lazily and the
#      container runs; every lazypull request went to the mirror (its access
#      log has them, with containerd's ?ns= query), none to the origin.
#   1b. hosts.toml edited (the mirror taken out) while the snapshotter
#      runs: the next image's blobs come from the origin, none from the
#      mirror, without a restart.
#   2. `lazypull mount --layer 0 --registry-config-dir DIR`: part of the
#      layer is read through the mirror (behind a delay line,
#      tests/bench/delay_proxy.py), then the mirror is killed (kill -9) while
#      a read of an 8 MiB file is on its way: that read goes on at the origin
#      with the right bytes, later reads come from the origin (its access log
#      has lazypull's blob requests from then on; the mount logs the mirror
#      down once); every regular file has the bytes of GNU tar's extraction.
#   3. A `[host]` the registry config marks as pull-only is not asked to
#      resolve the tag: a mirror that lacks "resolve" sees no manifest
#      request by tag (lazypull mount resolves the tag at the origin).
# Byte counts through a hosts.toml mirror (a pull-through cache answers a
# range with 200 and the whole blob: the spool) are test_rangeless.sh's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init
MIRROR_PID=
DELAY_PID=
MOUNTS=()

cleanup() {
	local rc=$? m
	set +e
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	lp_stack_stop
	[ -n "$MIRROR_PID" ] && kill "$MIRROR_PID" 2>/dev/null && wait "$MIRROR_PID" 2>/dev/null
	[ -n "$DELAY_PID" ] && kill "$DELAY_PID" 2>/dev/null && wait "$DELAY_PID" 2>/dev/null
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	if [ $rc -ne 0 ]; then
		echo "--- mirror log (tail)" >&2
		tail -5 "$T/mirror.log" >&2 2>/dev/null
		echo "--- mount log (tail)" >&2
		tail -20 "$T/mount.log" >&2 2>/dev/null
	fi
	lp_stack_finish $rc 40 20
}
trap cleanup EXIT

# lazypull_lines LOG [FROM]: lazypull's blob GETs in an access log, from
# line FROM on (default 1)
lazypull_lines() {
	tail -n +"${2:-1}" "$1" | grep '"GET /v2/[^ ]*/blobs/sha256:' | grep -c '"lazypull/' || true
}

# --- origin and mirror ------------------------------------------------------
lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}}"
ORIGIN=$R
start_mirror() {
	docker-registry serve "$T/mirror.yml" >>"$T/mirror.log" 2>&1 &
	MIRROR_PID=$!
	wait_up "$MIRROR_PID" "$T/mirror.log" 20 "the mirror" curl -fsS "http://$MIRROR/v2/"
}
MPORT2=$(free_port)
MIRROR="127.0.0.1:$MPORT2"
mkdir -p "$T/mirror"
cat >"$T/mirror.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $T/mirror}}
http: {addr: $MIRROR}
proxy: {remoteurl: "http://$ORIGIN"}
EOF
start_mirror

say "building and pushing the test image to the origin"
python3 "$LP_SOURCE_DIR/tests/integration/make_snap_image.py" "$T/layout"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	--registry-config-dir "" "oci:$T/layout:two" "$ORIGIN/bb:esgz" ||
	{ show_err "$T/conv.err"; fail "lazypull convert"; }
IMG="$ORIGIN/bb:esgz"

# the registry configuration: the mirror first, then the origin (server)
HOSTS="$T/certs.d"
mkdir -p "$HOSTS/$ORIGIN"
cat >"$HOSTS/$ORIGIN/hosts.toml" <<EOF
server = "http://$ORIGIN"

[host."http://$MIRROR"]
  capabilities = ["pull", "resolve"]
EOF
ok "origin at $ORIGIN, pull-through mirror at $MIRROR, hosts.toml in $HOSTS/$ORIGIN"

# --- 1. snapshotter + containerd through the mirror -------------------------
say "0. registry_config_dir in the snapshotter's config: a missing directory is refused"
printf '{"registry_config_dir": "%s"}\n' "$T/no-such-dir" >"$T/bad.json"
rc=0
"$LAZYPULL" snapshotter --config "$T/bad.json" --root "$T/bad-root" --address "$T/bad.sock" \
	>"$T/bad.out" 2>&1 || rc=$?
[ $rc = 2 ] || fail "a registry_config_dir that does not exist: exit $rc, not 2"
grep -q "$T/no-such-dir: No such file or directory" "$T/bad.out" ||
	{ show_err "$T/bad.out"; fail "the error does not name the directory"; }
printf '{"registry_config_dir": 5}\n' >"$T/bad.json"
rc=0
"$LAZYPULL" snapshotter --config "$T/bad.json" --root "$T/bad-root" --address "$T/bad.sock" \
	>"$T/bad.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "registry_config_dir: want a string" "$T/bad.out" ||
	{ show_err "$T/bad.out"; fail "a registry_config_dir that is not a string: exit $rc"; }
ok "the config key is read: a missing directory (exit 2) and a non-string (exit 1) are refused"

say "1. ctr-remote rpull --hosts-dir with the snapshotter on the same directory"
"$LAZYPULL" -v snapshotter --root "$ROOT" --address "$SOCK" \
	--registry-config-dir "$HOSTS" --no-background-fetch >>"$T/snap.log" 2>&1 &
SNAP_PID=$!
wait_for 20 "the snapshotter to serve" grep -q "snapshotter: serving" "$T/snap.log"
lp_stack_containerd "io.containerd.grpc.v1.cri" ""
o0=$(wc -l <"$T/reg.log")
lp_run "$T/rpull.out" "$T/rpull.err" ctr-remote --address "$CSOCK" images rpull \
	--hosts-dir "$HOSTS" --snapshotter lazypull "$IMG" ||
	{ show_err "$T/rpull.err"; fail "rpull"; }
n=$(grep -c "remote snapshot sha256:" "$T/snap.log" || true)
[ "$n" = 2 ] || fail "expected 2 remote snapshots, the log shows $n"
ok "both layers mounted lazily (remote snapshots)"
out=$(ctr_ run --rm --snapshotter lazypull "$IMG" c1)
[ "$out" = "hello from lazypull" ] || fail "ctr run printed '$out'"
ok "the container runs: '$out'"
m=$(lazypull_lines "$T/mirror.log")
[ "$m" -gt 0 ] || fail "the mirror saw no blob request from lazypull"
grep '"lazypull/' "$T/mirror.log" | grep -q "?ns=$ORIGIN " ||
	fail "lazypull's requests to the mirror lack ?ns=$ORIGIN"
o=$(lazypull_lines "$T/reg.log" $((o0 + 1)))
[ "$o" = 0 ] || fail "lazypull sent $o blob requests to the origin while the mirror was up"
ok "$m blob requests from the snapshotter went to the mirror (with ?ns=), none to the origin"
grep -q "host 1 of 2: http://$MIRROR/v2" "$T/snap.log" ||
	fail "the snapshotter did not log the host list of $ORIGIN"
ok "the snapshotter logs the host list it read"

say "1b. hosts.toml edited while the snapshotter runs: the next pull follows the file"
lp_run "$T/conv2.out" "$T/conv2.err" "$LAZYPULL" convert --plain-http -q \
	--registry-config-dir "" --chunk-size 64K "oci:$T/layout:two" "$ORIGIN/bb:esgz2" ||
	{ show_err "$T/conv2.err"; fail "lazypull convert (second image)"; }
cp "$HOSTS/$ORIGIN/hosts.toml" "$T/hosts.toml.mirror"
printf 'server = "http://%s"\n' "$ORIGIN" >"$HOSTS/$ORIGIN/hosts.toml.new"
mv "$HOSTS/$ORIGIN/hosts.toml.new" "$HOSTS/$ORIGIN/hosts.toml"
sleep 2.5 # the snapshotter looks at the files at most once a second
m0=$(wc -l <"$T/mirror.log")
o0=$(wc -l <"$T/reg.log")
lp_run "$T/rpull2.out" "$T/rpull2.err" ctr-remote --address "$CSOCK" images rpull \
	--hosts-dir "$HOSTS" --snapshotter lazypull "$ORIGIN/bb:esgz2" ||
	{ show_err "$T/rpull2.err"; fail "rpull of the second image"; }
out=$(ctr_ run --rm --snapshotter lazypull "$ORIGIN/bb:esgz2" c1b)
[ "$out" = "hello from lazypull" ] || fail "ctr run (second image) printed '$out'"
grep -q "registry $ORIGIN: host configuration changed: 1 host(s) from now on" "$T/snap.log" ||
	fail "the snapshotter did not take the edited hosts.toml"
m=$(lazypull_lines "$T/mirror.log" $((m0 + 1)))
[ "$m" = 0 ] || fail "the mirror got $m blob requests from lazypull after it left hosts.toml"
o=$(lazypull_lines "$T/reg.log" $((o0 + 1)))
[ "$o" -gt 0 ] || fail "no blob request of the second image reached the origin"
cp "$T/hosts.toml.mirror" "$HOSTS/$ORIGIN/hosts.toml.new"
mv "$HOSTS/$ORIGIN/hosts.toml.new" "$HOSTS/$ORIGIN/hosts.toml"
ok "without a restart: $o blob requests of the next image went to the origin, none to the mirror"

# --- 2. the mirror dies under a mounted layer ---------------------------------
say "2. lazypull mount through the mirror; kill -9 of the mirror with a read in flight"
layout_layer "$T/layout" two 0 >"$T/layer0"
mkdir -p "$T/ref" "$T/mnt"
tar -xzf "$(cat "$T/layer0")" -C "$T/ref" --delay-directory-restore --same-owner \
	--same-permissions --numeric-owner || fail "GNU tar could not extract layer 0"
# the mount's mirror is a delay line in front of the mirror, so that a read
# can be on its way when the mirror dies
DPORT=$(free_port)
CPORT=$(free_port)
python3 "$LP_SOURCE_DIR/tests/bench/delay_proxy.py" --listen "127.0.0.1:$DPORT" \
	--target "$MIRROR" --delay-ms 0 --control "127.0.0.1:$CPORT" >"$T/delay.log" 2>&1 &
DELAY_PID=$!
wait_for 10 "the delay line" curl -fsS "http://127.0.0.1:$DPORT/v2/"
mkdir -p "$T/certs2.d/$ORIGIN"
printf 'server = "http://%s"\n\n[host."http://127.0.0.1:%s"]\n' "$ORIGIN" "$DPORT" \
	>"$T/certs2.d/$ORIGIN/hosts.toml"
MOUNTS+=("$T/mnt")
lp_run "$T/mount.out" "$T/mount.err" "$LAZYPULL" mount --layer 0 \
	--registry-config-dir "$T/certs2.d" --no-prefetch --no-background-fetch \
	--log-file "$T/mount.log" "$IMG" "$T/mnt" ||
	{ show_err "$T/mount.err"; fail "lazypull mount through the mirror"; }
m0=$(lazypull_lines "$T/mirror.log")
o0=$(wc -l <"$T/reg.log")
cmp -s "$T/mnt/etc/passwd" "$T/ref/etc/passwd" || fail "etc/passwd differs"
cmp -s "$T/mnt/bin/busybox" "$T/ref/bin/busybox" || fail "bin/busybox differs"
m1=$(lazypull_lines "$T/mirror.log")
[ "$m1" -gt "$m0" ] || fail "the mount read nothing through the mirror"
[ "$(lazypull_lines "$T/reg.log" $((o0 + 1)))" = 0 ] ||
	fail "the mount read from the origin while the mirror was up"
ok "$((m1 - m0)) reads of the mounted layer went to the mirror, none to the origin"
# every round trip through the delay line now takes 3 s: the read of
# data/big.bin (8 MiB nobody read yet) is on its way when the mirror dies
exec 3<>/dev/tcp/127.0.0.1/"$CPORT"
echo "delay 1500" >&3
read -r _ <&3
exec 3>&-
t0=$SECONDS
cat "$T/mnt/data/big.bin" >"$T/big.out" 2>"$T/big.err" &
catpid=$!
sleep 1
kill -0 "$catpid" 2>/dev/null || fail "the read was served before the kill"
o1=$(wc -l <"$T/reg.log")
kill -9 "$MIRROR_PID"
wait "$MIRROR_PID" 2>/dev/null || true
MIRROR_PID=
! curl -s -o /dev/null "http://$MIRROR/v2/" || fail "the mirror still answers"
wait "$catpid" || fail "the read in flight failed: $(cat "$T/big.err")"
cmp -s "$T/big.out" "$T/ref/data/big.bin" || fail "data/big.bin differs"
o=$(lazypull_lines "$T/reg.log" $((o1 + 1)))
[ "$o" -gt 0 ] || fail "the read in flight did not go on at the origin"
ok "the read in flight at the kill went on at the origin ($((SECONDS - t0)) s): data/big.bin right"
# every regular file's bytes (metadata is test_mount's business: this
# image's symlinks carry mode 0644 in the tar, which no file system shows)
tree_listing "$T/ref" >"$T/ref.files"
tree_listing "$T/mnt" >"$T/mnt.files"
same_file "$T/ref.files" "$T/mnt.files" "file contents of the mount and GNU tar's extraction"
o=$(lazypull_lines "$T/reg.log" $((o1 + 1)))
ok "after the kill, $o reads went to the origin; every file has GNU tar's bytes"
n=$(grep -c "registry host http://127.0.0.1:$DPORT failed" "$T/mount.log" || true)
[ "$n" = 1 ] || fail "the mirror was logged as down $n times (want once)"
ok "the mirror is logged as down once, reads pass it over"
fusermount3 -u "$T/mnt" || fail "fusermount3 -u"
kill "$DELAY_PID" 2>/dev/null
wait "$DELAY_PID" 2>/dev/null || true
DELAY_PID=

# --- 3. a pull-only mirror does not resolve tags ------------------------------
say "3. capabilities: a pull-only mirror is not asked for the tag"
start_mirror
cat >"$HOSTS/$ORIGIN/hosts.toml" <<EOF
server = "http://$ORIGIN"

[host."http://$MIRROR"]
  capabilities = ["pull"]
EOF
m0=$(wc -l <"$T/mirror.log")
mkdir -p "$T/mnt3"
MOUNTS+=("$T/mnt3")
lp_run "$T/mount.out" "$T/mount.err" "$LAZYPULL" mount --layer 0 \
	--registry-config-dir "$HOSTS" --no-prefetch --no-background-fetch \
	--log-file "$T/mount3.log" "$IMG" "$T/mnt3" ||
	{ show_err "$T/mount.err"; fail "lazypull mount with a pull-only mirror"; }
cmp -s "$T/mnt3/etc/passwd" "$T/ref/etc/passwd" || fail "etc/passwd differs"
tail -n +$((m0 + 1)) "$T/mirror.log" | grep '"lazypull/' >"$T/m3.txt" || true
grep -q '/manifests/esgz' "$T/m3.txt" && fail "the pull-only mirror was asked to resolve the tag"
grep -q '/blobs/sha256:' "$T/m3.txt" || fail "the mirror was not asked for blobs"
ok "tag resolved at the origin; blobs from the mirror"
fusermount3 -u "$T/mnt3" || fail "fusermount3 -u"

done_ok
