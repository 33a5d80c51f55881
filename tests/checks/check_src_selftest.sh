#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Self-test of scripts/check-src.sh (the banned-call check): on the fixture
# banned_calls.c.txt it must fail and report exactly the lines marked
# BANNED, each with its rule; on the tree it must pass.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
fx=tests/checks/banned_calls.c.txt

rc=0
out=$(bash scripts/check-src.sh "$fx" 2>&1) || rc=$?
if [ "$rc" != 1 ]; then
	echo "FAIL: check-src.sh exited $rc on the fixture, want 1" >&2
	exit 1
fi
want=$(grep -n 'BANNED \*/' "$fx" | cut -d: -f1 | sort -n | tr '\n' ' ')
got=$(printf '%s\n' "$out" | sed -nE "s|^$fx:([0-9]+): .*|\\1|p" | sort -n | tr '\n' ' ')
if [ "$want" != "$got" ]; then
	printf '%s\n' "$out" >&2
	echo "FAIL: reported lines [$got], want [$want]" >&2
	exit 1
fi
if ! printf '%s\n' "$out" | grep -q "strcpy() is banned (no bound on the destination); use memcpy"; then
	echo "FAIL: no reason/replacement in: $out" >&2
	exit 1
fi
bash scripts/check-src.sh
echo "PASS: check-src.sh reports the $(echo "$want" | wc -w) banned calls of the fixture and passes the tree"
