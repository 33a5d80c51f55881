#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Source rules a compiler does not enforce (curl's checksrc is the model).
# Fails naming FILE:LINE for:
#  - a banned call in the product code (every tracked .c/.h outside tests/;
#    tests build fixed strings into buffers they size themselves and run
#    tools with system(), so they are exempt);
#  - an include of libfuse or libcurl in a layer that must not use them:
#    common/, format/, converter/, and fs/ other than fuse_ops.c (the
#    link side of this rule is checked by tests/CMakeLists.txt).
# Comments and string literals are blanked before matching, so prose may
# name a banned call. With FILE arguments only the banned-call check runs,
# on those files (tests/checks/check_src_selftest.sh uses this).
set -euo pipefail
cd "$(dirname "$0")/.."

# name|why it is banned|what to use instead
banned='
sprintf|no bound on the output|snprintf, or lp_buf_printf
vsprintf|no bound on the output|vsnprintf, or lp_buf_vprintf
strcpy|no bound on the destination|memcpy after a length check, snprintf
strcat|no bound on the destination|lp_buf, or snprintf at an offset
strncpy|leaves the result unterminated when it truncates|memcpy after a length check
strncat|its size is the room left, not the buffer size: easy to get wrong|lp_buf, or snprintf at an offset
stpcpy|no bound on the destination|memcpy after a length check
gets|no bound at all|getline, fgets
strtok|hidden static state: not thread safe, not reentrant|strtok_r, strsep, memchr
atoi|no error detection (garbage and overflow read as numbers)|strtol/strtoull with end pointer and errno
atol|no error detection|strtol with end pointer and errno
atoll|no error detection|strtoll with end pointer and errno
atof|no error detection|strtod with end pointer and errno
tmpnam|a race between naming and creating|mkstemp, mkdtemp, O_TMPFILE
tempnam|a race between naming and creating|mkstemp, mkdtemp, O_TMPFILE
mktemp|a race between naming and creating|mkstemp, mkdtemp
asctime|result in a static buffer|strftime on gmtime_r/localtime_r
ctime|result in a static buffer|strftime on localtime_r
gmtime|result in a static buffer|gmtime_r
localtime|result in a static buffer|localtime_r
rand|hidden global state, weak|getrandom
srand|hidden global state|getrandom
readdir_r|deprecated; readdir is thread safe per DIR|readdir
alloca|unbounded stack use|a bounded array, malloc
system|runs a shell over its argument|posix_spawn, fork+execve
popen|runs a shell over its argument|pipe + posix_spawn/fork+execve
'

names=$(printf '%s\n' "$banned" | awk -F'|' 'NF == 3 { printf "%s%s", sep, $1; sep = "|" }')

# Blank comments and string/char literals, keeping line numbers.
strip() {
	perl -0777 -pe '
		s{/\*.*?\*/}{ (my $c = $&) =~ s/[^\n]/ /g; $c }gse;
		s{//[^\n]*}{}g;
		s{"(?:\\.|[^"\\\n])*"}{""}g;
		s{'"'"'(?:\\.|[^'"'"'\\\n])*'"'"'}{'"'"''"'"'}g;
	' "$1"
}

fail=0
while IFS= read -r f; do
	out=$(strip "$f" | grep -nE "(^|[^A-Za-z0-9_.>])($names)[[:space:]]*\(" || true)
	[ -n "$out" ] || continue
	while IFS= read -r hit; do
		line=${hit%%:*}
		name=$(printf '%s\n' "${hit#*:}" | grep -oE "(^|[^A-Za-z0-9_.>])($names)[[:space:]]*\(" |
			head -1 | sed -E 's/^[^A-Za-z0-9_]*//; s/[[:space:]]*\($//')
		rule=$(printf '%s\n' "$banned" | grep -E "^$name\|" | head -1)
		why=$(printf '%s' "$rule" | cut -d'|' -f2)
		use=$(printf '%s' "$rule" | cut -d'|' -f3)
		echo "$f:$line: $name() is banned ($why); use $use" >&2
		fail=1
	done <<<"$out"
done < <(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else
	git ls-files '*.c' '*.h' | grep -v '^tests/'; fi)
[ $# -eq 0 ] || exit "$fail"

# Layering: no libfuse/libcurl include below the adapters.
while IFS= read -r f; do
	case $f in fs/fuse_ops.c) continue ;; esac
	out=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](fuse|fuse3/|fuse_|curl/)' "$f" || true)
	[ -n "$out" ] || continue
	while IFS= read -r hit; do
		echo "$f:${hit%%:*}: includes libfuse/libcurl; common/, format/, converter/ and the fs core must not (docs/architecture.md)" >&2
		fail=1
	done <<<"$out"
done < <(git ls-files 'common/*.[ch]' 'format/*.[ch]' 'converter/*.[ch]' 'fs/*.[ch]')

exit "$fail"
