#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The test command (README, .ci/run): installs dependencies, checks
# formatting, builds and runs the unit tests under ASan+UBSan, runs every
# libFuzzer target for a bounded time on its corpus, then builds the release
# binary and runs the whole suite (unit, fuzz corpus replay, integration)
# through ctest (its summary line), then fails if the kernel logged a crash
# of one of the suite's processes meanwhile.
#
# Environment: LP_FUZZ_SECONDS (default 30) per fuzz target; LP_SKIP_FUZZ=1
# and LP_SKIP_ASAN=1 to skip those stages when iterating locally.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)

bash scripts/install-deps.sh

echo "== format check (clang-format)"
bash scripts/check-format.sh

echo "== static checks (banned calls, layering includes, cppcheck)"
bash scripts/check-src.sh
bash scripts/check-static.sh

if [ "${LP_SKIP_ASAN:-0}" != 1 ]; then
	echo "== unit tests and fuzz corpora under ASan+UBSan"
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLP_SANITIZE=ON >/dev/null
	cmake --build build-asan -j"$jobs" >/dev/null
	# allow_user_segv_handler=0: a crash is ASan's report with its stack
	# (cmocka's own SIGSEGV handler would say only "Segmentation fault")
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allow_user_segv_handler=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir build-asan -L 'unit|fuzz' --output-on-failure -j"$jobs"
fi

if [ "${LP_SKIP_FUZZ:-0}" != 1 ]; then
	secs=${LP_FUZZ_SECONDS:-30}
	echo "== libFuzzer, ${secs}s per target"
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLP_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j"$jobs" >/dev/null
	for bin in build-fuzz/tests/fuzz_*; do
		name=$(basename "$bin")
		corpus=tests/fuzz/corpus/${name#fuzz_}
		work=$(mktemp -d)
		cp -r "$corpus"/. "$work"/ 2>/dev/null || true
		echo "-- $name"
		"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=0 "$work" \
			>"$work.log" 2>&1 || {
			tail -50 "$work.log"
			echo "fuzz target $name failed" >&2
			exit 1
		}
		grep -E '^#[0-9]+ +DONE' "$work.log" || tail -1 "$work.log"
		rm -rf "$work" "$work.log"
	done
fi

echo "== release build and the whole suite"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLP_WERROR=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
# A daemon that crashes after its test looked (a `lazypull mount` daemon at
# unmount, a snapshotter the trap stops) fails no test by itself: the
# kernel's log of segfaults during the suite is checked as well.
crashes() { dmesg 2>/dev/null | grep -E '\]: segfault at|traps:' | grep -E 'lazypull|lp_|test_' || true; }
before=$(crashes | wc -l)
rc=0
ctest --test-dir build --output-on-failure -j"$jobs" || rc=$?
new=$(crashes | tail -n +$((before + 1)))
if [ -n "$new" ]; then
	echo "processes of the suite crashed (dmesg):" >&2
	echo "$new" >&2
	[ $rc -ne 0 ] || rc=1
fi
exit $rc
