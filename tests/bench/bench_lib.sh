# SPDX-License-Identifier: Apache-2.0
# Shared helpers for fs-bench.sh and mem-bench.sh. Sourced, not run. The
# caller has set SRC (the source tree), T (its scratch directory, removed
# by its trap), PIDS (an array its trap kills) and say().

# bench_start_registry: Debian's docker-registry on a free loopback port,
# storage in $T/store, no access log; its pid added to PIDS; /v2/ polled
# for up to 10 s. Sets PORT and R (host:port).
bench_start_registry() {
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mkdir -p "$T/store"
	printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
		"$T/store" "$PORT" >"$T/reg.yml"
	docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
	PIDS+=($!)
	for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
	R=127.0.0.1:$PORT
}

# bench_build_refmount: the reference mounter (tests/bench/refmount), built
# from Debian's Go sources when golang-go and they are there. Sets REFMOUNT
# to the binary, or to "" when it is not built.
bench_build_refmount() {
	REFMOUNT=
	if command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/containerd/stargz-snapshotter/fs ]; then
		say "building the reference mounter (tests/bench/refmount)"
		mkdir -p "$T/gopath/src"
		ln -s "$SRC/tests/bench/refmount" "$T/gopath/src/refmount"
		if (cd "$T/gopath/src/refmount" && GO111MODULE=off GOPATH=/usr/share/gocode:$T/gopath GOFLAGS= \
			GOCACHE=${LP_BENCH_GOCACHE:-$T/gocache} go build -o "$T/refmount" .) >"$T/go.log" 2>&1; then
			REFMOUNT=$T/refmount
		else
			say "reference mounter did not build: $(tail -3 "$T/go.log")"
		fi
	fi
}
