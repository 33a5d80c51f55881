# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the integration scripts (test_*.sh). Sourced, not run;
# not a test itself (ctest picks up test_*.sh only).
#
# Environment (set by tests/CMakeLists.txt; defaults let a developer run a
# script by hand from the source tree after `cmake -B build`):
#   LAZYPULL        the lazypull binary
#   LP_VECTORS_DIR  eStargz vectors made by the reference converter (the
#                   build makes them in $LP_BUILD_DIR/vectors: tests/vectors/)
#   LP_SOURCE_DIR   the source tree
#   LP_BUILD_DIR    the build tree (the reference checker is built here)

LP_SOURCE_DIR=${LP_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LP_BUILD_DIR=${LP_BUILD_DIR:-$LP_SOURCE_DIR/build}
LP_VECTORS_DIR=${LP_VECTORS_DIR:-$LP_BUILD_DIR/vectors}
. "$LP_SOURCE_DIR/scripts/containerd-conf.sh"
LAZYPULL=${LAZYPULL:-$LP_BUILD_DIR/cmd/lazypull}
export LC_ALL=C # bytewise sorting and stable messages

LP_TEST=$(basename "$0" .sh)
LP_CHECKS=0

# say MSG...: announce what is being checked.
say() { echo "[$LP_TEST] $*"; }
# fail MSG...: fail the test loudly.
fail() { echo "[$LP_TEST] FAIL: $*" >&2; exit 1; }
# ok MSG...: one check passed.
ok() { LP_CHECKS=$((LP_CHECKS + 1)); echo "[$LP_TEST]   ok: $*"; }
# done_ok: summary line; call last.
done_ok() { echo "[$LP_TEST] PASS ($LP_CHECKS checks)"; }

# --- missing components ------------------------------------------------------
# A test that cannot run its checks has not passed. Whatever it needs and does
# not find (a tool, root, /dev/fuse, a helper that does not build) FAILS the
# test (exit 1), naming what is missing; only when the person running asks
# for it with LP_ALLOW_SKIP=1 does the test stop with exit 77, which ctest
# reports as skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt). Never exit 0.
# These helpers are the only place that decides; every test uses them.

# lp_skip_or_fail MSG...: MSG names what is missing; exit 77 under
# LP_ALLOW_SKIP=1, else fail.
lp_skip_or_fail() {
	if [ "${LP_ALLOW_SKIP:-0}" = 1 ]; then
		echo "[$LP_TEST] SKIP (LP_ALLOW_SKIP=1): $*" >&2
		exit 77
	fi
	fail "$* (a missing component fails the test; LP_ALLOW_SKIP=1 makes it a skip)"
}

# lp_require CMD...: every CMD on PATH (scripts/install-deps.sh installs them).
lp_require() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			lp_skip_or_fail "$c not installed (scripts/install-deps.sh)"
	done
}

# lp_require_root WHY: running as root (WHY says what needs it).
lp_require_root() {
	[ "$(id -u)" = 0 ] || lp_skip_or_fail "not root: $1"
}

# lp_require_fuse: /dev/fuse usable and fusermount3 installed.
lp_require_fuse() {
	[ -c /dev/fuse ] || lp_skip_or_fail "/dev/fuse missing (modprobe fuse)"
	[ -r /dev/fuse ] && [ -w /dev/fuse ] || lp_skip_or_fail "/dev/fuse not readable and writable"
	lp_require fusermount3
}

[ -x "$LAZYPULL" ] || fail "LAZYPULL=$LAZYPULL is not an executable"
[ -d "$LP_VECTORS_DIR" ] || fail "LP_VECTORS_DIR=$LP_VECTORS_DIR is not a directory"

# A scratch directory removed on exit, whatever happens.
T=$(mktemp -d "${TMPDIR:-/tmp}/lp-$LP_TEST.XXXXXX")
trap 'rm -rf "$T"' EXIT

# The vectors, by name (v1-default, v1-chunk64k, v1-prio, v1-zstd): every
# NAME with any of NAME.esgz, NAME.toc-digest, NAME.files, so that a vector
# with a part missing is reported rather than silently left out.
lp_vectors() {
	local f
	for f in "$LP_VECTORS_DIR"/*.esgz "$LP_VECTORS_DIR"/*.toc-digest "$LP_VECTORS_DIR"/*.files; do
		[ -e "$f" ] || continue
		f=$(basename "$f")
		echo "${f%.*}"
	done | sort -u
}

# vector_format NAME: the format a vector is in.
vector_format() { case $1 in *zstd*) echo zstd-chunked ;; *) echo estargz ;; esac; }

# lp_run OUT ERR CMD...: runs CMD with stdout/stderr in files; returns its
# status without tripping set -e.
lp_run() {
	local out=$1 err=$2 rc=0
	shift 2
	"$@" >"$out" 2>"$err" || rc=$?
	return $rc
}

# show_err FILE: print a command's stderr indented (for failure context).
show_err() { sed 's/^/    | /' "$1" >&2; }

# ref_checker: path of the reference checker, built into the build tree on
# first use (needs golang-go and Debian's stargz-snapshotter sources: without
# them, lp_skip_or_fail; a build that fails with them fails the test). Call it
# as REF=$(ref_checker) under set -e, so that its exit status ends the test.
ref_checker() {
	local dir="$LP_BUILD_DIR/interop"
	lp_require go
	[ -d /usr/share/gocode/src/github.com/containerd/stargz-snapshotter/estargz ] ||
		lp_skip_or_fail "Debian's stargz-snapshotter Go sources missing (golang-github-containerd-stargz-snapshotter-dev)"
	if [ ! -x "$dir/estargz-ref" ] ||
		[ "$LP_SOURCE_DIR/tests/interop/estargz-ref/main.go" -nt "$dir/estargz-ref" ]; then
		# Several scripts may run in parallel (ctest -j): build under a lock.
		mkdir -p "$dir"
		(
			flock 9
			if [ ! -x "$dir/estargz-ref" ] ||
				[ "$LP_SOURCE_DIR/tests/interop/estargz-ref/main.go" -nt "$dir/estargz-ref" ]; then
				bash "$LP_SOURCE_DIR/tests/interop/build.sh" "$dir" >/dev/null
			fi
		) 9>"$dir/.build.lock" >&2 || fail "could not build the reference checker (tests/interop/build.sh)"
	fi
	echo "$dir/estargz-ref"
}

# tree_listing DIR: "path sha256:hex" for every regular file under DIR
# (hardlinks appear under each name), paths relative to DIR without "./",
# sorted bytewise: the format of the vectors' .files.
tree_listing() {
	python3 - "$1" <<'PY'
import hashlib, os, sys
root = sys.argv[1].encode()
out = []
for d, dirs, files in os.walk(root):
    for n in files:
        p = os.path.join(d, n)
        if not os.path.isfile(p) or os.path.islink(p):
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        out.append((os.path.relpath(p, root), h.hexdigest()))
out.sort()
w = sys.stdout.buffer
for p, h in out:
    w.write(p + b" sha256:" + h.encode() + b"\n")
PY
}

# toc_digest_of OUTPUT_FILE: the toc-digest=... line a convert printed.
toc_digest_of() {
	local d
	d=$(sed -n 's/^toc-digest=//p' "$1")
	[ -n "$d" ] || fail "no toc-digest= line in $(basename "$1"): $(cat "$1")"
	echo "$d"
}

# same_file A B WHAT: byte-for-byte comparison with a diff on failure.
same_file() {
	if ! cmp -s "$1" "$2"; then
		diff -u "$1" "$2" | head -40 >&2 || true
		fail "$3 differ ($1 vs $2)"
	fi
}

# toc_json BLOB: the TOC JSON of an eStargz or zstd:chunked blob, read with
# nothing but python3 (and zstd(1)), so tests do not depend on lazypull's
# own reader to find their way around a blob.
toc_json() {
	python3 - "$1" <<'PY'
import io, struct, subprocess, sys, tarfile, zlib
b = open(sys.argv[1], "rb").read()
if b[-8:] == b"GnUlInUx":
    off, clen, ulen, typ = struct.unpack("<QQQQ", b[-40:-8])
    j = subprocess.run(["zstd", "-dc"], input=b[off:off + clen],
                       stdout=subprocess.PIPE, check=True).stdout
else:
    for fsz, ext in ((51, b[-51 + 16:-51 + 38]), (47, b[-47 + 12:-47 + 34])):
        if ext.endswith(b"STARGZ"):
            break
    else:
        sys.exit("toc_json: no eStargz/stargz/zstd:chunked footer")
    off = int(ext[:16], 16)
    d = zlib.decompressobj(31).decompress(b[off:len(b) - fsz])
    t = tarfile.open(fileobj=io.BytesIO(d))
    j = t.extractfile("stargz.index.json").read()
sys.stdout.buffer.write(j)
PY
}

# toc_offset BLOB: blob offset where the TOC section starts.
toc_offset() {
	python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
if b[-8:] == b"GnUlInUx":
    print(struct.unpack("<Q", b[-40:-32])[0])
elif b[-51 + 32:-51 + 38] == b"STARGZ":
    print(int(b[-51 + 16:-51 + 32], 16))
else:
    print(int(b[-47 + 12:-47 + 28], 16))
PY
}

# flip_byte FILE OFFSET: invert every bit of the byte at OFFSET, in place.
flip_byte() {
	python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    c = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([c[0] ^ 0xFF]))
PY
}

# chunk_ranges BLOB: one line per payload member, "start end name
# chunkOffset": the compressed byte range [start, end) holding that chunk of
# that file (end is the next member's start, or the TOC's).
chunk_ranges() {
	toc_json "$1" >"$T/.toc.json"
	python3 - "$T/.toc.json" "$(toc_offset "$1")" <<'PY'
import json, sys
toc = json.load(open(sys.argv[1]))
tocoff = int(sys.argv[2])
name, ents = None, []
for e in toc["entries"]:
    if e["type"] != "chunk":
        name = e["name"]
    if e["type"] in ("reg", "chunk") and e.get("offset", 0) > 0:
        ents.append((e["offset"], name, e.get("chunkOffset", 0)))
starts = sorted(set(o for o, _, _ in ents)) + [tocoff]
nxt = {starts[i]: starts[i + 1] for i in range(len(starts) - 1)}
for o, n, c in sorted(ents):
    print(o, nxt[o], n[2:] if n.startswith("./") else n, c)
PY
}

# make_busybox_rootfs TAR: a small but realistic image layer, tar'ed with GNU
# tar: /bin/busybox from busybox-static, its applets as symlinks (and a few
# hardlinks), /etc files, owners other than root, setuid/sticky modes,
# xattrs, a fifo, devices, an empty file, a file of several 4 MiB chunks and
# overlay whiteouts. Needs root (lp_require_root); any part that cannot be
# made fails the test rather than leaving the layer without it.
make_busybox_rootfs() {
	local tar=$1 r="$T/busybox-rootfs" a
	[ -x /bin/busybox ] || lp_skip_or_fail "/bin/busybox missing (install busybox-static)"
	lp_require_root "the busybox layer has devices, other owners and trusted.* xattrs"
	lp_require setfattr
	rm -rf "$r"
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,root,tmp,var/log,var/empty,home/user,dev,proc,sys,usr/share/data}
	cp /bin/busybox "$r/bin/busybox"
	chmod 0755 "$r/bin/busybox"
	for a in $(/bin/busybox --list-full); do
		case $a in bin/busybox) continue ;; esac
		mkdir -p "$r/$(dirname "$a")"
		ln -sf /bin/busybox "$r/$a"
	done
	# A few applets as hardlinks, as some distributions ship them.
	for a in sh ash cat; do
		rm -f "$r/bin/$a"
		ln "$r/bin/busybox" "$r/bin/$a"
	done
	cat >"$r/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:Linux User,,,:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
	cat >"$r/etc/group" <<'G'
root:x:0:
daemon:x:1:
user:x:1000:
nogroup:x:65534:
G
	printf 'root:*:19000:0:99999:7:::\nuser:!:19000:0:99999:7:::\n' >"$r/etc/shadow"
	chmod 0640 "$r/etc/shadow"
	echo lazypull-test >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >"$r/etc/hosts"
	printf 'NAME="busybox"\nID=busybox\nVERSION_ID=1.35\n' >"$r/etc/os-release"
	printf 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nPS1="\\u@\\h:\\w# "\n' >"$r/etc/profile"
	printf '#!/bin/sh\nmount -t proc proc /proc\nhostname -F /etc/hostname\n' >"$r/etc/init.d/rcS"
	chmod 0755 "$r/etc/init.d/rcS"
	: >"$r/etc/fstab"
	ln -s /proc/mounts "$r/etc/mtab"
	ln -s ../nonexistent "$r/etc/dangling"
	chmod 0700 "$r/root"
	chmod 1777 "$r/tmp"
	echo "hello" >"$r/home/user/.profile"
	chown -R 1000:1000 "$r/home/user"
	chown 65534:65534 "$r/var/empty"
	chmod 4755 "$r/bin/busybox"
	# Several chunks at the default 4 MiB, many at 64 KiB; deterministic.
	python3 -c '
import random, sys
r = random.Random(42)
sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(1 << 20)) * 3)
sys.stdout.buffer.write(b"lazypull " * 400000)' >"$r/usr/share/data/mixed.bin"
	mkfifo "$r/var/log/fifo"
	mknod "$r/dev/null" c 1 3 || fail "mknod of a char device in $r"
	mknod "$r/dev/loop9" b 7 9 || fail "mknod of a block device in $r"
	setfattr -n user.lazypull.comment -v "busybox rootfs" "$r/etc/hostname" ||
		fail "setfattr user.* in $r"
	setfattr -n trusted.overlay.opaque -v y "$r/var/log" || fail "setfattr trusted.* in $r"
	setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$r/bin/busybox" ||
		fail "setfattr security.capability in $r"
	: >"$r/etc/.wh.motd"
	: >"$r/var/empty/.wh..wh..opq"
	# Fixed times and order: the same tar every run.
	find "$r" -exec touch -h -d '2023-01-01 00:00:00 UTC' {} +
	touch -h -d '2022-02-22 22:22:22 UTC' "$r/etc/dangling" "$r/etc/hostname"
	tar --sort=name --format=pax --pax-option=delete=atime,delete=ctime --numeric-owner --xattrs --xattrs-include='*' -C "$r" -cf "$tar" . ||
		fail "could not tar the busybox rootfs"
	rm -rf "$r"
}

# tar_listing TAR: tree_listing of GNU tar's extraction of TAR.
tar_listing() {
	local d="$T/tar-listing.$$"
	rm -rf "$d"
	mkdir -p "$d"
	tar -xf "$1" -C "$d" --no-same-owner --no-same-permissions ||
		fail "GNU tar could not extract $1"
	tree_listing "$d"
	rm -rf "$d"
}

# --- daemons on loopback ----------------------------------------------------

# free_port: a loopback TCP port nobody listens on, for a server this test
# starts. Not an ephemeral port (the kernel hands those to every outgoing
# connection: a busy parallel run took one between this choice and the
# server's bind, and the server never came up), and reserved for 10 minutes
# across tests run in parallel (mkdir of /tmp/lazypull-ports/PORT).
free_port() {
	/usr/bin/python3 - <<'PY'
import os, random, socket, time
d = "/tmp/lazypull-ports"
os.makedirs(d, exist_ok=True)
lo, hi = 20000, 32000  # below ip_local_port_range (32768-60999)
for _ in range(1000):
    p = random.randrange(lo, hi)
    r = os.path.join(d, str(p))
    try:
        if time.time() - os.stat(r).st_mtime > 600:
            os.rmdir(r)
    except OSError:
        pass
    try:
        os.mkdir(r)
    except OSError:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit("free_port: no free port in %d-%d" % (lo, hi))
PY
}

# metric NAME{LABELS}: that series of the snapshotter's metrics on $MPORT;
# metric NAME: the sum over NAME's series (0 when absent)
metric() {
	curl -fsS "http://127.0.0.1:$MPORT/metrics" |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }'
}

# sha_of FILE: its digest, "sha256:HEX"
sha_of() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# lp_push_busybox_gzip: the busybox tree as one plain gzip layer (not
# converted: what `lazypull index` is for) in an OCI layout, pushed with
# skopeo to $R/bb:v1; sets IMG, LAYER (its digest), LSIZE; leaves
# $T/rootfs.tar, $T/layer.tar.gz and $T/layout
lp_push_busybox_gzip() {
	say "building the busybox layer (gzip, not converted) and pushing it with skopeo"
	make_busybox_rootfs "$T/rootfs.tar"
	gzip -n -6 <"$T/rootfs.tar" >"$T/layer.tar.gz"
	python3 "$LP_SOURCE_DIR/tests/integration/gzip_index.py" layout "$T/layer.tar.gz" "$T/layout"
	skopeo copy -q --dest-tls-verify=false "oci:$T/layout:v1" "docker://$R/bb:v1" ||
		fail "skopeo copy of the test image"
	IMG="$R/bb:v1"
	LAYER=$(sha_of "$T/layer.tar.gz")
	LSIZE=$(stat -c %s "$T/layer.tar.gz")
}

# lp_stall_server PORT LOG: a registry that accepts and never answers, in the
# background ($! is its pid): a request to it hangs until the client gives
# up or the server is killed. LOG gets "listening" once it listens, then
# "open" and "closed" for each connection, and "request " and the first
# line of the first request on it.
lp_stall_server() {
	python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
log = open(sys.argv[2], "a", buffering=1)
log.write("listening\n")
def hold(c):
    log.write("open\n")
    first = True
    while True:
        d = c.recv(4096)
        if not d:
            break
        if first:
            log.write("request %s\n" % d.split(b"\r\n", 1)[0].decode("latin1"))
            first = False
    log.write("closed\n")
while True:
    threading.Thread(target=hold, args=(s.accept()[0],), daemon=True).start()
' "$1" "$2" 2>"$2.err" &
}

# wait_for SECONDS WHAT CMD...: run CMD every 0.1 s until it succeeds; fail
# the test after SECONDS.
wait_for() {
	local n=$(($1 * 10)) what=$2
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || fail "timed out waiting for $what"
		sleep 0.1
	done
}

# wait_up PID LOG SECONDS WHAT CMD...: wait_for a daemon just started (PID,
# writing LOG) to answer CMD; fail at once, with the tail of LOG, if it
# exits first (a port taken, a bad configuration) instead of after SECONDS.
wait_up() {
	local pid=$1 log=$2 n=$(($3 * 10)) what=$4
	shift 4
	while ! "$@" >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null ||
			fail "$what exited before it answered: $(grep -m3 -iE 'panic|fatal|error' "$log" 2>/dev/null) ... $(tail -3 "$log" 2>/dev/null)"
		n=$((n - 1))
		[ $n -gt 0 ] || fail "timed out waiting for $what: $(tail -5 "$log" 2>/dev/null)"
		sleep 0.1
	done
}

# wait_http URL: wait_for the server at URL to answer (any HTTP status),
# at most 10 s.
wait_http() {
	wait_for 10 "the server at $1" curl -s -o /dev/null "$1"
}

# lp_cleanup: the EXIT trap of a test that lists what it mounted in MOUNTS
# and the daemons it started in PIDS: unmounts MOUNTS (last first; lazily if
# busy), stops and reaps PIDS, removes $T.
MOUNTS=()
PIDS=()
lp_cleanup() {
	local i p
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		if mountpoint -q "${MOUNTS[i]}"; then
			fusermount3 -u "${MOUNTS[i]}" 2>/dev/null ||
				umount -l "${MOUNTS[i]}" 2>/dev/null || true
		fi
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}

# layout_layer LAYOUT NAME N: the path of layer N's blob of the image named
# NAME (org.opencontainers.image.ref.name) in the OCI layout LAYOUT.
layout_layer() {
	/usr/bin/python3 - "$@" <<'PY'
import json, os, sys
d, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
idx = json.load(open(os.path.join(d, "index.json")))
m = [x for x in idx["manifests"]
     if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == name][0]
man = json.load(open(os.path.join(d, "blobs", *m["digest"].split(":"))))
print(os.path.join(d, "blobs", *man["layers"][n]["digest"].split(":")))
PY
}

# daemon_pid MOUNTPOINT: the pid of the `lazypull mount` daemon serving it
# (mount points are unique temporary paths: an exact match finds only ours)
daemon_pid() { pgrep -f -x -- "$LAZYPULL .* $1" || true; }

# lp_mount MOUNTPOINT ARGS...: `lazypull mount ARGS... MOUNTPOINT`, the
# mount point remembered in MOUNTS for lp_cleanup.
lp_mount() {
	local m=$1
	shift
	mkdir -p "$m"
	MOUNTS+=("$m")
	lp_run "$T/mount.out" "$T/mount.err" "$LAZYPULL" mount "$@" "$m" ||
		{ show_err "$T/mount.err"; fail "mount on $m failed"; }
	mountpoint -q "$m" || fail "$m is not a mount point after mount returned"
}

# lp_umount MOUNTPOINT: unmount it and give its daemon up to 5 s to end.
lp_umount() {
	local m=$1 pid i
	pid=$(daemon_pid "$m")
	fusermount3 -u "$m" || fail "fusermount3 -u $m failed"
	for i in $(seq 50); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
}

# mounts_under DIR: mount points below DIR, deepest first.
mounts_under() {
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# lp_start_registry: Debian's docker-registry on a free loopback port,
# storage in $T/store (deletes on), no access log; its pid is added to the
# caller's PIDS (which its trap kills). Polls /v2/ for up to 10 s. Sets PORT
# and R (host:port), makes $T/tmp and exports TMPDIR=$T/tmp.
lp_start_registry() {
	PORT=$(free_port)
	mkdir -p "$T/store" "$T/tmp"
	cat >"$T/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/store}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
YML
	docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
	PIDS+=($!)
	wait_up $! "$T/reg.log" 10 "the registry" curl -fsS "http://127.0.0.1:$PORT/v2/"
	R="127.0.0.1:$PORT"
	export TMPDIR="$T/tmp"
}

# --- the containerd stack of the snapshotter tests ----------------------------
# lp_stack_init sets REG_PID= SNAP_PID= CTRD_PID= (a pid while that daemon
# runs), ROOT (the snapshotter's), SOCK (its socket) and CSOCK (containerd's).

# lp_stack_init: containerd, ctr, ctr-remote, runc, docker-registry,
# skopeo, root and /dev/fuse are required (lp_skip_or_fail otherwise); sets
# the variables above (nothing running; ROOT, SOCK and CSOCK under $T).
lp_stack_init() {
	lp_require containerd ctr ctr-remote runc docker-registry skopeo
	lp_require_root "mounts, runc"
	lp_require_fuse
	REG_PID= SNAP_PID= CTRD_PID=
	ROOT="$T/snap" SOCK="$T/lazypull.sock" CSOCK="$T/ctrd/containerd.sock"
}

ctr_() { ctr --address "$CSOCK" "$@"; }

# lp_stack_registry LOG STORAGE: docker-registry on a free loopback port
# with the given log: and storage: settings (YAML; storage in $T/reg); up
# within 20 s or the test fails. Sets REG_PID, PORT, MPORT (a second free
# port, for the snapshotter's metrics) and R (host:port).
lp_stack_registry() {
	PORT=$(free_port)
	MPORT=$(free_port)
	R="127.0.0.1:$PORT"
	mkdir -p "$T/reg"
	cat >"$T/reg.yml" <<EOF
version: 0.1
log: $1
storage: $2
http: {addr: $R}
EOF
	docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
	REG_PID=$!
	wait_up "$REG_PID" "$T/reg.log" 20 "the registry" curl -fsS "http://$R/v2/"
}

# lp_stack_containerd EXTRA_DISABLED EXTRA_TOML: containerd 1.6 with its
# state in $T/ctrd, lazypull ($SOCK) as proxy snapshotter "lazypull";
# EXTRA_DISABLED (plugin IDs) are disabled too, EXTRA_TOML is appended to
# the configuration (scripts/containerd-conf.sh). Serving within 30 s or the test fails. Sets CTRD_PID.
# lp_cri_plugin_conf HOST...: containerd's CRI plugin section for a test
# (its snapshotter lazypull with the snapshot annotations, CNI directories
# under $T/cni made here, no TCP or CDI) with a plain-HTTP mirror entry for
# each registry HOST given; for lp_stack_containerd's second argument.
lp_cri_plugin_conf() {
	local h
	mkdir -p "$T/cni/bin" "$T/cni/conf"
	cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  enable_cdi = false
  disable_tcp_service = true
  stream_server_port = "0"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "lazypull"
  disable_snapshot_annotations = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$T/cni/bin"
  conf_dir = "$T/cni/conf"
EOF
	for h in "$@"; do
		cat <<EOF
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$h"]
  endpoint = ["http://$h"]
EOF
	done
}

lp_stack_containerd() {
	mkdir -p "$T/ctrd"
	lp_containerd_conf "$T/ctrd" "$CSOCK" "$1" "lazypull=$SOCK" "$2" >"$T/containerd.toml"
	containerd --config "$T/containerd.toml" >"$T/ctrd.log" 2>&1 &
	CTRD_PID=$!
	wait_up "$CTRD_PID" "$T/ctrd.log" 30 "containerd" ctr_ version
}

# lp_stack_stop (in a trap, after set +e): SIGKILL containerd's tasks, stop
# containerd, end this test's shims (they outlive containerd), stop the
# snapshotter (and tear down what it leaves mounted for its successor: its
# layers, its fd holder) and the registry; each only if it was started.
lp_stack_stop() {
	local c n p
	if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
		# delete, not only kill, in every namespace: runc keeps a task's
		# state machine-wide (/run/containerd/runc/NAMESPACE/ID) until
		# it is deleted, and a later run's container of the same ID
		# would be refused
		for n in $(timeout 5 ctr --address "$CSOCK" namespaces ls -q 2>/dev/null); do
			for c in $(timeout 5 ctr --address "$CSOCK" -n "$n" tasks ls -q 2>/dev/null); do
				timeout 5 ctr --address "$CSOCK" -n "$n" tasks delete -f "$c" >/dev/null 2>&1
			done
			for c in $(timeout 5 ctr --address "$CSOCK" -n "$n" containers ls -q 2>/dev/null); do
				timeout 5 ctr --address "$CSOCK" -n "$n" containers delete "$c" >/dev/null 2>&1
			done
		done
		kill "$CTRD_PID"
		wait "$CTRD_PID" 2>/dev/null
	fi
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CSOCK" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	if [ -n "$SNAP_PID" ] && kill -0 "$SNAP_PID" 2>/dev/null; then
		kill "$SNAP_PID"
		wait "$SNAP_PID" 2>/dev/null
		p=$?
		[ $p -eq 0 ] ||
			LP_STOP_ERR="the snapshotter exited with status $p on SIGTERM (it exits 0)"
	fi
	# SIGTERM leaves the layers mounted for the next daemon: end them and
	# the snapshotter's fd holder
	[ -n "$ROOT" ] && [ -d "$ROOT" ] &&
		"$LAZYPULL" snapshotter --root "$ROOT" --teardown >/dev/null 2>&1
	[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
	return 0
}

# lp_stack_finish RC SNAP_LINES CTRD_LINES (last in a trap): RC becomes 1
# when lp_stack_stop saw the snapshotter end badly; when RC is not 0, the
# tails of the snapshotter's and containerd's logs; then $T removed (kept,
# and said so, with LP_KEEP set); exit RC.
lp_stack_finish() {
	if [ "$1" -eq 0 ] && [ -n "${LP_STOP_ERR:-}" ]; then
		echo "[$LP_TEST] FAIL: $LP_STOP_ERR" >&2
		set -- 1 "$2" "$3"
	fi
	if [ "$1" -ne 0 ]; then
		echo "--- snapshotter log (tail)" >&2
		tail -"$2" "$T/snap.log" >&2 2>/dev/null
		echo "--- containerd log (tail)" >&2
		tail -"$3" "$T/ctrd.log" >&2 2>/dev/null
	fi
	if [ -n "${LP_KEEP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$1"
}
