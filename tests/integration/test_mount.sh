#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull mount` over real FUSE: every vector mounted and compared with GNU
# tar's extraction of v1.tar.gz (names, modes, owners, sizes, mtimes, link
# targets, devices, xattrs, hardlinks; contents under parallel random reads);
# the control file; a wrong or missing TOC digest refuses the mount; a
# corrupted chunk gives EIO and a log line, never wrong bytes; the disk
# cache survives a remount; fusermount3 -u and SIGTERM both unmount and
# leave no process; overlayfs over the mount honours whiteouts and opaque
# directories and writes land in the upper directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require_root "overlayfs over the mount"

# Every mount made here is undone on exit, whatever happens.
MOUNTS=()
cleanup() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		if mountpoint -q "${MOUNTS[i]}"; then
			umount "${MOUNTS[i]}" 2>/dev/null ||
				fusermount3 -u "${MOUNTS[i]}" 2>/dev/null ||
				umount -l "${MOUNTS[i]}" 2>/dev/null || true
		fi
	done
	rm -rf "$T"
}
trap cleanup EXIT

# lp_umount MOUNTPOINT: stricter than lib.sh's: fusermount3 -u, then the
# daemon must be gone.
lp_umount() {
	local m=$1 pid i
	pid=$(daemon_pid "$m")
	[ -n "$pid" ] || fail "no daemon for $m"
	fusermount3 -u "$m" || fail "fusermount3 -u $m failed"
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 "$pid" 2>/dev/null || fail "daemon $pid still running after unmount"
}

say "reference: GNU tar -x of v1.tar.gz"
REF="$T/ref"
mkdir -p "$REF"
tar -xzf "$LP_VECTORS_DIR/v1.tar.gz" -C "$REF" --same-owner --same-permissions \
	--numeric-owner --xattrs --xattrs-include='*' ||
	fail "GNU tar could not extract v1.tar.gz"

for v in $(lp_vectors); do
	blob="$LP_VECTORS_DIR/$v.esgz"
	toc=$(cat "$LP_VECTORS_DIR/$v.toc-digest")
	m="$T/mnt-$v"
	say "$v"
	lp_mount "$m" --toc-digest "$toc" --cache-dir "$T/cache-$v" \
		--log-file "$T/$v.log" "$blob"
	python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$m" 8 150 \
		>"$T/cmp.out" || fail "$v: mount differs from GNU tar's extraction"
	ok "$v: $(cat "$T/cmp.out")"
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["fetched_bytes"] > 0 and s["errors"]["verify_failures"] == 0, s' \
		"$m/.lazypull/stats" || fail "$v: bad stats JSON"
	! ls -a "$m" | grep -q lazypull || fail "$v: control dir is listed"
	ok "$v: /.lazypull/stats is JSON and hidden from readdir"
	lp_umount "$m"
	ok "$v: fusermount3 -u unmounted and the daemon exited"
done

v=v1-default
blob="$LP_VECTORS_DIR/$v.esgz"
toc=$(cat "$LP_VECTORS_DIR/$v.toc-digest")

say "TOC verification"
mkdir -p "$T/mnt-bad"
bad=sha256:$(printf '%064d' 0)
if lp_run "$T/out" "$T/err" "$LAZYPULL" mount --toc-digest "$bad" "$blob" "$T/mnt-bad"; then
	MOUNTS+=("$T/mnt-bad")
	fail "mounted with a wrong TOC digest"
fi
! mountpoint -q "$T/mnt-bad" || fail "mounted with a wrong TOC digest"
ok "wrong --toc-digest refused ($(head -1 "$T/err"))"
rc=0
"$LAZYPULL" mount "$blob" "$T/mnt-bad" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "no TOC digest: exit $rc, want 2"
ok "no --toc-digest and no --insecure-skip-toc-verify: usage error"

say "a corrupted chunk: EIO and a log line, never wrong bytes"
cp "$blob" "$T/corrupt.esgz"
read -r start end _ < <(chunk_ranges "$blob" | awk '$3 == "usr/lib/big.bin" && $4 == 4194304')
flip_byte "$T/corrupt.esgz" $(((start + end) / 2))
m="$T/mnt-corrupt"
lp_mount "$m" --toc-digest "$toc" --no-background-fetch --no-prefetch \
	--log-file "$T/corrupt.log" "$T/corrupt.esgz"
if dd if="$m/usr/lib/big.bin" of=/dev/null bs=1M skip=4 count=1 2>"$T/dd.err"; then
	fail "read a corrupted chunk without an error"
fi
grep -q "Input/output error" "$T/dd.err" || { cat "$T/dd.err" >&2; fail "corrupted chunk: not EIO"; }
cmp -s <(head -c 4194304 "$m/usr/lib/big.bin") <(head -c 4194304 "$REF/usr/lib/big.bin") ||
	fail "the intact first chunk of big.bin differs"
grep -q "usr/lib/big.bin: chunk at offset 4194304" "$T/corrupt.log" ||
	{ cat "$T/corrupt.log" >&2; fail "no log line naming file and offset"; }
ok "EIO for the bad chunk, good bytes around it; log: $(grep -m1 big.bin "$T/corrupt.log")"
lp_umount "$m"

say "the disk cache survives a remount (source payload destroyed)"
cp "$blob" "$T/copy.esgz"
m="$T/mnt-warm"
lp_mount "$m" --toc-digest "$toc" --cache-dir "$T/cache-warm" --no-background-fetch \
	--log-file "$T/warm.log" "$T/copy.esgz"
find "$m" -type f -exec cat {} + >/dev/null # reads every file once
lp_umount "$m"
# zero everything before the TOC: only the cache can serve file contents now
python3 - "$T/copy.esgz" "$(toc_offset "$blob")" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.write(b"\0" * int(sys.argv[2]))
PY
lp_mount "$m" --toc-digest "$toc" --cache-dir "$T/cache-warm" --no-background-fetch \
	--log-file "$T/warm.log" "$T/copy.esgz"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$m" 4 50 >"$T/cmp.out" ||
	fail "warm remount differs"
grep -q '"fetched_bytes": 0,' "$m/.lazypull/stats" || fail "warm remount fetched from the blob"
ok "warm remount served every file from the disk cache: $(cat "$T/cmp.out")"

say "SIGTERM unmounts and exits"
pid=$(daemon_pid "$m")
kill -TERM "$pid"
for i in $(seq 50); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
! kill -0 "$pid" 2>/dev/null || fail "daemon $pid survived SIGTERM"
! mountpoint -q "$m" || fail "$m still mounted after SIGTERM"
ok "SIGTERM: unmounted, daemon gone"

say "overlayfs over the mount"
m="$T/mnt-ovl"
lp_mount "$m" --toc-digest "$toc" --log-file "$T/ovl.log" "$blob"
below="$T/below" up="$T/upper" work="$T/work" merged="$T/merged"
mkdir -p "$below/whiteouts/gone-dir" "$below/etc" "$up" "$work" "$merged"
echo old >"$below/whiteouts/deleted-file"
echo old >"$below/whiteouts/gone-dir/hidden-by-opaque"
echo below >"$below/etc/below-only"
MOUNTS+=("$merged")
mount -t overlay overlay -o "lowerdir=$m:$below,upperdir=$up,workdir=$work" "$merged" ||
	fail "overlayfs mount over lazypull failed"
[ ! -e "$merged/whiteouts/deleted-file" ] || fail "whited-out file visible through overlayfs"
[ -d "$merged/whiteouts/gone-dir" ] || fail "opaque dir missing"
[ -z "$(ls -A "$merged/whiteouts/gone-dir")" ] || fail "opaque dir shows lower content"
[ "$(cat "$merged/etc/below-only")" = below ] || fail "non-opaque dir does not merge"
cmp -s "$merged/usr/lib/big.bin" "$REF/usr/lib/big.bin" || fail "big.bin differs through overlayfs"
ok "whiteout hides, opaque dir hides lower content, plain dirs merge, reads pass through"
echo new >"$merged/new-file"
echo appended >>"$merged/etc/conf.d/app.conf"
[ "$(cat "$up/new-file")" = new ] || fail "new file not in upper"
tail -1 "$up/etc/conf.d/app.conf" | grep -q appended || fail "copy-up missing"
cmp -s "$m/etc/conf.d/app.conf" "$REF/etc/conf.d/app.conf" || fail "the lower layer changed"
[ "$(getfattr --only-values -n user.lazypull.test "$up/etc/conf.d/app.conf" 2>/dev/null)" = seed-1 ] ||
	fail "copy-up lost the xattr"
ok "writes land in upper (copy-up keeps xattrs), the lazy layer is unchanged"
umount "$merged"
lp_umount "$m"

done_ok
