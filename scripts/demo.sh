#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo (README command 1): a container started lazily, end to end, on a
# fresh Debian 12 machine as root.
#   1. installs dependencies (scripts/install-deps.sh) and builds lazypull
#      (build-demo/, no tests)
#   2. under one temporary directory: a private docker-registry on loopback,
#      `lazypull snapshotter`, and containerd with its own config, root,
#      state and socket
#   3. builds a small busybox-static image with a 32 MiB file nobody reads,
#      converts it to eStargz with `lazypull convert` and pushes it
#   4. pulls it lazily (`ctr-remote images rpull --snapshotter lazypull`),
#      runs it (`ctr run --snapshotter lazypull`), and prints how long that
#      took and how many bytes came from the registry out of the image's size
#   5. stops everything and removes the temporary directory (also on errors
#      and Ctrl-C): no mounts, processes or files are left.
# LP_DEMO_KEEP=1 keeps the temporary directory (logs) for a look afterwards.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export LC_ALL=C

[ "$(id -u)" = 0 ] || { echo "demo: run me as root (mounts, containerd, runc)" >&2; exit 1; }
t_start=$(date +%s.%N)
step() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

step "installing dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
[ -e /dev/fuse ] || die "/dev/fuse is missing (FUSE is needed for lazy mounts)"

step "building lazypull (build-demo/)"
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLP_TESTS=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" >build-demo.log 2>&1 ||
	{ tail -30 build-demo.log >&2; die "build failed (build-demo.log)"; }
rm -f build-demo.log
LP=$top/build-demo/cmd/lazypull
"$LP" --version

# --- everything below lives in $T and is undone by cleanup -------------------
T=$(mktemp -d /tmp/lazypull-demo.XXXXXX)
REG_PID= SNAP_PID= CTRD_PID=
CSOCK=$T/ctrd/containerd.sock
ROOT=$T/snap
# a containerd namespace of our own: runc keeps container state under
# /run/containerd/runc/NAMESPACE, outside $T
CNS=lazypull-demo-$$

mounts_under() { # deepest first
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# stop_all RC: stops containerd (and its shims), the snapshotter (then
# --teardown unmounts its layers and stops its fd holder) and the registry, unmounts anything left under $T,
# and removes $T.
stop_all() {
	local rc=$1 m p
	set +e
	if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
		for c in $(timeout 5 ctr --address "$CSOCK" -n "$CNS" tasks ls -q 2>/dev/null); do
			timeout 5 ctr --address "$CSOCK" -n "$CNS" tasks kill -s KILL "$c" >/dev/null 2>&1
		done
		kill "$CTRD_PID"
		timeout 10 tail --pid="$CTRD_PID" -f /dev/null
		kill -9 "$CTRD_PID" 2>/dev/null
	fi
	# shims outlive containerd: end this demo's only
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CSOCK" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	if [ -n "$SNAP_PID" ] && kill -0 "$SNAP_PID" 2>/dev/null; then
		kill "$SNAP_PID"
		timeout 15 tail --pid="$SNAP_PID" -f /dev/null || kill -9 "$SNAP_PID"
	fi
	# SIGTERM leaves the layers to the fd holder: unmount them, stop it
	[ -n "$ROOT" ] && [ -d "$ROOT" ] &&
		"$LP" snapshotter --root "$ROOT" --teardown >/dev/null 2>&1
	[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "/run/containerd/runc/$CNS"
	for m in $(mounts_under "$T"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if [ $rc -ne 0 ]; then
		for f in snap.log ctrd.log reg.log; do
			[ -s "$T/$f" ] && { echo "--- $f (tail)" >&2; tail -15 "$T/$f" >&2; }
		done
	fi
	if [ "${LP_DEMO_KEEP:-0}" = 1 ]; then
		echo "kept $T (logs: snap.log ctrd.log reg.log)"
	else
		rm -rf "$T"
	fi
	set -e
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ $rc -eq 0 ] || echo "demo: failed; stopping everything" >&2
	stop_all $rc
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() { # wait_for SECONDS WHAT CMD...
	local n=$(($1 * 10)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || die "timed out waiting for $what"
		sleep 0.1
	done
}
ctr_() { ctr --address "$CSOCK" -n "$CNS" "$@"; }
metric_sum() { # the sum over every series of metric NAME
	curl -fsS "http://127.0.0.1:$MPORT/metrics" |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

step "starting a private registry, the lazypull snapshotter and containerd (in $T)"
PORT=$(free_port)
MPORT=$(free_port)
REG=127.0.0.1:$PORT
mkdir -p "$T/reg" "$T/ctrd"
cat >"$T/reg.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $T/reg}
http: {addr: $REG}
EOF
docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
REG_PID=$!
wait_for 20 "the registry" curl -fsS "http://$REG/v2/"
echo "registry     http://$REG (docker-registry, storage in $T/reg)"

# Background fetch off: the demo shows what a start really needs. (In
# production the rest of each layer follows at low priority.)
"$LP" snapshotter --root "$ROOT" --address "$T/lazypull.sock" \
	--metrics-address "127.0.0.1:$MPORT" --no-background-fetch >"$T/snap.log" 2>&1 &
SNAP_PID=$!
wait_for 20 "the snapshotter" test -S "$T/lazypull.sock"
echo "snapshotter  $T/lazypull.sock (metrics http://127.0.0.1:$MPORT/metrics)"

. "$top/scripts/containerd-conf.sh"
lp_containerd_conf "$T/ctrd" "$CSOCK" io.containerd.grpc.v1.cri \
	lazypull="$T/lazypull.sock" >"$T/containerd.toml"
containerd --config "$T/containerd.toml" >"$T/ctrd.log" 2>&1 &
CTRD_PID=$!
wait_for 30 "containerd" ctr_ version
echo "containerd   $CSOCK ($(containerd --version | awk '{ print $3 }'))"

step "building a small image: busybox-static + /etc/motd + 32 MiB of data it never reads"
python3 - "$T/layout" <<'PY'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
root = sys.argv[1]
os.makedirs(os.path.join(root, "blobs", "sha256"))
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", d[7:]), "wb") as f:
        f.write(data)
    return d
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    def add(name, typ=tarfile.REGTYPE, data=b"", mode=0o644, link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.linkname = typ, mode, 1672531200, link
        ti.size = len(data) if typ == tarfile.REGTYPE else 0
        t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp",
              "proc", "sys", "dev", "data"):
        add(d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
    add("bin/busybox", data=open("/bin/busybox", "rb").read(), mode=0o755)
    for a in sorted(subprocess.run(["/bin/busybox", "--list-full"], check=True,
                                   stdout=subprocess.PIPE).stdout.decode().split()):
        if a != "bin/busybox":
            add(a, tarfile.SYMTYPE, link="/bin/busybox")
    add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    add("etc/group", data=b"root:x:0:\n")
    add("etc/motd", data=b"Hello from a lazily pulled container!\n")
    # 32 MiB the workload never reads: random, so gzip cannot shrink it
    add("data/big.bin", data=os.urandom(32 << 20))
raw = buf.getvalue()
gz = gzip.compress(raw, compresslevel=6, mtime=0)
layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
         "digest": blob(gz), "size": len(gz)}
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["sh", "-c", "cat /etc/motd; echo \"/bin holds $(ls /bin | wc -l) programs\""]},
    "rootfs": {"type": "layers",
               "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
}).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": blob(config), "size": len(config)},
    "layers": [layer]}).encode()
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": blob(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "demo"}}]}, f)
print("OCI layout %s: one layer, %.1f MiB uncompressed, %.1f MiB gzip"
      % (root, len(raw) / 1048576, len(gz) / 1048576))
PY

step "lazypull convert: gzip image -> eStargz, pushed to $REG/demo:esgz"
"$LP" convert --plain-http -q "oci:$T/layout:demo" "$REG/demo:esgz" | sed 's/^/  /'
IMG=$REG/demo:esgz
BLOB_BYTES=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$REG/v2/demo/manifests/esgz" |
	python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')

step "ctr-remote images rpull --plain-http --snapshotter lazypull $IMG"
t0=$(now)
ctr-remote --address "$CSOCK" -n "$CNS" images rpull --plain-http --snapshotter lazypull "$IMG" \
	>"$T/rpull.out" 2>&1 || { cat "$T/rpull.out" >&2; die "rpull failed"; }
t1=$(now)
echo "  pulled in $(secs "$t0" "$t1") s: $(mounts_under "$ROOT/layers" | wc -l) layer mounted lazily (FUSE); only the manifest, config and TOC were downloaded"

step "ctr run --rm --snapshotter lazypull $IMG demo"
ctr_ run --rm --snapshotter lazypull "$IMG" demo >"$T/run.out" 2>&1 ||
	{ cat "$T/run.out" >&2; die "ctr run failed"; }
t2=$(now)
sed 's/^/  | /' "$T/run.out"
fetched=$(metric_sum lazypull_layer_fetched_bytes_total)
reads=$(metric_sum lazypull_layer_blob_reads_total)
mounts=$(mounts_under "$ROOT/layers" | wc -l)

step "result"
printf '  pull   %6s s   (ctr-remote rpull: manifest, config, TOC; layer mounted)\n' "$(secs "$t0" "$t1")"
printf '  run    %6s s   (ctr run: create, start, the output above, exit)\n' "$(secs "$t1" "$t2")"
printf '  total  %6s s   from the pull command to the container'"'"'s exit\n' "$(secs "$t0" "$t2")"
pct=$(awk -v a="$fetched" -v b="$BLOB_BYTES" 'BEGIN { printf "%.1f", 100 * a / b }')
echo "  fetched $(mib "$fetched") of the image's $(mib "$BLOB_BYTES") eStargz layer ($pct%) in $reads range reads"
echo "  (snapshotter metric lazypull_layer_fetched_bytes_total; $mounts lazy layer mount(s))"

step "stopping containerd, the snapshotter and the registry; removing $T"
trap - EXIT INT TERM
stop_all 0
left=$(mounts_under "$T" | wc -l)
[ "$left" = 0 ] || die "$left mounts left under $T"
for p in $CTRD_PID $SNAP_PID $REG_PID; do
	kill -0 "$p" 2>/dev/null && die "process $p still running"
done
echo "  done: no mounts, processes or files left behind"
printf '\ndemo finished in %s s\n' "$(secs "$t_start" "$(now)")"
