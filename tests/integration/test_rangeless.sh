#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A range-less host: Debian's docker-registry as a pull-through cache
# (`proxy: remoteurl`) answers a Range request for a blob it has not cached
# with 200 and the whole blob. An origin docker-registry holds an image of
# one eStargz layer (the reference converter's vector); a pull-through-cache
# docker-registry in front of it is what `lazypull mount --layer` is pointed
# at. Reading two small files, then every file: the mirror sends at most
# about 1x the layer (counted by a proxy in front of it), the origin is asked
# for the layer no more often than one miss of the mirror costs (the mirror
# itself fetches a missing blob twice: to serve it and to store it; counted
# by a proxy behind the mirror), every file matches GNU tar's extraction. The control: the same mount with the spool turned off
# (LAZYPULL_NO_SPOOL=1, the way before it) costs more than the bound for
# the same two files, so the bound can fail; it is shown on a host that
# always strips Range (fault_proxy.py in front of the origin, like an
# S3/CDN-backed registry), because the pull-through cache answers 206 once
# it has the blob. On that host: 8 threads of random reads at once make one
# request (the first finds out, the others wait); a reply cut in the middle
# is resumed from the spool's end, not fetched again; a 200 whose body is
# not the blob (one byte inverted) fails the mount with a clear error and
# reads by the registry client fail, never give the wrong bytes.
# Through hosts.toml (a mirror first, the origin as server): a fresh
# pull-through mirror sends at most 1.05x the layer for two small files and
# is the host learnt range-less (not the origin's name); a mirror whose
# stream is cut every time hands the spool to the origin, asked from the
# spool's end; a mirror whose whole blob does not verify is rejected and
# the blob is taken again from the origin (files right in each case).
# A reject (bytes that did not verify) blames the host that sent them: the
# mirror for its part of a read that moved to the origin half way, the
# host that fed the spool for bytes read from it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require docker-registry python3 curl
CLIENT="$LP_BUILD_DIR/tests/reg_client"
FPROXY="$LP_SOURCE_DIR/tests/integration/fault_proxy.py"
DPROXY="$LP_SOURCE_DIR/tests/bench/delay_proxy.py"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"
BOUND_PCT=105 # mirror bytes <= 1.05 x the layer

MOUNTS=()
PIDS=()
trap lp_cleanup EXIT

# registry NAME PORT [PROXY_URL]: docker-registry with its storage in
# $T/NAME, a pull-through cache of PROXY_URL when given
registry() {
	mkdir -p "$T/$1"
	{
		echo "version: 0.1"
		echo "log: {level: error, accesslog: {disabled: true}}"
		echo "storage: {filesystem: {rootdirectory: $T/$1}}"
		echo "http: {addr: 127.0.0.1:$2}"
		[ -z "${3:-}" ] || echo "proxy: {remoteurl: $3}"
	} >"$T/$1.yml"
	# a pull-through cache GETs its remote's /v2/ once as it starts and
	# panics when that fails: up to 3 starts, each failure shown
	local try
	for try in 1 2 3; do
		docker-registry serve "$T/$1.yml" >"$T/$1.log" 2>&1 &
		PIDS+=($!)
		[ -n "${3:-}" ] && [ $try -lt 3 ] || break
		sleep 1
		kill -0 $! 2>/dev/null && break
		echo "registry $1 exited at start: $(grep -m2 -iE 'panic|fatal' "$T/$1.log")" >&2
	done
	wait_up $! "$T/$1.log" 20 "registry $1" curl -fsS "http://127.0.0.1:$2/v2/"
}

# the mirror: origin <- FO (fault_proxy, passing: logs the mirror's
# requests) <- mirror <- DM (delay_proxy: counts the bytes it sends us);
# a host that strips Range (S3/CDN-like): origin <- FR (fault_proxy, modes
# rangeless*) <- DR (delay_proxy: counts)
OPORT=$(free_port) FOPORT=$(free_port) MPORT=$(free_port) FRPORT=$(free_port)
registry origin "$OPORT"
echo pass >"$T/mode-fo"
python3 "$FPROXY" "$FOPORT" "$OPORT" "$T/mode-fo" "$T/origin.log" &
PIDS+=($!)
echo pass >"$T/mode"
python3 "$FPROXY" "$FRPORT" "$OPORT" "$T/mode" "$T/fr.log" &
PIDS+=($!)
wait_for 10 "the origin's proxies" curl -fsS "http://127.0.0.1:$FOPORT/v2/" "http://127.0.0.1:$FRPORT/v2/"
registry mirror "$MPORT" "http://127.0.0.1:$FOPORT"
# counter NAME TARGET_PORT: a delay_proxy (no delay) counting bytes; sets
# NAME_PORT (to connect to) and NAME_CTL (its control port)
counter() {
	local p c
	p=$(free_port) c=$(free_port)
	python3 "$DPROXY" --listen "127.0.0.1:$p" --target "127.0.0.1:$2" \
		--delay-ms 0 --control "127.0.0.1:$c" >"$T/$1.log" 2>&1 &
	PIDS+=($!)
	wait_for 10 "counter $1" curl -fsS "http://127.0.0.1:$p/v2/"
	eval "${1}_PORT=$p ${1}_CTL=$c"
}
counter DM "$MPORT"
counter DR "$FRPORT"
O="127.0.0.1:$OPORT" M="127.0.0.1:$DM_PORT" F="127.0.0.1:$DR_PORT"

# sent CTL [reset]: bytes a counter has sent us (then zeroed with reset)
sent() {
	python3 - "$1" "${2:-stats}" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall((sys.argv[2] + "\n").encode())
print(json.loads(s.makefile().readline())["bytes_down"])
PY
}
# gets LOG DIGEST: GETs of that blob in a fault_proxy log
gets() { grep -c "^GET /v2/.*/blobs/$2 " "$1" || true; }

say "an image of one eStargz layer on the origin"
LAYER="$LP_VECTORS_DIR/v1-default.esgz"
cp "$LAYER" "$T/layer.esgz"
read -r LD LS < <("$CLIENT" push-blob "$O/lp/img:v1" "$T/layer.esgz") || fail "push of the layer"
printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
	"$(dpkg --print-architecture 2>/dev/null || echo amd64)" \
	"$(cat "$LP_VECTORS_DIR/v1-default.diff-id")" >"$T/config"
read -r CD CS < <("$CLIENT" push-blob "$O/lp/img:v1" "$T/config") || fail "push of the config"
cat >"$T/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CD","size":$CS},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$LD","size":$LS,
   "annotations":{"containerd.io/snapshot/stargz/toc.digest":"$(cat "$LP_VECTORS_DIR/v1-default.toc-digest")"}}]}
JSON
"$CLIENT" push-manifest "$O/lp/img:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null ||
	fail "push of the manifest"
REF="$T/ref"
mkdir -p "$REF"
tar -xzf "$LP_VECTORS_DIR/v1.tar.gz" -C "$REF" --same-owner --same-permissions \
	--numeric-owner --xattrs --xattrs-include='*' || fail "GNU tar could not extract v1.tar.gz"
# the two small files furthest into the blob: the costliest for a client
# that takes a whole blob up to each range
read -r F1 F2 < <(chunk_ranges "$LAYER" | awk '$2 - $1 < 65536 && $4 == 0 { print $1, $3 }' |
	sort -n | tail -2 | awk '{ printf "%s ", $2 } END { print "" }')
[ -n "$F1" ] && [ -n "$F2" ] && [ -f "$REF/$F1" ] && [ -f "$REF/$F2" ] || fail "no two small files in the layer"
ok "origin $O: layer $LD ($LS bytes); files $F1 and $F2"

# the mirror answers a range of a blob it has not cached with 200 and the
# whole blob (probed on the config: the layer stays uncached); what one
# such miss costs the origin is the most the mount may cost it
code=$(curl -s -o "$T/probe" -w '%{http_code}' -H 'Range: bytes=0-9' "http://$M/v2/lp/img/blobs/$CD")
[ "$code" = 200 ] && [ "$(stat -c %s "$T/probe")" = "$CS" ] ||
	fail "the pull-through mirror answered a range with HTTP $code, $(stat -c %s "$T/probe") bytes: not range-less"
# the mirror stores the blob on a thread of its own, with a GET of its own
# that may reach the origin after our reply: count once the blob is stored
CDATA="$T/mirror/docker/registry/v2/blobs/sha256/${CD:7:2}/${CD#sha256:}/data"
wait_for 20 "the mirror to store the config" test -s "$CDATA"
MISS=$(gets "$T/origin.log" "$CD")
[ "$MISS" -ge 1 ] || fail "the mirror did not ask the origin for the config"
ok "the pull-through mirror answers 'Range: bytes=0-9' of an uncached blob with 200 and all $CS bytes (it asked the origin $MISS time(s))"

lp_mount() { # MOUNTPOINT ARGS...
	local m=$1
	shift
	mkdir -p "$m"
	MOUNTS+=("$m")
	lp_run "$T/mount.out" "$T/mount.err" "$LAZYPULL" mount "$@" "$m" ||
		{ show_err "$T/mount.err"; fail "mount on $m failed"; }
	mountpoint -q "$m" || fail "$m is not a mount point"
}
read_two() { # MOUNTPOINT: the two small files, compared
	cmp "$1/$F1" "$REF/$F1" || fail "$F1 differs"
	cmp "$1/$F2" "$REF/$F2" || fail "$F2 differs"
}
MOPTS=(--layer 0 --no-prefetch --no-background-fetch --retries 3 --timeout 20)

say "mount through the mirror, read two small files"
mkdir -p "$T/cache"
sent "$DM_CTL" reset >/dev/null
lp_mount "$T/mnt" "${MOPTS[@]}" --cache-dir "$T/cache" --log-file "$T/mnt.log" "$M/lp/img:v1"
read_two "$T/mnt"
b=$(sent "$DM_CTL")
[ $((b * 100)) -le $((LS * BOUND_PCT)) ] ||
	fail "the mirror sent $b bytes for a layer of $LS (bound $BOUND_PCT%)"
ok "two small files: the mirror sent $b bytes for a layer of $LS ($((b * 1000 / LS))/1000)"
cat "$T/mount.err" "$T/mnt.log" >"$T/logs"
[ "$(grep -c "registry $M answers a Range request with the whole blob" "$T/logs")" = 1 ] ||
	{ cat "$T/logs" >&2; fail "the range-less host not logged exactly once"; }
ok "logged once: $(grep -m1 "answers a Range" "$T/logs" | cut -c1-150)"
ls "$T/cache" | grep -q spool && fail "a spool file left visible in the cache dir"

say "every file vs GNU tar, still from the one copy"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$T/mnt" 4 40 >"$T/cmp.out" ||
	fail "mount differs from GNU tar's extraction"
ok "every file: $(cat "$T/cmp.out")"
b=$(sent "$DM_CTL")
[ $((b * 100)) -le $((LS * BOUND_PCT)) ] ||
	fail "after reading everything the mirror had sent $b bytes for a layer of $LS"
n=$(gets "$T/origin.log" "$LD")
[ "$n" -le "$MISS" ] || fail "the origin was asked for the layer $n times (one miss of the mirror: $MISS)"
ok "reading everything: the mirror sent $b bytes in all; the origin was asked for the layer $n time(s), what one miss of the mirror costs"
lp_umount "$T/mnt"

say "a host that always strips Range: spool on, then off (the control)"
echo "rangeless 0" >"$T/mode"
sent "$DR_CTL" reset >/dev/null
lp_mount "$T/mnt" "${MOPTS[@]}" --log-file "$T/mnt-r.log" "$F/lp/img:v1"
read_two "$T/mnt"
b=$(sent "$DR_CTL")
[ $((b * 100)) -le $((LS * BOUND_PCT)) ] || fail "spool on: $b bytes for a layer of $LS"
ok "spool on: two small files cost $b bytes ($((b * 1000 / LS))/1000 of the layer)"
lp_umount "$T/mnt"
sent "$DR_CTL" reset >/dev/null
LAZYPULL_NO_SPOOL=1 lp_mount "$T/mnt" "${MOPTS[@]}" --log-file "$T/mnt-nospool.log" "$F/lp/img:v1"
read_two "$T/mnt"
b=$(sent "$DR_CTL")
[ $((b * 100)) -gt $((LS * BOUND_PCT)) ] ||
	fail "spool off: only $b bytes for $LS: the bound could not fail"
ok "spool off (LAZYPULL_NO_SPOOL=1, the old way): the same files cost $b bytes ($((b * 1000 / LS))/1000): over the bound"
lp_umount "$T/mnt"

say "a host that always strips Range, 8 threads of random reads at once"
: >"$T/fr.log"
sent "$DR_CTL" reset >/dev/null
"$CLIENT" check "$F/lp/img" "$LD" "$T/layer.esgz" 8 50 >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "random reads: $(cat "$T/out")"; }
n=$(gets "$T/fr.log" "$LD")
b=$(sent "$DR_CTL")
# nothing known of the host yet: one read finds out, the others wait for it
[ "$n" = 1 ] || fail "8 threads asked the host for the blob $n times"
[ $((b * 100)) -le $((LS * BOUND_PCT)) ] || fail "8 threads: $b bytes for a blob of $LS"
ok "$(cat "$T/out"): $n request(s) for the blob, $b bytes ($((b * 1000 / LS))/1000)"

say "a host that strips Range, its reply cut in the middle: resumed"
echo "rangeless-cut 1" >"$T/mode"
: >"$T/fr.log"
lp_mount "$T/mnt" "${MOPTS[@]}" --log-file "$T/mnt-cut.log" "$F/lp/img:v1"
read_two "$T/mnt"
n=$(gets "$T/fr.log" "$LD")
[ "$n" = 2 ] || fail "a cut reply: $n GETs of the layer ($(tr '\n' ' ' <"$T/fr.log"))"
a=$(grep "/blobs/$LD " "$T/fr.log" | sed -n 2p | sed -n 's/.*bytes=\([0-9]*\)-.*/\1/p')
[ -n "$a" ] && [ "$a" -gt 0 ] || fail "the retry did not ask from the spool's end: $(tr '\n' ' ' <"$T/fr.log")"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$T/mnt" 2 10 >"$T/cmp.out" ||
	fail "after a resumed spool the mount differs from GNU tar's extraction"
ok "cut reply: 2 GETs, the second from byte $a (its 200 skipped up to there); every file right"
lp_umount "$T/mnt"

say "a host whose 200 is not the blob"
echo "rangeless-bad 1000" >"$T/mode"
mkdir -p "$T/mnt-bad"
if lp_run "$T/out" "$T/err" "$LAZYPULL" mount "${MOPTS[@]}" "$F/lp/img:v1" "$T/mnt-bad"; then
	MOUNTS+=("$T/mnt-bad")
	fail "mounted a layer whose bytes do not match its digest"
fi
grep -q "does not match its digest" "$T/err" || { show_err "$T/err"; fail "unclear error"; }
ok "mount refused: $(grep -m1 "does not match" "$T/err" | cut -c1-160)"
rc=0
"$CLIENT" pread "$F/lp/img" "$LD" "$LS" 100 1000 >"$T/got" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || fail "a range of a blob whose 200 is wrong: exit $rc ($(cat "$T/err"))"
[ ! -s "$T/got" ] || fail "bytes were given out"
grep -q "does not match its digest" "$T/err" || { show_err "$T/err"; fail "unclear error"; }
ok "registry client read -> error, no bytes: $(head -c 150 "$T/err")"
# --- the mirror named in hosts.toml (registry/endpoints.c) ----------------
# The image is asked for by the origin's name (FO, which logs lazypull's
# requests to the origin itself); hosts.toml puts a mirror first. What the
# mirror's replies teach is kept for the mirror's host, not the origin's.
OR="127.0.0.1:$FOPORT"
hosts_mirror() { # MIRROR_HOSTPORT: hosts.toml in $T/certs.d naming it first
	mkdir -p "$T/certs.d/$OR"
	printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
		"$OR" "$1" >"$T/certs.d/$OR/hosts.toml"
}
HOPTS=(--registry-config-dir "$T/certs.d")

say "a fresh pull-through mirror named in hosts.toml, two small files"
M2PORT=$(free_port)
registry mirror2 "$M2PORT" "http://$O"
counter DM2 "$M2PORT"
M2="127.0.0.1:$DM2_PORT"
hosts_mirror "$M2"
: >"$T/origin.log"
sent "$DM2_CTL" reset >/dev/null
lp_mount "$T/mnt" "${MOPTS[@]}" "${HOPTS[@]}" --log-file "$T/mnt-h.log" "$OR/lp/img:v1"
read_two "$T/mnt"
b=$(sent "$DM2_CTL")
[ "$b" -gt 0 ] || fail "nothing came through the mirror named in hosts.toml"
[ $((b * 100)) -le $((LS * BOUND_PCT)) ] ||
	fail "hosts.toml mirror: it sent $b bytes for a layer of $LS (bound $BOUND_PCT%)"
n=$(gets "$T/origin.log" "$LD")
[ "$n" = 0 ] || fail "the origin was asked for the layer $n times while the mirror was up"
cat "$T/mount.err" "$T/mnt-h.log" >"$T/logs"
[ "$(grep -c "registry $M2 answers a Range request with the whole blob" "$T/logs")" = 1 ] ||
	{ cat "$T/logs" >&2; fail "the mirror's host is not the one logged range-less (once)"; }
grep -q "registry $OR answers a Range" "$T/logs" &&
	fail "the origin's name was marked range-less for what its mirror did"
ok "two small files through the hosts.toml mirror: it sent $b bytes for a layer of $LS ($((b * 1000 / LS))/1000); the origin was not asked; range-less learnt for $M2, not $OR"
lp_umount "$T/mnt"

say "the mirror dies in the middle of the spool's stream: the origin goes on from the spool's end"
hosts_mirror "$F"
echo "rangeless-cut 1000" >"$T/mode"
: >"$T/fr.log"
: >"$T/origin.log"
lp_mount "$T/mnt" "${MOPTS[@]}" "${HOPTS[@]}" --log-file "$T/mnt-hcut.log" "$OR/lp/img:v1"
read_two "$T/mnt"
n=$(grep -c "^GET /v2/.*/blobs/$LD?ns=$OR " "$T/fr.log" || true)
[ "$n" -ge 1 ] || fail "the mirror was not asked for the layer: $(tr '\n' ' ' <"$T/fr.log")"
a=$(grep "/blobs/$LD " "$T/origin.log" | sed -n 's/.*bytes=\([0-9]*\)-.*/\1/p' | head -1)
[ -n "$a" ] && [ "$a" -gt 0 ] ||
	fail "the origin did not go on from the spool's end: $(tr '\n' ' ' <"$T/origin.log")"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$T/mnt" 2 10 >"$T/cmp.out" ||
	fail "after the mirror died mid-spool the mount differs from GNU tar's extraction"
ok "mirror cut mid-stream ($n GETs of it): the origin was asked from byte $a of $LS (the spool's end); every file right"
lp_umount "$T/mnt"

say "the mirror's whole blob does not verify: taken again from the origin"
echo "rangeless-bad 1000" >"$T/mode"
: >"$T/origin.log"
lp_mount "$T/mnt" "${MOPTS[@]}" "${HOPTS[@]}" --log-file "$T/mnt-hbad.log" "$OR/lp/img:v1"
read_two "$T/mnt"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$T/mnt" 2 10 >"$T/cmp.out" ||
	fail "after a bad spool from the mirror the mount differs from GNU tar's extraction"
cat "$T/mount.err" "$T/mnt-hbad.log" >"$T/logs"
grep -q "the whole blob from $F did not verify; taken again from the next host" "$T/logs" ||
	{ cat "$T/logs" >&2; fail "the bad mirror was not rejected with a restart"; }
[ "$(gets "$T/origin.log" "$LD")" -ge 1 ] || fail "the origin was not asked for the layer"
ok "mirror's bytes bad: rejected, the blob taken again from the origin; every file right"
lp_umount "$T/mnt"

# --- whom a reject blames (registry/blob.c, lp_reg_blob_reject) ---------------
# The registry client's reader (reg_client reject) reads a range, then says
# part of it did not verify, as fs/'s chunk verifier does; the warning names
# the host blamed, the host that sent those bytes.
say "a read that moves from the mirror to the origin half way: a reject blames the mirror"
hosts_mirror "$F"
echo "truncate 2" >"$T/mode" # the mirror's two tries cut in half
: >"$T/origin.log"
LP_REG_CONFIG_DIR="$T/certs.d" "$CLIENT" reject "$OR/lp/img" "$LD" "$LS" 0 200000 100 50 \
	>"$T/got" 2>"$T/err" || { show_err "$T/err"; fail "read through a mirror that dies half way"; }
cmp -s "$T/got" <(head -c 200000 "$T/layer.esgz") || fail "wrong bytes from a read that moved to the origin"
a=$(grep "/blobs/$LD " "$T/origin.log" | sed -n 's/.*bytes=\([0-9]*\)-.*/\1/p' | head -1)
[ -n "$a" ] && [ "$a" -gt 150 ] || fail "the read did not move to the origin part way: $(tr '\n' ' ' <"$T/origin.log")"
grep -q "bytes 100+50 from $F did not verify" "$T/err" ||
	{ show_err "$T/err"; fail "the reject of the mirror's bytes did not blame the mirror"; }
grep -q "from $OR did not verify" "$T/err" &&
	{ show_err "$T/err"; fail "the origin was blamed for the mirror's bytes"; }
ok "the mirror sent bytes 0-$((a - 1)), the origin the rest: a reject of bytes 100+50 blames the mirror, not the origin"

say "a read from a spool: a reject blames the host that fed it"
DEAD="127.0.0.1:$(free_port)" # a first mirror nobody listens on
printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
	"$OR" "$DEAD" "$F" >"$T/certs.d/$OR/hosts.toml"
echo "rangeless 1" >"$T/mode"
LP_REG_CONFIG_DIR="$T/certs.d" "$CLIENT" reject "$OR/lp/img" "$LD" "$LS" 100 1000 200 50 \
	>"$T/got" 2>"$T/err" || { show_err "$T/err"; fail "read through a range-less mirror"; }
cmp -s "$T/got" <(tail -c +101 "$T/layer.esgz" | head -c 1000) || fail "wrong bytes from the spool"
grep -q "bytes 200+50 from $F did not verify" "$T/err" ||
	{ show_err "$T/err"; fail "the reject of spooled bytes did not blame the host that fed the spool"; }
grep -q "from $DEAD did not verify" "$T/err" &&
	{ show_err "$T/err"; fail "a host that sent nothing was blamed"; }
ok "spooled from $F (after $DEAD refused): a reject blames $F"
echo pass >"$T/mode"
done_ok
