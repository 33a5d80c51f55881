// SPDX-License-Identifier: Apache-2.0
/*
 * mem_driver: mount layers the way `lazypull snapshotter` does (its layer
 * pool, snapshot/layers.c: one lp_fs and FUSE session per layer, all in one
 * process, the same malloc settings), without containerd, so that
 * tests/bench/mem-bench.sh can measure the memory of one process serving
 * many layers. A benchmark helper, not an installed tool.
 *
 * usage: mem_driver [--defaults] [--mem-cache BYTES] ROOT REF INSECURE-HOST
 *                   [DIGEST TOC-DIGEST]...
 * Prefetch and background fetch are off unless --defaults (the
 * snapshotter's defaults: both on, the chunk disk tier in ROOT/cache).
 * --mem-cache: the process's memory budget (memory_cache_bytes; default
 * the snapshotter's). Also used by tests/integration/
 * test_mount_memory_layers.sh.
 * Prints each mount point, then "ready". SIGUSR1 prints malloc statistics
 * (mallinfo2 and malloc_info XML) to stderr; SIGUSR2 calls malloc_trim(0);
 * SIGTERM/SIGINT unmount and end.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../snapshot/snap_int.h"
#include "lp_err.h"

static void print_malloc_stats(void)
{
	struct mallinfo2 mi = mallinfo2();

	fprintf(stderr,
		"mallinfo2: arena %zu hblkhd %zu uordblks %zu fordblks %zu "
		"keepcost %zu\n",
		mi.arena, mi.hblkhd, mi.uordblks, mi.fordblks, mi.keepcost);
	malloc_info(0, stderr);
	fflush(stderr);
}

int main(int argc, char **argv)
{
	struct lp_snap_config c;
	struct lp_snap_metrics *metrics = NULL;
	struct lp_snap_layers *layers = NULL;
	struct lp_err err = { 0 };
	sigset_t set;
	bool defaults = false;
	size_t mem_cache = 0;
	int i, sig, r, ret = 1;

	for (;;) {
		if (argc > 1 && strcmp(argv[1], "--defaults") == 0) {
			defaults = true;
			argc--;
			argv++;
		} else if (argc > 2 && strcmp(argv[1], "--mem-cache") == 0) {
			mem_cache = strtoull(argv[2], NULL, 10);
			argc -= 2;
			argv += 2;
		} else {
			break;
		}
	}
	if (argc < 6 || (argc - 4) % 2) {
		fprintf(stderr, "usage: mem_driver [--defaults] [--mem-cache "
				"BYTES] ROOT REF INSECURE-HOST "
				"[DIGEST TOC-DIGEST]...\n");
		return 2;
	}
	lp_mount_tune_malloc(); /* as lp_snap_run() */
	/* every thread inherits this mask: signals come to sigwait() */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (lp_snap_config_init(&c) < 0 ||
	    lp_snap_config_set_str(&c.root, argv[1]) < 0 ||
	    lp_snap_config_add_insecure(&c, argv[3]) < 0)
		goto out;
	c.mem_cache_bytes = mem_cache;
	if (!defaults) {
		c.prefetch = false;
		c.background_fetch = false;
	}
	if (lp_snap_metrics_new(&metrics) < 0 ||
	    lp_snap_layers_new(&c, metrics, &layers) < 0)
		goto out;
	for (i = 4; i + 1 < argc; i += 2) {
		struct lp_snap_layer_req req = { .ref = argv[2],
						 .digest = argv[i],
						 .toc_digest = argv[i + 1] };
		struct lp_snap_layer_facts facts;
		enum lp_snap_fallback why;
		char mnt[LP_SNAP_PATH_MAX];

		r = lp_snap_layers_get(layers, &req, &facts, mnt, sizeof(mnt),
				       &why, &err);
		if (r < 0) {
			fprintf(stderr, "mem_driver: %s: %s\n", argv[i],
				lp_err_str(&err, r));
			goto out;
		}
		free(facts.ref);
		printf("%s\n", mnt);
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		/* the daemon's loop (lp_snap_run): a tick a second */
		struct timespec tick = { .tv_sec = 1 };

		sig = sigtimedwait(&set, NULL, &tick);
		if (sig < 0) {
			lp_mount_trim_malloc();
			continue;
		}
		if (sig == SIGUSR2) {
			malloc_trim(0);
			continue;
		}
		if (sig != SIGUSR1)
			break;
		print_malloc_stats();
	}
	ret = 0;
out:
	lp_snap_layers_free(layers);
	lp_snap_metrics_free(metrics);
	lp_snap_config_release(&c);
	return ret;
}
