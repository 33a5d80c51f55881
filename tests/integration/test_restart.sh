#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Running containers survive restarts, crashes and upgrades of `lazypull
# snapshotter` (real containerd 1.6, runc, FUSE, overlayfs, docker-registry
# on loopback). Four containers read, each in a loop, files of a lazily
# mounted layer they have not read before (2 KiB each: every one is a new
# FUSE lookup and read, an on-demand fetch) and check each file's sha256
# against the image's list, while the daemon is:
#   A. kill -9'd and started again
#   B. SIGTERM'd (it must exit within 10 s while the containers read) and
#      started again from a copy of the binary in another directory
#   C. kept down for 10 s (readers block, then go on), with a start that
#      fails in between (metrics port taken): it leaves the layers alone
#   D. restarted 20 times in a row (SIGTERM and kill -9 alternating)
# Zero read errors, zero wrong bytes, every reader makes progress after
# each step; after each step a new container from the same image and one
# from an image never pulled before run.
#   E. the fd holder is killed while the daemon runs: the daemon starts a
#      new one and hands it every connection (a kill -9 after that still
#      resumes them); holder and daemon killed together: the next start
#      says so, clears the dead mounts, and new containers work
#   F. an fd holder of another protocol version is refused (said so,
#      stopped), and new containers work
#   G. the unserved timeout: with the daemon down past it, a reader gets
#      EIO instead of hanging, and reads again once a daemon is back
#   H. a read the daemon had taken from the kernel (its registry fetch
#      slowed to 3 s by a delay line) when it was killed is sent again to
#      the next daemon (FUSE_NOTIFY_RESEND) and answered
# Finally --teardown: no mounts, no lazypull processes, no fds left.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init
NFILES=4000
READERS=4
OUT="$T/out"
# container IDs: runc keeps its state per namespace machine-wide, and a
# killed run may leave some: unique to this run's directory, not its pid
# (pids repeat: 126 leftover rst<pid>-g0 made a CI run's g0 "already exist")
CID=rst${T##*.}-
HOLDER_PAT="[f]dholder --root $T/snap" # [f]: a pattern that does not match itself

cleanup() {
	local rc=$? m p
	set +e
	[ -d "$OUT" ] && touch "$OUT/stop"
	[ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null
	lp_stack_stop
	for p in $(pgrep -f "$HOLDER_PAT" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 60 20
}
trap cleanup EXIT

serving_count() { grep -c "snapshotter: serving" "$T/snap.log" 2>/dev/null || true; }

# start_snapshotter BINARY [ARGS]: start it, wait until it serves
start_snapshotter() {
	local bin=$1 started
	shift
	started=$(serving_count)
	"$bin" -v snapshotter --root "$ROOT" --address "$SOCK" \
		--metrics-address "127.0.0.1:$MPORT" \
		--no-background-fetch "$@" >>"$T/snap.log" 2>&1 &
	SNAP_PID=$!
	wait_for 30 "the snapshotter to serve" sh -c \
		"[ \$(grep -c 'snapshotter: serving' '$T/snap.log') -gt ${started:-0} ]"
}

# stop_snapshotter SIGNAL: signal it, wait for its end (SIGTERM: within 10 s)
stop_snapshotter() {
	local t0 t1
	t0=$(date +%s%N)
	kill -"$1" "$SNAP_PID"
	# until it is a zombie (our child: wait reaps it), at most 15 s
	for _ in $(seq 750); do
		case $(awk '{ print $3 }' /proc/"$SNAP_PID"/stat 2>/dev/null) in
		Z | "") break ;;
		esac
		sleep 0.02
	done
	t1=$(date +%s%N)
	local st=0
	wait "$SNAP_PID" 2>/dev/null || st=$?
	SNAP_PID=
	[ "$1" != TERM ] || [ $st -eq 0 ] ||
		fail "SIGTERM: the snapshotter exited with status $st (it exits 0)"
	LAST_STOP_MS=$(((t1 - t0) / 1000000))
	[ "$1" != TERM ] || [ $LAST_STOP_MS -lt 10000 ] ||
		fail "SIGTERM: the snapshotter took $LAST_STOP_MS ms to exit"
}

# reconnected: containerd redials the new daemon (its client backs off)
reconnected() {
	wait_for 20 "containerd to reconnect" ctr_ snapshots --snapshotter lazypull ls
}

progress() { cat "$OUT/r$1.n" 2>/dev/null || echo 0; }

# read_errors: every error line of every reader
read_errors() { cat "$OUT"/r*.log 2>/dev/null | grep -v '^done' || true; }

# readers_advance WHAT: each reader reads at least 5 more files within 60 s
readers_advance() {
	local k before=() deadline
	for k in $(seq 0 $((READERS - 1))); do before[k]=$(progress "$k"); done
	deadline=$((SECONDS + 60))
	for k in $(seq 0 $((READERS - 1))); do
		while [ "$(progress "$k")" -lt $((before[k] + 5)) ]; do
			[ $SECONDS -lt $deadline ] ||
				fail "$1: reader $k stuck at $(progress "$k") files"
			grep -q '^done' "$OUT/r$k.log" 2>/dev/null &&
				fail "$1: reader $k ran out of files (raise NFILES)"
			sleep 0.2
		done
	done
	[ -z "$(read_errors)" ] || fail "$1: read errors: $(read_errors | head -5)"
	ok "$1: all $READERS readers go on (files read: $(for k in $(seq 0 $((READERS - 1))); do printf '%s ' "$(progress "$k")"; done)), no error"
}

# run_out ID IMAGE CMD...: a new container's output, which it writes to a
# file in the bind-mounted $OUT: ctr's stdout copy can lose the output of a
# task that exits at once (a full run once failed D with "new container
# read ''", as test_snapshotter's part 7 lost lines before it did the same)
run_out() {
	local id=$1 img=$2
	shift 2
	rm -f "$OUT/$id.out"
	ctr_ run --rm --snapshotter lazypull --mount "type=bind,src=$OUT,dst=/out,options=rbind:rw" \
		"$img" "$id" sh -c 'exec "$@" >"/out/$0.out"' "$id" "$@" >/dev/null || return
	cat "$OUT/$id.out"
}

# new_containers WHAT K: a new container of the data image, and one of
# image small K, never pulled before
new_containers() {
	local out want
	reconnected
	want=$(sed -n 's/  f1234$//p' "$T/SUMS")
	out=$(run_out "${CID}n$2" "$DATA" sha256sum /data/f/f1234) ||
		fail "$1: a new container of the data image"
	[ "${out%% *}" = "$want" ] || fail "$1: new container read '$out'"
	lp_run "$T/rpull.out" "$T/rpull.err" ctr-remote --address "$CSOCK" images rpull \
		--plain-http --snapshotter lazypull "$REG/small:$2" || { show_err "$T/rpull.err"; fail "$1: rpull small$2"; }
	out=$(run_out "${CID}s$2" "$REG/small:$2" cat /id.txt) ||
		fail "$1: a container of a new image"
	[ "$out" = "small $2" ] || fail "$1: new image printed '$out'"
	ok "$1: new containers of the same and of a new image run"
}

# --- registry and images ---------------------------------------------------
lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}, delete: {enabled: true}}"
REG=$R
say "building and pushing the test images ($NFILES files)"
python3 "$LP_SOURCE_DIR/tests/integration/make_restart_image.py" "$T/layout" "$NFILES"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	"oci:$T/layout:data" "$REG/data:esgz" || { show_err "$T/conv.err"; fail "lazypull convert"; }
for k in 1 2 3 4 5 6; do
	lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
		"oci:$T/layout:small$k" "$REG/small:$k" || { show_err "$T/conv.err"; fail "convert small$k"; }
done
DATA="$REG/data:esgz"
ok "images converted and pushed"

# --- snapshotter, containerd, readers ------------------------------------
start_snapshotter "$LAZYPULL"
lp_stack_containerd "" ""
lp_run "$T/rpull.out" "$T/rpull.err" ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "$DATA" || { show_err "$T/rpull.err"; fail "rpull"; }
holder=$(pgrep -f "$HOLDER_PAT" || true)
[ -n "$holder" ] || fail "no fd holder process for $ROOT"
ok "the snapshotter started its fd holder (pid $holder)"

mkdir -p "$OUT"
# reader K of N [FROM]: the files whose number is K mod N (and at least
# FROM), in order, each checked
cat >"$OUT/reader.sh" <<'SH'
k=$1 n=$2 from=${3:-0} out=/out/r$1 c=0
cp /data/SUMS /tmp/SUMS || echo "ERR SUMS" >>"$out.log"
while read -r sum name; do
	i=${name#f}
	[ $((i % n)) -eq "$k" ] && [ "$i" -ge "$from" ] || continue
	[ -e /out/stop ] && break
	# ERR: the read failed; BAD: it succeeded with wrong bytes
	if got=$(sha256sum "/data/f/$name" 2>&1); then
		[ "${got%% *}" = "$sum" ] || echo "BAD $name: $got" >>"$out.log"
	else
		echo "ERR $name: $got" >>"$out.log"
	fi
	c=$((c + 1))
	echo "$c" >"$out.n.tmp" && mv "$out.n.tmp" "$out.n"
	usleep 40000
done </tmp/SUMS
echo done >>"$out.log"
SH
ctr_ run --rm --snapshotter lazypull "$DATA" "${CID}sums" cat /data/SUMS >"$T/SUMS"
[ "$(wc -l <"$T/SUMS")" = "$NFILES" ] || fail "SUMS has $(wc -l <"$T/SUMS") lines"
for k in $(seq 0 $((READERS - 1))); do
	touch "$OUT/r$k.log"
	ctr_ run -d --snapshotter lazypull \
		--mount "type=bind,src=$OUT,dst=/out,options=rbind:rw" \
		"$DATA" "${CID}reader$k" sh /out/reader.sh "$k" "$READERS" >/dev/null
done
readers_advance "before any restart"

# --- A. kill -9 ----------------------------------------------------------
say "A. kill -9 of the snapshotter, then a new one"
stop_snapshotter KILL
sleep 1
start_snapshotter "$LAZYPULL"
grep -q "resumed 1 layer(s) from the fd holder" "$T/snap.log" ||
	fail "A: no layer resumed: $(grep -i 'resum\|holder' "$T/snap.log" | tail -5)"
reconnected
readers_advance "A (kill -9)"
new_containers "A" 1
reads=$(curl -fsS "http://127.0.0.1:$MPORT/metrics" |
	awk '/^lazypull_layer_fuse_ops_total\{.*op="read"/ { s += $2 } END { print s + 0 }')
[ "$reads" -gt 0 ] || fail "A: no FUSE reads in the new daemon's metrics"
ok "A: metrics go on: the new daemon counts $reads FUSE reads on the resumed layers"
if "$LAZYPULL" snapshotter --root "$ROOT" --address "$T/second.sock" >"$T/second.log" 2>&1; then
	fail "a second daemon on the same root started"
fi
grep -q "another snapshotter (pid $SNAP_PID) is serving this root" "$T/second.log" ||
	fail "second daemon: $(cat "$T/second.log")"
ok "A: a second daemon on the same root is refused, naming the first"

# --- B. SIGTERM, then another build directory -----------------------------
say "B. SIGTERM while the readers run, then a copy of the binary elsewhere"
stop_snapshotter TERM
ok "B: SIGTERM: the daemon exited in $LAST_STOP_MS ms while $READERS containers read"
[ -n "$(mounts_under "$ROOT/layers")" ] || fail "B: SIGTERM unmounted the layers"
mkdir -p "$T/build2"
cp "$LAZYPULL" "$T/build2/lazypull"
start_snapshotter "$T/build2/lazypull"
[ "$(grep -c "resumed [0-9]* layer(s) from the fd holder" "$T/snap.log")" -ge 2 ] ||
	fail "B: nothing resumed"
reconnected
readers_advance "B (SIGTERM, new binary)"
new_containers "B" 2

# --- C. down for 10 s ------------------------------------------------------
say "C. no daemon for 10 s"
stop_snapshotter TERM
# meanwhile a daemon that cannot start (its metrics port is taken) after
# taking the layers: it must leave them to the holder, not unmount them
BUSY=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2], "w").close(); time.sleep(30)' "$BUSY" "$T/busy.ready" &
busy_pid=$!
wait_for 10 "port $BUSY to be taken" test -e "$T/busy.ready"
if "$LAZYPULL" -v snapshotter --root "$ROOT" --address "$SOCK" --no-background-fetch \
	--metrics-address "127.0.0.1:$BUSY" >>"$T/snap.log" 2>&1; then
	fail "C: a daemon whose metrics port is taken started"
fi
kill "$busy_pid" 2>/dev/null || true
grep -q "keeps the layers for the next start" "$T/snap.log" ||
	fail "C: the failed start did not leave the layers to the holder"
[ -n "$(mounts_under "$ROOT/layers")" ] ||
	fail "C: the failed start unmounted the layers (mounts under $ROOT: $(mounts_under "$ROOT" | tr '\n' ' '); holder: $(pgrep -fa "$HOLDER_PAT"); its log: $(tail -5 "$ROOT/fdholder.log" 2>/dev/null))"
before=$(progress 0) # (the failed daemon served for a moment)
sleep 10
during=$(progress 0)
[ "$during" -le $((before + 1)) ] ||
	fail "C: reader 0 read $((during - before)) new files with no daemon"
start_snapshotter "$LAZYPULL"
readers_advance "C (10 s without a daemon and a failed start: readers waited, then went on)"
new_containers "C" 3

# --- D. 20 restarts in a row -------------------------------------------------
say "D. 20 restarts in a row"
t0=$SECONDS
for i in $(seq 1 20); do
	# each stop lands while the readers read: one more file read first
	n=$(progress $((i % READERS)))
	wait_for 20 "reader $((i % READERS)) to read on" sh -c "[ \$(cat '$OUT/r$((i % READERS)).n') -gt $n ]"
	if [ $((i % 2)) = 0 ]; then stop_snapshotter KILL; else stop_snapshotter TERM; fi
	start_snapshotter "$LAZYPULL"
done
ok "D: 20 restarts in $((SECONDS - t0)) s"
reconnected
readers_advance "D (20 restarts)"
new_containers "D" 4

# --- the readers' totals -------------------------------------------------------
touch "$OUT/stop"
for k in $(seq 0 $((READERS - 1))); do
	wait_for 30 "reader $k to stop" grep -q '^done' "$OUT/r$k.log"
done
total=0
for k in $(seq 0 $((READERS - 1))); do total=$((total + $(progress "$k"))); done
[ -z "$(read_errors)" ] || fail "read errors: $(read_errors | head -5)"
ok "readers: $total files read and checked across 23 restarts, 0 errors, 0 wrong bytes"
for k in $(seq 0 $((READERS - 1))); do
	ctr_ tasks kill -s KILL "${CID}reader$k" >/dev/null 2>&1 || true
done
sleep 0.5
for k in $(seq 0 $((READERS - 1))); do
	ctr_ containers rm "${CID}reader$k" >/dev/null 2>&1 || ctr_ tasks rm -f "${CID}reader$k" >/dev/null 2>&1 || true
	ctr_ containers rm "${CID}reader$k" >/dev/null 2>&1 || true
done

# --- E. the holder killed ------------------------------------------------------
say "E. the fd holder killed"
holder=$(pgrep -f "$HOLDER_PAT")
kill -9 "$holder"
wait_for 10 "a new fd holder" sh -c "grep -q 'holds the [0-9]* mounted layer(s) again' '$T/snap.log'"
ok "E: the daemon saw its holder die and handed every connection to a new one"
stop_snapshotter KILL
start_snapshotter "$LAZYPULL"
n=$(grep -c "resumed [0-9]* layer(s) from the fd holder" "$T/snap.log")
[ "$(grep "resumed [0-9]* layer(s)" "$T/snap.log" | tail -1 | sed 's/.*resumed \([0-9]*\) layer.*/\1/')" -ge 1 ] ||
	fail "E: the new holder handed nothing back"
ok "E: a kill -9 after that still resumes the layers"
new_containers "E" 5
stop_snapshotter KILL
kill -9 "$(pgrep -f "$HOLDER_PAT")"
sleep 0.5
start_snapshotter "$LAZYPULL"
grep -q "no fd holder was running for $ROOT" "$T/snap.log" ||
	fail "E: the start did not say that the holder was gone"
grep -q "cleared [0-9]* stale mount" "$T/snap.log" || fail "E: dead mounts not cleared"
reconnected
out=$(run_out "${CID}e1" "$DATA" sha256sum /data/f/f1500)
[ "${out%% *}" = "$(sed -n 's/  f1500$//p' "$T/SUMS")" ] || fail "E: after holder loss: '$out'"
ok "E: holder and daemon killed: said so, dead mounts cleared, new containers run"

# --- F. a holder of another protocol ------------------------------------------
say "F. an fd holder of another protocol version"
stop_snapshotter TERM
kill "$(pgrep -f "$HOLDER_PAT")"
wait_for 10 "the holder to exit" sh -c "! pgrep -f '$HOLDER_PAT' >/dev/null"
"$LAZYPULL" fdholder --root "$ROOT" --protocol 99 >>"$T/snap.log" 2>&1 &
# until it accepts (the socket file is there from bind, before listen)
wait_for 10 "the foreign holder" python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(sys.argv[1])' "$ROOT/fdholder.sock"
start_snapshotter "$LAZYPULL"
grep -q "speaks protocol 99, this build speaks 1" "$T/snap.log" ||
	fail "F: no refusal of protocol 99"
[ "$(pgrep -fc "$HOLDER_PAT")" = 1 ] || fail "F: $(pgrep -fc "$HOLDER_PAT") holders run"
pgrep -f "$HOLDER_PAT --protocol" >/dev/null && fail "F: the foreign holder still runs"
reconnected # containerd redials after its back-off, as in the other parts
out=$(run_out "${CID}f1" "$REG/small:1" cat /id.txt)
[ "$out" = "small 1" ] || fail "F: '$out'"
ok "F: protocol 99 refused and stopped, layers cleared and remounted, containers run"

# --- G. the unserved timeout -------------------------------------------------
say "G. readers get EIO past the unserved timeout, then read again"
stop_snapshotter TERM
start_snapshotter "$LAZYPULL" --unserved-timeout 3
rm -f "$OUT/stop" "$OUT"/r[0-9]*
touch "$OUT/r0.log"
ctr_ run -d --snapshotter lazypull --mount "type=bind,src=$OUT,dst=/out,options=rbind:rw" \
	"$DATA" "${CID}g0" sh /out/reader.sh 0 1 $((1000 + NFILES - 800)) >/dev/null
wait_for 20 "reader g0 to start" sh -c "[ \$(cat '$OUT/r0.n' 2>/dev/null || echo 0) -gt 5 ]"
stop_snapshotter KILL
t0=$(date +%s%N)
wait_for 20 "EIO past the timeout" grep -q "^ERR" "$OUT/r0.log"
t1=$(date +%s%N)
# the reads blocked for the timeout (counted from the daemon's end) first
[ $(((t1 - t0) / 1000000)) -ge 2500 ] ||
	fail "G: an error $(((t1 - t0) / 1000000)) ms after the kill, before the 3 s timeout: $(head -3 "$OUT/r0.log")"
grep -q "^BAD" "$OUT/r0.log" && fail "G: wrong bytes: $(head -3 "$OUT/r0.log")"
# busybox's sha256sum says nothing on a read error: that the errors are
# the holder's EIO answers, its log says
grep -q "answering the requests to its [0-9]* layer(s) with EIO" "$ROOT/fdholder.log" ||
	fail "G: the holder did not answer EIO: $(tail -3 "$ROOT/fdholder.log")"
ok "G: with no daemon for 3 s, a read failed ($(((t1 - t0) / 1000000)) ms after the kill) instead of hanging: $(head -1 "$OUT/r0.log")"
n=$(progress 0)
start_snapshotter "$LAZYPULL" --unserved-timeout 3
wait_for 20 "reads again" sh -c "[ \$(cat '$OUT/r0.n') -gt $((n + 5)) ]"
ok "G: the same container reads again once a daemon serves"
touch "$OUT/stop"
ctr_ tasks kill -s KILL "${CID}g0" >/dev/null 2>&1 || true

# --- H. a read in flight at the kill -----------------------------------------
say "H. a read the daemon has taken and not answered when it is killed"
# the default unserved timeout again (G's daemon set 3 s in the holder): a
# slow claim on a loaded machine must not EIO the read in flight
stop_snapshotter TERM
start_snapshotter "$LAZYPULL"
DPORT=$(free_port)
CPORT=$(free_port)
python3 "$LP_SOURCE_DIR/tests/bench/delay_proxy.py" --listen "127.0.0.1:$DPORT" \
	--target "$REG" --delay-ms 0 --control "127.0.0.1:$CPORT" >"$T/proxy.log" 2>&1 &
PROXY_PID=$!
wait_for 10 "the delay proxy" curl -fsS "http://127.0.0.1:$DPORT/v2/"
ls "$ROOT/layers" >"$T/layers.before"
reconnected
lp_run "$T/rpull.out" "$T/rpull.err" ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "127.0.0.1:$DPORT/small:6" || { show_err "$T/rpull.err"; fail "H: rpull"; }
hex=$(ls "$ROOT/layers" | grep -vxF -f "$T/layers.before" | head -1)
[ -n "$hex" ] || fail "H: no new layer mount"
# from now on every registry round trip takes 3 s
exec 3<>/dev/tcp/127.0.0.1/"$CPORT"
echo "delay 1500" >&3
read -r _ <&3
exec 3>&-
t0=$SECONDS
cat "$ROOT/layers/$hex/id.txt" >"$T/h.out" 2>"$T/h.err" &
catpid=$!
sleep 1
kill -0 "$catpid" 2>/dev/null || fail "H: the read was served before the kill ($(cat "$T/h.out" "$T/h.err"))"
stop_snapshotter KILL
start_snapshotter "$LAZYPULL"
wait "$catpid" || fail "H: the read failed: $(cat "$T/h.err")"
[ "$(cat "$T/h.out")" = "small 6" ] || fail "H: read '$(cat "$T/h.out")'"
ok "H: a read in flight at the kill -9 was sent again to the new daemon and answered ($((SECONDS - t0)) s)"
kill "$PROXY_PID" 2>/dev/null
wait "$PROXY_PID" 2>/dev/null || true
PROXY_PID=

# --- teardown -------------------------------------------------------------------
say "teardown"
# deleted, not only killed: runc's state of a task outlives containerd
for c in $(ctr_ tasks ls -q 2>/dev/null); do timeout 10 ctr --address "$CSOCK" tasks delete -f "$c" >/dev/null 2>&1 || true; done
kill "$CTRD_PID"
wait "$CTRD_PID" 2>/dev/null || true
CTRD_PID=
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CSOCK" 2>/dev/null); do
	kill -9 "$p" 2>/dev/null || true # shims outlive containerd
done
stop_snapshotter TERM
[ -n "$(mounts_under "$ROOT/layers")" ] || fail "SIGTERM unmounted the layers"
"$LAZYPULL" snapshotter --root "$ROOT" --address "$SOCK" --teardown >>"$T/snap.log" 2>&1 ||
	fail "--teardown failed: $(tail -3 "$T/snap.log")"
[ -z "$(mounts_under "$ROOT")" ] || fail "teardown left mounts: $(mounts_under "$ROOT")"
pgrep -f "$HOLDER_PAT" >/dev/null && fail "teardown left the fd holder running"
pgrep -f -- "--root $ROOT" >/dev/null && fail "teardown left lazypull processes: $(pgrep -af -- "--root $ROOT")"
left=$(find /proc/[0-9]*/fd -lname "$T/*" 2>/dev/null | grep -v "^/proc/$REG_PID/" | head -3 || true)
[ -z "$left" ] || fail "teardown left fds open on $T: $left $(cat /proc/"$(echo "$left" | cut -d/ -f3 | head -1)"/cmdline 2>/dev/null | tr '\0' ' ')"
ok "teardown: no mounts, no lazypull processes, no fds left"
done_ok
