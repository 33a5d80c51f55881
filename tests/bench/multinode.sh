#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Beyond one machine: NODES "nodes" cold-start the same eStargz image at once
# through one pull-through-cache mirror, next to one node alone with the same
# set-up in the same invocation (docs/benchmarks.md, "Four nodes behind one
# mirror"). Reports the bytes the origin sent over the image's bytes, the
# bytes the mirror sent over NODES x the image's bytes, and each node's time
# from `ctr-remote images rpull` to the workload's ready line.
#
# usage: multinode.sh [-n NODES] [-b BUILD_DIR] [-o RESULTS_DIR] [-r MBIT]
#                     [-d MS] [-N MBIT] [-s SECONDS]
#   -n NODES    nodes in the concurrent run (default 4); a run of 1 node
#               comes first, the same way
#   -r MBIT     the mirror's uplink to the origin, tc htb (default 100)
#   -d MS       one-way delay at the origin (default 10: a 20 ms RTT)
#   -N MBIT     each node's link to the mirror, tc htb (default 1000; 0: not
#               shaped)
#   -s SECONDS  after the last node is ready, wait up to SECONDS for the
#               nodes' background fetch to end (no byte through the mirror
#               for 3 s) before the final counts (default 120)
# Environment: LAZYPULL (the binary; default BUILD_DIR/cmd/lazypull),
# LP_BENCH_CACHE (default /var/cache/lazypull-bench: the python3 image
# layout tests/bench/coldstart.sh builds; this script builds none),
# LP_KEEP=1 keeps the scratch directory.
#
# The network (10.213.90.0/24, refused when in use):
#   origin namespace: docker-registry on its 127.0.0.1:5000, reached only
#     through tests/bench/delay_proxy.py on 10.213.90.2:5000 (the delay, and
#     the count of every byte the origin sends); veth to the host
#     10.213.90.1/30, shaped at -r MBIT both ways.
#   host: the mirror, docker-registry with `proxy: remoteurl:
#     http://10.213.90.2:5000` on a loopback port, reached only through a
#     second delay_proxy.py (no delay: the mirror's byte count) on
#     10.213.90.1:5000.
#   node i: a namespace with a veth to the host, 10.213.90.(64+4i+1)/30 on
#     the host end, .(64+4i+2) inside, default route to the host end (the
#     host does not forward: nodes reach the mirror, never the origin); in it
#     its own containerd and `lazypull snapshotter --registry-config-dir`
#     (entered with nsenter --net: the mount namespace is the host's, so
#     containerd sees the snapshotter's FUSE mounts).
# The image: the python3 image of coldstart.sh, converted with `lazypull
# convert` into the origin as 10.213.90.2:5000/python3:esgz; hosts.toml
# names the mirror first, the origin as server. Each node: `ctr-remote images
# rpull --hosts-dir DIR`, then `ctr run` of the image's command (python3
# importing 14 modules) to its line "python3 ready". Four runs, in this
# order: 1 node with a cold mirror (a new one, empty storage), 1 node with
# that mirror now warm (it has the blob and answers ranges with 206), then
# NODES nodes with a new cold mirror, NODES nodes with it warm. The nodes
# are cold in every run: new containerd and snapshotter roots, the page
# cache dropped. Needs root, /dev/fuse, containerd, runc, ctr-remote,
# docker-registry, ip, tc, nsenter. Everything it starts or mounts is undone
# on exit.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$SRC/tests/bench/coldstart_lib.py
DPROXY=$SRC/tests/bench/delay_proxy.py
. "$SRC/scripts/containerd-conf.sh"
export LC_ALL=C

nodes=4 build=$SRC/build results= up_mbit=100 delay_ms=10 node_mbit=1000 settle=120
cmdline="tests/bench/multinode.sh $*"
while getopts "n:b:o:r:d:N:s:" o; do
	case $o in
	n) nodes=$OPTARG ;;
	b) build=$OPTARG ;;
	o) results=$OPTARG ;;
	r) up_mbit=$OPTARG ;;
	d) delay_ms=$OPTARG ;;
	N) node_mbit=$OPTARG ;;
	s) settle=$OPTARG ;;
	*) sed -n 10,24p "$0" >&2; exit 2 ;;
	esac
done
[[ $nodes =~ ^[0-9]+$ ]] && [ "$nodes" -ge 1 ] && [ "$nodes" -le 15 ] || { echo "multinode: -n 1..15" >&2; exit 2; }
cache=${LP_BENCH_CACHE:-/var/cache/lazypull-bench}
LP=${LAZYPULL:-$build/cmd/lazypull}
results=${results:-$build/bench/multinode-$(date -u +%Y%m%d-%H%M%S)}
IMG=python3
READY='^python3 ready'

say() { echo "[multinode $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "multinode: $*" >&2; exit 1; }
now() { date +%s.%N; }

[ "$(id -u)" = 0 ] || die "needs root (netns, tc, mounts, containerd)"
[ -x "$LP" ] || die "no lazypull binary at $LP (-b BUILD_DIR or LAZYPULL=)"
[ -e /dev/fuse ] || die "no /dev/fuse"
for c in containerd ctr ctr-remote runc docker-registry ip tc curl nsenter python3; do
	command -v $c >/dev/null || die "$c is not installed (scripts/install-deps.sh)"
done
layout=$(ls -d "$cache"/coldstart-$IMG-*.oci 2>/dev/null | head -1)
[ -n "$layout" ] && [ -s "$layout/index.json" ] ||
	die "no $IMG image layout in $cache (run tests/bench/coldstart.sh -q -m lazy once)"

# --- scratch, network, daemons: all undone in cleanup --------------------------
T=$(mktemp -d /tmp/lp-multinode.XXXXXX)
NSO=lpmo$$ VOH=lpmoh$$ VON=lpmon$$
OH_IP=10.213.90.1 ON_IP=10.213.90.2
ORIGIN=$ON_IP:5000 MIRROR=$OH_IP:5000
REG_PID= OPROXY_PID= MIRROR_PID= MPROXY_PID= MCPORT=
declare -a NS VH VN HIP NIP CNS CTRD SNAP
for ((i = 0; i < nodes; i++)); do
	NS[i]=lpmn$$x$i VH[i]=lpmh$$x$i VN[i]=lpmv$$x$i CNS[i]=lpmn$$x$i
	HIP[i]=10.213.90.$((64 + 4 * i + 1)) NIP[i]=10.213.90.$((64 + 4 * i + 2))
	CTRD[i]= SNAP[i]=
done
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
# in_ns NETNS CMD...: CMD in NETNS (a foreground command; a daemon is
# started with nsenter itself, so that $! is its pid: nsenter execs it,
# where a backgrounded function would leave a shell between them)
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }

# stop_node I: node I's containers, containerd, shims, snapshotter, mounts
stop_node() {
	local - i=$1 c p m d=$T/n$1 sock=$T/n$1/ctrd/containerd.sock
	set +e
	if [ -n "${CTRD[i]}" ] && kill -0 "${CTRD[i]}" 2>/dev/null; then
		for c in $(timeout 5 ctr --address "$sock" -n "${CNS[i]}" tasks ls -q 2>/dev/null); do
			timeout 5 ctr --address "$sock" -n "${CNS[i]}" tasks kill -s KILL "$c" >/dev/null 2>&1
		done
		for c in $(timeout 5 ctr --address "$sock" -n "${CNS[i]}" containers ls -q 2>/dev/null); do
			timeout 10 ctr --address "$sock" -n "${CNS[i]}" tasks delete -f "$c" >/dev/null 2>&1
			timeout 5 ctr --address "$sock" -n "${CNS[i]}" containers delete "$c" >/dev/null 2>&1
		done
	fi
	stop_pid "${CTRD[i]}" 10
	CTRD[i]=
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $d/" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	stop_pid "${SNAP[i]}" 15
	SNAP[i]=
	# lazypull leaves its layers to its fd holder on SIGTERM: end both
	[ -d "$d/lazypull" ] && "$LP" snapshotter --root "$d/lazypull" --teardown >/dev/null 2>&1
	for m in $(mounts_under "$d"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$d" "/run/containerd/runc/${CNS[i]}"
}

stop_mirror() {
	stop_pid "$MPROXY_PID" 5
	stop_pid "$MIRROR_PID" 10
	MPROXY_PID= MIRROR_PID=
	rm -rf "$T/mirror"
}

cleanup() {
	local rc=$? i p ns
	set +e
	trap - EXIT INT TERM
	for ((i = 0; i < nodes; i++)); do stop_node $i; done
	stop_mirror
	for ns in "$NSO" "${NS[@]}"; do
		ip netns pids "$ns" >/dev/null 2>&1 || continue
		for p in $(ip netns pids "$ns"); do kill "$p" 2>/dev/null; done
		sleep 0.3
		for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null; done
	done
	[ -n "$REG_PID" ] && wait "$REG_PID" 2>/dev/null
	[ -n "$OPROXY_PID" ] && wait "$OPROXY_PID" 2>/dev/null
	ip link del "$VOH" 2>/dev/null
	for ((i = 0; i < nodes; i++)); do ip link del "${VH[i]}" 2>/dev/null; done
	for ns in "$NSO" "${NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
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
# ctl NETNS|- PORT COMMAND: one command to a delay proxy's control port
ctl() {
	local pre=()
	[ "$1" = - ] || pre=(nsenter "--net=/run/netns/$1" --)
	"${pre[@]}" python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.argv[2].encode()+b"\n"); print(s.makefile().readline().strip())' "$2" "$3"
}
ostats() { ctl "$NSO" 5001 "$1"; }
mstats() { ctl - "$MCPORT" "$1"; }
bytes_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bytes_down"])' "$1"; }

# htb DEV MBIT [NETNS]: shape DEV's egress
htb() {
	local x=()
	[ -z "${3:-}" ] || x=(ip netns exec "$3")
	"${x[@]}" tc qdisc add dev "$1" root handle 1: htb default 10
	"${x[@]}" tc class add dev "$1" parent 1: classid 1:10 htb rate "${2}mbit" ceil "${2}mbit" quantum 60000
}

# --- the network ------------------------------------------------------------------
ip -o addr show | grep -q " 10\.213\.90\." && die "10.213.90.0/24 is already in use here"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "origin namespace $NSO: $VOH $OH_IP/30 <-> $VON $ON_IP/30, $up_mbit Mbit/s, ${delay_ms} ms each way"
ip netns add "$NSO"
ip link add "$VOH" type veth peer name "$VON"
ip link set "$VON" netns "$NSO"
ip addr add "$OH_IP/30" dev "$VOH"
ip link set "$VOH" up
ip netns exec "$NSO" ip addr add "$ON_IP/30" dev "$VON"
ip netns exec "$NSO" ip link set "$VON" up
ip netns exec "$NSO" ip link set lo up
for ((i = 0; i < nodes; i++)); do
	ip netns add "${NS[i]}"
	ip link add "${VH[i]}" type veth peer name "${VN[i]}"
	ip link set "${VN[i]}" netns "${NS[i]}"
	ip addr add "${HIP[i]}/30" dev "${VH[i]}"
	ip link set "${VH[i]}" up
	ip netns exec "${NS[i]}" ip addr add "${NIP[i]}/30" dev "${VN[i]}"
	ip netns exec "${NS[i]}" ip link set "${VN[i]}" up
	ip netns exec "${NS[i]}" ip link set lo up
	ip netns exec "${NS[i]}" ip route add default via "${HIP[i]}"
done
say "$nodes node namespaces lpmn$$x0..$((nodes - 1)), 10.213.90.$((64 + 2)).. (node links: ${node_mbit} Mbit/s)"

# --- the origin: docker-registry behind a counting delay line --------------------
mkdir -p "$T/origin"
cat >"$T/origin.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/origin}}
http: {addr: "127.0.0.1:5000"}
EOF
nsenter --net="/run/netns/$NSO" -- docker-registry serve "$T/origin.yml" >"$T/origin.log" 2>&1 &
REG_PID=$!
nsenter --net="/run/netns/$NSO" -- python3 "$DPROXY" --listen "$ORIGIN" --target 127.0.0.1:5000 \
	--control 127.0.0.1:5001 >"$T/oproxy.log" 2>&1 &
OPROXY_PID=$!
wait_for 20 "the origin" curl -fsS "http://$ORIGIN/v2/"

say "lazypull convert of $layout into http://$ORIGIN/$IMG:esgz (no shaping yet)"
"$LP" -q convert --plain-http --registry-config-dir "" "oci:$layout:$IMG" "$ORIGIN/$IMG:esgz" \
	>"$T/convert.out" || die "lazypull convert"
REF=$ORIGIN/$IMG:esgz
# image bytes: the manifest, the config and every layer
read -r image_bytes layer_bytes nlayers < <(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$ORIGIN/v2/$IMG/manifests/esgz" | python3 -c '
import json, sys
raw = sys.stdin.buffer.read()
m = json.loads(raw)
l = sum(x["size"] for x in m["layers"])
print(len(raw) + m["config"]["size"] + l, l, len(m["layers"]))')
say "image: $image_bytes bytes ($nlayers layer(s), $layer_bytes bytes of layers)"

htb "$VOH" "$up_mbit"
htb "$VON" "$up_mbit" "$NSO"
ostats "delay $delay_ms" >/dev/null
if [ "$node_mbit" != 0 ]; then
	for ((i = 0; i < nodes; i++)); do
		htb "${VH[i]}" "$node_mbit"
		htb "${VN[i]}" "$node_mbit" "${NS[i]}"
	done
fi

# hosts.toml: the mirror first, the origin as server
mkdir -p "$T/certs.d/$ORIGIN"
cat >"$T/certs.d/$ORIGIN/hosts.toml" <<EOF
server = "http://$ORIGIN"

[host."http://$MIRROR"]
  capabilities = ["pull", "resolve"]
EOF

# start_mirror: a cold pull-through cache (empty storage) behind its counter
start_mirror() {
	local port
	port=$(free_port)
	MCPORT=$(free_port)
	mkdir -p "$T/mirror"
	cat >"$T/mirror.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/mirror}}
http: {addr: "127.0.0.1:$port"}
proxy: {remoteurl: "http://$ORIGIN"}
EOF
	docker-registry serve "$T/mirror.yml" >>"$T/mirror.log" 2>&1 &
	MIRROR_PID=$!
	python3 "$DPROXY" --listen "$MIRROR" --target "127.0.0.1:$port" \
		--control "127.0.0.1:$MCPORT" >>"$T/mproxy.log" 2>&1 &
	MPROXY_PID=$!
	wait_for 20 "the mirror" curl -fsS "http://$MIRROR/v2/"
}

# start_node I: node I's snapshotter and containerd, in its namespace
start_node() {
	local i=$1 d=$T/n$1
	mkdir -p "$d/ctrd"
	nsenter --net="/run/netns/${NS[i]}" -- "$LP" snapshotter --root "$d/lazypull" --address "$d/lazypull.sock" \
		--registry-config-dir "$T/certs.d" >"$d/snap.log" 2>&1 &
	SNAP[i]=$!
	lp_containerd_conf "$d/ctrd" "$d/ctrd/containerd.sock" io.containerd.grpc.v1.cri \
		"lazypull=$d/lazypull.sock" >"$d/containerd.toml"
	nsenter --net="/run/netns/${NS[i]}" -- containerd --config "$d/containerd.toml" >"$d/ctrd.log" 2>&1 &
	CTRD[i]=$!
}

# node_run I LOG: rpull + run to the ready line; writes LOG.json
node_run() {
	local i=$1 log=$2 d=$T/n$1 t0 t1 rc=0
	local ctr_=(--address "$d/ctrd/containerd.sock" -n "${CNS[i]}")
	t0=$(now)
	if in_ns "${NS[i]}" ctr-remote "${ctr_[@]}" images rpull --hosts-dir "$T/certs.d" \
		--snapshotter lazypull "$REF" >"$log.pull" 2>&1; then
		t1=$(now)
		python3 "$LIB" watch --regex "$READY" --timeout 600 --out "$log.ready" -- \
			ctr "${ctr_[@]}" run --snapshotter lazypull "$REF" c$i || rc=1
	else
		rc=1 t1=0
	fi
	python3 - "$i" "$rc" "$t0" "$t1" "$log" >"$log.json" <<'PY'
import json, os, sys
i, rc, t0, t1, log = sys.argv[1:]
r = {"node": int(i)}
if rc == "0":
    w = json.load(open(log + ".ready"))
    r.update(pull=float(t1) - float(t0), run=w["seconds"], total=float(t1) - float(t0) + w["seconds"])
else:
    r["error"] = "failed; see " + os.path.basename(log) + ".*"
print(json.dumps(r))
PY
}

# run_case N cold|warm: N cold nodes pulling at once, from a new mirror
# (cold: empty storage) or from the mirror of the run before (warm: it has
# the blobs, it answers ranges with 206); one JSON line
run_case() {
	local n=$1 mir=$2 i t0 settled last cur same=0 all_ready_m all_ready_o
	local lg=$results/logs/n$n-$mir
	mkdir -p "$results/logs"
	say "run: $n node(s) at once, $mir mirror"
	if [ "$mir" = cold ]; then
		stop_mirror
		start_mirror
	fi
	for ((i = 0; i < n; i++)); do start_node $i; done
	for ((i = 0; i < n; i++)); do
		wait_for 30 "node $i's snapshotter" test -S "$T/n$i/lazypull.sock"
		wait_for 30 "node $i's containerd" ctr --address "$T/n$i/ctrd/containerd.sock" version
	done
	sync
	echo 3 >/proc/sys/vm/drop_caches
	ostats reset >/dev/null
	mstats reset >/dev/null
	local pids=()
	for ((i = 0; i < n; i++)); do
		node_run $i "$lg-node$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	all_ready_o=$(bytes_of "$(ostats stats)")
	all_ready_m=$(bytes_of "$(mstats stats)")
	# the nodes' background fetch: until no byte moved through the mirror
	# for 3 s, or -s SECONDS
	t0=$SECONDS last=-1
	while [ $((SECONDS - t0)) -lt "$settle" ]; do
		cur=$(bytes_of "$(mstats stats)")
		if [ "$cur" = "$last" ]; then
			same=$((same + 1))
			[ $same -lt 3 ] || break
		else
			same=0
		fi
		last=$cur
		sleep 1
	done
	settled=$((SECONDS - t0))
	# a snapshotter that ended under the run (a failed node says why)
	local st
	for ((i = 0; i < n; i++)); do
		cp "$T/n$i/snap.log" "$lg-node$i.snap.log" 2>/dev/null || true
		if kill -0 "${SNAP[i]}" 2>/dev/null; then
			echo running >"$lg-node$i.snapstate"
		else
			st=0
			wait "${SNAP[i]}" 2>/dev/null || st=$?
			echo "exited with status $st" >"$lg-node$i.snapstate"
			say "node $i: its snapshotter exited with status $st during the run"
			SNAP[i]=
		fi
	done
	python3 - "$n" "$mir" "$image_bytes" "$all_ready_o" "$all_ready_m" "$(ostats stats)" "$(mstats stats)" \
		"$settled" "$lg" >>"$results/runs.jsonl" <<'PY'
import json, re, sys
n, mir, img, o_ready, m_ready, ost, mst, settled, lg = sys.argv[1:]
n, img = int(n), int(img)
ost, mst = json.loads(ost), json.loads(mst)
nodes = []
for i in range(n):
    r = json.load(open("%s-node%d.json" % (lg, i)))
    log = open("%s-node%d.snap.log" % (lg, i), errors="replace").read()
    r["spool"] = "into a spool" in log
    r["ranges_206"] = "honours Range requests (206)" in log
    r["snapshotter"] = open("%s-node%d.snapstate" % (lg, i)).read().strip()
    nodes.append(r)
print(json.dumps({"nodes": n, "mirror": mir, "image_bytes": img,
                  "origin_bytes_ready": int(o_ready), "mirror_bytes_ready": int(m_ready),
                  "origin_bytes": ost["bytes_down"], "origin_requests": ost["requests"],
                  "mirror_bytes": mst["bytes_down"], "mirror_requests": mst["requests"],
                  "settle_seconds": int(settled), "per_node": nodes}))
PY
	for ((i = 0; i < n; i++)); do stop_node $i; done
}

python3 - "$results/meta.json" "$cmdline" "$(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)" \
	"$nodes" "$up_mbit" "$delay_ms" "$node_mbit" "$image_bytes" "$layer_bytes" "$nlayers" "$load_before" <<'PY'
import json, platform, sys, time
out, cmd, commit, nodes, up, dl, nm, ib, lb, nl, load = sys.argv[1:]
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
json.dump({"command": cmd, "commit": commit, "nodes": int(nodes), "uplink_mbit": int(up),
           "origin_delay_ms": float(dl), "node_mbit": int(nm), "image_bytes": int(ib),
           "layer_bytes": int(lb), "layers": int(nl), "load_before": load,
           "cpus": "%d CPUs (%s)" % (len(cpu), cpu[0] if cpu else "?"),
           "kernel": "Linux " + platform.release(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, open(out, "w"), indent=1)
PY
: >"$results/runs.jsonl"
run_case 1 cold
run_case 1 warm
if [ "$nodes" != 1 ]; then
	run_case "$nodes" cold
	run_case "$nodes" warm
fi
stop_mirror
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$results" "$load_after" <<'PY' | tee "$results/results.md"
import json, os, statistics, sys
rdir, load_after = sys.argv[1:]
meta = json.load(open(os.path.join(rdir, "meta.json")))
runs = [json.loads(l) for l in open(os.path.join(rdir, "runs.jsonl")) if l.strip()]
img = meta["image_bytes"]
print("%s; %s; %s" % (meta["date"], meta["cpus"], meta["kernel"]))
print("`%s` (commit %s); image %.1f MB (%d layer(s)); origin link %d Mbit/s, %g ms RTT; "
      "node links %s; load average (1/5/15 min) %s before, %s after" % (
          meta["command"], meta["commit"], img / 1e6, meta["layers"], meta["uplink_mbit"],
          2 * meta["origin_delay_ms"],
          ("%d Mbit/s" % meta["node_mbit"]) if meta["node_mbit"] else "not shaped",
          meta["load_before"], load_after))
print()
print("| nodes | mirror | node | rpull s | run s | ready s | spool used | origin bytes / image (at ready; final) | mirror bytes / (nodes x image) (at ready; final) |")
print("|---|---|---|---|---|---|---|---|---|")
single = {}
for r in runs:
    n = r["nodes"]
    for k, x in enumerate(r["per_node"]):
        if "total" in x:
            t = "%.2f" % x["total"]
            if n == 1:
                single[r["mirror"]] = x["total"]
            pull, run = "%.2f" % x["pull"], "%.2f" % x["run"]
        else:
            t = pull = run = "FAILED"
            if x["snapshotter"] != "running":
                t += " (its snapshotter %s)" % x["snapshotter"]
        sp = "yes" if x["spool"] else "no"
        if x.get("ranges_206"):
            sp += " (206 learnt)"
        if k == 0:
            ob = "%.3f; %.3f" % (r["origin_bytes_ready"] / img, r["origin_bytes"] / img)
            mb = "%.3f; %.3f" % (r["mirror_bytes_ready"] / (n * img), r["mirror_bytes"] / (n * img))
        else:
            ob = mb = ""
        print("| %d | %s | %d | %s | %s | %s | %s | %s | %s |" % (n, r["mirror"] if k == 0 else "",
                                                             x["node"], pull, run, t, sp, ob, mb))
for r in runs:
    ts = [x["total"] for x in r["per_node"] if "total" in x]
    if r["nodes"] > 1 and ts and r["mirror"] in single:
        print()
        print("%d nodes at once, %s mirror: ready in %.2f s median, %.2f s slowest; one node alone: %.2f s "
              "(slowest/alone %.2fx)" % (r["nodes"], r["mirror"], statistics.median(ts), max(ts),
                                          single[r["mirror"]], max(ts) / single[r["mirror"]]))
for r in runs:
    print()
    print("%d node(s), %s mirror: origin sent %d bytes in %d requests (%d at the last ready line); mirror sent %d bytes "
          "in %d requests (%d at the last ready line); background fetch settled after %d s" % (
              r["nodes"], r["mirror"], r["origin_bytes"], r["origin_requests"], r["origin_bytes_ready"],
              r["mirror_bytes"], r["mirror_requests"], r["mirror_bytes_ready"], r["settle_seconds"]))
PY
say "results in $results"
