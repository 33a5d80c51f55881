// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull snapshotter`: the containerd remote snapshotter daemon. Reads
 * the JSON config (--config), lets flags override it, and runs
 * lp_snap_run() in the foreground until SIGTERM (systemd or the test
 * harness supervise it; see docs/snapshotter.md).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "lp_fs.h"
#include "lp_log.h"
#include "lp_snapshotter.h"

static const char snapshotter_usage[] =
	"Usage: lazypull snapshotter [OPTIONS]\n"
	"\n"
	"Serve containerd's Snapshots API (proxy plugin) on a unix socket,\n"
	"mounting eStargz / zstd:chunked layers lazily; other layers work as\n"
	"with an ordinary overlay snapshotter.\n"
	"\n"
	"Options (flags override the config file):\n"
	"  --config FILE              JSON configuration (docs/snapshotter.md)\n"
	"  --root DIR                 state directory (default " LP_SNAP_DEFAULT_ROOT
	")\n"
	"  --address SOCKET           gRPC socket (default " LP_SNAP_DEFAULT_ADDRESS
	")\n"
	"  --insecure-registry HOST   plain HTTP for HOST[:PORT] (repeatable;\n"
	"                             loopback registries are plain by default)\n"
	"  --metrics-address H:P      serve Prometheus metrics at /metrics\n"
	"  --strict                   refuse layers that cannot be mounted\n"
	"                             lazily instead of taking the plain path\n"
	"  --no-prefetch              do not prefetch prioritised files\n"
	"  --prefetch-timeout MS      Prepare waits up to MS for a layer's\n"
	"                             prefetch (default 0: no wait)\n"
	"  --no-background-fetch      fetch only what is read\n"
	"  --background-quiet MS      start background fetch only after MS\n"
	"                             without prefetch or on-demand fetches\n"
	"                             in any layer (default 1000)\n"
	"  --mem-cache SIZE           memory cache per mounted layer (64M)\n"
	"  --cache-max SIZE           disk chunk cache bound (8G)\n"
	"  -h, --help                 this help\n";

enum {
	OPT_CONFIG = 256,
	OPT_ROOT,
	OPT_ADDRESS,
	OPT_INSECURE,
	OPT_METRICS,
	OPT_STRICT,
	OPT_NO_PREFETCH,
	OPT_PREFETCH_TIMEOUT,
	OPT_NO_BACKGROUND,
	OPT_BACKGROUND_QUIET,
	OPT_MEM_CACHE,
	OPT_CACHE_MAX,
};

static const struct option snapshotter_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "insecure-registry", required_argument, NULL, OPT_INSECURE },
	{ "metrics-address", required_argument, NULL, OPT_METRICS },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
	{ "prefetch-timeout", required_argument, NULL, OPT_PREFETCH_TIMEOUT },
	{ "no-background-fetch", no_argument, NULL, OPT_NO_BACKGROUND },
	{ "background-quiet", required_argument, NULL, OPT_BACKGROUND_QUIET },
	{ "mem-cache", required_argument, NULL, OPT_MEM_CACHE },
	{ "cache-max", required_argument, NULL, OPT_CACHE_MAX },
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
		case OPT_METRICS:
			r = lp_snap_config_set_str(&c.metrics_address, optarg);
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
	r = lp_snap_run(&c, &err);
	ret = r < 0 ? lp_cmd_fail("snapshotter", &err, r) : LP_EXIT_OK;
out:
	lp_snap_config_release(&c);
	return ret;
}
