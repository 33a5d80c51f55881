#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Per-host TLS from hosts.toml: a docker-registry mirror (pull-through cache
# of a plain origin on loopback) that speaks HTTPS only and requires a client
# certificate (http.tls.clientcas); the CA and certificates are made by
# openssl for this run. `lazypull mount --layer 0 --registry-config-dir DIR`:
#   1. `ca` + `client` (cert, key pair) on the mirror's [host]: the layer is
#      read through the mirror (its access log has lazypull's requests, the
#      origin has none) and every file has GNU tar's bytes;
#   2. the same mirror without `client`, the origin as server: the mount
#      works through the origin, and the log says why the mirror was passed
#      over (curl's TLS error, and that no client certificate was offered);
#   3. the mirror as the only host (`server`) without `client`: the mount
#      fails, and the error says no client certificate was offered;
#   4. the mirror as the only host with `client` but without `ca`: the mount
#      fails on the unknown issuer (the system CAs do not know ours), so
#      `ca` is what made 1 work; `client` given as one PEM holding both
#      certificate and key works as well (5).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require docker-registry openssl curl
PIDS=()
MOUNTS=()
cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${LP_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT

# --- certificates ---------------------------------------------------------------
say "openssl: a CA, the mirror's server certificate (127.0.0.1), a client certificate"
P="$T/pki"
mkdir -p "$P"
{
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lazypull test CA" \
		-keyout "$P/ca.key" -out "$P/ca.crt"
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$P/server.key" -out "$P/server.csr"
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$P/server.ext"
	openssl x509 -req -in "$P/server.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" \
		-CAcreateserial -days 2 -extfile "$P/server.ext" -out "$P/server.crt"
	openssl req -newkey rsa:2048 -nodes -subj "/CN=lazypull client" \
		-keyout "$P/client.key" -out "$P/client.csr"
	printf 'extendedKeyUsage=clientAuth\n' >"$P/client.ext"
	openssl x509 -req -in "$P/client.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" \
		-CAcreateserial -days 2 -extfile "$P/client.ext" -out "$P/client.crt"
} >"$T/openssl.log" 2>&1 || { show_err "$T/openssl.log"; fail "openssl could not make the certificates"; }
cat "$P/client.crt" "$P/client.key" >"$P/client.pem"
ok "certificates made"

# --- origin (plain) and TLS mirror ----------------------------------------------
lp_start_registry # the origin: $R, plain HTTP, no access log
ORIGIN=$R
sed -i 's/accesslog: {disabled: true}/accesslog: {disabled: false}/' "$T/reg.yml"
kill "${PIDS[0]}" && wait "${PIDS[0]}" 2>/dev/null || true
docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the origin" curl -fsS "http://$ORIGIN/v2/"
MPORT=$(free_port)
MIRROR="127.0.0.1:$MPORT"
mkdir -p "$T/mirror"
cat >"$T/mirror.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $T/mirror}}
http:
  addr: $MIRROR
  tls:
    certificate: $P/server.crt
    key: $P/server.key
    clientcas: [$P/ca.crt]
proxy: {remoteurl: "http://$ORIGIN"}
EOF
docker-registry serve "$T/mirror.yml" >"$T/mirror.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the TLS mirror" curl -fsS --cacert "$P/ca.crt" --cert "$P/client.crt" \
	--key "$P/client.key" "https://$MIRROR/v2/"
! curl -fsS -o /dev/null --cacert "$P/ca.crt" "https://$MIRROR/v2/" 2>/dev/null ||
	fail "the mirror answers without a client certificate"
ok "origin http://$ORIGIN, mirror https://$MIRROR (client certificate required)"

say "an eStargz image on the origin"
python3 "$LP_SOURCE_DIR/tests/integration/make_snap_image.py" "$T/layout"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	--registry-config-dir "" "oci:$T/layout:two" "$ORIGIN/bb:esgz" ||
	{ show_err "$T/conv.err"; fail "lazypull convert"; }
IMG="$ORIGIN/bb:esgz"
layer0=$(layout_layer "$T/layout" two 0)
mkdir -p "$T/ref"
tar -xzf "$layer0" -C "$T/ref" || fail "GNU tar could not extract layer 0"
tree_listing "$T/ref" >"$T/ref.files"

# hosts_toml NAME TEXT: DIR $T/NAME with TEXT as the origin's hosts.toml;
# relative paths in TEXT are to that directory, which links the pki in
hosts_toml() {
	mkdir -p "$T/$1/$ORIGIN"
	ln -sfn "$P" "$T/$1/$ORIGIN/pki"
	printf '%s\n' "$2" >"$T/$1/$ORIGIN/hosts.toml"
}
# lazypull_lines LOG [FROM]: lazypull's requests in an access log
lazypull_lines() {
	tail -n +"${2:-1}" "$1" | grep -c '"lazypull/' || true
}
# try_mount N DIR: mount layer 0 with registry config DIR at $T/mntN;
# returns the mount's status, stderr in $T/errN
try_mount() {
	mkdir -p "$T/mnt$1"
	MOUNTS+=("$T/mnt$1")
	lp_run "$T/out$1" "$T/err$1" "$LAZYPULL" mount --layer 0 --registry-config-dir "$2" \
		--no-prefetch --no-background-fetch --retries 1 --timeout 10 \
		--log-file "$T/log$1" "$IMG" "$T/mnt$1"
}
check_files() { # N
	tree_listing "$T/mnt$1" >"$T/mnt$1.files"
	same_file "$T/ref.files" "$T/mnt$1.files" "file contents in $T/mnt$1 and GNU tar's extraction"
	fusermount3 -u "$T/mnt$1" || fail "fusermount3 -u $T/mnt$1"
}

# --- 1. ca + client ---------------------------------------------------------------
say "1. ca and client from hosts.toml: the layer comes through the TLS mirror"
hosts_toml h1 "server = \"http://$ORIGIN\"
[host.\"https://$MIRROR\"]
  capabilities = [\"pull\", \"resolve\"]
  ca = \"pki/ca.crt\"
  client = [[\"pki/client.crt\", \"pki/client.key\"]]"
m0=$(wc -l <"$T/mirror.log")
o0=$(wc -l <"$T/reg.log")
try_mount 1 "$T/h1" || { show_err "$T/err1"; fail "mount through the TLS mirror"; }
check_files 1
m=$(lazypull_lines "$T/mirror.log" $((m0 + 1)))
o=$(lazypull_lines "$T/reg.log" $((o0 + 1)))
[ "$m" -gt 0 ] || fail "the TLS mirror saw no request from lazypull"
[ "$o" = 0 ] || fail "lazypull sent $o requests to the origin"
ok "$m requests through the TLS mirror with the client certificate, none to the origin; files match"

# --- 2. no client: the mirror is passed over, with the reason logged -------------
say "2. without client: the origin serves, the log says why the mirror did not"
hosts_toml h2 "server = \"http://$ORIGIN\"
[host.\"https://$MIRROR\"]
  ca = \"pki/ca.crt\""
o0=$(wc -l <"$T/reg.log")
try_mount 2 "$T/h2" || { show_err "$T/err2"; fail "mount with the origin as fallback"; }
check_files 2
o=$(lazypull_lines "$T/reg.log" $((o0 + 1)))
[ "$o" -gt 0 ] || fail "the origin saw no request from lazypull"
# before the mount returns its messages go to stderr, then to the log file
wait_for 10 "a message that the mirror failed" \
	sh -c "cat '$T/err2' '$T/log2' | grep -q 'registry host https://$MIRROR failed'"
cat "$T/err2" "$T/log2" | grep "registry host https://$MIRROR failed" | grep -q "no client certificate" ||
	{ show_err "$T/err2"; show_err "$T/log2"; fail "the message does not say no client certificate was offered"; }
ok "origin used ($o requests); $(cat "$T/err2" "$T/log2" | grep -m1 "https://$MIRROR" | cut -c1-200)"

# --- 3. the TLS registry alone, no client: a clear error -------------------------
say "3. the TLS mirror as the only host, without client: the mount fails clearly"
hosts_toml h3 "server = \"https://$MIRROR\"
ca = \"pki/ca.crt\""
if try_mount 3 "$T/h3"; then
	fail "the mount worked without a client certificate"
fi
grep -q "TLS to $MIRROR: no client certificate" "$T/err3" ||
	{ show_err "$T/err3"; fail "the error does not say no client certificate was offered"; }
ok "refused: $(grep -m1 "no client certificate" "$T/err3" | cut -c1-300)"

# --- 4. no ca: the mirror's certificate is not trusted ---------------------------
say "4. client but no ca: the mirror's certificate is not trusted"
hosts_toml h4 "server = \"https://$MIRROR\"
client = [[\"pki/client.crt\", \"pki/client.key\"]]"
if try_mount 4 "$T/h4"; then
	fail "the mount trusted the mirror without its CA"
fi
grep -Eqi "issuer|certificate" "$T/err4" || { show_err "$T/err4"; fail "the error does not name the certificate problem"; }
ok "refused: $(grep -Ei -m1 "issuer|certificate" "$T/err4" | cut -c1-200)"

# --- 5. client as one PEM (certificate and key) ----------------------------------
say "5. client = \"pki/client.pem\" (certificate and key in one file)"
hosts_toml h5 "server = \"https://$MIRROR\"
ca = \"pki/ca.crt\"
client = \"pki/client.pem\""
try_mount 5 "$T/h5" || { show_err "$T/err5"; fail "mount with the client certificate and key in one PEM"; }
check_files 5
ok "the mirror alone, client certificate and key from one PEM: files match"

done_ok
