#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Static analysis of every tracked .c file with cppcheck (Debian 12: 2.10),
# no build directory needed. Fails on any finding, printed as FILE:LINE.
#
# Checks: cppcheck's errors plus its "warning", "performance" and
# "portability" groups, with the posix and gnu library models and
# scripts/cppcheck/lazypull.cfg (cmocka's fail macros do not return). The
# "style" group is left out: it is mostly variableScope advice that
# disagrees with the house style (declarations at the top of a block).
#
# clang-tidy is not run: its useful checks (clang-analyzer) take minutes
# over the tree on CI's two cores, where cppcheck takes seconds; the
# compiler's -Wall -Wextra -Wshadow -Wformat=2 -Werror covers much of the
# rest.
#
# Suppressions, each with its reason:
#  - missingIncludeSystem: cppcheck does not read system headers; the
#    compiler checks those.
#  - readdirCalled: the posix model asks for readdir_r, which glibc
#    deprecates; readdir is thread safe for distinct DIR streams, and no
#    DIR is shared between threads here.
#  - one finding at a time, inline: "/* cppcheck-suppress ID */" on the line
#    before, with a comment saying why it is a false positive.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cppcheck >/dev/null || { echo "cppcheck is not installed (scripts/install-deps.sh)" >&2; exit 1; }

incs=()
for d in common format converter fs registry image mount optimize snapshot cmd; do
	incs+=(-I "$d")
done
mapfile -t files < <(git ls-files '*.c')
out=$(cppcheck --std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-DLP_VECTORS_DIR='"vectors"' -DLP_SOURCE_DIR='"."' "${incs[@]}" \
	--library=posix --library=gnu --library=scripts/cppcheck/lazypull.cfg \
	--enable=warning,performance,portability --inline-suppr \
	--suppress=missingIncludeSystem --suppress=readdirCalled \
	--error-exitcode=1 -j"$(nproc)" --quiet \
	--template='{file}:{line}: {severity} ({id}): {message}' \
	"${files[@]}" 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
[ -z "$out" ] || { printf '%s\n' "$out" >&2; exit 1; }
