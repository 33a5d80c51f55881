// SPDX-License-Identifier: Apache-2.0
/*
 * lp_optimize(): mount, run, record, tear down, convert (lp_optimize.h).
 *
 * Everything the run makes lives under one private temporary directory:
 * l/N (layer N's FUSE mount), c/ (layers converted to eStargz to be
 * mountable), upper/ and work/ (the overlay's writable part), rootfs/ (the
 * overlay), bundle/ (config.json, the init's pid file) and runc/ (runc's
 * state). teardown() undoes it in reverse order on every path; the
 * directory is removed only when nothing is mounted under it any more.
 *
 * Threads: one per layer serving its FUSE session (lp_fuse_serve), started
 * after the stop signals were blocked, joined in teardown() after the layer
 * was unmounted. The records live in the fs cores (thread-safe).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lp_common.h"
#include "lp_convert.h"
#include "lp_fs.h"
#include "lp_fuse.h"
#include "lp_image_source.h"
#include "lp_layer.h"
#include "lp_log.h"
#include "lp_mount.h"
#include "lp_toc.h"
#include "optimize_int.h"

#define OPT_MOUNT_DATA_MAX 4096 /* overlay options: one page */
#define OPT_NFTW_FDS 16
#define OPT_ID_LEN 64
/* the private directory: room left in PATH_MAX for what goes under it */
#define OPT_TMP_MAX (PATH_MAX / 2)

struct opt_layer {
	size_t index; /* in the source manifest */
	struct lp_digest digest; /* the source layer's */
	char mnt[PATH_MAX];
	struct lp_fs *fs;
	struct lp_fuse *fuse;
	pthread_t thread;
	bool serving; /* thread started: join it */
	bool mounted; /* fuse mounted and not yet unmounted */
	int serve_r; /* written by the thread before it ends */
};

struct opt {
	const struct lp_optimize_opts *o;
	struct lp_err *err;
	struct lp_image_src *src;
	struct opt_workload wl;
	regex_t re;
	bool have_re;
	char tmp[OPT_TMP_MAX]; /* "" until made */
	char rootfs[PATH_MAX];
	bool overlay_mounted;
	struct opt_layer *layers;
	size_t n_layers;
	struct lp_opt_record *recs; /* paths owned */
	size_t n_recs;
	int sig_fd;
	sigset_t old_mask;
	bool mask_blocked;
	int old_subreaper;
	bool subreaper_set;
};

void lp_optimize_opts_init(struct lp_optimize_opts *o)
{
	memset(o, 0, sizeof(*o));
	lp_image_opts_init(&o->image);
	o->period_s = LP_OPT_DEFAULT_PERIOD;
}

/* a stop signal is pending (drained) */
static bool signalled(struct opt *op)
{
	struct signalfd_siginfo si;
	bool got = false;

	while (op->sig_fd >= 0 &&
	       read(op->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		got = true;
	return got;
}

/* ---- signals and the subreaper ---- */

static int catch_signals(struct opt *op)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, &op->old_mask) != 0)
		return lp_err_set(op->err, -EINVAL, "cannot block signals");
	op->mask_blocked = true;
	op->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (op->sig_fd < 0)
		return lp_err_set(op->err, -errno, "signalfd: %s",
				  strerror(errno));
	if (prctl(PR_GET_CHILD_SUBREAPER, &op->old_subreaper) < 0 ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return lp_err_set(op->err, -errno,
				  "cannot become a child subreaper: %s",
				  strerror(errno));
	op->subreaper_set = true;
	return 0;
}

static void release_signals(struct opt *op)
{
	if (op->sig_fd >= 0)
		close(op->sig_fd);
	op->sig_fd = -1;
	if (op->mask_blocked)
		pthread_sigmask(SIG_SETMASK, &op->old_mask, NULL);
	op->mask_blocked = false;
	if (op->subreaper_set)
		prctl(PR_SET_CHILD_SUBREAPER, op->old_subreaper);
	op->subreaper_set = false;
}

/* ---- the temporary directory ---- */

static int make_dirs(struct opt *op)
{
	static const char *const sub[] = { "l",	     "c",      "upper", "work",
					   "rootfs", "bundle", "runc" };
	const char *base = op->o->image.tmpdir;
	char p[PATH_MAX];
	size_t i;

	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/var/tmp";
	if ((size_t)snprintf(op->tmp, sizeof(op->tmp), "%s/lp-optimize.XXXXXX",
			     base) >= sizeof(op->tmp)) {
		op->tmp[0] = 0;
		return lp_err_set(op->err, -ENAMETOOLONG, "%s: path too long",
				  base);
	}
	if (!mkdtemp(op->tmp)) {
		int r = -errno;

		op->tmp[0] = 0;
		return lp_err_set(op->err, r, "%s: cannot make a directory: %s",
				  base, strerror(-r));
	}
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", op->tmp, sub[i]);
		if (mkdir(p, 0700) < 0)
			return lp_err_set(op->err, -errno, "%s: %s", p,
					  strerror(errno));
	}
	snprintf(op->rootfs, sizeof(op->rootfs), "%s/rootfs", op->tmp);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* remove what can be removed */
}

/* ---- layers ---- */

static void *serve_main(void *arg)
{
	struct opt_layer *l = arg;

	l->serve_r = lp_fuse_serve(l->fuse);
	return NULL;
}

/*
 * layer @i as a mountable blob and the TOC digest to check: lazily from the
 * source when it is eStargz / zstd:chunked (its TOC digest annotation),
 * else converted into c/ first
 */
static int open_layer(struct opt *op, size_t i, struct lp_blob **ret_blob,
		      struct lp_digest *ret_toc)
{
	const struct lp_reg_desc *d = lp_image_src_layer(op->src, i);
	const char *ann = lp_reg_desc_annotation(d, LP_MOUNT_ANN_TOC_DIGEST);
	char raw[PATH_MAX], esgz[PATH_MAX], ds[LP_DIGEST_STR_LEN + 1];
	struct lp_convert_result res;
	struct lp_convert_opts co;
	struct lp_blob *blob = NULL;
	int fd = -1, r;

	lp_digest_format(&d->digest, ds);
	if (ann && lp_digest_parse(ann, ret_toc) == 0) {
		r = lp_image_src_open_layer(op->src, i, &blob, op->err);
		goto out;
	}
	lp_log_info("layer %zu (%s) is not eStargz: converting it to mount it",
		    i, ds);
	snprintf(raw, sizeof(raw), "%s/c/%zu.src", op->tmp, i);
	snprintf(esgz, sizeof(esgz), "%s/c/%zu.esgz", op->tmp, i);
	fd = open(raw, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = lp_err_set(op->err, -errno, "%s: %s", raw, strerror(errno));
		goto out;
	}
	r = lp_image_src_fetch_layer(op->src, i, fd, op->err);
	if (r < 0)
		goto out;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		r = lp_err_set(op->err, -errno, "%s: %s", raw, strerror(errno));
		goto out;
	}
	lp_convert_opts_init(&co);
	co.threads = op->o->image.convert.threads;
	r = lp_convert_layer(fd, esgz, &co, &res, op->err);
	if (r < 0) {
		lp_err_set(op->err, r, "layer %zu (%s): %s", i, ds,
			   strerror(-r));
		goto out;
	}
	unlink(raw);
	r = lp_blob_open_file(esgz, &blob);
	if (r < 0) {
		lp_err_set(op->err, r, "%s: %s", esgz, strerror(-r));
		goto out;
	}
	*ret_toc = res.toc_digest;
out:
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		*ret_blob = blob;
		blob = NULL;
	}
	lp_blob_unref(blob);
	if (r < 0)
		lp_err_set(op->err, r, "layer %zu (%s): %s", i, ds,
			   strerror(-r));
	return r;
}

static int mount_layer(struct opt *op, size_t i)
{
	struct opt_layer *l = &op->layers[i];
	char fsname[LP_FUSE_FSNAME_MAX], ds[LP_DIGEST_STR_LEN + 1];
	struct lp_blob *blob = NULL;
	struct lp_mount_opts mo;
	struct lp_digest toc;
	int r;

	l->index = i;
	l->digest = lp_image_src_layer(op->src, i)->digest;
	snprintf(l->mnt, sizeof(l->mnt), "%s/l/%zu", op->tmp, i);
	if (mkdir(l->mnt, 0700) < 0)
		return lp_err_set(op->err, -errno, "%s: %s", l->mnt,
				  strerror(errno));
	r = open_layer(op, i, &blob, &toc);
	if (r < 0)
		return r;
	lp_mount_opts_init(&mo);
	mo.toc_digest = &toc;
	/* what the workload reads is what counts: no fetching ahead */
	mo.fs.prefetch = false;
	mo.fs.background_fetch = false;
	snprintf(fsname, sizeof(fsname), "lazypull-optimize:%zu", i);
	mo.fuse.fsname = fsname;
	mo.fuse.allow_other = true;
	mo.fuse.keep_open = true; /* recording counts opens */
	r = lp_mount_layer(blob, l->mnt, &mo, &l->fs, &l->fuse, NULL, op->err);
	lp_blob_unref(blob); /* the fs holds its own reference */
	if (r < 0) {
		lp_digest_format(&l->digest, ds);
		return lp_err_set(op->err, r, "layer %zu (%s): %s", i, ds,
				  lp_err_str(op->err, r));
	}
	l->mounted = true;
	r = pthread_create(&l->thread, NULL, serve_main, l);
	if (r != 0)
		return lp_err_set(op->err, -r, "cannot start a thread: %s",
				  strerror(r));
	l->serving = true;
	return 0;
}

/* the overlay: lowerdir = the layer mounts, top first */
static int mount_overlay(struct opt *op)
{
	char data[OPT_MOUNT_DATA_MAX];
	size_t len = 0, i;
	int n;

	n = snprintf(data, sizeof(data), "lowerdir=");
	len = (size_t)n;
	for (i = op->n_layers; i-- > 0 && len < sizeof(data);) {
		n = snprintf(data + len, sizeof(data) - len, "%s%s",
			     op->layers[i].mnt, i ? ":" : "");
		len += (size_t)n;
	}
	if (len < sizeof(data))
		len += (size_t)snprintf(data + len, sizeof(data) - len,
					",upperdir=%s/upper,workdir=%s/work",
					op->tmp, op->tmp);
	if (len >= sizeof(data))
		return lp_err_set(op->err, -E2BIG,
				  "%zu layers: the overlay options exceed %d "
				  "bytes",
				  op->n_layers, OPT_MOUNT_DATA_MAX);
	/*
	 * overlayfs gives the merged root the upper directory's mode and
	 * owner: make them the top layer's root's, not mkdir's 0700 (which
	 * locks non-root workloads out of /)
	 */
	if (op->n_layers) {
		char upper[PATH_MAX];
		struct stat st;

		snprintf(upper, sizeof(upper), "%s/upper", op->tmp);
		if (stat(op->layers[op->n_layers - 1].mnt, &st) < 0 ||
		    chmod(upper, st.st_mode & 07777) < 0 ||
		    chown(upper, st.st_uid, st.st_gid) < 0)
			return lp_err_set(op->err, -errno,
					  "%s: cannot take the top layer's "
					  "root mode: %s",
					  upper, strerror(errno));
	}
	if (mount("overlay", op->rootfs, "overlay", 0, data) < 0)
		return lp_err_set(op->err, -errno, "overlay mount on %s: %s",
				  op->rootfs, strerror(errno));
	op->overlay_mounted = true;
	return 0;
}

/* ---- the record ---- */

/* every layer's record, base layer first, each in access order */
static int collect(struct opt *op, size_t *ret_accessed)
{
	size_t i, k, accessed = 0;
	int r = 0;

	for (i = 0; i < op->n_layers && r == 0; i++) {
		struct opt_layer *l = &op->layers[i];
		const struct lp_toc *toc = lp_layer_toc(lp_fs_layer(l->fs));
		struct lp_opt_record *recs;
		uint32_t *idx = NULL;
		size_t n = 0;

		r = lp_fs_record_get(l->fs, &idx, &n);
		if (r < 0)
			break;
		recs = n ? realloc(op->recs, (op->n_recs + n) * sizeof(*recs)) :
			   op->recs;
		if (n && !recs)
			r = -ENOMEM;
		else
			op->recs = recs;
		for (k = 0; k < n && r == 0; k++) {
			struct lp_opt_record *rec = &op->recs[op->n_recs];
			char path[LP_TOC_MAX_PATH + 1];

			r = lp_toc_entry_path(toc, idx[k], path, sizeof(path));
			if (r < 0)
				break;
			r = 0;
			rec->path = strdup(path);
			if (!rec->path) {
				r = -ENOMEM;
				break;
			}
			rec->layer_digest = l->digest;
			rec->layer_index = l->index;
			op->n_recs++;
		}
		accessed += n ? 1 : 0;
		free(idx);
	}
	*ret_accessed = accessed;
	if (r < 0)
		lp_err_set(op->err, r, "collecting the record: %s",
			   strerror(-r));
	return r;
}

/* ---- teardown ---- */

/* unmount everything, stop the serving threads, remove the directory */
static void teardown(struct opt *op)
{
	bool all_gone = true;
	size_t i;

	if (op->overlay_mounted) {
		if (umount2(op->rootfs, 0) < 0 &&
		    umount2(op->rootfs, MNT_DETACH) < 0) {
			lp_log_err("cannot unmount %s: %s", op->rootfs,
				   strerror(errno));
			all_gone = false;
		}
		op->overlay_mounted = false;
	}
	for (i = 0; i < op->n_layers; i++) {
		struct opt_layer *l = &op->layers[i];

		if (l->mounted && lp_fuse_unmount(l->fuse) < 0) {
			/*
			 * Still busy and its connection not cut: the serving
			 * thread may never return. Leave it (and what it
			 * serves) rather than hang; the process ends soon.
			 */
			lp_log_err("%s: busy, left detached", l->mnt);
			all_gone = false;
			l->mounted = l->serving = false;
			l->fuse = NULL;
			l->fs = NULL;
			continue;
		}
		l->mounted = false;
		if (l->serving)
			pthread_join(l->thread, NULL);
		l->serving = false;
		lp_fuse_free(l->fuse);
		l->fuse = NULL;
		lp_fs_free(l->fs);
		l->fs = NULL;
	}
	if (!op->tmp[0])
		return;
	if (all_gone)
		nftw(op->tmp, rm_one, OPT_NFTW_FDS,
		     FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	else
		lp_log_warn("%s left in place: something is still mounted",
			    op->tmp);
	op->tmp[0] = 0;
}

static void opt_release(struct opt *op)
{
	size_t i;

	teardown(op);
	for (i = 0; i < op->n_recs; i++)
		free((char *)op->recs[i].path);
	free(op->recs);
	free(op->layers);
	opt_workload_release(&op->wl);
	if (op->have_re)
		regfree(&op->re);
	lp_image_src_free(op->src);
	release_signals(op);
}

/* ---- the whole run ---- */

static int run(struct opt *op, struct lp_optimize_result *res)
{
	const struct lp_optimize_opts *o = op->o;
	struct opt_run ro = { 0 };
	char bundle[PATH_MAX], state[PATH_MAX], id[OPT_ID_LEN];
	size_t len, i;
	double t0;
	int r;

	r = lp_image_src_open(o->image.src, &o->image.reg, o->image.platform,
			      &op->src, op->err);
	if (r < 0)
		return r;
	r = opt_workload_from_config(lp_image_src_config(op->src, &len),
				     o->argv, &op->wl, op->err);
	if (r < 0)
		return r;
	op->n_layers = lp_image_src_nr_layers(op->src);
	if (!op->n_layers)
		return lp_err_set(op->err, -EINVAL,
				  "%s: the image has no layers",
				  lp_image_src_name(op->src));
	op->layers = calloc(op->n_layers, sizeof(*op->layers));
	if (!op->layers)
		return lp_err_set(op->err, -ENOMEM, "out of memory");
	res->n_layers = op->n_layers;
	r = make_dirs(op);
	for (i = 0; r == 0 && i < op->n_layers; i++) {
		r = mount_layer(op, i);
		if (r == 0 && signalled(op))
			r = lp_err_set(op->err, -EINTR, "interrupted");
	}
	if (r == 0)
		r = mount_overlay(op);
	if (r == 0)
		r = opt_workload_resolve_user(&op->wl, op->rootfs, op->err);
	snprintf(bundle, sizeof(bundle), "%s/bundle", op->tmp);
	snprintf(state, sizeof(state), "%s/runc", op->tmp);
	if (r == 0)
		r = opt_bundle_write(bundle, op->rootfs, &op->wl, o->net_host,
				     op->err);
	/* from here on, what the workload (and runc for it) opens counts */
	for (i = 0; r == 0 && i < op->n_layers; i++)
		r = lp_fs_record_start(op->layers[i].fs);
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "lazypull-optimize-%ld", (long)getpid());
	ro.runc = o->runc ? o->runc : "runc";
	ro.state_dir = state;
	ro.bundle = bundle;
	ro.id = id;
	ro.period_ms = o->period_s * 1000;
	ro.wait_line = op->have_re ? &op->re : NULL;
	ro.out = o->out;
	ro.errout = o->errout;
	ro.sig_fd = op->sig_fd;
	t0 = (double)lp_mono_ns() / 1e9;
	r = opt_run_workload(&ro, &res->stop, &res->exit_status, op->err);
	res->run_seconds = (double)lp_mono_ns() / 1e9 - t0;
	if (r < 0)
		return r;
	if (res->stop == LP_OPT_STOP_SIGNAL)
		return lp_err_set(op->err, -EINTR,
				  "interrupted: the workload was stopped; "
				  "nothing converted");
	r = collect(op, &res->n_layers_accessed);
	res->n_recorded = op->n_recs;
	return r;
}

int lp_optimize(const struct lp_optimize_opts *o,
		struct lp_optimize_result *ret_res, struct lp_err *err)
{
	struct lp_optimize_result res = { .exit_status = -1 };
	struct opt op = { .o = o, .err = err, .sig_fd = -1 };
	struct lp_prio_list prio = { 0 };
	struct lp_image_opts io;
	char rec_tmp[PATH_MAX] = "";
	const char *rec_path = o->record_out;
	int r, fd;

	if (o->profile_only && !strncmp(o->image.src, "oci:", 4))
		return lp_err_set(err, -EINVAL,
				  "%s: --profile-only publishes a profile of "
				  "a registry image, not of an OCI layout",
				  o->image.src);
	if (o->period_s <= 0 || o->period_s > LP_OPT_MAX_PERIOD)
		return lp_err_set(err, -EINVAL,
				  "the period must be 1..%d seconds",
				  LP_OPT_MAX_PERIOD);
	if (o->wait_line) {
		r = regcomp(&op.re, o->wait_line, REG_EXTENDED | REG_NOSUB);
		if (r != 0) {
			char msg[256];

			regerror(r, &op.re, msg, sizeof(msg));
			return lp_err_set(err, -EINVAL, "--wait-line '%s': %s",
					  o->wait_line, msg);
		}
		op.have_re = true;
	}
	r = catch_signals(&op);
	if (r == 0)
		r = run(&op, &res);
	teardown(&op); /* the container is gone: unmount before converting */
	if (r == 0 && signalled(&op))
		r = lp_err_set(err, -EINTR, "interrupted");
	release_signals(&op);
	if (r < 0)
		goto out;
	if (res.stop == LP_OPT_STOP_EXITED && res.exit_status != 0)
		lp_log_warn("the workload exited with status %d; using what "
			    "it read",
			    res.exit_status);

	if (!rec_path) {
		const char *base =
			o->image.tmpdir ? o->image.tmpdir : getenv("TMPDIR");

		snprintf(rec_tmp, sizeof(rec_tmp), "%s/lp-record.XXXXXX",
			 base && *base ? base : "/var/tmp");
		fd = mkstemp(rec_tmp);
		if (fd < 0) {
			r = lp_err_set(err, -errno, "%s: %s", rec_tmp,
				       strerror(errno));
			rec_tmp[0] = 0;
			goto out;
		}
		close(fd);
		rec_path = rec_tmp;
	}
	r = lp_opt_record_write(rec_path, op.recs, op.n_recs, err);
	if (r < 0)
		goto out;
	if (o->profile_only) {
		/* the image stays as it is: the record is its profile */
		r = opt_profile_publish(o, op.src, rec_path, &res.profile, err);
		if (r == 0)
			*ret_res = res;
		goto out;
	}
	/* read back as --prioritize would: the record is what converts */
	r = lp_prio_load(rec_path, &prio, err);
	if (r < 0)
		goto out;
	io = o->image;
	io.prio = &prio;
	io.reconvert = true; /* every layer gets its new landmark */
	r = lp_image_convert(&io, &res.image, err);
	if (r < 0)
		goto out;
	*ret_res = res;
out:
	if (rec_tmp[0])
		unlink(rec_tmp);
	lp_prio_release(&prio);
	opt_release(&op);
	return r;
}
