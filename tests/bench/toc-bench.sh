#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# toc-bench.sh: how long a big TOC takes from its JSON bytes in memory to
# the parsed, checked, packed struct lp_toc a mount serves from
# (lp_toc_parse(); the fs core adds one pass over the chunks), and how many
# bytes per entry the parsed TOC keeps resident (docs/benchmarks.md, "Big
# TOCs").
#
# usage: tests/bench/toc-bench.sh BUILD_DIR [BASE_BUILD_DIR]
#   BUILD_DIR/tests/toc_driver is measured; with BASE_BUILD_DIR, its driver
#   runs on the same TOCs in the same session (before/after).
# environment: TOC_BENCH_SIZES ("100000 700000 1000000"), TOC_BENCH_RUNS (3,
#   the best of which is reported), TOC_BENCH_DIR (where the generated TOCs
#   are cached; /var/tmp/lazypull-toc-bench), TOC_BENCH_MIXES
#   ("realistic empty"; tests/bench/toc-gen.py says what they hold),
#   TOC_BENCH_MOUNT=1 (also mount the realistic layers with
#   BUILD_DIR/cmd/lazypull, and BASE_BUILD_DIR's: needs root and /dev/fuse;
#   wall time until the mount answers and the daemon's CPU time until then),
#   TOC_BENCH_PARSE=0 (skip the parse table).
# Prints a Markdown table: wall and CPU seconds of the parse (best of the
# runs: the machine is shared, CPU time is the steadier figure), resident
# and heap bytes per entry after the JSON is freed, the peak RSS above the
# JSON while parsing, and whether every entry's path looked up to it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: toc-bench.sh BUILD_DIR [BASE_BUILD_DIR]}
base=${2:-}
sizes=${TOC_BENCH_SIZES:-"100000 700000 1000000"}
runs=${TOC_BENCH_RUNS:-3}
mixes=${TOC_BENCH_MIXES:-"realistic empty"}
dir=${TOC_BENCH_DIR:-/var/tmp/lazypull-toc-bench}

driver=$build/tests/toc_driver
[ -x "$driver" ] || { echo "toc-bench: $driver missing (cmake --build $build --target toc_driver)" >&2; exit 1; }
if [ -n "$base" ]; then
	[ -x "$base/tests/toc_driver" ] || { echo "toc-bench: $base/tests/toc_driver missing" >&2; exit 1; }
fi
mkdir -p "$dir"

# make (once) the TOC of $1 entries of mix $2 ($3: --shuffle or ""); prints
# its path and payload end
gen() {
	local n=$1 mix=$2 shuf=${3:-} f
	f="$dir/toc-$mix-$n${shuf:+-shuffled}.json"
	if [ ! -s "$f" ] || [ ! -s "$f.end" ] || [ "$here/toc-gen.py" -nt "$f" ]; then
		python3 "$here/toc-gen.py" "$n" "$f" --mix "$mix" $shuf 2>"$f.log"
		awk '/^payload_end/ {print $2}' "$f.log" >"$f.end"
	fi
	echo "$f $(cat "$f.end")"
}

field() { # key line
	tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| build | TOC | entries | chunks | JSON MB | parse wall s | parse CPU s | resident B/entry | heap B/entry | peak extra MB | digests | lookups |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
cases=()
for mix in $mixes; do
	for n in $sizes; do
		cases+=("$mix $n")
	done
done
cases+=("realistic 100000 --shuffle")
[ "${TOC_BENCH_PARSE:-1}" = 1 ] || cases=()
for c in ${cases[@]+"${cases[@]}"}; do
	read -r mix n shuf <<<"$c"
	read -r f end < <(gen "$n" "$mix" "$shuf")
	for b in ${base:+"$base"} "$build"; do
		label=$([ "$b" = "$base" ] && echo before || echo after)
		[ -z "$base" ] && label=$(basename "$b")
		if ! line=$("$b/tests/toc_driver" "$f" "$end" "$runs" 2>"$dir/driver.err"); then
			# e.g. a TOC over the build's LP_TOC_MAX_JSON
			line="check=rejected:_$(head -c 80 "$dir/driver.err" | tr ' |' '_/')"
		fi
		printf '| %s | %s%s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' \
			"$label" "$mix" "${shuf:+ shuffled}" \
			"$(field entries "$line")" "$(field chunks "$line")" \
			"$(awk -v b="$(field json_bytes "$line")" 'BEGIN {print b / 1e6}')" \
			"$(field parse_s "$line")" "$(field parse_cpu_s "$line")" \
			"$(field rss_B_per_entry "$line")" "$(field heap_B_per_entry "$line")" \
			"$(field peak_extra_MB "$line")" "$(field digests "$line")" \
			"$(field check "$line")"
	done
done

# the whole mount of a local blob: open, inflate and digest the TOC, parse,
# FUSE mount; timed until the mount answers (a foreground mount, so its CPU
# time up to then is read from /proc), then a lookup. With BASE_BUILD_DIR,
# its lazypull mounts the same blob in the same run (before/after).
mount_one() { # lazypull blob digest mnt -> "wall cpu user sys rss_kB lookup"
	local lp=$1 blob=$2 dg=$3 mnt=$4 pid t0 t1 ut st rss tck look
	tck=$(getconf CLK_TCK)
	t0=$(date +%s.%N)
	"$lp" mount --foreground --no-prefetch --no-background-fetch \
		--toc-digest "$dg" "$blob" "$mnt" &
	pid=$!
	while ! mountpoint -q "$mnt"; do
		kill -0 "$pid" 2>/dev/null || { echo "toc-bench: mount failed" >&2; return 1; }
		sleep 0.005
	done
	t1=$(date +%s.%N)
	read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
	look=$(stat -c %F "$mnt/usr/lib/pkg0000/mod00/part0/file_000001.py" 2>&1 || true)
	umount "$mnt"
	wait "$pid" || true
	awk -v a="$t0" -v b="$t1" -v u="$ut" -v s="$st" -v t="$tck" -v r="$rss" \
		-v l="$(tr ' ' _ <<<"$look")" \
		'BEGIN {printf "%.3f %.3f %.3f %.3f %d %s\n", b - a, (u + s) / t, u / t, s / t, r, l}'
}
if [ "${TOC_BENCH_MOUNT:-0}" = 1 ]; then
	[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] || { echo "toc-bench: mounting needs root and /dev/fuse" >&2; exit 1; }
	for b in ${base:+"$base"} "$build"; do
		[ -x "$b/cmd/lazypull" ] || { echo "toc-bench: $b/cmd/lazypull missing" >&2; exit 1; }
	done
	echo
	echo "| build | mount (lazypull mount of a local blob) | entries | TOC JSON MB | mount wall s | mount CPU s (user + sys) | RSS MB | lookup |"
	echo "|---|---|---|---|---|---|---|---|"
	for n in $sizes; do
		f="$dir/layer-realistic-$n.json"
		if [ ! -s "$f.esgz" ] || [ "$here/toc-gen.py" -nt "$f.esgz" ]; then
			python3 "$here/toc-gen.py" "$n" "$f" --layer "$f.esgz" 2>"$f.log"
		fi
		digest=$(awk '/^toc_digest/ {print $2}' "$f.log")
		mnt=$(mktemp -d "$dir/mnt.XXXXXX")
		for b in ${base:+"$base"} "$build"; do
			label=$([ "$b" = "$base" ] && echo before || echo after)
			[ -z "$base" ] && label=$(basename "$b")
			best="" bestcpu="" line=""
			for _ in $(seq "$runs"); do
				read -r w c u s r look < <(mount_one "$b/cmd/lazypull" "$f.esgz" "$digest" "$mnt")
				best=$(awk -v a="$best" -v b="$w" 'BEGIN {print (a == "" || b < a) ? b : a}')
				if [ -z "$bestcpu" ] || awk -v a="$bestcpu" -v b="$c" 'BEGIN {exit !(b < a)}'; then
					bestcpu=$c line="$c ($u + $s)" rssmb=$(awk -v r="$r" 'BEGIN {printf "%.0f", r / 1024}')
				fi
			done
			printf '| %s | realistic | %s | %.0f | %s | %s | %s | %s |\n' "$label" "$n" \
				"$(awk -v b="$(stat -c %s "$f")" 'BEGIN {print b / 1e6}')" "$best" "$line" "$rssmb" "$look"
		done
		rmdir "$mnt"
	done
fi
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
