#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cold-start benchmark: from the pull command to a workload's ready line,
# over a shaped network, for a full pull (containerd's overlayfs snapshotter)
# and lazy pulls (lazypull, the reference stargz snapshotter), on
# debootstrap-built images (docs/benchmarks.md, "Cold start"); lazypull also
# on the unconverted gzip image through its gzip index (lazy-index), and
# through a signed index whose key the snapshotter trusts (lazy-index-signed).
#
# usage: coldstart.sh [-q] [-n REPS] [-b BUILD_DIR] [-o RESULTS_DIR]
#                     [-i "IMAGES"] [-p "PROFILES"] [-m "MODES"] [-w "WORKLOADS"]
#   -q        quick: python3, 100 Mbit/20 ms, every mode, 1 repetition
#   -n REPS   repetitions per case (default 3)
#   -i        images among: python3 gcc postgresql nodejs torch bigfile
#             (default: the first four; torch: the "AI" image, Debian's
#             python3-torch, `import torch`; bigfile: one 1 GiB file,
#             read sequentially by the image's command, next to a few host
#             binaries, ~540 MB gzip)
#   -p        profiles among: 1g 100m 20m (default all)
#   -m        modes among: overlay lazy lazy-opt lazy-index
#             lazy-index-signed lazy-index-opt lazy-index-signed-opt reference
#             reference-opt base-lazy base-lazy-opt (default all but
#             base-* and lazy-index (opt-in: through today's index reads
#             it is the slowest mode, docs/benchmarks.md); reference* are
#             skipped when refsnap cannot be built,
#             *lazy-opt when `lazypull optimize` is missing, lazy-index
#             when `lazypull index` is, base-* without LAZYPULL_BASE).
#             lazy-index: the gzip image the full pull
#             pulls, unconverted, indexed by `lazypull index` (pushed as a
#             referrer of its manifest before any shaping), rpull with
#             lazypull's snapshotter, which finds the index in the
#             registry; a run whose layer took the plain path instead
#             counts as failed. lazy-index-signed: the same gzip image
#             pushed to a second repository IMG-signed and indexed there
#             with `lazypull index --sign-key` (an Ed25519 key made for the
#             run), the snapshotter's config trusting its public key
#             (index_trusted_keys): reads start at any checkpoint (docs/
#             format.md "Signed indexes"); a run whose layer was not
#             mounted trusted counts as failed.
#             lazy-index-opt, lazy-index-signed-opt: the same two with
#             the image's prefetch profile (`lazypull optimize
#             --profile-only --output DIR` of the gzip image, the image
#             left as it is; the snapshotter given --index-dir DIR, where
#             it finds the profile by the manifest digest both
#             repositories share); a run whose layer applied no profile
#             counts as failed.
#             The index build is also timed on one core
#             (taskset -c 0, `lazypull index build` of the cached layer
#             file, CPU time, 3 times) for results.md.
#   -w        workloads among: start (the image's own command, what
#             `lazypull optimize` records) readall (read every file:
#             `tar -cf - --one-file-system / | wc -c` in the container)
#             (default: start)
# (-w start on bigfile is the 1 GiB file read sequentially.)
# Environment: LAZYPULL_BASE (a second lazypull binary, e.g. a build of
# main: the base-* modes run their snapshotter from it, on the same images
# as lazy*, interleaved, for a before/after under the same machine load),
# LP_INDEX_SPAN (lazy-index: `lazypull index --span-size`, default its own),
# LP_SNAP_ARGS (more options of every lazypull snapshotter run, as words,
# e.g. --no-background-fetch),
# LP_BENCH_CACHE (default /var/cache/lazypull-bench: rootfs
# tars, image layouts, the Go build cache), LP_BENCH_MIRROR (Debian mirror
# for debootstrap), LP_KEEP=1 keeps the scratch directory, LP_TRACE=1
# writes each run's link timeline (logs/*.trace, read with coldstart_lib.py
# trace), LP_PERF=1 a perf profile of the lazy snapshotters (logs/*.perf,
# perf record -g at 499 Hz from the pull to the ready line).
#
# The network: a network namespace with one veth pair, 10.213.77.1/30 on the
# host end and 10.213.77.2/30 inside; docker-registry listens inside on
# 10.213.77.2:5000 and nowhere else. Bandwidth: tc htb on both ends of the
# veth (egress each way). Latency: tests/bench/delay_proxy.py on
# 127.0.0.1 forwards to the registry, adding RTT/2 each way and counting
# bytes and requests; every client (containerd, the snapshotters, ctr) uses
# the proxy's loopback address. Images are pushed before any shaping.
#
# Each run is cold: new containerd root/state and snapshotter root, empty
# caches, page cache dropped. Needs root, /dev/fuse, containerd, runc,
# ctr-remote, docker-registry, skopeo; installs debootstrap and gnuplot with
# apt-get if missing. Everything it starts or mounts is undone on exit.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$SRC/tests/bench/coldstart_lib.py
. "$SRC/scripts/containerd-conf.sh"
export LC_ALL=C

reps=3 build=$SRC/build-bench results= quick=0
images="python3 gcc postgresql nodejs"
profiles="1g 100m 20m"
modes="overlay lazy lazy-opt reference reference-opt"
workloads=start
cmdline="tests/bench/coldstart.sh $*"
while getopts "qn:b:o:i:p:m:w:" o; do
	case $o in
	q) quick=1 ;;
	n) reps=$OPTARG ;;
	b) build=$OPTARG ;;
	o) results=$OPTARG ;;
	i) images=$OPTARG ;;
	p) profiles=$OPTARG ;;
	m) modes=$OPTARG ;;
	w) workloads=$OPTARG ;;
	*) sed -n 9,38p "$0" >&2; exit 2 ;;
	esac
done
if [ $quick = 1 ]; then
	images=python3 profiles=100m reps=1
fi
cache=${LP_BENCH_CACHE:-/var/cache/lazypull-bench}
mkdir -p "$cache" # a fresh machine has none
mirror=${LP_BENCH_MIRROR:-http://deb.debian.org/debian}
LP=${LAZYPULL:-$build/cmd/lazypull}
LPBASE=${LAZYPULL_BASE:-}
results=${results:-$build/bench/coldstart-$(date -u +%Y%m%d-%H%M%S)}

say() { echo "[coldstart $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "coldstart: $*" >&2; exit 1; }
now() { date +%s.%N; }

[ "$(id -u)" = 0 ] || die "needs root (netns, tc, mounts, containerd)"
[ -x "$LP" ] || die "no lazypull binary at $LP (-b BUILD_DIR or LAZYPULL=)"
[ -e /dev/fuse ] || die "no /dev/fuse"
for c in containerd ctr ctr-remote runc docker-registry skopeo ip tc curl; do
	command -v $c >/dev/null || die "$c is not installed (scripts/install-deps.sh)"
done
extras=()
command -v debootstrap >/dev/null || extras+=(debootstrap)
command -v gnuplot >/dev/null || extras+=(gnuplot-nox)
if [ ${#extras[@]} -gt 0 ]; then
	say "installing ${extras[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${extras[@]}" >&2 ||
		say "could not install ${extras[*]} (charts/new images will fail)"
fi

# --- images and workloads ----------------------------------------------------
# name -> debootstrap --include list, the command (JSON), its ready line
declare -A INC CMD READY
INC[python3]=python3
CMD[python3]='["python3", "-c", "import json, email.parser, http.client, asyncio, decimal, argparse, logging, urllib.request, xml.etree.ElementTree, csv, datetime, hashlib, random; print(\"python3 ready\")"]'
READY[python3]='^python3 ready'
INC[gcc]=gcc,libc6-dev
CMD[gcc]='["sh", "-c", "printf \"#include <stdio.h>\\nint main(void) { puts(\\\"gcc ready\\\"); return 0; }\\n\" >/tmp/hello.c && gcc -O2 -o /tmp/hello /tmp/hello.c && /tmp/hello"]'
READY[gcc]='^gcc ready'
INC[postgresql]=postgresql
# chmod 755 /: lazypull optimize before 0af8830 gave the container's root
# directory mode 0700 (its overlay upper directory's), which locked the
# postgres user out; kept for such builds, a no-op everywhere else.
CMD[postgresql]='["sh", "-c", "chmod 755 / && mkdir -p /tmp/pg && chown postgres /tmp/pg && setpriv --reuid=postgres --regid=postgres --clear-groups /usr/lib/postgresql/15/bin/initdb -D /tmp/pg --no-sync -A trust >/dev/null && exec setpriv --reuid=postgres --regid=postgres --clear-groups /usr/lib/postgresql/15/bin/postgres -D /tmp/pg -c listen_addresses= -k /tmp"]'
READY[postgresql]='ready to accept connections'
INC[nodejs]=nodejs
CMD[nodejs]='["node", "-e", "const http = require(\"http\"), crypto = require(\"crypto\"), zlib = require(\"zlib\"); console.log(\"node ready\", crypto.createHash(\"sha256\").update(\"x\").digest(\"hex\").slice(0, 8), Object.keys(http.STATUS_CODES).length, typeof zlib.gzipSync)"]'
READY[nodejs]='^node ready'
# torch: the "AI" image (about 1 GB: Debian's PyTorch and its dependencies)
INC[torch]=python3-torch
CMD[torch]='["python3", "-c", "import torch; print(torch.ones(3).sum())"]'
READY[torch]='^tensor\(3\.\)'
# bigfile: not debootstrap (build_bigfile_tar): dash, wc and their libraries
# from the host, and /big.bin, 1 GiB made at bench time (the same bytes
# every time): each 64 KiB is 32 KiB of AES-128-CTR keystream (key and IV
# zero: incompressible) then 32 KiB of zeros, so gzip halves it
INC[bigfile]=-
# (through cat: wc -c of a regular file takes its size from fstat)
CMD[bigfile]='["sh", "-c", "cat /big.bin | wc -c"]'
READY[bigfile]='^1073741824$'
for i in $images; do [ -n "${INC[$i]:-}" ] || die "unknown image $i"; done
# workloads other than the image's own command: the command given to
# `ctr containers create` after the container id, and its ready line. readall
# reads every file of the image once (the working set is the whole image):
# what a lazy pull must not lose on against a full pull.
declare -A WCMD WREADY
WCMD[readall]='tar -cf - --one-file-system / | wc -c | sed s/^/readall-bytes=/'
WREADY[readall]='^readall-bytes=[0-9]+'
for w in $workloads; do
	[ "$w" = start ] || [ -n "${WCMD[$w]:-}" ] || die "unknown workload $w"
done

# profile -> rate (Mbit), RTT (ms)
declare -A MBIT RTT
MBIT[1g]=1000 RTT[1g]=2
MBIT[100m]=100 RTT[100m]=20
MBIT[20m]=20 RTT[20m]=80
for p in $profiles; do [ -n "${MBIT[$p]:-}" ] || die "unknown profile $p"; done

# --- scratch, network, daemons: all undone in cleanup --------------------------
T=$(mktemp -d /tmp/lp-coldstart.XXXXXX)
NS=lpcold$$ VH=lpch$$ VN=lpcn$$
# containerd namespace: runc keeps container state under
# /run/containerd/runc/NAMESPACE whatever containerd's state dir is; ours is
# private to this run of the script and removed at the end
CNS=lpcold$$ RUNID=0
HOST_IP=10.213.77.1 NS_IP=10.213.77.2
REG_PID= PROXY_PID= CTRD_PID= SNAP_PID=
mkdir -p "$results"

mounts_under() { awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
stop_pid() { # stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS
	local -
	set +e
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
	kill "$1" 2>/dev/null
	timeout "$2" tail --pid="$1" -f /dev/null 2>/dev/null || kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null || true
}

# stop_run: containerd (its containers and shims) and the snapshotter of one
# run, then every mount and file of the run.
stop_run() {
	local - c p m
	set +e
	if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
		for c in $(timeout 5 ctr --address "$CSOCK" -n "$CNS" tasks ls -q 2>/dev/null); do
			timeout 5 ctr --address "$CSOCK" -n "$CNS" tasks kill -s KILL "$c" >/dev/null 2>&1
		done
		for c in $(timeout 5 ctr --address "$CSOCK" -n "$CNS" containers ls -q 2>/dev/null); do
			timeout 10 ctr --address "$CSOCK" -n "$CNS" tasks delete -f "$c" >/dev/null 2>&1
			timeout 5 ctr --address "$CSOCK" -n "$CNS" containers delete "$c" >/dev/null 2>&1
		done
	fi
	stop_pid "$CTRD_PID" 10
	CTRD_PID=
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $T/" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	stop_pid "$SNAP_PID" 15
	SNAP_PID=
	# lazypull leaves its layers to its fd holder on SIGTERM: end both
	[ -d "$T/run/lazypull" ] &&
		"$LP" snapshotter --root "$T/run/lazypull" --teardown >/dev/null 2>&1
	for m in $(mounts_under "$T/run"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	# Not deleted now: ext4 gives a new inode only after checking that
	# the free one was not deleted in the last seconds (recently_deleted,
	# one inode-table block read per free inode it passes), so the next
	# run's thousands of new files (overlayfs's unpacked snapshot,
	# lazypull's disk tier before its pack files) would pay for this run's
	# deletion: 1-2 s of kernel CPU per run, whichever mode ran before.
	# Put aside; the scratch directory goes at the end (cleanup), or the
	# oldest of them when the file system has less than 20 GB left.
	[ ! -e "$T/run" ] || mv "$T/run" "$T/old-run.$RUNID.$$.$RANDOM"
	local old
	while [ "$(df --output=avail -k "$T" | tail -1)" -lt 20000000 ]; do
		old=$(ls -dtr "$T"/old-run.* 2>/dev/null | head -1)
		[ -n "$old" ] || break
		rm -rf "$old"
	done
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_run
	stop_pid "$PROXY_PID" 5
	if ip netns pids "$NS" >/dev/null 2>&1; then
		for p in $(ip netns pids "$NS"); do kill "$p" 2>/dev/null; done
		sleep 0.5
		for p in $(ip netns pids "$NS"); do kill -9 "$p" 2>/dev/null; done
	fi
	[ -n "$REG_PID" ] && wait "$REG_PID" 2>/dev/null
	rm -rf "/run/containerd/runc/$CNS"
	ip link del "$VH" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	for m in $(mounts_under "$T"); do umount -l "$m" 2>/dev/null; done
	if [ -n "${LP_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for SECONDS WHAT CMD...
	local n=$(($1 * 20)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || die "timed out waiting for $what"
		sleep 0.05
	done
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
proxy() { # proxy COMMAND: one command to the delay proxy's control port
	python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.argv[2].encode()+b"\n"); print(s.makefile().readline().strip())' "$CPORT" "$1"
}

# --- network namespace, registry, delay proxy ------------------------------------
ip -o addr show | grep -q " 10\.213\.77\." && die "10.213.77.0/30 is already in use here"
say "network namespace $NS: $VH $HOST_IP/30 <-> $VN $NS_IP/30"
ip netns add "$NS"
ip link add "$VH" type veth peer name "$VN"
ip link set "$VN" netns "$NS"
ip addr add "$HOST_IP/30" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip addr add "$NS_IP/30" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up

mkdir -p "$T/reg"
cat >"$T/reg.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $T/reg}
http: {addr: "$NS_IP:5000"}
EOF
ip netns exec "$NS" docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
REG_PID=$!
wait_for 20 "the registry in $NS" curl -fsS "http://$NS_IP:5000/v2/"

PPORT=$(free_port)
CPORT=$(free_port)
python3 "$SRC/tests/bench/delay_proxy.py" --listen "127.0.0.1:$PPORT" \
	--target "$NS_IP:5000" --control "127.0.0.1:$CPORT" >"$T/proxy.log" 2>&1 &
PROXY_PID=$!
wait_for 10 "the delay proxy" curl -fsS "http://127.0.0.1:$PPORT/v2/"
REG=127.0.0.1:$PPORT
say "registry $NS_IP:5000 in $NS, reached through the delay proxy at $REG"

# shape PROFILE: htb at MBIT on both veth ends, RTT/2 in the proxy; "off" clears
shape() {
	local dev
	if [ "$1" = off ]; then
		tc qdisc del dev "$VH" root 2>/dev/null || true
		ip netns exec "$NS" tc qdisc del dev "$VN" root 2>/dev/null || true
		proxy "delay 0" >/dev/null
		return
	fi
	local rate=${MBIT[$1]}mbit
	for dev in "$VH" "@$VN"; do
		local x=()
		[ "${dev:0:1}" = @ ] && x=(ip netns exec "$NS") && dev=${dev:1}
		"${x[@]}" tc qdisc del dev "$dev" root 2>/dev/null || true
		"${x[@]}" tc qdisc add dev "$dev" root handle 1: htb default 10
		"${x[@]}" tc class add dev "$dev" parent 1: classid 1:10 htb rate "$rate" ceil "$rate" quantum 60000
	done
	proxy "delay $(awk -v r="${RTT[$1]}" 'BEGIN { print r / 2 }')" >/dev/null
}

# --- the reference snapshotter ---------------------------------------------------
REFSNAP=
if [[ " $modes " == *" reference"* ]]; then
	say "building the reference snapshotter (tests/bench/refsnap, Debian's Go sources)"
	mkdir -p "$T/gopath/src" "$cache"
	ln -s "$SRC/tests/bench/refsnap" "$T/gopath/src/refsnap"
	if (cd "$T/gopath/src/refsnap" && GO111MODULE=off GOPATH=/usr/share/gocode:$T/gopath GOFLAGS= \
		GOCACHE=$cache/gocache timeout 900 go build -o "$T/refsnap" .) >"$T/go.log" 2>&1; then
		REFSNAP=$T/refsnap
	else
		say "reference snapshotter did not build, its modes are skipped:"
		sed 's/^/    /' "$T/go.log" | tail -20 >&2
		cp "$T/go.log" "$results/refsnap-build.log"
	fi
fi
HAVE_OPT=0
"$LP" optimize --help >/dev/null 2>&1 && HAVE_OPT=1
[ $HAVE_OPT = 1 ] || say "lazypull optimize is missing in $LP: optimised images skipped"
HAVE_IDX=0
"$LP" index --help >/dev/null 2>&1 && HAVE_IDX=1
[ $HAVE_IDX = 1 ] || [[ " $modes " != *" lazy-index "* ]] ||
	say "lazypull index is missing in $LP: lazy-index skipped"

# --- build and push the images (no shaping yet) -----------------------------------
declare -A INFO
build_bigfile_tar() { # -> cached tar path
	local out=$cache/coldstart-bigfile.tar
	if [ ! -s "$out" ]; then
		say "bigfile: a rootfs with a 1 GiB /big.bin (once; cached as $out)"
		command -v openssl >/dev/null || die "openssl is not installed"
		python3 - "$out.tmp" <<'PY' || die "bigfile tar"
import io, os, subprocess, sys, tarfile
out = sys.argv[1]
files = ["/bin/sh", "/usr/bin/wc", "/usr/bin/cat"]
libs = set()
for f in files:
    for line in subprocess.run(["ldd", os.path.realpath(f)], capture_output=True, text=True).stdout.splitlines():
        w = line.split()
        p = w[2] if len(w) > 2 and w[1] == "=>" else w[0]
        if p.startswith("/"):
            libs.add(p)
def ti(name, **kw):
    t = tarfile.TarInfo(name.lstrip("/"))
    t.mtime = 0
    t.uid = t.gid = 0
    for k, v in kw.items():
        setattr(t, k, v)
    return t
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
    dirs = {"/dev", "/proc", "/sys", "/tmp", "/etc", "/run"}
    for p in files + sorted(libs):
        d = os.path.dirname(p)
        while d != "/":
            dirs.add(d)
            d = os.path.dirname(d)
    for d in sorted(dirs):
        tar.addfile(ti(d, type=tarfile.DIRTYPE, mode=0o1777 if d == "/tmp" else 0o755))
    for p in files + sorted(libs):
        data = open(os.path.realpath(p), "rb").read()
        tar.addfile(ti(p, size=len(data), mode=0o755), io.BytesIO(data))
    # 1 GiB: per 64 KiB, 32 KiB of keystream, 32 KiB of zeros
    ks = subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", "0" * 32, "-iv", "0" * 32,
                           "-in", "/dev/zero"], stdout=subprocess.PIPE)
    class Big(io.RawIOBase):
        left = 1 << 30
        def readable(self):
            return True
        def readinto(self, b):
            n = min(len(b), self.left, 64 << 10)
            n -= n % (64 << 10) if n >= 64 << 10 else 0
            n = n or min(len(b), self.left)
            out = bytearray()
            while len(out) < n:
                out += ks.stdout.read(32 << 10) + bytes(32 << 10)
            b[:n] = out[:n]
            self.left -= n
            return n
    tar.addfile(ti("/big.bin", size=1 << 30, mode=0o644), io.BufferedReader(Big(), 1 << 20))
    ks.kill()
PY
		mv "$out.tmp" "$out"
	fi
	echo "$out"
}
build_rootfs_tar() { # NAME -> cached tar path
	local name=$1 out=$cache/coldstart-$1.tar r
	[ "$name" != bigfile ] || { build_bigfile_tar; return; }
	if [ ! -s "$out" ]; then
		say "debootstrap --variant=minbase --include=${INC[$name]} bookworm (once; cached as $out)"
		r=$(mktemp -d "$cache/rootfs-$name.XXXXXX")
		debootstrap --variant=minbase --include="${INC[$name]}" bookworm "$r" "$mirror" \
			>"$T/debootstrap-$name.log" 2>&1 || { tail -20 "$T/debootstrap-$name.log" >&2; rm -rf "$r"; die "debootstrap $name"; }
		rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin
		tar -C "$r" --numeric-owner --xattrs --xattrs-include='*' --sort=name -cf "$out.tmp" . ||
			die "tar of $name"
		mv "$out.tmp" "$out"
		rm -rf "$r"
	fi
	echo "$out"
}

manifest_of() { # REPO TAG -> manifest JSON
	curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/$1/manifests/$2"
}
layer_bytes() { manifest_of "$1" "$2" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'; }

declare -A OPT_OK
DO_OPT=0 # optimised images only when a mode needs them
for m in $modes; do
	case $m in lazy-opt | reference-opt | base-lazy-opt) [ $HAVE_OPT = 0 ] || DO_OPT=1 ;; esac
done
DO_IDX=0 # the gzip image's index only when lazy-index runs
[ $HAVE_IDX = 1 ] && [[ " $modes " == *" lazy-index "* || " $modes " == *" lazy-index-opt "* ]] && DO_IDX=1
DO_SIG=0 # a signed index in IMG-signed only when lazy-index-signed* runs
if [ $HAVE_IDX = 1 ] && [[ " $modes " == *" lazy-index-signed "* || " $modes " == *" lazy-index-signed-opt "* ]]; then
	DO_SIG=1
	openssl genpkey -algorithm ed25519 -out "$T/idxkey.pem" 2>/dev/null || die "openssl genpkey"
	openssl pkey -in "$T/idxkey.pem" -pubout -out "$T/idxkey.pub" 2>/dev/null || die "openssl pkey"
	printf '{"index_trusted_keys": ["%s"]}\n' "$T/idxkey.pub" >"$T/trusted.json"
fi
# the gzip image's prefetch profile only when a lazy-index*-opt mode runs
DO_PROF=0
[ $HAVE_IDX = 1 ] && [ $HAVE_OPT = 1 ] && [[ " $modes " == *" lazy-index-opt "* || " $modes " == *" lazy-index-signed-opt "* ]] && DO_PROF=1
declare -A PROF_OK
idx_span=()
[ -z "${LP_INDEX_SPAN:-}" ] || idx_span=(--span-size "$LP_INDEX_SPAN")
# index_image IMG LAYOUT: the gzip image's index pushed as a referrer of its
# manifest (the snapshotter finds it there: docs/snapshotter.md, "Plain gzip
# layers"), then the build alone timed on one core on the layout's layer
# file, 3 times (a local file: the build also hashes the whole blob and
# checks the gzip CRCs, which `lazypull index` leaves to its fetch's digest
# check); writes $T/IMG.index (lazypull index's output) and
# $T/IMG.idxbuild.runs (each build's line and its CPU and wall seconds)
index_image() {
	local img=$1 layout=$2 dg md0 md1 i
	md0=$(curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REG/v2/$img/manifests/gzip" | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
	"$LP" -q index --plain-http "${idx_span[@]}" "$REG/$img:gzip" >"$T/$img.index" 2>"$T/$img.index.err" ||
		{ tail -20 "$T/$img.index.err" >&2; die "lazypull index $img"; }
	grep -q '^manifest=.* via=' "$T/$img.index" || die "lazypull index $img pushed nothing: $(cat "$T/$img.index")"
	md1=$(curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REG/v2/$img/manifests/gzip" | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
	if [ -z "$md0" ] || [ "$md0" != "$md1" ]; then
		die "$img: indexing changed the manifest digest ($md0 -> $md1)"
	fi
	dg=$(manifest_of "$img" gzip | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
	[ -s "$layout/blobs/sha256/${dg#sha256:}" ] || die "$img: no layer file ${dg#sha256:} in $layout"
	cat "$layout/blobs/sha256/${dg#sha256:}" >/dev/null # page cache: time the build, not the disk
	: >"$T/$img.idxbuild.runs"
	for i in 1 2 3; do
		/usr/bin/time -f 'time user=%U sys=%S wall=%e' -o "$T/$img.idxbuild.time" \
			taskset -c 0 "$LP" -q index build "${idx_span[@]}" "$layout/blobs/sha256/${dg#sha256:}" \
			"$T/$img.idxbuild.out" >"$T/$img.idxbuild.line" 2>"$T/$img.idxbuild.err" ||
			{ tail -5 "$T/$img.idxbuild.err" >&2; die "lazypull index build $img"; }
		echo "$(cat "$T/$img.idxbuild.line") $(cat "$T/$img.idxbuild.time")" >>"$T/$img.idxbuild.runs"
	done
	rm -f "$T/$img.idxbuild.out"
	say "$img: $(sed -n 's/.*\(index-size=[0-9]* ratio=[0-9.]*%\).*/\1/p' "$T/$img.index" | head -1); build on one core: $(sed -n 's/.*\(mb-per-cpu-s=[0-9.]*\).*/\1/p' "$T/$img.idxbuild.runs" | tr '\n' ' ')"
}
for img in $images; do
	tar=$(build_rootfs_tar "$img")
	key=$(printf '%s' "${CMD[$img]}" | sha256sum | cut -c1-12)
	layout=$cache/coldstart-$img-$key.oci
	if [ ! -s "$layout/index.json" ] || [ "$tar" -nt "$layout/index.json" ]; then
		say "$img: OCI layout (gzip -6 of $(($(stat -c %s "$tar") / 1000000)) MB)"
		rm -rf "$layout" "$layout.tmp"
		python3 "$LIB" layout "$tar" "$layout.tmp" "$img" "${CMD[$img]}" >/dev/null
		mv "$layout.tmp" "$layout"
	fi
	say "$img: push gzip, convert to eStargz"
	skopeo copy -q --dest-tls-verify=false "oci:$layout:$img" "docker://$REG/$img:gzip" ||
		die "skopeo copy $img"
	"$LP" -q convert --plain-http "oci:$layout:$img" "$REG/$img:esgz" >"$T/$img.convert" ||
		die "lazypull convert $img"
	if [ $DO_IDX = 1 ]; then
		say "$img: lazypull index (the gzip image, pushed as a referrer)"
		index_image "$img" "$layout"
	fi
	if [ $DO_SIG = 1 ]; then
		say "$img: the gzip image as $img-signed, lazypull index --sign-key"
		skopeo copy -q --dest-tls-verify=false "oci:$layout:$img" "docker://$REG/$img-signed:gzip" ||
			die "skopeo copy $img-signed"
		"$LP" -q index --plain-http "${idx_span[@]}" --sign-key "$T/idxkey.pem" \
			"$REG/$img-signed:gzip" >"$T/$img.sindex" 2>"$T/$img.sindex.err" ||
			{ tail -20 "$T/$img.sindex.err" >&2; die "lazypull index --sign-key $img"; }
		grep -q '^manifest=.* via=' "$T/$img.sindex" || die "lazypull index --sign-key $img pushed nothing"
	fi
	PROF_OK[$img]=0
	if [ $DO_PROF = 1 ]; then
		# the profile of the gzip image, written to $T/profiles/<manifest
		# hex>.profile; IMG and IMG-signed hold the same manifest
		say "$img: lazypull optimize --profile-only (workload until '${READY[$img]}')"
		mkdir -p "$T/profiles"
		"$LP" -q optimize --profile-only --output "$T/profiles" --plain-http --period 120 \
			--wait-line "${READY[$img]}" --tmpdir "$T" "$REG/$img:gzip" \
			>"$T/$img.profile" 2>"$T/$img.profile.err" ||
			{ tail -20 "$T/$img.profile.err" >&2; die "lazypull optimize --profile-only $img"; }
		stop=$(sed -n 's/^stop=//p' "$T/$img.profile")
		st=$(sed -n 's/^exit-status=//p' "$T/$img.profile")
		if [ "$stop" = wait-line ] || { [ "$stop" = exited ] && [ "$st" = 0 ]; }; then
			PROF_OK[$img]=1
			say "$img: profile $(sed -n 's/^recorded=//p' "$T/$img.profile") files, $(sed -n 's/^profile-size=//p' "$T/$img.profile") bytes"
		else
			say "$img: the workload did not reach '${READY[$img]}' under optimize --profile-only (stop=$stop, exit status $st): lazy-index*-opt skipped for $img"
		fi
	fi
	OPT_OK[$img]=0
	if [ $DO_OPT = 1 ]; then
		say "$img: lazypull optimize (workload until '${READY[$img]}')"
		"$LP" -q optimize --plain-http --period 120 --wait-line "${READY[$img]}" \
			--record-out "$T/$img.record" --tmpdir "$T" \
			"$REG/$img:esgz" "$REG/$img:opt" >"$T/$img.optimize" 2>"$T/$img.optimize.err" ||
			{ tail -20 "$T/$img.optimize.err" >&2; die "lazypull optimize $img"; }
		# the working set: compressed members of the recorded files in the
		# optimised layer (one layer per image)
		dg=$(manifest_of "$img" opt | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
		curl -fsS -o "$T/$img.opt.blob" "http://$REG/v2/$img/blobs/$dg"
		"$LP" layer inspect --toc "$T/$img.opt.blob" >"$T/$img.toc.json"
		tocoff=$("$LP" layer inspect "$T/$img.opt.blob" | sed -n 's/^toc-offset=//p')
		python3 "$LIB" workset "$T/$img.record" "$T/$img.toc.json" "$tocoff" >"$T/$img.workset"
		"$LP" layer inspect "$T/$img.opt.blob" | sed -n 's/^prefetch-size=//p' >"$T/$img.prefetch"
		rm -f "$T/$img.opt.blob"
		say "$img: $(grep -c . "$T/$img.record") files recorded, working set $(cat "$T/$img.workset")"
		# A record counts only if the workload got to its ready line (or
		# exited 0): one that failed half-way would prioritise the wrong files.
		stop=$(sed -n 's/^stop=//p' "$T/$img.optimize")
		st=$(sed -n 's/^exit-status=//p' "$T/$img.optimize")
		if [ "$stop" = wait-line ] || { [ "$stop" = exited ] && [ "$st" = 0 ]; }; then
			OPT_OK[$img]=1
		else
			say "$img: the workload did not reach '${READY[$img]}' under lazypull optimize (stop=$stop, exit status $st): optimised modes skipped for $img. Its output:"
			grep -v '^lazypull: ' "$T/$img.optimize.err" | tail -5 | sed 's/^/    /' >&2
			grep -v '^lazypull: ' "$T/$img.optimize.err" | tail -5 >"$T/$img.opt_error"
		fi
	fi
	INFO[$img]=$(python3 - "$img" "${CMD[$img]}" "$(layer_bytes "$img" gzip)" \
		"$(layer_bytes "$img" esgz)" "$( [ $DO_OPT = 1 ] && layer_bytes "$img" opt || echo 0)" \
		"$T/$img.workset" "$T/$img.prefetch" "$(stat -c %s "$tar")" "$T/$img.opt_error" \
		"$T/$img.index" "$T/$img.idxbuild.runs" <<'PY'
import json, os, statistics, sys
img, cmd, gz, es, op, ws, pf, raw, err, ix, ixb = sys.argv[1:]
d = {"workload": " ".join(json.loads(cmd)), "gzip_bytes": int(gz), "esgz_bytes": int(es),
     "opt_bytes": int(op), "uncompressed_bytes": int(raw)}
if os.path.exists(ws):
    w = json.load(open(ws))
    d.update(workset_bytes=w["bytes"], workset_files=w["files"], workset_members=w["members"])
    d["prefetch_bytes"] = int(open(pf).read().strip() or 0)
if os.path.exists(err):
    d["opt_error"] = "the workload failed under lazypull optimize: " + open(err).read().strip()
kv = lambda line: dict(w.split("=", 1) for w in line.split() if "=" in w)
lines = [kv(l) for l in open(ix) if l.startswith("layer=")] if os.path.exists(ix) else []
if lines:
    d["index_bytes"] = sum(int(l["index-size"]) for l in lines)
    d["index_layer_bytes"] = sum(int(l["layer-size"]) for l in lines)
    d["index_checkpoints"] = sum(int(l["checkpoints"]) for l in lines)
    d["index_files"] = sum(int(l["files"]) for l in lines)
    d["index_via"] = " ".join(kv(l)["via"] for l in open(ix) if l.startswith("manifest="))
    # lazypull index's own build from the registry: the fetch checked the
    # layer digest, so the build neither hashes the blob nor checks CRCs
    d["index_push_cpu_s"] = sum(float(l["cpu-seconds"]) for l in lines)
if os.path.exists(ixb):
    runs = [kv(l) for l in open(ixb) if l.strip()]
    # the process's CPU time (user + sys: reading the file included) and
    # the build's own (its one thread), per run
    cpu = [float(r["user"]) + float(r["sys"]) for r in runs]
    own = [float(r["cpu-seconds"]) for r in runs]
    mb = int(runs[0]["layer-size"]) / 1e6
    d["index_build"] = {"runs": len(runs), "layer_mb": mb, "process_cpu_s": cpu, "build_cpu_s": own,
                        "wall_s": [float(r["wall"]) for r in runs],
                        "mb_per_cpu_s": mb / statistics.median(cpu),
                        "mb_per_build_cpu_s": mb / statistics.median(own)}
print(json.dumps(d))
PY
)
done

# --- one cold run ---------------------------------------------------------------
CSOCK=
start_containerd() { # writes the config for this run's snapshotter and starts
	mkdir -p "$T/run/ctrd"
	CSOCK=$T/run/ctrd/containerd.sock
	lp_containerd_conf "$T/run/ctrd" "$CSOCK" io.containerd.grpc.v1.cri \
		"lazypull=$T/run/lazypull.sock stargz=$T/run/stargz.sock" >"$T/run/containerd.toml"
	containerd --config "$T/run/containerd.toml" >"$T/run/ctrd.log" 2>&1 &
	CTRD_PID=$!
	wait_for 30 "containerd" ctr --address "$CSOCK" -n "$CNS" version
}

# run_one IMAGE PROFILE MODE REP WORKLOAD: appends one JSON line to runs.jsonl
run_one() {
	local img=$1 prof=$2 mode=$3 rep=$4 wl=$5 snap ref tag pullcmd mport= t0 t1= t2= rc=0 log
	local ready=${READY[$img]} args=()
	if [ "$wl" != start ]; then
		ready=${WREADY[$wl]}
		args=(sh -c "${WCMD[$wl]}")
	fi
	stop_run
	mkdir -p "$T/run"
	RUNID=$((RUNID + 1))
	local c1=c$RUNID c2=w$RUNID
	log=$results/logs/$img-$wl-$prof-$mode-$rep
	mkdir -p "$results/logs"
	case $mode in
	lazy | reference | base-lazy) tag=esgz ;;
	lazy-opt | reference-opt | base-lazy-opt) tag=opt ;;
	overlay | lazy-index*) tag=gzip ;;
	esac
	ref=$REG/$img:$tag
	local snapcfg=()
	case $mode in
	lazy-index-signed*) ref=$REG/$img-signed:$tag snapcfg=(--config "$T/trusted.json") ;;
	esac
	case $mode in
	lazy-index*-opt) snapcfg+=(--index-dir "$T/profiles") ;;
	esac
	sync
	echo 3 >/proc/sys/vm/drop_caches
	case $mode in
	lazy* | base-lazy*)
		snap=lazypull
		mport=$(free_port)
		local snapbin=$LP
		[[ $mode != base-* ]] || snapbin=$LPBASE
		# shellcheck disable=SC2086 # LP_SNAP_ARGS: words
		"$snapbin" snapshotter "${snapcfg[@]}" --root "$T/run/lazypull" --address "$T/run/lazypull.sock" \
			--metrics-address "127.0.0.1:$mport" ${LP_SNAP_ARGS:-} >"$T/run/snap.log" 2>&1 &
		SNAP_PID=$!
		wait_for 20 "the lazypull snapshotter" test -S "$T/run/lazypull.sock"
		pullcmd=(ctr-remote --address "@CSOCK@" -n "$CNS" images rpull --plain-http --snapshotter lazypull "$ref")
		;;
	reference*)
		snap=stargz
		"$REFSNAP" "$T/run/stargz" "$T/run/stargz.sock" >"$T/run/snap.log" 2>&1 &
		SNAP_PID=$!
		wait_for 20 "the reference snapshotter" test -S "$T/run/stargz.sock"
		pullcmd=(ctr-remote --address "@CSOCK@" -n "$CNS" images rpull --plain-http --snapshotter stargz "$ref")
		;;
	overlay)
		snap=overlayfs
		pullcmd=(ctr --address "@CSOCK@" -n "$CNS" images pull --plain-http --snapshotter overlayfs "$ref")
		;;
	esac
	start_containerd
	pullcmd=("${pullcmd[@]/@CSOCK@/$CSOCK}")
	proxy reset >/dev/null
	[ -z "${LP_TRACE:-}" ] || proxy "trace $log.trace" >/dev/null
	local perfpid=
	if [ -n "${LP_PERF:-}" ] && [ -n "$SNAP_PID" ]; then
		perf record -q -g -F 499 -p "$SNAP_PID" -o "$log.perf" >/dev/null 2>&1 &
		perfpid=$!
	fi
	local pids=(--pid "$CTRD_PID")
	[ -n "$SNAP_PID" ] && pids=(--pid "$SNAP_PID" --pid "$CTRD_PID")
	t0=$(now)
	if "${pullcmd[@]}" >"$log.pull" 2>&1 &&
		{ t1=$(now); ctr --address "$CSOCK" -n "$CNS" containers create --snapshotter "$snap" -- "$ref" "$c1" "${args[@]}" >"$log.create" 2>&1; } &&
		{ t2=$(now); python3 "$LIB" watch --regex "$ready" --timeout 600 \
			--control "127.0.0.1:$CPORT" ${mport:+--metrics "http://127.0.0.1:$mport/metrics"} \
			"${pids[@]}" --out "$log.ready" -- ctr --address "$CSOCK" -n "$CNS" tasks start "$c1"; }; then
		:
	else
		rc=1
	fi
	[ -z "${LP_TRACE:-}" ] || proxy "trace off" >/dev/null
	# the snapshotter's CPU seconds (user + system) from its start to the
	# ready line: what it spent decoding, verifying, caching, serving FUSE
	if [ -n "$SNAP_PID" ] && [ -r "/proc/$SNAP_PID/stat" ]; then
		awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f %.2f\n", $12 / t, $13 / t }' \
			"/proc/$SNAP_PID/stat" >"$log.cpu" 2>/dev/null || true
	fi
	# lazypull's per-layer stats just after the ready line, or the
	# timeout (an index layer's gzip_index: checkpoints proven, the
	# proving pass's state)
	if [ "$snap" = lazypull ]; then
		local st
		for st in "$T"/run/lazypull/layers/*/.lazypull/stats; do
			[ -e "$st" ] || continue
			timeout 5 cat "$st" 2>/dev/null
			echo
		done >"$log.layerstats"
	fi
	if [ -n "$perfpid" ]; then
		kill -INT "$perfpid" 2>/dev/null
		wait "$perfpid" 2>/dev/null || true
	fi
	if [ $rc = 0 ] && [ "$mode" = overlay ]; then
		# the warm local run of the ideal bound: the same image, now local
		# and in the page cache; create + start to the ready line
		timeout 10 ctr --address "$CSOCK" -n "$CNS" tasks kill -s KILL "$c1" >/dev/null 2>&1 || true
		local w0 w1
		w0=$(now)
		if ctr --address "$CSOCK" -n "$CNS" containers create --snapshotter "$snap" -- "$ref" "$c2" "${args[@]}" >/dev/null 2>&1 &&
			w1=$(now) &&
			python3 "$LIB" watch --regex "$ready" --timeout 120 --out "$log.warm" -- \
				ctr --address "$CSOCK" -n "$CNS" tasks start "$c2"; then
			python3 -c 'import json,sys; print(float(sys.argv[2]) - float(sys.argv[1]) + json.load(open(sys.argv[3]))["seconds"])' \
				"$w0" "$w1" "$log.warm" >"$log.warm.s"
		fi
	fi
	cp "$T/run/snap.log" "$log.snap.log" 2>/dev/null || true
	python3 - "$img" "$prof" "$mode" "$rep" "$rc" "$t0" "${t1:-0}" "${t2:-0}" "$log" "$wl" "$ready" \
		"$(cat /proc/loadavg)" >>"$results/runs.jsonl" <<'PY'
import json, os, re, sys
img, prof, mode, rep, rc, t0, t1, t2, log, wl, ready, load = sys.argv[1:]
t0, t1, t2 = float(t0), float(t1), float(t2)
r = {"image": img, "workload": wl, "profile": prof, "mode": mode, "rep": int(rep),
     "loadavg": [float(x) for x in load.split()[:3]]}
if rc == "0" and os.path.exists(log + ".ready"):
    w = json.load(open(log + ".ready"))
    # the ready line itself (readall: the byte count of the tar, the same
    # in every mode when every file was read whole)
    for line in open(log + ".ready.log", errors="replace"):
        if re.search(ready, line):
            r["ready_line"] = line.strip()
            break
    r.update(pull=t1 - t0, create=t2 - t1, run=w["seconds"], total=t2 - t0 + w["seconds"],
             bytes=w["proxy"]["bytes_down"], bytes_up=w["proxy"]["bytes_up"],
             requests=w["proxy"]["requests"], range_requests=w["proxy"]["range_requests"],
             connections=w["proxy"]["connections"])
    rss = w.get("peak_rss_kb") or []
    if mode != "overlay" and rss:
        r["rss_kb"] = rss[0]
    r["containerd_rss_kb"] = rss[-1] if rss else None
    m = w.get("metrics") or {}
    for k in ("lazypull_layer_fetched_bytes_total", "lazypull_layer_blob_reads_total",
              "lazypull_layer_prefetch_done_bytes", "lazypull_layer_background_done_bytes",
              "lazypull_layer_on_demand_fetch_seconds_count",
              "lazypull_layer_on_demand_fetch_seconds_sum",
              "lazypull_layer_on_demand_fetch_seconds_max",
              "lazypull_layer_cache_misses_total", "lazypull_remote_mount_seconds_total",
              "lazypull_index_mounts_total", "lazypull_fallbacks_total"):
        if k in m:
            r[k.replace("lazypull_", "")] = m[k]
    applied = m.get('lazypull_profile_lookups_total{result="applied"}')
    if applied is not None:
        r["profile_applied"] = applied
    # lazy-index measures a lazy mount through the index: a layer that took
    # the plain path (no_index, bad_index, ...) makes it a full pull
    if mode.startswith("lazy-index") and not m.get("lazypull_index_mounts_total"):
        r = {k: r[k] for k in ("image", "workload", "profile", "mode", "rep", "loadavg")}
        r["error"] = ("the layer was not mounted through its gzip index (index mounts %s, "
                      "fallbacks %s); see logs/%s.snap.log" % (
                          m.get("lazypull_index_mounts_total"), m.get("lazypull_fallbacks_total"),
                          os.path.basename(log)))
    if os.path.exists(log + ".cpu"):
        u, s = (float(x) for x in open(log + ".cpu").read().split())
        r["snap_cpu_s"] = u + s
        r["snap_cpu_user_s"], r["snap_cpu_sys_s"] = u, s
    # lazy-index*-opt measures prefetch by the image's profile
    if mode.startswith("lazy-index") and mode.endswith("-opt") and "error" not in r and \
            not applied:
        r = {k: r[k] for k in ("image", "workload", "profile", "mode", "rep", "loadavg")}
        r["error"] = "the layer applied no prefetch profile; see logs/%s.snap.log" % (
            os.path.basename(log))
    # lazy-index-signed* measures a trusted index: the layer's stats say so
    if mode.startswith("lazy-index-signed") and "error" not in r:
        st = open(log + ".layerstats", errors="replace").read() if os.path.exists(
            log + ".layerstats") else ""
        if '"trusted": true' not in st:
            r = {k: r[k] for k in ("image", "workload", "profile", "mode", "rep", "loadavg")}
            r["error"] = "the layer was not mounted trusting its signed index; see logs/%s.*" % (
                os.path.basename(log))
    if os.path.exists(log + ".warm.s"):
        r["warm"] = float(open(log + ".warm.s").read())
else:
    r["error"] = "failed; see logs/" + os.path.basename(log) + ".*"
print(json.dumps(r))
PY
	tail -1 "$results/runs.jsonl" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "total" in r:
    print("  %-10s %-8s %-6s %-13s #%d  pull %6.2f  create %5.2f  run %6.2f  total %6.2f s  %7.1f MB  %4d req  load %.2f%s  %s" % (
        r["image"], r["workload"], r["profile"], r["mode"], r["rep"], r["pull"], r["create"], r["run"], r["total"],
        r["bytes"] / 1e6, r["requests"], r["loadavg"][0],
        "  snap cpu %.2f s" % r["snap_cpu_s"] if "snap_cpu_s" in r else "", r.get("ready_line", "")))
else:
    print("  %-10s %-8s %-6s %-13s #%d  FAILED (%s)" % (r["image"], r["workload"], r["profile"], r["mode"], r["rep"], r["error"]))' >&2
	stop_run
}

# --- the runs ----------------------------------------------------------------------
active_modes=()
for m in $modes; do
	case $m in
	reference*) [ -n "$REFSNAP" ] || continue ;;
	base-*) [ -n "$LPBASE" ] && [ -x "$LPBASE" ] || continue ;;
	esac
	case $m in
	lazy-index*-opt) [ $HAVE_IDX = 1 ] && [ $HAVE_OPT = 1 ] || continue ;;
	*-opt) [ $HAVE_OPT = 1 ] || continue ;;
	lazy-index*) [ $HAVE_IDX = 1 ] || continue ;;
	esac
	active_modes+=("$m")
done
: >"$results/runs.jsonl"
python3 - "$results/meta.json" "$reps" "$cmdline" "$(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)" \
	"$images" "$profiles" "$workloads" "$("$LP" --version 2>/dev/null | head -1)" <<PY
import json, os, platform, subprocess, sys, time
out, reps, cmd, commit, images, profiles, workloads, lpver = sys.argv[1:]
info = {$(for i in $images; do printf '"%s": %s, ' "$i" "${INFO[$i]}"; done)}
prof = {$(for p in $profiles; do printf '"%s": {"mbit": %s, "rtt_ms": %s, "label": "%s Mbit/s + %s ms RTT", "short": "%sM-%sms"}, ' "$p" "${MBIT[$p]}" "${RTT[$p]}" "${MBIT[$p]}" "${RTT[$p]}" "${MBIT[$p]}" "${RTT[$p]}"; done)}
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
json.dump({"reps": int(reps), "command": cmd, "commit": commit, "images": images.split(),
           "lazypull": "$LP" + (" (" + lpver + ")" if lpver else ""),
           "workloads": workloads.split(), "profiles": profiles.split(), "image_info": info, "profile_info": prof,
           "cpus": "%d CPUs (%s)" % (len(cpu), cpu[0] if cpu else "?"),
           "kernel": "Linux " + platform.release(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, open(out, "w"), indent=1)
PY
declare -A CAL
say "runs: images [$images], workloads [$workloads], profiles [$profiles], modes [${active_modes[*]}], $reps repetition(s)"
for prof in $profiles; do
	shape "$prof"
	# calibration through the proxy: a fresh connection's /v2/ (2 round
	# trips: connect, request) and 8 MiB of a layer blob
	first=${images%% *}
	dg=$(manifest_of "$first" esgz | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
	cal=$(curl -fsS -o /dev/null -w '%{time_total} ' "http://$REG/v2/" &&
		curl -fsS -o /dev/null -r 0-8388607 -w '%{time_starttransfer} %{time_total}' "http://$REG/v2/$first/blobs/$dg")
	CAL[$prof]=$(echo "$cal" | awk '{ printf "{\"rtt_ms\": %.1f, \"mbit\": %.1f}", $1 * 1000 / 2, 8388608 * 8 / 1e6 / ($3 - $2) }')
	say "profile $prof: ${MBIT[$prof]} Mbit/s, ${RTT[$prof]} ms RTT; measured ${CAL[$prof]}"
	python3 - "$results/meta.json" "$prof" "${CAL[$prof]}" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["profile_info"][sys.argv[2]]["measured"] = json.loads(sys.argv[3])
json.dump(m, open(sys.argv[1], "w"), indent=1)
PY
	for img in $images; do
		for wl in $workloads; do
			for rep in $(seq 1 "$reps"); do
				for mode in "${active_modes[@]}"; do
					case $mode in
					lazy-index*-opt) [ "${PROF_OK[$img]}" = 1 ] || continue ;;
					*-opt) [ "${OPT_OK[$img]}" = 1 ] || continue ;;
					esac
					run_one "$img" "$prof" "$mode" "$rep" "$wl"
				done
			done
		done
	done
done
shape off
say "results in $results"
python3 "$LIB" report "$results"
