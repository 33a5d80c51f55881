// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull snapshotter`: the containerd remote snapshotter daemon. Reads
 * the JSON config (--config), lets flags override it, and runs
 * lp_snap_run() in the foreground until SIGTERM (systemd or the test
 * harness supervise it; see docs/snapshotter.md); `--teardown` unmounts
 * everything and stops the fd holder instead. `lazypull fdholder` is the
 * fd holder process the daemon starts (or systemd runs) for its root.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "lp_fs.h"
#include "lp_log.h"
#include "lp_registry.h"
#include "lp_snapshotter.h"

static const char snapshotter_usage[] =
	"Usage: lazypull snapshotter [OPTIONS]\n"
	"\n"
	"Serve containerd's Snapshots API (proxy plugin) on a unix socket,\n"
	"mounting eStargz / zstd:chunked layers lazily, and plain gzip layers\n"
	"that have a gzip index (`lazypull index`); other layers work as with\n"
	"an ordinary overlay snapshotter.\n"
	"\n"
	"Options (flags override the config file):\n"
	"  --config FILE              JSON configuration (docs/snapshotter.md)\n"
	"  --root DIR                 state directory (default " LP_SNAP_DEFAULT_ROOT
	")\n"
	"  --address SOCKET           gRPC socket (default " LP_SNAP_DEFAULT_ADDRESS
	")\n"
	"  --insecure-registry HOST   plain HTTP for HOST[:PORT] (repeatable;\n"
	"                             loopback registries are plain by default)\n"
	"  --registry-config-dir DIR  containerd's hosts.toml directory: mirrors,\n"
	"                             TLS and headers per registry (default\n"
	"                             " LP_REG_CONFIG_DIR_DEFAULT
	"; \"\": none)\n"
	"  --metrics-address H:P      serve Prometheus metrics at /metrics\n"
	"  --cri-listen SOCKET        serve a CRI image-service proxy here for\n"
	"                             kubelet's --image-service-endpoint: it\n"
	"                             keeps PullImage credentials (memory\n"
	"                             only) for those images' layers\n"
	"  --cri-upstream SOCKET      containerd's CRI socket the proxy\n"
	"                             forwards to (default\n"
	"                             /run/containerd/containerd.sock)\n"
	"  --index-dir DIR            look for the gzip indexes of plain layers\n"
	"                             in DIR (`lazypull index --output DIR`;\n"
	"                             repeatable) before the registry\n"
	"  --no-index-lookup          plain layers take the plain path without\n"
	"                             looking for a gzip index\n"
	"  --no-profile-lookup        do not look for images' prefetch\n"
	"                             profiles (optimize --profile-only)\n"
	"  --strict                   refuse layers that cannot be mounted\n"
	"                             lazily instead of taking the plain path\n"
	"  --no-prefetch              do not prefetch prioritised files\n"
	"  --prefetch-timeout MS      Prepare waits up to MS for a layer's\n"
	"                             prefetch (default 0: no wait)\n"
	"  --no-background-fetch      fetch only what is read\n"
	"  --background-quiet MS      start background fetch only after MS\n"
	"                             without prefetch or on-demand fetches\n"
	"                             in any layer (default 1000)\n"
	"  --mem-cache SIZE           memory for verified chunks, all layers\n"
	"                             together (64M)\n"
	"  --cache-max SIZE           disk chunk cache bound (8G)\n"
	"  --unserved-timeout SECS    while no daemon serves (restart, upgrade,\n"
	"                             crash), readers of its layers wait up to\n"
	"                             SECS, then get EIO (default 60; 0: at\n"
	"                             once)\n"
	"  --teardown                 do not serve: unmount every layer under\n"
	"                             the root and stop its fd holder (for\n"
	"                             uninstalling; the daemon must be stopped)\n"
	"  -h, --help                 this help\n"
	"\n"
	"SIGTERM ends the daemon at once and leaves the layers mounted, their\n"
	"FUSE connections with the fd holder (`lazypull fdholder`), so that\n"
	"running containers keep working and the next daemon serves them.\n";

static const char fdholder_usage[] =
	"Usage: lazypull fdholder [--root DIR] [--unserved-timeout SECS]\n"
	"\n"
	"Hold the FUSE connections of the snapshotter of DIR across its\n"
	"restarts (the snapshotter starts it when none runs; under systemd it\n"
	"is a unit of its own). SIGTERM closes every connection it holds;\n"
	"SIGHUP is ignored. DIR is created (0700) when missing; one holder\n"
	"runs per DIR (it locks DIR/fdholder.lock).\n"
	"  --exit-when-idle           end when no snapshotter claims it any more\n"
	"                             and it holds nothing (how the snapshotter\n"
	"                             starts it)\n"
	"  --protocol N               speak protocol N (tests only)\n";

enum {
	OPT_CONFIG = 256,
	OPT_ROOT,
	OPT_ADDRESS,
	OPT_INSECURE,
	OPT_REGISTRY_CONFIG_DIR,
	OPT_METRICS,
	OPT_STRICT,
	OPT_NO_PREFETCH,
	OPT_PREFETCH_TIMEOUT,
	OPT_NO_BACKGROUND,
	OPT_BACKGROUND_QUIET,
	OPT_MEM_CACHE,
	OPT_CACHE_MAX,
	OPT_UNSERVED_TIMEOUT,
	OPT_TEARDOWN,
	OPT_PROTOCOL,
	OPT_EXIT_WHEN_IDLE,
	OPT_CRI_LISTEN,
	OPT_CRI_UPSTREAM,
	OPT_INDEX_DIR,
	OPT_NO_INDEX_LOOKUP,
	OPT_NO_PROFILE_LOOKUP,
};

static const struct option snapshotter_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "insecure-registry", required_argument, NULL, OPT_INSECURE },
	{ "registry-config-dir", required_argument, NULL,
	  OPT_REGISTRY_CONFIG_DIR },
	{ "metrics-address", required_argument, NULL, OPT_METRICS },
	{ "cri-listen", required_argument, NULL, OPT_CRI_LISTEN },
	{ "cri-upstream", required_argument, NULL, OPT_CRI_UPSTREAM },
	{ "index-dir", required_argument, NULL, OPT_INDEX_DIR },
	{ "no-index-lookup", no_argument, NULL, OPT_NO_INDEX_LOOKUP },
	{ "no-profile-lookup", no_argument, NULL, OPT_NO_PROFILE_LOOKUP },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
	{ "prefetch-timeout", required_argument, NULL, OPT_PREFETCH_TIMEOUT },
	{ "no-background-fetch", no_argument, NULL, OPT_NO_BACKGROUND },
	{ "background-quiet", required_argument, NULL, OPT_BACKGROUND_QUIET },
	{ "mem-cache", required_argument, NULL, OPT_MEM_CACHE },
	{ "cache-max", required_argument, NULL, OPT_CACHE_MAX },
	{ "unserved-timeout", required_argument, NULL, OPT_UNSERVED_TIMEOUT },
	{ "teardown", no_argument, NULL, OPT_TEARDOWN },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const struct option fdholder_options[] = {
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "unserved-timeout", required_argument, NULL, OPT_UNSERVED_TIMEOUT },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "exit-when-idle", no_argument, NULL, OPT_EXIT_WHEN_IDLE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define SNAP_PREFETCH_TIMEOUT_MAX 3600000L /* ms */

/* the config file first (wherever --config sits), then the flags over it */
static int load_config_file(int argc, char **argv, struct lp_snap_config *c)
{
	struct lp_err err = { 0 };
	int ch, r;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", snapshotter_options, NULL)) !=
	       -1) {
		if (ch != OPT_CONFIG)
			continue;
		r = lp_snap_config_load(c, optarg, &err);
		if (r < 0)
			return lp_cmd_fail("snapshotter", &err, r);
	}
	opterr = 1;
	return 0;
}

int lp_cmd_snapshotter(int argc, char **argv)
{
	struct lp_snap_config c;
	struct lp_err err = { 0 };
	bool teardown = false, exit_now = false;
	const char *hosts_dir;
	uint64_t size;
	long v;
	int ch, r, ret = LP_EXIT_FAIL;

	if (lp_snap_config_init(&c) < 0)
		return lp_cmd_fail("snapshotter", NULL, -ENOMEM);
	ret = load_config_file(argc, argv, &c);
	if (ret)
		goto out;
	ret = LP_EXIT_FAIL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", snapshotter_options, NULL)) !=
	       -1) {
		r = 0;
		switch (ch) {
		case OPT_CONFIG:
			break;
		case OPT_ROOT:
			r = lp_snap_config_set_str(&c.root, optarg);
			break;
		case OPT_ADDRESS:
			r = lp_snap_config_set_str(&c.address, optarg);
			break;
		case OPT_INSECURE:
			r = lp_snap_config_add_insecure(&c, optarg);
			break;
		case OPT_REGISTRY_CONFIG_DIR:
			r = lp_snap_config_set_str(&c.registry_config_dir,
						   optarg);
			break;
		case OPT_METRICS:
			r = lp_snap_config_set_str(&c.metrics_address, optarg);
			break;
		case OPT_CRI_LISTEN:
			r = lp_snap_config_set_str(&c.cri_listen, optarg);
			break;
		case OPT_CRI_UPSTREAM:
			r = lp_snap_config_set_str(&c.cri_upstream, optarg);
			break;
		case OPT_INDEX_DIR:
			r = lp_snap_config_add_index_dir(&c, optarg);
			break;
		case OPT_NO_INDEX_LOOKUP:
			c.index_lookup = false;
			break;
		case OPT_NO_PROFILE_LOOKUP:
			c.profile_lookup = false;
			break;
		case OPT_STRICT:
			c.strict = true;
			break;
		case OPT_NO_PREFETCH:
			c.prefetch = false;
			break;
		case OPT_PREFETCH_TIMEOUT:
			if (lp_cmd_parse_int(optarg, 0,
					     SNAP_PREFETCH_TIMEOUT_MAX,
					     &v) < 0) {
				ret = lp_cmd_usage_error(
					"snapshotter",
					"bad --prefetch-timeout '%s'", optarg);
				goto out;
			}
			c.prefetch_timeout_ms = (unsigned int)v;
			break;
		case OPT_NO_BACKGROUND:
			c.background_fetch = false;
			break;
		case OPT_BACKGROUND_QUIET:
			if (lp_cmd_parse_int(optarg, 0,
					     LP_FS_MAX_BACKGROUND_QUIET_MS,
					     &v) < 0) {
				ret = lp_cmd_usage_error(
					"snapshotter",
					"bad --background-quiet '%s'", optarg);
				goto out;
			}
			c.background_quiet_ms = (unsigned int)v;
			break;
		case OPT_MEM_CACHE:
		case OPT_CACHE_MAX:
			if (lp_cmd_parse_size(optarg, &size) < 0 || !size ||
			    size > SIZE_MAX) {
				ret = lp_cmd_usage_error(
					"snapshotter", "bad size '%s'", optarg);
				goto out;
			}
			if (ch == OPT_MEM_CACHE)
				c.mem_cache_bytes = (size_t)size;
			else
				c.disk_cache_bytes = size;
			break;
		case OPT_UNSERVED_TIMEOUT:
			if (lp_cmd_parse_int(optarg, 0,
					     LP_SNAP_UNSERVED_TIMEOUT_MAX,
					     &v) < 0) {
				ret = lp_cmd_usage_error(
					"snapshotter",
					"bad --unserved-timeout '%s'", optarg);
				goto out;
			}
			c.unserved_timeout_s = (unsigned int)v;
			break;
		case OPT_TEARDOWN:
			teardown = true;
			break;
		case 'h':
			fputs(snapshotter_usage, stdout);
			ret = LP_EXIT_OK;
			goto out;
		default:
			ret = lp_cmd_usage_error("snapshotter", "bad option");
			goto out;
		}
		if (r < 0) {
			ret = lp_cmd_fail(optarg, NULL, r);
			goto out;
		}
	}
	if (optind != argc) {
		ret = lp_cmd_usage_error("snapshotter",
					 "unexpected argument '%s'",
					 argv[optind]);
		goto out;
	}
	if (c.registry_config_dir &&
	    lp_cmd_registry_config_dir("snapshotter", c.registry_config_dir,
				       &hosts_dir)) {
		ret = LP_EXIT_USAGE;
		goto out;
	}
	if (teardown) {
		r = lp_snap_teardown(&c, &err);
		if (r >= 0)
			lp_log_warn("teardown of %s: %d mount(s) removed, fd "
				    "holder stopped",
				    c.root, r);
		ret = r < 0 ? lp_cmd_fail("snapshotter --teardown", &err, r) :
			      LP_EXIT_OK;
		goto out;
	}
	r = lp_snap_run(&c, &exit_now, &err);
	ret = r < 0 ? lp_cmd_fail("snapshotter", &err, r) : LP_EXIT_OK;
	if (exit_now) {
		/* FUSE and fetch threads still serve: no exit handlers */
		fflush(stdout);
		fflush(stderr);
		_exit(ret);
	}
out:
	lp_snap_config_release(&c);
	return ret;
}

int lp_cmd_fdholder(int argc, char **argv)
{
	const char *root = LP_SNAP_DEFAULT_ROOT;
	long timeout = LP_SNAP_DEFAULT_UNSERVED_TIMEOUT_S;
	long proto = LP_SNAP_FDH_PROTO;
	bool idle_exit = false;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", fdholder_options, NULL)) !=
	       -1) {
		switch (ch) {
		case OPT_ROOT:
			root = optarg;
			break;
		case OPT_UNSERVED_TIMEOUT:
			if (lp_cmd_parse_int(optarg, 0,
					     LP_SNAP_UNSERVED_TIMEOUT_MAX,
					     &timeout) < 0)
				return lp_cmd_usage_error(
					"fdholder",
					"bad --unserved-timeout '%s'", optarg);
			break;
		case OPT_PROTOCOL:
			if (lp_cmd_parse_int(optarg, 1, 1000000, &proto) < 0)
				return lp_cmd_usage_error("fdholder",
							  "bad --protocol '%s'",
							  optarg);
			break;
		case OPT_EXIT_WHEN_IDLE:
			idle_exit = true;
			break;
		case 'h':
			fputs(fdholder_usage, stdout);
			return LP_EXIT_OK;
		default:
			return lp_cmd_usage_error("fdholder", "bad option");
		}
	}
	if (optind != argc || root[0] != '/')
		return lp_cmd_usage_error("fdholder",
					  "want an absolute --root only");
	r = lp_snap_fdholder_serve(root, (unsigned int)timeout, (uint32_t)proto,
				   idle_exit);
	return r < 0 ? lp_cmd_fail("fdholder", NULL, r) : LP_EXIT_OK;
}
