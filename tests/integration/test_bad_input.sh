#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad input is refused cleanly: `layer convert` of a non-tar file, a
# truncated tar.gz or tar, gzip'd garbage, an empty file (from a path and
# from stdin) exits 1 with a `lazypull: ...` message on stderr and leaves
# neither OUT nor a temporary file behind; `layer verify`, `inspect` and
# `extract` of files that are not eStargz/zstd:chunked (a plain tar.gz,
# random bytes, an empty file, a blob cut short) exit 1 with a message.
# Exit status 1 and the message format are docs/cli.md's contract; a crash
# (signal, sanitizer abort) is always a failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# expect_error WHAT CMD...: CMD must exit 1 with a lazypull: message on stderr.
expect_error() {
	local what=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	case $rc in
	0) fail "$what: succeeded (expected failure); stdout: $(head -c 300 "$T/out")" ;;
	1) ;;
	*)
		show_err "$T/err"
		fail "$what: exit status $rc (expected 1: the operation failed)"
		;;
	esac
	[ -s "$T/err" ] || fail "$what: failed silently (nothing on stderr)"
	grep -q '^lazypull: ' "$T/err" || { show_err "$T/err"; fail "$what: stderr has no 'lazypull: WHAT: reason' line"; }
	if grep -Eqi 'AddressSanitizer|runtime error:|Segmentation|core dumped' "$T/err"; then
		show_err "$T/err"
		fail "$what: sanitizer report or crash"
	fi
	[ "$(wc -l <"$T/err")" -le 10 ] || { show_err "$T/err"; fail "$what: more than 10 lines of errors for one failure"; }
}

# --- inputs ----------------------------------------------------------------
mkdir -p "$T/in"
python3 -c 'import random,sys; r=random.Random(7); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(100000)))' >"$T/in/random.bin"
printf 'this is a text file, not a tar archive\n%.0s' $(seq 200) >"$T/in/text.txt"
: >"$T/in/empty"
sz=$(stat -c %s "$LP_VECTORS_DIR/v1.tar.gz")
head -c $((sz / 2)) "$LP_VECTORS_DIR/v1.tar.gz" >"$T/in/truncated.tar.gz"
gzip -dc "$LP_VECTORS_DIR/v1.tar.gz" >"$T/in/v1.tar"
# Cut inside big.bin's payload: the headers before it are fine.
head -c 6000000 "$T/in/v1.tar" >"$T/in/truncated.tar"
gzip -c "$T/in/text.txt" >"$T/in/text.txt.gz"
head -c 700 "$T/in/v1.tar" >"$T/in/header-only.tar"

# --- verify / inspect / extract of things that are not eStargz ------------------
cp "$LP_VECTORS_DIR/v1-default.esgz" "$T/in/v1.esgz"
sz=$(stat -c %s "$T/in/v1.esgz")
head -c $((sz - 20)) "$T/in/v1.esgz" >"$T/in/no-footer.esgz"  # footer cut
head -c $((sz / 2)) "$T/in/v1.esgz" >"$T/in/half.esgz"         # TOC gone
# A footer pointing past the end of the blob (offset field rewritten).
python3 - "$T/in/v1.esgz" "$T/in/bad-offset.esgz" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-51 + 16:-51 + 32] = b"%016x" % (len(b) * 2)
open(sys.argv[2], "wb").write(b)
PY
cp "$LP_VECTORS_DIR/v1.tar.gz" "$T/in/plain.tar.gz"
toc=$(cat "$LP_VECTORS_DIR/v1-default.toc-digest")
for f in plain.tar.gz v1.tar random.bin text.txt empty no-footer.esgz half.esgz bad-offset.esgz; do
	expect_error "verify $f" "$LAZYPULL" layer verify "$T/in/$f" --toc-digest "$toc"
	msg=$(head -1 "$T/err")
	expect_error "verify --list $f" "$LAZYPULL" layer verify "$T/in/$f" --toc-digest "$toc" --list
	expect_error "inspect $f" "$LAZYPULL" layer inspect "$T/in/$f"
	rm -rf "$T/x"
	expect_error "extract $f" "$LAZYPULL" layer extract "$T/in/$f" "$T/x"
	ok "verify/inspect/extract of $f: exit 1, '$msg'"
done

# --- convert -------------------------------------------------------------------
# Control: good input converts, so the failures below are about the input.
rm -rf "$T/outdir"
mkdir "$T/outdir"
lp_run "$T/out" "$T/err" "$LAZYPULL" layer convert "$LP_VECTORS_DIR/v1.tar.gz" "$T/outdir/ok.esgz" ||
	{ show_err "$T/err"; fail "control: convert of v1.tar.gz failed"; }
[ "$(ls -A "$T/outdir")" = ok.esgz ] || fail "control: convert left $(ls -A "$T/outdir") (expected ok.esgz only)"
ok "control: convert of a good tar.gz succeeds and leaves only OUT"

for f in random.bin text.txt empty truncated.tar.gz truncated.tar text.txt.gz header-only.tar; do
	for fmt in estargz zstd-chunked; do
		rm -rf "$T/outdir"
		mkdir "$T/outdir"
		expect_error "convert --format $fmt $f" \
			"$LAZYPULL" layer convert --format "$fmt" "$T/in/$f" "$T/outdir/out.esgz"
		left=$(ls -A "$T/outdir")
		[ -z "$left" ] || fail "convert --format $fmt $f: failed but left behind: $left"
	done
	ok "convert $f: exit 1, '$(head -1 "$T/err")', no output or temporary file left"
done

rm -rf "$T/outdir"
mkdir "$T/outdir"
for f in random.bin empty truncated.tar.gz; do
	rc=0
	"$LAZYPULL" layer convert - "$T/outdir/out.esgz" <"$T/in/$f" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || { show_err "$T/err"; fail "convert - <$f: exit $rc (expected 1)"; }
	grep -q '^lazypull: ' "$T/err" || fail "convert - <$f: no lazypull: message"
	[ -z "$(ls -A "$T/outdir")" ] || fail "convert - <$f: left behind $(ls -A "$T/outdir")"
done
ok "convert from stdin of random/empty/truncated input: exit 1, nothing left behind"

expect_error "convert of a missing input" "$LAZYPULL" layer convert "$T/in/no-such-file" "$T/outdir/out.esgz"
grep -q 'no-such-file' "$T/err" || fail "missing input: the message does not name the file: $(cat "$T/err")"
[ -z "$(ls -A "$T/outdir")" ] || fail "convert of a missing input left $(ls -A "$T/outdir")"
ok "convert of a missing input names it: $(head -1 "$T/err")"

expect_error "convert into a missing directory" \
	"$LAZYPULL" layer convert "$LP_VECTORS_DIR/v1.tar.gz" "$T/no-such-dir/out.esgz"
ok "convert into a missing directory: $(head -1 "$T/err")"

done_ok
