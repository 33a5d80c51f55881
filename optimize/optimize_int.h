/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to optimize/: the workload (what to run, from the image config),
 * the OCI bundle written for runc, and running it under runc with the stop
 * conditions (runtime.c). optimize.c mounts, records and converts.
 */
#ifndef LP_OPTIMIZE_INT_H
#define LP_OPTIMIZE_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lp_err.h"
#include "lp_optimize.h"

#define OPT_DEFAULT_PATH \
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define OPT_USER_DB_MAX (4 * 1024 * 1024) /* /etc/passwd or /etc/group */

/* what runs in the container; every string owned */
struct opt_workload {
	char **args; /* NULL-ended */
	char **env; /* NULL-ended */
	char *cwd; /* absolute */
	char *user; /* the config's User ("" when none) */
	uint32_t uid, gid; /* resolved by opt_workload_resolve_user() */
};

/*
 * opt_workload_from_config() - args (@argv, else Entrypoint + Cmd), Env,
 * WorkingDir and User of the image config JSON @config. Returns 0, -EINVAL
 * (not JSON, no command) with @err saying why, -EFBIG, -ENOMEM.
 */
int opt_workload_from_config(const char *config, const char *const *argv,
			     struct opt_workload *w, struct lp_err *err);
void opt_workload_release(struct opt_workload *w);

/*
 * opt_workload_resolve_user() - uid and gid of w->user ("", "uid",
 * "uid:gid", "name", "name:group", ...) from @rootfs's /etc/passwd and
 * /etc/group. Returns 0 or -EINVAL (an unknown name).
 */
int opt_workload_resolve_user(struct opt_workload *w, const char *rootfs,
			      struct lp_err *err);

/*
 * opt_bundle_write() - @dir/config.json: an OCI runtime spec running @w on
 * root @rootfs, namespaces mount/pid/ipc/uts and network (unless
 * @net_host), /proc /dev /dev/pts /dev/shm /dev/mqueue /sys mounted, no
 * terminal. Returns 0 or -errno.
 */
int opt_bundle_write(const char *dir, const char *rootfs,
		     const struct opt_workload *w, bool net_host,
		     struct lp_err *err);

struct opt_run {
	const char *runc; /* the binary */
	const char *state_dir; /* runc --root */
	const char *bundle; /* holds config.json */
	const char *id; /* container id */
	long period_ms;
	const regex_t *wait_line; /* NULL: none */
	FILE *out, *errout; /* NULL: drop */
	int sig_fd; /* a signalfd for the stop signals */
};

/*
 * opt_run_workload() - create, start and watch the container until it
 * exits, the period ends, an output line matches or a signal arrives; then
 * kill and delete it (always, also on errors). Returns 0 with the reason in
 * *@ret_stop (and the exit status when it exited, else -1), -ENOEXEC (the
 * container could not be created or started: @err carries runc's message),
 * or -errno.
 */
int opt_run_workload(const struct opt_run *run, enum lp_opt_stop *ret_stop,
		     int *ret_status, struct lp_err *err);

/*
 * opt_profile_publish() - publish the record at @rec_path (JSON lines) as
 * the prefetch profile of @src's image (profile.c): the image manifest is
 * fetched again (@o->image.platform) and must list @src's layers, then the
 * profile is pushed as a referrer artifact of it, or written to
 * @o->profile_output. Fills @ret. Returns 0, -EINVAL (not a registry
 * image), -EFBIG (over LP_PROFILE_MAX_SIZE), -ESTALE, or -errno (@err).
 */
struct lp_image_src;
int opt_profile_publish(const struct lp_optimize_opts *o,
			const struct lp_image_src *src, const char *rec_path,
			struct lp_optimize_profile *ret, struct lp_err *err);

#endif /* LP_OPTIMIZE_INT_H */
