/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Profile-guided prefetch, the counterpart of `ctr-remote image optimize`:
 * run an image's workload in a container whose layers are lazily mounted
 * with access recording on, note which files each layer served (in first
 * access order), then convert the image with those files first in their
 * layers, followed by `.prefetch.landmark` (layers the workload never read
 * get `.no.prefetch.landmark`).
 *
 * The container: every layer is mounted in-process by fs/ (layers that are
 * not eStargz / zstd:chunked yet are converted to a temporary eStargz first),
 * the mounts are stacked with overlayfs (a temporary upper directory takes
 * the writes), and runc runs an OCI bundle made from the image config
 * (Entrypoint/Cmd or the given argv, Env, User, WorkingDir) with its own
 * mount, pid, ipc, uts and network namespaces. Needs root, /dev/fuse,
 * overlayfs and runc.
 *
 * The record is a JSON-lines file, one line per file:
 *	{"path":"bin/busybox","layer_digest":"sha256:...","layer_index":0}
 * with layer-relative TOC paths and the source layer's digest and index:
 * the format `lazypull convert --prioritize` and `lazypull layer convert
 * --prioritize` (which reads the "path" member only) take.
 *
 * Safety: the destination is written only by lp_image_convert() after the
 * workload ran and everything was torn down; any failure before leaves it
 * untouched. Containers, mounts and temporary files are removed on every
 * path, also when SIGINT, SIGTERM or SIGHUP arrive while the workload runs
 * (they stop it; lp_optimize() then returns -EINTR without converting).
 *
 * Profile only (issue 14, "prefetch without reconversion"): with
 * @profile_only the record is not converted into a new image; it is
 * published as a prefetch profile (format/lp_profile.h) of the source image
 * instead: pushed as an OCI artifact whose subject is the image manifest
 * (the referrers API, else the referrers tag schema), or written to
 * @profile_output/<manifest hex>.profile. The image, its manifest and
 * digest do not change; the snapshotter prefetches by the profile.
 *
 * Process-wide effects while lp_optimize() runs: those signals are blocked
 * in the calling thread (and so in every thread it starts) and read from a
 * signalfd; the process is made a child subreaper so that the container's
 * init can be waited for. Call it from a single-threaded program.
 */
#ifndef LP_OPTIMIZE_H
#define LP_OPTIMIZE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lp_digest.h"
#include "lp_err.h"
#include "lp_image.h"

#define LP_OPT_DEFAULT_PERIOD 10 /* seconds */
#define LP_OPT_MAX_PERIOD (24 * 3600)
#define LP_OPT_MAX_ARGS 4096 /* workload argv entries */
#define LP_OPT_MAX_ENV 4096 /* workload environment entries */
#define LP_OPT_LINE_MAX (64 * 1024) /* a workload output line, matched */
#define LP_OPT_STOP_GRACE_MS 10000 /* after SIGKILL, before giving up */

/* ---- the record ------------------------------------------------------ */

/* One recorded access: a layer-relative path in source layer @layer_index. */
struct lp_opt_record {
	const char *path; /* as in the TOC, no leading "./" (borrowed) */
	struct lp_digest layer_digest;
	size_t layer_index;
};

/*
 * lp_opt_record_write() - write @n records as JSON lines to @path (through
 * a temporary file beside it, renamed into place). Returns 0, -EINVAL (an
 * empty path), or an I/O -errno; @err names the file.
 */
int lp_opt_record_write(const char *path, const struct lp_opt_record *recs,
			size_t n, struct lp_err *err);

/* ---- optimize -------------------------------------------------------- */

enum lp_opt_stop {
	LP_OPT_STOP_EXITED, /* the workload exited by itself */
	LP_OPT_STOP_PERIOD, /* the period ran out */
	LP_OPT_STOP_WAIT_LINE, /* an output line matched */
	LP_OPT_STOP_SIGNAL, /* a signal arrived */
};

struct lp_optimize_opts {
	/* source, destination, conversion and registry options; prio and
	   reconvert are set by lp_optimize() */
	struct lp_image_opts image;
	const char *const *argv; /* NULL-ended; NULL: Entrypoint + Cmd */
	long period_s; /* > 0 */
	const char *wait_line; /* POSIX ERE, or NULL */
	const char *record_out; /* NULL: a temporary file */
	bool net_host; /* the host's network instead of none */
	const char *runc; /* NULL: "runc" from PATH */
	FILE *out, *errout; /* workload stdout/stderr go here; NULL: drop */
	/* publish the record as a prefetch profile instead of converting
	   (image.dst unused); the source must be a registry image */
	bool profile_only;
	const char *profile_output; /* a directory; NULL: push the artifact */
};

/* lp_optimize_opts_init() - defaults (and lp_image_opts_init()). */
void lp_optimize_opts_init(struct lp_optimize_opts *o);

struct lp_optimize_result {
	enum lp_opt_stop stop;
	int exit_status; /* the workload's, when it exited; -1 otherwise */
	size_t n_layers;
	size_t n_recorded; /* records written */
	size_t n_layers_accessed; /* layers with at least one record */
	double run_seconds; /* the workload */
	struct lp_image_result image; /* the conversion (not profile_only) */
	/* profile_only: what was published */
	struct lp_optimize_profile {
		struct lp_digest manifest; /* the subject: the image manifest */
		struct lp_digest blob; /* sha256 of the profile */
		size_t bytes; /* its size */
		/* pushed: the artifact manifest's digest, and how it is
		   findable (1 the referrers API, 0 the referrers tag) */
		struct lp_digest artifact;
		int via_api;
		char path[PATH_MAX]; /* written to profile_output: the file */
	} profile;
};

/*
 * lp_optimize() - run the workload of @o->image.src, record, convert to
 * @o->image.dst (see the top of this file). Fills @ret_res on success.
 * Returns 0; -EINVAL (no command in the image and no @o->argv, a bad
 * --wait-line, a user the image does not know), -ENOEXEC (the workload
 * could not be started: @err has runc's reason), -EINTR (a signal stopped
 * it), -ENOENT, -EBADMSG, -EPROTO, -EACCES or an I/O -errno from mounting or
 * converting; with @o->profile_only also -ESTALE (the image's manifest no
 * longer lists the layers that ran) and the registry's errors of the push.
 * @err says what failed.
 */
int lp_optimize(const struct lp_optimize_opts *o,
		struct lp_optimize_result *ret_res, struct lp_err *err);

#endif /* LP_OPTIMIZE_H */
