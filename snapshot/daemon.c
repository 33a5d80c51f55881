// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshotter daemon's life: start (root directory, stale mounts left
 * by a crash, metadata, remount of the remote layers committed snapshots
 * use, gRPC socket, metrics), wait for SIGTERM/SIGINT/SIGHUP, stop (no new
 * calls, metrics off, every layer unmounted, metadata closed). Signals are
 * blocked in every thread and taken with sigwait() here, so no handler ever
 * runs in a FUSE, gRPC or fetch thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lp_io.h"
#include "lp_log.h"
#include "lp_mount.h"
#include "snap_int.h"

#define METADATA_FILE "metadata.db"

int lp_snap_run(const struct lp_snap_config *c, struct lp_err *err)
{
	struct lp_snap_metrics *metrics = NULL;
	struct lp_snap_layers *layers = NULL;
	struct lp_snap_meta *meta = NULL;
	struct lp_snap_svc *svc = NULL;
	struct lp_snap_grpc *grpc = NULL;
	char path[LP_SNAP_PATH_MAX], *slash;
	sigset_t sigs;
	int r, sig = 0, n;

	lp_mount_tune_malloc();
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (c->root[0] != '/' || c->address[0] != '/') {
		r = lp_err_set(err, -EINVAL,
			       "root and address must be absolute paths");
		goto out;
	}
	r = lp_mkdir_p(c->root, 0755, 0700);
	if (r < 0) {
		lp_err_set(err, r, "%s: %s", c->root, strerror(-r));
		goto out;
	}
	n = lp_snap_clear_stale_mounts(c->root);
	if (n)
		lp_log_warn("cleared %d stale mount(s) under %s", n, c->root);
	r = lp_snap_metrics_new(&metrics);
	if (r < 0)
		goto out;
	if (snprintf(path, sizeof(path), "%s/" METADATA_FILE, c->root) >=
	    (int)sizeof(path)) {
		r = lp_err_set(err, -ENAMETOOLONG, "root path too long");
		goto out;
	}
	r = lp_snap_meta_open(path, &meta, err);
	if (r < 0)
		goto out;
	r = lp_snap_layers_new(c, metrics, &layers);
	if (r < 0) {
		lp_err_set(err, r, "layer pool: %s", strerror(-r));
		goto out;
	}
	r = lp_snap_svc_new(c, meta, layers, metrics, &svc);
	if (r < 0) {
		lp_err_set(err, r, "%s/snapshots: %s", c->root, strerror(-r));
		goto out;
	}
	n = lp_snap_svc_restore(svc);
	if (n)
		lp_log_info("remounted %d layer(s) of committed remote "
			    "snapshots",
			    n);

	snprintf(path, sizeof(path), "%s", c->address);
	slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = '\0';
		r = lp_mkdir_p(path, 0755, 0711);
		if (r < 0) {
			lp_err_set(err, r, "%s: %s", path, strerror(-r));
			goto out;
		}
	}
	r = lp_snap_grpc_start(c->address, c->grpc_threads, svc, metrics, &grpc,
			       err);
	if (r < 0)
		goto out;
	if (c->metrics_address) {
		r = lp_snap_metrics_serve(metrics, c->metrics_address, layers,
					  err);
		if (r < 0)
			goto out;
	}
	lp_log_warn("lazypull snapshotter: serving %s (root %s%s%s)",
		    c->address, c->root,
		    c->metrics_address ? ", metrics on " : "",
		    c->metrics_address ? c->metrics_address : "");

	while (sigwait(&sigs, &sig) != 0)
		;
	lp_log_warn("lazypull snapshotter: %s, stopping", strsignal(sig));
	r = 0;
out:
	lp_snap_grpc_stop(grpc);
	if (grpc || r == 0)
		unlink(c->address);
	lp_snap_metrics_stop(metrics);
	lp_snap_layers_free(layers); /* unmounts every layer */
	lp_snap_svc_free(svc);
	lp_snap_meta_free(meta);
	lp_snap_metrics_free(metrics);
	return r;
}
