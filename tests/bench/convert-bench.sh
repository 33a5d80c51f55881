#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Layer conversion benchmark: `lazypull layer convert` against the reference
# converter (containerd/stargz-snapshotter's estargz.Build, via
# tests/interop/estargz-ref) on the same realistic layer, a debootstrap
# --variant=minbase bookworm rootfs (>= 100 MB uncompressed), same gzip level
# and chunk size, page cache warm. Prints a Markdown table and writes it to
# the results file. See docs/benchmarks.md, section "Layer conversion".
#
# usage: convert-bench.sh [-n RUNS] [-l LEVEL] [-c CHUNK] [-o RESULTS] [-b BUILD_DIR] [-t TOOLS]
#   TOOLS: "lazypull reference" (default), or one of them alone
#   env: LAZYPULL (binary; default BUILD_DIR/cmd/lazypull),
#        LP_BENCH_CACHE (default /var/cache/lazypull-bench),
#        LP_BENCH_MIRROR (default http://deb.debian.org/debian)
# Needs root for debootstrap (only the first time; the tar is cached).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
runs=3 level=9 chunk=4194304 build="$src/build" results="" tools="lazypull reference"
while getopts n:l:c:o:b:t: opt; do
	case $opt in
	n) runs=$OPTARG ;; l) level=$OPTARG ;; c) chunk=$OPTARG ;;
	o) results=$OPTARG ;; b) build=$OPTARG ;; t) tools=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-l LEVEL] [-c CHUNK] [-o RESULTS] [-b BUILD_DIR] [-t TOOLS]" >&2; exit 2 ;;
	esac
done
cache=${LP_BENCH_CACHE:-/var/cache/lazypull-bench}
mirror=${LP_BENCH_MIRROR:-http://deb.debian.org/debian}
lazypull=${LAZYPULL:-$build/cmd/lazypull}
results=${results:-$build/bench/convert-results.md}
layer="$cache/bookworm-minbase.tar"

die() { echo "convert-bench: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lp-convert-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the input layer, built once and cached ---------------------------------
if [ ! -s "$layer" ]; then
	command -v debootstrap >/dev/null || {
		echo "convert-bench: installing debootstrap" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
	}
	mkdir -p "$cache"
	rootfs="$cache/rootfs.tmp"
	rm -rf "$rootfs"
	echo "convert-bench: debootstrap --variant=minbase bookworm (once; cached in $cache)" >&2
	debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2 ||
		die "debootstrap failed"
	# What an image's base layer holds: no downloaded .debs or apt lists
	# (debian:bookworm images strip them too).
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
		"$rootfs"/var/cache/apt/*.bin
	# A layer tar as image builders write it: relative names, numeric owners,
	# xattrs kept, stable order.
	tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' --sort=name \
		-cf "$layer.tmp" . || die "tar of rootfs failed"
	mv "$layer.tmp" "$layer"
	rm -rf "$rootfs"
fi
in_bytes=$(stat -c %s "$layer")
[ "$in_bytes" -ge 100000000 ] || die "$layer is only $in_bytes bytes (< 100 MB)"

# --- tools -------------------------------------------------------------------
has() { case " $tools " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if has lazypull; then
	[ -x "$lazypull" ] || die "no lazypull binary at $lazypull (set LAZYPULL or -b)"
fi
ref="$build/interop/estargz-ref"
[ -x "$ref" ] || bash "$src/tests/interop/build.sh" "$build/interop" >&2
[ -x "$ref" ] || die "could not build the reference checker"

# Warm the page cache with the input.
cat "$layer" >/dev/null

median() { sort -g | awk '{a[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print a[m]; else printf "%.3f\n", (a[m]+a[m+1])/2}'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\\n\", ${*:2} }"; } # calc FORMAT EXPR...

# Runs are interleaved (lazypull, reference, lazypull, ...) so that load from
# elsewhere on the machine hits both alike; CPU time (user+sys) is reported
# too, as it is less sensitive to such load than wall-clock time.
declare -A secs cpus size cmd out walls cpul
if has lazypull; then
	out[lazypull]="$work/lazypull.esgz"
	cmd[lazypull]="\"\$lazypull\" layer convert --level $level --chunk-size $chunk \"\$layer\" \"\${out[lazypull]}\""
fi
if has reference; then
	out[reference]="$work/reference.esgz"
	cmd[reference]="\"\$ref\" convert --level $level --chunk-size $chunk \"\$layer\" \"\${out[reference]}\""
fi
TIMEFORMAT='%R %U %S'
for ((i = 1; i <= runs; i++)); do
	for n in $tools; do
		rm -f "${out[$n]}"
		{ time eval "${cmd[$n]}" >"$work/$n.log" 2>&1; } 2>"$work/$n.time" ||
			{ cat "$work/$n.log" >&2; die "$n conversion failed"; }
		read -r w u sy <"$work/$n.time"
		walls[$n]+="$w "
		cpul[$n]+="$(calc %.3f "$u + $sy") "
		echo "convert-bench: $n run $i: $w s wall, $(calc %.2f "$u + $sy") s CPU" >&2
	done
done
for n in $tools; do
	secs[$n]=$(printf '%s\n' ${walls[$n]} | median)
	cpus[$n]=$(printf '%s\n' ${cpul[$n]} | median)
	size[$n]=$(stat -c %s "${out[$n]}")
	toc=$(sed -n 's/^toc-digest=//p' "$work/$n.log")
	[ -n "$toc" ] || die "$n printed no toc-digest"
	"$ref" verify "${out[$n]}" "$toc" >/dev/null || die "$n output does not verify with the reference reader"
done
gzip -6 -c "$layer" >"$work/layer.tar.gz"
gz6=$(stat -c %s "$work/layer.tar.gz")

mb() { calc %.1f "$1 / 1000000"; }
mbs() { calc %.1f "$in_bytes / 1000000 / $1"; }
ratio() { calc %.2f "$1 / $2"; }

mkdir -p "$(dirname "$results")"
{
	echo "Layer: debootstrap --variant=minbase bookworm, $(mb "$in_bytes") MB uncompressed tar;"
	echo "gzip level $level, chunk size $chunk, median of $runs runs, page cache warm;"
	echo "$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(date -u +%Y-%m-%d)."
	echo
	echo "| converter | median wall s | MB/s (uncompressed in) | median CPU s | output MB | vs gzip -6 |"
	echo "|---|---|---|---|---|---|"
	for n in $tools; do
		echo "| $n | ${secs[$n]} | $(mbs "${secs[$n]}") | ${cpus[$n]} | $(mb "${size[$n]}") | $(ratio "${size[$n]}" "$gz6")x |"
	done
	echo "| gzip -6 (context) | | | | $(mb "$gz6") | 1.00x |"
	if has lazypull && has reference; then
		echo
		echo "lazypull/reference: throughput $(ratio "${secs[reference]}" "${secs[lazypull]}")x" \
			"(target >= 3x; CPU time $(ratio "${cpus[reference]}" "${cpus[lazypull]}")x)," \
			"size $(ratio "${size[lazypull]}" "${size[reference]}")x (target <= 1.02x)"
		echo
		echo "load average during the runs (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
	fi
} | tee "$results"
echo "convert-bench: results written to $results" >&2
