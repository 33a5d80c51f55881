#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Kubernetes credentials through the CRI image-service proxy. Debian's
# docker-registry with auth.htpasswd (Basic, alice:s3cret) holds two
# converted (eStargz) images; containerd 1.6 runs with its CRI plugin on a
# private socket (image service only: no CNI, no pods), lazypull as its
# snapshotter with `--cri-listen` (the proxy) and `--cri-upstream`
# containerd's socket; tests/integration/cri_kubelet.py (Debian's
# /usr/bin/python3 + python3-grpcio, messages encoded by hand) plays
# kubelet:
#   1. every ImageService call goes through the proxy (ImageFsInfo,
#      ListImages, ImageStatus, RemoveImage); a RuntimeService method is
#      refused with UNIMPLEMENTED; a PullImage without credentials fails
#      with containerd's own 401 error, relayed
#   2. kubelet pulls image A from containerd directly (not through the
#      proxy): containerd has the credentials, the snapshotter has none, so
#      the lazy mount is refused with a clear reason (logged: no
#      credentials from a CRI PullImage) and containerd FALLS BACK: it
#      downloads and unpacks the layers itself (plain path, the fallback
#      metric counts them), and the pull succeeds
#   3. image B pulled through the proxy with credentials: both layers
#      mount lazily (remote snapshots, FUSE mounts, fetched < blob bytes),
#      the proxy log names the kept credentials, a container runs from it
#      (reads through the lazy layers need the credentials too), and the
#      password never shows in the snapshotter's log
#   4. image C on a second registry with auth.token (token_server.py:
#      anonymous gets nothing) pulled through the proxy with only an
#      identity token: containerd and lazypull each trade it at the token
#      server (OAuth2 POST, grant_type=refresh_token), both layers mount
#      lazily, a container runs
#   5. a pull kubelet cancels is cancelled at containerd; 10 pulls hanging
#      at once (more than the proxy's first 8 workers) all reach
#      containerd, and ImageFsInfo is answered meanwhile; 10 layer
#      mounts hanging at once (more than the snapshots service's first 8
#      workers: Prepares sent by snap_client.py) all reach their registry,
#      and Stat is answered meanwhile
#   6. SIGTERM with a pull under way: the proxy stops at once
# Limits here: no CNI and no pod sandboxes (RunPodSandbox is not tried);
# containers are run with ctr in containerd's k8s.io namespace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init
lp_require htpasswd skopeo gzip
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import grpc' 2>/dev/null ||
	lp_skip_or_fail "python3-grpcio for /usr/bin/python3 not installed"
KUBELET="/usr/bin/python3 $LP_SOURCE_DIR/tests/integration/cri_kubelet.py"
SNAPCLI="/usr/bin/python3 $LP_SOURCE_DIR/tests/integration/snap_client.py"

cleanup() {
	local rc=$? m
	set +e
	lp_stack_stop
	for p in ${REG2_PID:-} ${TOK_PID:-} ${STALL_PID:-} ${STALL2_PID:-}; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 40 20
}
trap cleanup EXIT

remote_count() { grep -c "remote snapshot sha256:" "$T/snap.log" || true; }

# --- registry: filled without auth, then served with htpasswd ---------------
lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}}"
REG=$R
say "building and pushing images A and B"
python3 "$LP_SOURCE_DIR/tests/integration/make_snap_image.py" "$T/layout"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q --chunk-size 1M \
	"oci:$T/layout:two" "$REG/cri/a:esgz" || { show_err "$T/conv.err"; fail "lazypull convert A"; }
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	"oci:$T/layout:two" "$REG/cri/b:esgz" || { show_err "$T/conv.err"; fail "lazypull convert B"; }
# image P: plain gzip (never converted), indexed with `lazypull index`
make_busybox_rootfs "$T/rootfs.tar"
gzip -n -6 <"$T/rootfs.tar" >"$T/p.tar.gz"
python3 "$LP_SOURCE_DIR/tests/integration/gzip_index.py" layout "$T/p.tar.gz" "$T/p.layout" ||
	fail "the layout of P"
skopeo copy -q --dest-tls-verify=false "oci:$T/p.layout:v1" "docker://$REG/cri/p:v1" || fail "skopeo copy of P"
lp_run "$T/ixp.out" "$T/ixp.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	"$REG/cri/p:v1" || { show_err "$T/ixp.err"; fail "lazypull index P"; }
LAYER_P="sha256:$(sha256sum "$T/p.tar.gz" | cut -d' ' -f1)"
BLOB_BYTES=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$REG/v2/cri/b/manifests/esgz" | python3 -c '
import json, sys
print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
# image C on a second registry, which will want tokens from
# token_server.py: anonymous gets nothing, the identity token everything
PORT2=$(free_port)
KPORT=$(free_port)
REG2="127.0.0.1:$PORT2"
REFRESH="lp-identity-$RANDOM$RANDOM"
mkdir -p "$T/reg2"
cat >"$T/reg2.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $T/reg2}}
http: {addr: $REG2}
EOF
docker-registry serve "$T/reg2.yml" >"$T/reg2.log" 2>&1 &
REG2_PID=$!
wait_for 20 "the second registry" curl -fsS "http://$REG2/v2/"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q --chunk-size 2M \
	"oci:$T/layout:two" "$REG2/cri/c:esgz" || { show_err "$T/conv.err"; fail "lazypull convert C"; }
kill "$REG2_PID"
wait "$REG2_PID" 2>/dev/null || true
(cd "$T" && openssl req -x509 -newkey rsa:2048 -nodes -keyout tok.key -out tok.pem \
	-days 1 -subj /CN=lp-token 2>/dev/null) || fail "openssl could not make the token key"
LP_TOKEN_ANON_PULL=0 python3 "$LP_SOURCE_DIR/tests/integration/token_server.py" "$KPORT" \
	"$T/tok.key" "$T/tok.pem" "$T/token.log" alice:s3cret 0 - "$REFRESH" 2>"$T/token.err" &
TOK_PID=$!
cat >>"$T/reg2.yml" <<EOF
auth: {token: {realm: "http://127.0.0.1:$KPORT/token", service: lp-cri, issuer: lp-issuer, rootcertbundle: $T/tok.pem}}
EOF
docker-registry serve "$T/reg2.yml" >>"$T/reg2.log" 2>&1 &
REG2_PID=$!
wait_for 20 "the token server" curl -fsS "http://127.0.0.1:$KPORT/health"
wait_for 20 "the second registry with token auth" sh -c \
	"[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://$REG2/v2/)\" = 401 ]"

kill "$REG_PID"
wait "$REG_PID" 2>/dev/null || true
htpasswd -Bbn alice s3cret >"$T/htpasswd" 2>/dev/null || fail "htpasswd"
cat >>"$T/reg.yml" <<EOF
auth: {htpasswd: {realm: lp-cri, path: $T/htpasswd}}
EOF
docker-registry serve "$T/reg.yml" >>"$T/reg.log" 2>&1 &
REG_PID=$!
wait_for 20 "the registry with htpasswd" curl -fsS -u alice:s3cret "http://$REG/v2/"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/cri/b/manifests/esgz")
[ "$code" = 401 ] || fail "anonymous manifest GET: HTTP $code, not 401"
ok "images pushed; the registry now wants Basic credentials (anonymous: 401)"

# --- snapshotter with the proxy, containerd with CRI -------------------------
# a registry that accepts and never answers: a pull of it hangs until
# someone cancels; each connection's end is logged
SPORT=$(free_port)
STALL="127.0.0.1:$SPORT"
lp_stall_server "$SPORT" "$T/stall.log"
STALL_PID=$!

CRISOCK="$T/cri/cri.sock"
"$LAZYPULL" -v snapshotter --root "$ROOT" --address "$SOCK" \
	--metrics-address "127.0.0.1:$MPORT" --no-background-fetch \
	--cri-listen "$CRISOCK" --cri-upstream "$CSOCK" >>"$T/snap.log" 2>&1 &
SNAP_PID=$!
wait_for 20 "the snapshotter to serve" grep -q "snapshotter: serving" "$T/snap.log"
grep -q "CRI image-service proxy on $CRISOCK" "$T/snap.log" || fail "the CRI proxy did not start"
[ "$(stat -c %a "$CRISOCK")" = 600 ] || fail "the proxy socket is mode $(stat -c %a "$CRISOCK"), not 600"
lp_stack_containerd "" "$(lp_cri_plugin_conf "$REG" "$REG2" "$STALL")"
ok "containerd's CRI plugin serves (no CNI: image service only); proxy on $CRISOCK -> $CSOCK"

# --- 1. forwarding ------------------------------------------------------------
say "1. every ImageService call goes through the proxy"
$KUBELET "$CRISOCK" fsinfo >"$T/out" 2>"$T/err" || { show_err "$T/err"; fail "ImageFsInfo through the proxy"; }
grep -q "^filesystems [1-9]" "$T/out" || fail "ImageFsInfo: $(cat "$T/out")"
# over gRPC's 4 MiB default, under kubelet's and containerd's 16 MiB
$KUBELET "$CRISOCK" bigfsinfo $((6 * 1024 * 1024)) >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "a 6 MiB ImageFsInfo request through the proxy"; }
grep -q "^filesystems [1-9]" "$T/out" || fail "6 MiB ImageFsInfo: $(cat "$T/out")"
$KUBELET "$CRISOCK" list >"$T/out" 2>"$T/err" || { show_err "$T/err"; fail "ListImages through the proxy"; }
[ "$($KUBELET "$CRISOCK" status "$REG/cri/b:esgz")" = absent ] || fail "ImageStatus of an image not pulled"
if $KUBELET "$CRISOCK" call /runtime.v1.RuntimeService/Version >"$T/out" 2>"$T/err"; then
	fail "a RuntimeService call was served by the image proxy"
fi
grep -q "^UNIMPLEMENTED" "$T/err" || fail "RuntimeService call: $(cat "$T/err")"
if $KUBELET "$CRISOCK" pull "$REG/cri/b:esgz" >"$T/out" 2>"$T/err"; then
	fail "PullImage without credentials succeeded against an htpasswd registry"
fi
grep -qi "401\|unauthorized" "$T/err" || fail "PullImage without credentials: $(cat "$T/err")"
grep -q "CRI PullImage $REG/cri/b:esgz: no credentials" "$T/snap.log" || fail "the proxy did not see the PullImage"
ok "ImageFsInfo, ListImages, ImageStatus forwarded; RuntimeService -> UNIMPLEMENTED; uncredentialed PullImage -> containerd's error: $(head -c 120 "$T/err")"

# --- 2. no credentials for the snapshotter: refused, containerd falls back ----
say "2. pulled past the proxy: the lazy mount is refused, containerd falls back"
fb0=$(metric lazypull_fallbacks_total)
r0=$(remote_count)
$KUBELET "$CSOCK" pull "$REG/cri/a:esgz" alice s3cret >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "PullImage of A at containerd with credentials"; }
grep -q "^sha256:" "$T/out" || fail "PullImage A answered '$(cat "$T/out")'"
fb1=$(metric lazypull_fallbacks_total)
[ "$(remote_count)" = "$r0" ] || fail "a layer of A was mounted lazily without credentials"
[ $((fb1 - fb0)) -eq 2 ] || fail "expected 2 fallbacks for A, the metric went $fb0 -> $fb1"
grep -q "no credentials for this image from a CRI PullImage through the lazypull CRI proxy" "$T/snap.log" ||
	fail "no clear reason logged for the refused lazy mount"
reason=$(grep -m1 "no credentials for this image" "$T/snap.log" | sed 's/.*cannot mount lazily: //' | cut -c1-200)
ok "A: lazy mount refused ($reason); containerd downloaded A itself ($((fb1 - fb0)) fallbacks), pull succeeded"
[ "$($KUBELET "$CRISOCK" status "$REG/cri/a:esgz")" != absent ] || fail "ImageStatus of A through the proxy"
ok "ImageStatus of A through the proxy"

# --- 3. through the proxy with credentials: lazy --------------------------------
say "3. PullImage of B through the proxy with credentials: lazy"
r0=$(remote_count)
fb0=$(metric lazypull_fallbacks_total)
$KUBELET "$CRISOCK" pull "$REG/cri/b:esgz" alice s3cret >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "PullImage of B through the proxy"; }
grep -q "^sha256:" "$T/out" || fail "PullImage B answered '$(cat "$T/out")'"
grep -q "CRI PullImage $REG/cri/b:esgz: credentials kept for its layers (user 'alice')" "$T/snap.log" ||
	fail "the proxy did not keep B's credentials"
n=$(($(remote_count) - r0))
[ "$n" = 2 ] || fail "expected 2 remote (lazy) snapshots for B, got $n"
[ "$(metric lazypull_fallbacks_total)" = "$fb0" ] || fail "a layer of B fell back"
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = 2 ] || fail "expected 2 lazy layer mounts, found $n"
ctr --address "$CSOCK" -n k8s.io snapshots --snapshotter lazypull ls >"$T/k8s.txt"
ok "B: both layers mounted lazily (remote snapshots, $n FUSE mounts)"
out=$(ctr --address "$CSOCK" -n k8s.io run --rm --snapshotter lazypull "$REG/cri/b:esgz" cri1 \
	sh -c 'cat /hello.txt; ls /data/dir; wc -c </data/keep')
[ "$out" = "hello from lazypull
c
5" ] || fail "container on B printed '$out'"
# the 8 MiB of /data/big.bin nobody reads stay in the registry
fetched=$(metric lazypull_layer_fetched_bytes_total)
[ "$fetched" -gt 0 ] && [ "$fetched" -lt $((BLOB_BYTES / 2)) ] || fail "fetched $fetched of $BLOB_BYTES blob bytes"
ok "a container runs from B; fetched $fetched of $BLOB_BYTES blob bytes with the kept credentials (lazy)"
[ "$($KUBELET "$CRISOCK" list | grep -c "^$REG/cri/")" -ge 2 ] || fail "ListImages does not show A and B"
! grep -q s3cret "$T/snap.log" || fail "the password shows in the snapshotter's log"
ok "ListImages shows A and B; the password is not in the log"
$KUBELET "$CRISOCK" remove "$REG/cri/a:esgz" >/dev/null 2>"$T/err" || { show_err "$T/err"; fail "RemoveImage through the proxy"; }
[ "$($KUBELET "$CRISOCK" status "$REG/cri/a:esgz")" = absent ] || fail "A still there after RemoveImage"
ok "RemoveImage through the proxy"

# --- 3b. the index lookup's answers are per credentials ---------------------------
say "3b. plain indexed P: refused without credentials, then lazy through the proxy with them"
# kubelet pulls P from containerd directly (containerd has the credentials,
# the snapshotter none): the lookup is refused (401), plain path, and that
# answer is cached for 30 s; P removed (its snapshot with it), kubelet pulls
# it again through the proxy with credentials within those 30 s: the
# credentialed lookup must not be served the credential-less answer
nr=$(metric 'lazypull_fallbacks_total{reason="registry"}')
$KUBELET "$CSOCK" pull "$REG/cri/p:v1" alice s3cret >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "PullImage of P at containerd"; }
[ "$(metric 'lazypull_fallbacks_total{reason="registry"}')" = $((nr + 1)) ] ||
	fail "P without credentials: registry fallbacks went $nr -> $(metric 'lazypull_fallbacks_total{reason="registry"}')"
$KUBELET "$CSOCK" remove "$REG/cri/p:v1" >/dev/null 2>"$T/err" || { show_err "$T/err"; fail "RemoveImage of P"; }
CHAIN_P=$(grep "layer $LAYER_P (chain " "$T/snap.log" | head -1 | sed 's/.*(chain \(sha256:[0-9a-f]*\)).*/\1/')
[ -n "$CHAIN_P" ] || fail "no plain-path log line of P's layer"
wait_for 20 "P's snapshot to be collected" sh -c \
	"! ctr --address '$CSOCK' -n k8s.io snapshots --snapshotter lazypull ls | grep -q '^$CHAIN_P'"
r0=$(remote_count)
$KUBELET "$CRISOCK" pull "$REG/cri/p:v1" alice s3cret >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "PullImage of P through the proxy"; }
grep -q "layer $LAYER_P mounted lazily through its gzip index" "$T/snap.log" ||
	fail "P with credentials was not mounted through its index: $(grep "$LAYER_P" "$T/snap.log" | tail -2)"
[ "$(($(remote_count) - r0))" = 1 ] || fail "P: no remote snapshot through the proxy"
ok "P: the credential-less lookup's refusal was not served to the credentialed one: mounted through its index"

# --- 4. an identity token (OAuth2 refresh token) ---------------------------------
say "4. PullImage of C with an identity token from a token-auth registry: lazy"
r0=$(remote_count)
fb0=$(metric lazypull_fallbacks_total)
: >"$T/token.log"
$KUBELET "$CRISOCK" pull "$REG2/cri/c:esgz" --identity-token "$REFRESH" >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "PullImage of C through the proxy with an identity token"; }
grep -q "^sha256:" "$T/out" || fail "PullImage C answered '$(cat "$T/out")'"
grep -qF "CRI PullImage $REG2/cri/c:esgz: credentials kept for its layers (user '(identity token)')" "$T/snap.log" ||
	fail "the proxy did not keep C's identity token"
n=$(($(remote_count) - r0))
[ "$n" = 2 ] || fail "expected 2 remote (lazy) snapshots for C, got $n"
[ "$(metric lazypull_fallbacks_total)" = "$fb0" ] || fail "a layer of C fell back"
nl=$(grep -c 'via=post:refresh_token client=lazypull' "$T/token.log" || true)
nc=$(grep -c 'via=post:refresh_token client=containerd' "$T/token.log" || true)
[ "$nl" -ge 1 ] || fail "lazypull never traded the identity token: $(cat "$T/token.log")"
! grep -q 'authed=False' "$T/token.log" || fail "anonymous token requests: $(grep authed=False "$T/token.log")"
out=$(ctr --address "$CSOCK" -n k8s.io run --rm --snapshotter lazypull "$REG2/cri/c:esgz" cri2 cat /hello.txt)
[ "$out" = "hello from lazypull" ] || fail "container on C printed '$out'"
! grep -q "$REFRESH" "$T/snap.log" || fail "the identity token shows in the snapshotter's log"
ok "C: both layers lazy; lazypull traded the identity token at the token server ($nl POSTs, containerd $nc), a container runs"

# --- 5. kubelet cancels a pull: containerd's call ends too -----------------------
say "5. a PullImage kubelet cancels is cancelled at containerd"
: >"$T/stall.log"
$KUBELET "$CRISOCK" cancel "$STALL/cri/slow:v1" 3 >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "the cancelled PullImage"; }
grep -q "^open" "$T/stall.log" || fail "containerd never reached the stalled registry"
# containerd gives up its request only when its call is cancelled: the
# stalled registry sees every connection of that pull close
wait_for 20 "containerd to drop its request to the stalled registry" sh -c \
	"[ \$(grep -c '^open' '$T/stall.log') = \$(grep -c '^closed' '$T/stall.log') ]"
wait_for 20 "the proxy to see the cancel" grep -q "CRI /runtime.v1.ImageService/PullImage: cancelled by the caller" "$T/snap.log"
$KUBELET "$CRISOCK" fsinfo >"$T/out" 2>"$T/err" || { show_err "$T/err"; fail "ImageFsInfo after the cancel"; }
ok "cancelled after 3 s: the proxy saw it, containerd closed its $(grep -c '^open' "$T/stall.log") connection(s) to the stalled registry, the proxy serves on"

say "5b. more pulls hang than the proxy's first 8 workers: other calls are still answered"
: >"$T/stall.log"
kp=()
for i in $(seq 10); do
	# cancelled after 30 s: past the 15 s wait below plus fsinfo's 10 s,
	# so that a queued fsinfo cannot pass on a worker freed by a cancel
	$KUBELET "$CRISOCK" cancel "$STALL/cri/hang$i:v1" 30 >"$T/out5b.$i" 2>"$T/err5b.$i" &
	kp+=($!)
done
# each pull's connection reaches the stalled registry only once a worker
# serves it: 10 connections need more than 8 workers
wait_for 15 "10 pulls to reach the stalled registry" sh -c \
	"[ \$(grep -c '^open' '$T/stall.log') -ge 10 ]"
s0=$(date +%s%N)
timeout 10 $KUBELET "$CRISOCK" fsinfo >"$T/out" 2>"$T/err" ||
	{ show_err "$T/err"; fail "ImageFsInfo while 10 pulls hang was not answered within 10 s"; }
ms=$((($(date +%s%N) - s0) / 1000000))
for i in "${!kp[@]}"; do
	wait "${kp[$i]}" || { show_err "$T/err5b.$((i + 1))"; fail "hanging pull $((i + 1))"; }
done
wait_for 20 "containerd to drop its requests to the stalled registry" sh -c \
	"[ \$(grep -c '^open' '$T/stall.log') = \$(grep -c '^closed' '$T/stall.log') ]"
grep -q "CRI proxy: every worker busy" "$T/snap.log" || fail "the proxy logged no added worker"
ok "10 pulls hung at once, all reached containerd; ImageFsInfo answered in $ms ms meanwhile; all cancelled"

say "5c. more layer mounts hang than the snapshots service's first 8 workers: Stat is still answered"
# containerd's Prepare of a lazily pulled layer holds a worker of the
# snapshots service until the layer's registry answers or the registry
# client gives up (tens of seconds); ten of them, each a layer of a second
# stalled registry
SPORT2=$(free_port)
lp_stall_server "$SPORT2" "$T/stall2.log"
STALL2_PID=$!
wait_for 10 "the second stalled registry" grep -q '^listening' "$T/stall2.log"
sp=()
for i in $(seq 10); do
	dg=sha256:$(printf 'hang layer %d' "$i" | sha256sum | cut -c1-64)
	$SNAPCLI "$SOCK" prepare "hang-$i" "" "containerd.io/snapshot.ref=$dg" \
		"containerd.io/snapshot/remote/stargz.reference=127.0.0.1:$SPORT2/snap/hang$i:v1" \
		"containerd.io/snapshot/remote/stargz.digest=$dg" \
		"containerd.io/snapshot/stargz/toc.digest=$dg" >"$T/out5c.$i" 2>"$T/err5c.$i" &
	sp+=($!)
done
# each layer reaches the registry only once a worker serves its Prepare:
# requests for 10 layers' repositories need more than 8 workers
wait_for 15 "10 layer mounts to reach the second stalled registry" sh -c \
	"for i in \$(seq 10); do grep -q \"^request [A-Z]* /v2/snap/hang\$i/\" '$T/stall2.log' || exit 1; done"
s0=$(date +%s%N)
timeout 10 $SNAPCLI "$SOCK" stat no-such-snapshot >"$T/out" 2>"$T/err" && fail "Stat of a missing key: $(cat "$T/out")"
grep -q '^NOT_FOUND' "$T/err" || { show_err "$T/err"; fail "Stat while 10 layer mounts hang was not answered within 10 s"; }
ms=$((($(date +%s%N) - s0) / 1000000))
grep -q "snapshots service: every worker busy" "$T/snap.log" || fail "the snapshots service logged no added worker"
# the registry goes away: every mount gives up, every Prepare is answered
kill "$STALL2_PID"
wait "$STALL2_PID" 2>/dev/null || true
STALL2_PID=
# (a layer whose registry is gone takes the plain path: Prepare succeeds)
for i in "${!sp[@]}"; do
	wait "${sp[$i]}" && grep -q '^ok' "$T/out5c.$((i + 1))" ||
		{ show_err "$T/err5c.$((i + 1))"; fail "hanging Prepare $((i + 1)): no answer once the registry went away"; }
done
ok "10 layer mounts hung at once, all reached the registry; Stat answered in $ms ms meanwhile; all answered once it went away"
# --- 6. the snapshotter stops with a pull under way -------------------------------
say "6. SIGTERM with a PullImage of a stalled registry under way: the proxy stops at once"
$KUBELET "$CRISOCK" cancel "$STALL/cri/slow:v2" 60 >"$T/out6" 2>"$T/err6" &
KPID=$!
wait_for 20 "containerd to reach the stalled registry" sh -c \
	"[ \$(grep -c '^open' '$T/stall.log') -gt \$(grep -c '^closed' '$T/stall.log') ]"
s0=$(date +%s%N)
kill "$SNAP_PID"
for i in $(seq 100); do
	kill -0 "$SNAP_PID" 2>/dev/null || break
	sleep 0.1
done
! kill -0 "$SNAP_PID" 2>/dev/null || fail "the snapshotter still runs 10 s after SIGTERM with a pull under way"
st=0
wait "$SNAP_PID" 2>/dev/null || st=$?
[ $st -eq 0 ] || fail "SIGTERM with a pull under way: the snapshotter exited with status $st (it exits 0)"
ms=$((($(date +%s%N) - s0) / 1000000))
SNAP_PID=
# the pull ended (the client did not get to cancel it) and containerd let go
if wait "$KPID"; then fail "the pull under way did not end with the proxy"; fi
grep -q "ended before the cancel" "$T/err6" || fail "the pull under way: $(cat "$T/err6")"
wait_for 20 "containerd to drop its request to the stalled registry" sh -c \
	"[ \$(grep -c '^open' '$T/stall.log') = \$(grep -c '^closed' '$T/stall.log') ]"
ok "stopped in $ms ms with a pull under way; the pull ended ($(head -c 100 "$T/err6")), containerd let go of the registry"
done_ok
