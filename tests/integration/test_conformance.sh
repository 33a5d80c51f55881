#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# containerd's own snapshotter conformance suite (snapshots/testsuite of
# Debian's golang-github-containerd-containerd-dev) against `lazypull
# snapshotter`, through containerd's snapshots proxy client, as containerd
# talks to a proxy plugin: tests/conformance/conformance_test.go, built
# offline from Debian's Go sources into the build tree (cached; rebuilt
# when its sources change). Each of the suite's tests gets its own root and
# its own daemon, stopped with SIGTERM afterwards (exit 0, within 20 s,
# nothing left mounted). Every test of the suite must pass, and so must
# tests/conformance/errdefs_test.go (error kinds, Usage, Cleanup: what the
# suite leaves out but containerd relies on); the only skip allowed is a
# test the suite itself always skips (Rename: "rename test still fails on
# some kernels with overlay"). Needs root (overlay mounts).
# A missing Go toolchain, Go package or root fails the test unless
# LP_ALLOW_SKIP=1, which makes it exit 77 (skipped).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SUITE_SRC=/usr/share/gocode/src/github.com/containerd/containerd/snapshots/testsuite
SUITE_SKIPS="Rename" # t.Skip() unconditionally in the suite's own source

lp_require go
[ -d "$SUITE_SRC" ] || lp_skip_or_fail "$SUITE_SRC missing (install golang-github-containerd-containerd-dev)"
[ -d /usr/share/gocode/src/gotest.tools/assert ] ||
	lp_skip_or_fail "gotest.tools missing (install golang-github-gotestyourself-gotest.tools-dev)"
lp_require_root "the suite mounts overlays"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
	lp_skip_or_fail "no overlay filesystem in this kernel"

# The suite's binary, built under a lock (ctest -j may run several scripts).
dir="$LP_BUILD_DIR/conformance"
bin="$dir/conformance.test"
stale() {
	[ ! -x "$bin" ] || [ -n "$(find "$LP_SOURCE_DIR/tests/conformance" -newer "$bin")" ]
}
if stale; then
	say "building the conformance suite (tests/conformance/build.sh, Debian's Go sources)"
	mkdir -p "$dir"
	(
		flock 9
		if stale; then
			timeout 900 bash "$LP_SOURCE_DIR/tests/conformance/build.sh" "$dir" >/dev/null
		fi
	) 9>"$dir/.build.lock" >"$T/build.log" 2>&1 || {
		show_err "$T/build.log"
		fail "could not build the conformance suite (tests/conformance/build.sh)"
	}
fi

# The suite's names, from its own source: a newer suite adds tests here.
mapfile -t names < <(sed -n 's/^\s*t\.Run("\([^"]*\)".*/\1/p' "$SUITE_SRC/testsuite.go")
[ "${#names[@]}" -ge 20 ] || fail "found only ${#names[@]} tests in $SUITE_SRC/testsuite.go"

say "containerd's snapshotter suite (${#names[@]} tests) against lazypull snapshotter"
export TMPDIR="$T" # the suite's per-test directories, removed with $T
start=$(date +%s%N)
rc=0
LAZYPULL="$LAZYPULL" timeout 600 "$bin" -test.v -test.count 1 >"$T/suite.log" 2>&1 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
if [ $rc -ne 0 ] || grep -q -- '--- FAIL' "$T/suite.log"; then
	grep -E -- '--- (FAIL|PASS|SKIP)' "$T/suite.log" >&2 || true
	echo "--- the suite's output (failed tests in full):" >&2
	sed 's/^/    | /' "$T/suite.log" | tail -300 >&2
	fail "the conformance suite failed (exit $rc)"
fi
for n in "${names[@]}"; do
	if grep -q -- "--- PASS: TestLazypullConformance/$n " "$T/suite.log"; then
		ok "$n"
	elif grep -q -- "--- SKIP: TestLazypullConformance/$n " "$T/suite.log" &&
		[[ " $SUITE_SKIPS " == *" $n "* ]]; then
		say "  skipped by the suite itself: $n"
	else
		grep -- "TestLazypullConformance/$n" "$T/suite.log" >&2 || true
		fail "$n: neither passed nor an expected skip"
	fi
done
grep -q -- '--- PASS: TestLazypullErrdefs ' "$T/suite.log" ||
	fail "TestLazypullErrdefs did not pass"
ok "errdefs kinds, empty-valued labels, Usage, Walk filter errors and Cleanup as containerd's metastore (TestLazypullErrdefs)"
say "suite time: ${ms} ms; $(grep -o 'daemons: .*' "$T/suite.log" || echo 'no daemon timings')"

# Nothing of the daemons is left behind: no mount under the suite's dirs.
left=$(mounts_under "$T")
[ -z "$left" ] || fail "mounts left behind: $left"
ok "no mounts left under the suite's directories"
done_ok
