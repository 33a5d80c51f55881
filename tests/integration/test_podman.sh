#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cross-tool check: podman (Debian 12's 4.3, containers/storage 1.43) pulls
# images that `lazypull convert` wrote, partially, and runs them.
#
# Two busybox images share most of their files: A (make_oci_image.py's
# rootfs and second layer) and B (the same layers, each with one small file
# changed or added, so every layer blob differs). Both are converted to
# eStargz and to zstd:chunked and pushed to a loopback docker-registry whose
# access log counts the requests and bytes served per blob. For each format,
# in a fresh podman store with enable_partial_images:
#   - pulling A takes the partial path: podman's debug log says "Retrieved
#     partial blob" for every layer, and the registry answered every layer
#     request with 206 (Range), never a whole-blob 200;
#   - pulling B then fetches only what A did not have: under 5% of B's layer
#     bytes (containers/storage finds the other files by digest in A's
#     layers, from the TOC);
#   - `podman run` on B prints what the layers hold: busybox runs, files
#     fetched and files deduplicated have the right digests, a whiteout in
#     the upper layer hides a lower file.
#
# Isolation: the script re-runs itself in a private mount namespace
# (unshare -m) so that overlay mounts die with it and the blob-info cache
# c/image keeps in /var/lib/containers/cache is a scratch directory; podman
# gets its own storage.conf, containers.conf, registries.conf (the registry
# marked insecure) and policy.json, --root/--runroot/--tmpdir under the test
# directory, no network (--network none), cgroupfs under a cgroup parent of
# its own (removed at exit), the file events backend. The trap resets each
# store (podman system reset -f) and stops the registry.
#
# Machine facts (DESIGN.md §5, checked here): the host has cgroup v1 plus an
# empty v2 hierarchy, which crun 1.8 rejects ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2"), so runc is the runtime;
# root lacks CAP_SYS_RESOURCE, so default_ulimits are lowered; conmon's
# --log-level debug makes `podman run` wait 20 s for the exit file, so only
# the pulls run with debug logging.
set -euo pipefail

if [ -z "${LP_PODMAN_NS:-}" ]; then
	# (lib.sh's lp_require is not loaded yet: the same rule by hand)
	if ! command -v unshare >/dev/null; then
		[ "${LP_ALLOW_SKIP:-0}" = 1 ] && { echo "[test_podman] SKIP (LP_ALLOW_SKIP=1): unshare (util-linux) not installed" >&2; exit 77; }
		echo "[test_podman] FAIL: unshare (util-linux) not installed" >&2
		exit 1
	fi
	LP_PODMAN_NS=1 exec unshare --mount --propagation private -- bash "$0" "$@"
fi

. "$(dirname "$0")/lib.sh"

lp_require docker-registry podman
grep -qw overlay /proc/filesystems || lp_skip_or_fail "the kernel has no overlay filesystem (podman's overlay driver needs it)"
if command -v runc >/dev/null; then
	RUNTIME=runc
elif command -v crun >/dev/null; then
	RUNTIME=crun
else
	lp_skip_or_fail "no OCI runtime (runc or crun)"
fi

CG="lp-podtest-$(basename "$T")" # cgroup parent of our containers
SCRATCH_MOUNT=
PIDS=()
STORES=()
cleanup() {
	local s d
	set +e # clean up everything, whatever fails
	for s in "${STORES[@]}"; do
		[ -d "$T/$s" ] || continue
		podman_in "$s" system reset -f >/dev/null 2>&1 || true
		# whatever reset left mounted (we are in our own namespace, but
		# rm -rf must not descend into a live overlay)
		grep -o " $T/${s}[^ ]*" /proc/self/mounts | sort -r |
			while read -r d; do umount -l "$d"; done 2>/dev/null
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for d in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	[ -z "$SCRATCH_MOUNT" ] || umount -l "$SCRATCH_MOUNT"
	rm -rf "$T"
}
trap cleanup EXIT

# c/image writes its blob-info cache under /var/lib/containers/cache as root,
# whatever --root says: give it a scratch directory in this namespace.
mkdir -p "$T/varlib-containers"
if [ -d /var/lib/containers ]; then
	mount --bind "$T/varlib-containers" /var/lib/containers || fail "cannot bind-mount over /var/lib/containers"
	SCRATCH_MOUNT=/var/lib/containers
else
	mount -t tmpfs -o size=16m lp-podtest /var/lib || fail "cannot mount a tmpfs over /var/lib"
	SCRATCH_MOUNT=/var/lib
fi

PORT=$(free_port)
R="127.0.0.1:$PORT"
mkdir -p "$T/regstore" "$T/tmp"
cat >"$T/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $T/regstore}}
http: {addr: $R}
YML
docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$R/v2/" && break; sleep 0.1; done
curl -sf -o /dev/null "http://$R/v2/" || fail "docker-registry did not start: $(tail -3 "$T/reg.log")"
export TMPDIR="$T/tmp"

# podman_conf STORE: the configuration files of one isolated podman store
podman_conf() {
	local s="$T/$1"
	mkdir -p "$s/conf" "$s/root" "$s/run" "$s/tmp" "$s/cni"
	cat >"$s/conf/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$s/root"
runroot = "$s/run"
[storage.options]
pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}
EOF
	cat >"$s/conf/containers.conf" <<EOF
[containers]
# root here lacks CAP_SYS_RESOURCE: podman's default raises nofile/nproc
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
network_config_dir = "$s/cni"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$s/events.log"
runtime = "$RUNTIME"
tmp_dir = "$s/tmp"
volume_path = "$s/root/volumes"
EOF
	cat >"$s/conf/registries.conf" <<EOF
unqualified-search-registries = []
[[registry]]
location = "$R"
insecure = true
EOF
	echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$s/conf/policy.json"
}

# podman_in STORE ARGS...: podman on that store only
podman_in() {
	local s="$T/$1"
	shift
	CONTAINERS_STORAGE_CONF="$s/conf/storage.conf" CONTAINERS_CONF="$s/conf/containers.conf" \
		CONTAINERS_REGISTRIES_CONF="$s/conf/registries.conf" \
		timeout 60 podman --root "$s/root" --runroot "$s/run" --tmpdir "$s/tmp" \
		--cgroup-manager cgroupfs --events-backend file --runtime "$RUNTIME" "$@"
}

say "building images A and B (busybox-static; B differs by one file per layer) as an OCI layout"
python3 - "$T/layout" "$LP_SOURCE_DIR/tests/integration" "$T/expect" <<'PY' || fail "could not build the test images"
import hashlib, io, json, sys, tarfile
sys.path.insert(0, sys.argv[2])
import make_oci_image as M

def with_file(tar, name, data):
    b = io.BytesIO(tar)
    with tarfile.open(fileobj=b, mode="a", format=tarfile.PAX_FORMAT) as t:
        M.add(t, name, data=data)
    return b.getvalue()

def file_of(tar, name):
    return tarfile.open(fileobj=io.BytesIO(tar)).extractfile(name).read()

L = M.Layout(sys.argv[1])
def image(tag, tars):
    # make_oci_image's own config has numeric Labels, which podman rejects
    cfg = {"architecture": "amd64", "os": "linux",
           "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": [M.sha(t) for t in tars]}}
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": L.desc("application/vnd.oci.image.config.v1+json", json.dumps(cfg).encode()),
         "layers": [L.desc("application/vnd.oci.image.layer.v1.tar+gzip", M.gz(t)) for t in tars]}
    L.tag(tag, m["mediaType"], json.dumps(m).encode())
r1, r2 = M.rootfs_tar(), M.second_tar()
# B: a file added to the rootfs, motd changed, and a file of the lower
# layer whited out (podman bind-mounts /etc/hostname, so the whiteout of
# make_oci_image's second layer cannot be seen from inside)
b1 = with_file(with_file(r1, "etc/b-release", b"image b\n"), "etc/lower-only", b"hidden\n")
b2 = with_file(M.second_tar(b"image b\n"), "etc/.wh.lower-only", b"")
image("a", [r1, r2])
image("b", [b1, b2])
L.finish()
with open(sys.argv[3], "w") as f:
    for p, data in (("/bin/busybox", file_of(b1, "bin/busybox")),
                    ("/srv/data.bin", file_of(b2, "srv/data.bin")),
                    ("/etc/motd", file_of(b2, "etc/motd")),
                    ("/etc/b-release", file_of(b1, "etc/b-release"))):
        f.write("%s  %s\n" % (hashlib.sha256(data).hexdigest(), p))
PY

# layers REF: "digest size" of each layer of the manifest REF names
layers() {
	curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/${1%%:*}/manifests/${1#*:}" |
		python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]:
    print(l["digest"], l["size"])'
}

for fmt in estargz zstd-chunked; do
	for img in a b; do
		lp_run "$T/out" "$T/err" timeout 60 "$LAZYPULL" convert -q --format "$fmt" \
			"oci:$T/layout:$img" "$R/pod/$img:$fmt" || { show_err "$T/err"; fail "convert $img to $fmt"; }
		layers "pod/$img:$fmt" >"$T/layers.$img.$fmt" || fail "manifest of pod/$img:$fmt"
	done
done
ok "lazypull convert pushed A and B as eStargz and zstd:chunked"

# served LOGSTART LAYERS: for the layer blobs listed in LAYERS, from the
# registry access log after line LOGSTART: "requests bytes full" per blob
# (full: how many were answered 200, i.e. the whole blob), one line each
served() {
	tail -n +"$(($1 + 1))" "$T/reg.log" | python3 -c '
import re, sys
want = [l.split()[0] for l in open(sys.argv[1])]
st = {d: [0, 0, 0] for d in want}
pat = re.compile(r"\"GET /v2/[^ ]*/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+\" (\d+) (\d+)")
for line in sys.stdin:
    m = pat.search(line)
    if m and m.group(1) in st:
        s = st[m.group(1)]
        s[0] += 1
        s[1] += int(m.group(3))
        s[2] += m.group(2) == "200"
for d in want:
    print(*st[d])' "$2"
}

# pull STORE REF: podman pull with debug logging (kept in $T/pull.log); sets
# SERVED (bytes of the layer blobs served), SIZE (their sizes), REQS
pull() {
	local store=$1 ref=$2 img=${2##*/} start d size reqs bytes full
	img=${img%%:*}
	start=$(wc -l <"$T/reg.log")
	lp_run "$T/pull.out" "$T/pull.log" podman_in "$store" --log-level debug pull \
		--signature-policy "$T/$store/conf/policy.json" "$R/$ref" || { show_err "$T/pull.log"; fail "podman pull $ref"; }
	sleep 0.2 # the access log line of the last response
	if grep -q 'Failed to retrieve partial blob' "$T/pull.log"; then
		grep 'Failed to retrieve partial blob' "$T/pull.log" | sed 's/^/    | /' >&2
		fail "podman pull $ref fell back to a full download"
	fi
	SERVED=0 SIZE=0 REQS=0
	served "$start" "$T/layers.$img.${ref##*:}" | paste -d' ' "$T/layers.$img.${ref##*:}" - >"$T/served"
	while read -r d size reqs bytes full; do
		grep -q "Retrieved partial blob $d" "$T/pull.log" ||
			{ show_err "$T/pull.log"; fail "$ref: no 'Retrieved partial blob $d' in podman's debug log"; }
		[ "$full" = 0 ] || fail "$ref: layer $d served whole ($full of $reqs GETs answered 200)"
		[ "$reqs" -ge 1 ] || fail "$ref: podman never asked the registry for layer $d"
		SERVED=$((SERVED + bytes)) SIZE=$((SIZE + size)) REQS=$((REQS + reqs))
	done <"$T/served"
	MISSING=$(sed -n 's/.*msg="\(Missing [0-9]* bytes out of [0-9]*\).*/\1/p' "$T/pull.log" | paste -sd';' -)
}

HOST_BB=$(sha256sum /bin/busybox | cut -d' ' -f1)
grep -q "^$HOST_BB  /bin/busybox$" "$T/expect" || fail "the image's busybox is not the host's"
for fmt in estargz zstd-chunked; do
	# a store per format: containers/storage 1.43 indexes the files of
	# other layers by the TOC including eStargz landmarks it never wrote
	# to disk, so a zstd:chunked pull after an eStargz one tries to copy
	# .no.prefetch.landmark from the eStargz layer, fails ("open source
	# file under target rootfs") and falls back to a full pull
	store="podman-$fmt"
	STORES+=("$store")
	podman_conf "$store"

	say "$fmt: podman pull A (fresh store)"
	pull "$store" "pod/a:$fmt"
	ok "$fmt A: partial pull of every layer ($REQS Range requests, all 206; $SERVED of $SIZE layer bytes; ${MISSING:-no Missing line})"
	A_SERVED=$SERVED A_SIZE=$SIZE

	say "$fmt: podman pull B (shares most files with A)"
	pull "$store" "pod/b:$fmt"
	[ $((SERVED * 20)) -lt "$SIZE" ] ||
		fail "$fmt B: podman fetched $SERVED of $SIZE layer bytes (want < 5%: the other files are in A's layers)"
	ok "$fmt B: partial pull fetched $SERVED of $SIZE layer bytes ($REQS Range requests; ${MISSING:-no Missing line})"
	echo "$fmt A $A_SERVED $A_SIZE B $SERVED $SIZE" >>"$T/numbers"

	say "$fmt: podman run B"
	lp_run "$T/run.out" "$T/run.err" podman_in "$store" run --rm --pull never --network none \
		--cgroup-parent "/$CG" "$R/pod/b:$fmt" /bin/busybox sh -c \
		'/bin/busybox echo hello; sha256sum /bin/busybox /srv/data.bin /etc/motd /etc/b-release; test -e /etc/lower-only && echo whiteout-ignored; exit 0' ||
		{ show_err "$T/run.err"; fail "$fmt: podman run"; }
	[ "$(head -1 "$T/run.out")" = hello ] || { show_err "$T/run.out"; show_err "$T/run.err"; fail "$fmt: podman run did not print hello"; }
	tail -n +2 "$T/run.out" >"$T/run.sums"
	same_file "$T/expect" "$T/run.sums" "$fmt: file digests inside the container"
	ok "$fmt: podman run B: hello; busybox, fetched and deduplicated files have their digests; whiteout hides the lower file"

	podman_in "$store" system reset -f >/dev/null 2>&1 || fail "$fmt: podman system reset"
	grep -q " $T/$store" /proc/self/mounts && fail "$fmt: mounts left after podman system reset"
done

say "numbers (layer bytes the registry served / layer blob bytes):"
while read -r fmt _ as az _ bs bz; do
	say "  $fmt: A $as / $az, B $bs / $bz ($(python3 -c "print('%.2f' % (100.0 * $bs / $bz))") %)"
done <"$T/numbers"
done_ok
