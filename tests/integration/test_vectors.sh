#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lazypull reads what the reference converter writes: every vector in
# LP_VECTORS_DIR (eStargz defaults, 64 KiB chunks, prioritised, zstd:chunked)
# verifies against its TOC digest, `layer verify --list` prints exactly the
# vector's .files, `layer inspect` names the right format, and verification
# fails on a wrong TOC digest and on a single flipped byte in a chunk or in
# the TOC.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

vectors=$(lp_vectors)
[ -n "$vectors" ] || fail "no *.esgz vectors in $LP_VECTORS_DIR"
# Every vector comes with its TOC digest and file listing; a missing one is
# a broken vector set, not something to skip.
missing=()
for v in $vectors; do
	for ext in esgz toc-digest files; do
		[ -s "$LP_VECTORS_DIR/$v.$ext" ] || missing+=("$v.$ext")
	done
done
[ ${#missing[@]} -eq 0 ] || fail "vector set in $LP_VECTORS_DIR is incomplete: missing ${missing[*]}"
case " $vectors " in *zstd*) ;; *) fail "no zstd:chunked vector (NAME containing 'zstd') in $LP_VECTORS_DIR" ;; esac

for v in $vectors; do
	blob="$LP_VECTORS_DIR/$v.esgz"
	toc=$(cat "$LP_VECTORS_DIR/$v.toc-digest")
	fmt=$(vector_format "$v")
	say "$v ($fmt)"

	lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify "$blob" --toc-digest "$toc" ||
		{ show_err "$T/err"; fail "$v: layer verify failed against its own TOC digest"; }
	ok "verify --toc-digest $toc exits 0"

	lp_run "$T/list" "$T/err" "$LAZYPULL" layer verify "$blob" --toc-digest "$toc" --list ||
		{ show_err "$T/err"; fail "$v: layer verify --list failed"; }
	same_file "$LP_VECTORS_DIR/$v.files" "$T/list" "$v: verify --list output and $v.files"
	ok "verify --list equals $v.files byte for byte ($(wc -l <"$T/list") files)"

	lp_run "$T/inspect" "$T/err" "$LAZYPULL" layer inspect "$blob" ||
		{ show_err "$T/err"; fail "$v: layer inspect failed"; }
	# key=value or key: value or JSON; the value must be exactly the format.
	grep -Eq "^[[:space:]\"]*format[\"]?[[:space:]]*[=:][[:space:]]*\"?$fmt\"?[,[:space:]]*$" "$T/inspect" ||
		{ cat "$T/inspect" >&2; fail "$v: layer inspect does not report format $fmt"; }
	ok "inspect reports format $fmt"

	lp_run "$T/toc.json" "$T/err" "$LAZYPULL" layer inspect "$blob" --toc ||
		{ show_err "$T/err"; fail "$v: layer inspect --toc failed"; }
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); assert t["version"]==1 and t["entries"]' \
		"$T/toc.json" || fail "$v: inspect --toc did not print the TOC JSON"
	ok "inspect --toc prints TOC JSON"

	# Wrong digests: another valid-looking digest, and a malformed one.
	for bad in "sha256:$(printf '%064d' 0)" "sha256:${toc#sha256:}00" "md5:1234"; do
		if lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify "$blob" --toc-digest "$bad"; then
			fail "$v: layer verify succeeded with wrong TOC digest $bad"
		fi
		[ -s "$T/err" ] || fail "$v: wrong TOC digest $bad rejected without a message on stderr"
	done
	ok "wrong/malformed --toc-digest fails with a message"

	# Flipped bytes. The compressed range of each chunk comes from the TOC,
	# read independently of lazypull (lib.sh: chunk_ranges).
	chunk_ranges "$blob" >"$T/ranges"
	largest=$(awk '{print $2 - $1, $0}' "$T/ranges" | sort -k1,1nr | sed -n 1p | cut -d' ' -f2-)
	small=$(grep ' etc/conf.d/app.conf 0$' "$T/ranges" || true)
	[ -n "$small" ] || fail "$v: no chunk for etc/conf.d/app.conf in the TOC"
	for r in "$largest" "$small"; do
		read -r start end name coff <<<"$r"
		# Bytes well inside the compressed payload: the member's tail (tar
		# headers of the next entries, gzip trailer) is not covered by
		# chunkDigest, and the reference reader does not check it either.
		for at in $((start + (end - start) / 3)) $((start + (end - start) / 2)); do
			cp "$blob" "$T/bad.esgz"
			chmod u+w "$T/bad.esgz"
			flip_byte "$T/bad.esgz" "$at"
			if lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify "$T/bad.esgz" --toc-digest "$toc"; then
				fail "$v: verify passed with byte $at flipped (chunk of $name at file offset $coff, blob [$start,$end))"
			fi
			[ -s "$T/err" ] || fail "$v: corrupt chunk rejected without a message on stderr"
			if lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify "$T/bad.esgz" --toc-digest "$toc" --list; then
				fail "$v: verify --list passed with byte $at flipped ($name)"
			fi
		done
		ok "one flipped byte in the chunk of $name at $coff (blob [$start,$end)) fails verification"
	done

	# A flipped byte inside the compressed TOC: either the TOC no longer
	# decodes or its digest no longer matches.
	tocoff=$(toc_offset "$blob")
	cp "$blob" "$T/bad.esgz"
	chmod u+w "$T/bad.esgz"
	flip_byte "$T/bad.esgz" $((tocoff + 200))
	if lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify "$T/bad.esgz" --toc-digest "$toc"; then
		fail "$v: verify passed with a byte of the TOC flipped (offset $((tocoff + 200)))"
	fi
	ok "one flipped byte in the TOC fails verification"
done
done_ok
