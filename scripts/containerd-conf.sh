# SPDX-License-Identifier: Apache-2.0
# The containerd configuration of a private containerd instance, shared by
# the demo (scripts/demo.sh), the integration tests (tests/integration/
# lib.sh) and the cold-start benchmark (tests/bench/coldstart.sh). Sourced,
# not run.

# lp_containerd_conf DIR SOCKET DISABLED PROXIES [EXTRA_TOML]: prints a
# containerd 1.6 configuration (version 2) with root, state, ttrpc and
# debug sockets under DIR and the gRPC socket at SOCKET; the snapshotters a
# private instance has no use for and tracing are disabled, plus DISABLED
# (space-separated plugin IDs, e.g. "io.containerd.grpc.v1.cri"); PROXIES
# is a space-separated list of NAME=SOCKET proxy snapshotters; EXTRA_TOML
# is appended as is.
lp_containerd_conf() {
	local dir=$1 sock=$2 disabled=$3 proxies=$4 extra=${5:-} p list
	list='"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"'
	for p in $disabled; do list="$list, \"$p\""; done
	cat <<EOC
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [$list]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = "$dir/debug.sock"
EOC
	for p in $proxies; do
		printf '[proxy_plugins.%s]\n  type = "snapshot"\n  address = "%s"\n' "${p%%=*}" "${p#*=}"
	done
	[ -z "$extra" ] || printf '%s\n' "$extra"
}
