// SPDX-License-Identifier: Apache-2.0
/*
 * layer_pool: the snapshotter's layer pool (snapshot/layers.c) against a
 * real registry, for integration/test_layer_pool.sh. Checks that a mount
 * point handed to a user is not taken away under it:
 *   1. a layer mounted ahead of use (a neighbour) long enough ago, then
 *      asked for, is not unmounted by a cleanup right after the request
 *      (release_unused() counts its grace from the last use, not from the
 *      mount; the service records the snapshot only after the request);
 *   2. a release racing a request for the same layer: the request gets a
 *      live mount, never a path the release's umount2/rmdir then takes
 *      away (the released entry keeps the path until it is unmounted).
 * usage: layer_pool ROOT REF INSECURE-HOST DIGEST1 TOC1 DIGEST2 TOC2
 * (REF's manifest lists both layers). Exit 0 when every check holds.
 */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../snapshot/snap_int.h"
#include "lp_err.h"

#define RACE_ROUNDS 200

struct pool {
	struct lp_snap_layers *l;
	const char *ref;
};

static int get(struct pool *p, const char *digest, const char *toc, char *mnt)
{
	struct lp_snap_layer_req req = { .ref = p->ref,
					 .digest = digest,
					 .toc_digest = toc };
	struct lp_snap_layer_facts facts;
	enum lp_snap_fallback why;
	struct lp_err err = { 0 };
	int r;

	r = lp_snap_layers_get(p->l, &req, &facts, mnt, LP_SNAP_PATH_MAX, &why,
			       &err);
	if (r < 0) {
		fprintf(stderr, "layer_pool: get %s: %s\n", digest,
			lp_err_str(&err, r));
		return r;
	}
	free(facts.ref);
	return 0;
}

/* is @mnt a mount point (another device than its parent's)? */
static int live_mount(const char *mnt)
{
	char parent[LP_SNAP_PATH_MAX];
	struct stat st, pst;

	snprintf(parent, sizeof(parent), "%s", mnt);
	if (stat(mnt, &st) < 0) {
		fprintf(stderr, "layer_pool: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if (stat(dirname(parent), &pst) < 0 || st.st_dev == pst.st_dev) {
		fprintf(stderr, "layer_pool: %s: not mounted\n", mnt);
		return -1;
	}
	return 0;
}

struct seen {
	const char *digest;
	bool found;
};

static int find_mounted(void *opaque, const char *digest, const char *json)
{
	struct seen *s = opaque;

	(void)json;
	if (!strcmp(digest, s->digest))
		s->found = true;
	return 0;
}

static bool never_in_use(void *opaque, const char *digest)
{
	(void)opaque;
	(void)digest;
	return false;
}

struct race {
	struct pool *p;
	const char *digest, *toc;
	char mnt[LP_SNAP_PATH_MAX];
	int r;
};

static void *race_get(void *arg)
{
	struct race *x = arg;

	x->r = get(x->p, x->digest, x->toc, x->mnt);
	return NULL;
}

int main(int argc, char **argv)
{
	struct lp_snap_config c;
	struct lp_snap_metrics *metrics = NULL;
	struct pool p = { 0 };
	char mnt[LP_SNAP_PATH_MAX];
	struct seen seen;
	struct race x;
	sigset_t set;
	pthread_t t;
	int i, ret = 1;

	if (argc != 8) {
		fprintf(stderr, "usage: layer_pool ROOT REF INSECURE-HOST "
				"DIGEST1 TOC1 DIGEST2 TOC2\n");
		return 2;
	}
	/* as the daemon: signals go to no pool thread */
	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGABRT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	p.ref = argv[2];
	if (lp_snap_config_init(&c) < 0 ||
	    lp_snap_config_set_str(&c.root, argv[1]) < 0 ||
	    lp_snap_config_add_insecure(&c, argv[3]) < 0)
		goto out;
	c.prefetch = false;
	c.background_fetch = false;
	if (lp_snap_metrics_new(&metrics) < 0 ||
	    lp_snap_layers_new(&c, metrics, &p.l) < 0)
		goto out;

	/* 1: layer 2 is mounted ahead by the request for layer 1 */
	if (get(&p, argv[4], argv[5], mnt) < 0)
		goto out;
	seen = (struct seen){ .digest = argv[6] };
	for (i = 0; i < 200 && !seen.found; i++) {
		usleep(50 * 1000);
		lp_snap_layers_stats(p.l, find_mounted, &seen);
	}
	if (!seen.found) {
		fprintf(stderr, "layer_pool: %s was not mounted ahead\n",
			argv[6]);
		goto out;
	}
	sleep(2); /* older than the grace below */
	if (get(&p, argv[6], argv[7], mnt) < 0)
		goto out;
	/* a cleanup before the user has recorded its snapshot */
	lp_snap_layers_release_unused(p.l, never_in_use, NULL, 1);
	if (live_mount(mnt) < 0) {
		fprintf(stderr, "layer_pool: a cleanup right after the request "
				"unmounted the layer handed out\n");
		goto out;
	}
	printf("ok: a layer just handed out survives a cleanup\n");

	/* 2: release and request of one layer at once */
	for (i = 0; i < RACE_ROUNDS; i++) {
		x = (struct race){ .p = &p, .digest = argv[4], .toc = argv[5] };
		if (pthread_create(&t, NULL, race_get, &x) != 0)
			goto out;
		lp_snap_layers_release(p.l, argv[4]);
		pthread_join(t, NULL);
		/* the request either came first (released since) or after
		 * (mounted again): it succeeded either way */
		if (x.r < 0)
			goto out;
		if (get(&p, argv[4], argv[5], mnt) < 0 || live_mount(mnt) < 0) {
			fprintf(stderr,
				"layer_pool: round %d: the mount "
				"point was taken away\n",
				i);
			goto out;
		}
	}
	printf("ok: %d releases racing requests, every request mounted\n",
	       RACE_ROUNDS);
	ret = 0;
out:
	lp_snap_layers_free(p.l);
	lp_snap_metrics_free(metrics);
	lp_snap_config_release(&c);
	return ret;
}
