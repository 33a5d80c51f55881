// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshotter daemon's life: start (root directory, the fd holder found
 * or started and claimed, the layer connections it holds resumed, stale
 * mounts left by a crash cleared, metadata, remount of the other remote
 * layers committed snapshots use, gRPC socket, metrics), wait for
 * SIGTERM/SIGINT/SIGHUP, stop. Stopping hands over: every layer stays
 * mounted, its connection held by the fd holder, and the process ends at
 * once (lp_snap_run() sets *ret_exit_now; the caller _exit()s), so
 * whatever runs on the layers does not delay it; the next daemon resumes
 * the connections. Only without a holder are the layers unmounted.
 * lp_snap_teardown() is the real end (uninstall): unmount all, stop the
 * holder.
 *
 * Signals are blocked in every thread and taken with sigtimedwait() here,
 * so no handler ever runs in a FUSE, gRPC or fetch thread; the wait wakes
 * every HOLDER_CHECK_S to see that the holder still runs (a new one is
 * started and given every connection again when it died).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cri_int.h"
#include "lp_io.h"
#include "lp_log.h"
#include "lp_mount.h"
#include "snap_int.h"

#define METADATA_FILE "metadata.db"
#define HOLDER_CHECK_S 1 /* how often the daemon looks at its holder */
#define HOLDER_START_MS 5000 /* a spawned holder listens within this */
#define HOLDER_ATTEMPTS 3 /* connect-and-claim, when the holder went away */

/* the connections the holder handed back, until resumed or dropped */
struct held_item {
	char key[LP_FDH_KEY_MAX];
	struct lp_fuse_state st;
	int fd; /* -1 once taken */
	bool resumed;
	char mnt[LP_SNAP_PATH_MAX];
};

struct held_list {
	struct held_item *v;
	size_t n;
	bool oom;
};

static void collect_held(void *opaque, const char *key,
			 const struct lp_fuse_state *st, int fd)
{
	struct held_list *hl = opaque;
	struct held_item *n;

	n = realloc(hl->v, (hl->n + 1) * sizeof(*n));
	if (!n) {
		hl->oom = true;
		close(fd);
		return;
	}
	hl->v = n;
	n = &hl->v[hl->n++];
	memset(n, 0, sizeof(*n));
	snprintf(n->key, sizeof(n->key), "%s", key);
	n->st = *st;
	n->fd = fd;
}

static void held_release(struct held_list *hl)
{
	size_t i;

	for (i = 0; i < hl->n; i++)
		if (hl->v[i].fd >= 0)
			close(hl->v[i].fd);
	free(hl->v);
}

/* keep the mounts whose connections were resumed */
static bool keep_resumed(void *opaque, const char *mnt)
{
	struct held_list *hl = opaque;
	size_t i;

	for (i = 0; i < hl->n; i++)
		if (hl->v[i].resumed && !strcmp(hl->v[i].mnt, mnt))
			return true;
	return false;
}

/* does a snapshot use layer @digest? (the tails sweep's test) */
static bool layer_used(void *opaque, const char *digest)
{
	return lp_snap_meta_layer_users(opaque, digest) != 0;
}

/*
 * holder_attach() - dial the fd holder of the root, starting one when none
 * answers (or one of another protocol answers: that one is stopped, its
 * connections are never served), and claim it. *@ret_had: a holder of our
 * protocol was there already (its connections can be resumed).
 */
static int holder_attach(const struct lp_snap_config *c, struct lp_fdh *h,
			 bool *ret_had, struct lp_err *err)
{
	unsigned int timeout_s = c->unserved_timeout_s;
	uint32_t version;
	pid_t pid, other = 0;
	int r, i;

	*ret_had = false;
	r = lp_fdh_dial(h, c->root, &version, &pid, err);
	if (r == -EPROTO && version) {
		lp_log_warn("%s: its connections are not resumed (never "
			    "across protocol versions); stopping it, its "
			    "layers are cleared",
			    lp_err_str(err, r));
		lp_fdh_kill(pid);
		r = -ENOENT;
	}
	if (r == 0) {
		*ret_had = true;
	} else if (r == -ENOENT || r == -ECONNREFUSED) {
		lp_err_clear(err);
		if (getenv("INVOCATION_ID"))
			lp_log_warn("no fd holder answers for %s: starting one "
				    "in this service's cgroup, where a "
				    "systemctl stop or restart kills it (run "
				    "lazypull-fdholder.service)",
				    c->root);
		r = lp_fdh_spawn(c->root, timeout_s, err);
		if (r < 0)
			return r;
		for (i = 0; i < HOLDER_START_MS / 20; i++) {
			r = lp_fdh_dial(h, c->root, &version, &pid, err);
			if (r != -ENOENT && r != -ECONNREFUSED)
				break;
			usleep(20 * 1000);
		}
	}
	if (r < 0)
		return r;
	return lp_fdh_claim(h, timeout_s, &other, err);
}

/*
 * holder_start() - holder_attach(), again when the holder went away
 * between the connect and the claim (a holder a daemon started ends when
 * it holds nothing and no daemon claims it).
 */
static int holder_start(const struct lp_snap_config *c, struct lp_fdh *h,
			bool *ret_had, struct lp_err *err)
{
	int r, attempt;

	for (attempt = 0;; attempt++) {
		r = holder_attach(c, h, ret_had, err);
		if (r == 0 || r == -EBUSY || attempt == HOLDER_ATTEMPTS - 1)
			break;
		if (r != -ECONNRESET && r != -EPIPE && r != -ENOTCONN &&
		    r != -ENOENT && r != -ECONNREFUSED)
			break;
		lp_err_clear(err);
	}
	if (r == 0)
		lp_log_info("fd holder (pid %d) claimed%s", (int)lp_fdh_pid(h),
			    *ret_had ? "" : " (new)");
	return r;
}

/* forget held connection @it: the holder drops it, the mount goes */
static void drop_held(struct lp_fdh *h, struct held_item *it)
{
	lp_fdh_del(h, it->key);
	if (it->mnt[0] && umount2(it->mnt, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		rmdir(it->mnt);
	if (it->fd >= 0)
		close(it->fd);
	it->fd = -1;
}

/*
 * resume_held() - serve again every connection the holder handed back
 * whose layer a committed snapshot uses (facts from the metadata); drop
 * the others (neighbours mounted ahead, layers released meanwhile) and
 * those that cannot be resumed. Returns how many were resumed.
 */
static int resume_held(struct lp_fdh *h, struct held_list *hl,
		       struct lp_snap_meta *meta, struct lp_snap_layers *layers)
{
	struct lp_snap_layer_facts f;
	struct held_item *it;
	struct lp_err err;
	int n = 0, r;
	size_t i;

	for (i = 0; i < hl->n; i++) {
		it = &hl->v[i];
		lp_err_clear(&err);
		if (lp_snap_layers_path(layers, it->key, it->mnt,
					sizeof(it->mnt)) < 0) {
			it->mnt[0] = '\0';
			drop_held(h, it);
			continue;
		}
		memset(&f, 0, sizeof(f));
		r = lp_snap_meta_layer_get(meta, it->key, &f);
		if (r < 0 || lp_snap_meta_layer_users(meta, it->key) <= 0) {
			lp_log_info("layer %s: no snapshot uses it; its held "
				    "connection is dropped",
				    it->key);
			free(f.ref);
			drop_held(h, it);
			continue;
		}
		r = lp_snap_layers_resume(layers, &f, it->fd, &it->st, &err);
		it->fd = -1;
		free(f.ref);
		if (r < 0) {
			lp_log_warn("layer %s: cannot resume its connection: "
				    "%s; dropping it (containers using it "
				    "must be restarted)",
				    it->key, lp_err_str(&err, r));
			drop_held(h, it);
			continue;
		}
		it->resumed = true;
		n++;
	}
	return n;
}

/* the holder died under us: a new one, and every connection again */
static void holder_check(const struct lp_snap_config *c, struct lp_fdh *h,
			 struct lp_snap_layers *layers)
{
	struct lp_err err = { 0 };
	pid_t old = lp_fdh_pid(h);
	bool had;
	int r;

	if (lp_fdh_alive(h))
		return;
	lp_log_warn("the fd holder (pid %d) is gone: running containers "
		    "would not survive a restart; starting a new one",
		    (int)old);
	r = holder_start(c, h, &had, &err);
	if (r < 0) {
		lp_log_warn("no fd holder: %s (trying again)",
			    lp_err_str(&err, r));
		return;
	}
	r = lp_snap_layers_hand_all(layers);
	if (r >= 0)
		lp_log_warn("fd holder (pid %d) holds the %d mounted layer(s) "
			    "again",
			    (int)lp_fdh_pid(h), r);
}

/* how many layer mounts are under @root/layers (for the log) */
static int count_layer_mounts(const char *root)
{
	char prefix[LP_SNAP_PATH_MAX + 16], *line = NULL;
	size_t cap = 0, plen;
	int n = 0;
	FILE *f;

	snprintf(prefix, sizeof(prefix), " %s/layers/", root);
	plen = strlen(prefix);
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0)
		n += strstr(line, prefix) != NULL && plen;
	fclose(f);
	free(line);
	return n;
}

/* the CRI image-service proxy on c->cri_listen (its folder made) */
static int start_cri_proxy(const struct lp_snap_config *c,
			   struct lp_cri_creds *creds,
			   struct lp_cri_proxy **ret, struct lp_err *err)
{
	char dir[LP_SNAP_PATH_MAX];
	char *slash;
	int r;

	if (c->cri_listen[0] != '/' ||
	    (c->cri_upstream && c->cri_upstream[0] != '/'))
		return lp_err_set(err, -EINVAL,
				  "the CRI sockets must be absolute paths");
	snprintf(dir, sizeof(dir), "%s", c->cri_listen);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = lp_mkdir_p(dir, 0755, 0711);
		if (r < 0)
			return lp_err_set(err, r, "%s: %s", dir, strerror(-r));
	}
	return lp_cri_proxy_start(c->cri_listen, c->cri_upstream,
				  c->grpc_threads, creds, ret, err);
}

/*
 * check_index_dirs() - each of index_dirs is a directory this process can
 * search and read: else an index there would be unreadable for every
 * layer, which is the configuration's fault, said once here by name
 */
static int check_index_dirs(const struct lp_snap_config *c, struct lp_err *err)
{
	size_t i;
	int fd;

	for (i = 0; i < c->n_index_dirs; i++) {
		fd = open(c->index_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		if (fd < 0 || access(c->index_dirs[i], R_OK | X_OK) < 0)
			return lp_err_set(err, -errno,
					  "config: index_dirs[%zu] %s: %s", i,
					  c->index_dirs[i], strerror(errno));
	}
	return 0;
}

int lp_snap_run(const struct lp_snap_config *c, bool *ret_exit_now,
		struct lp_err *err)
{
	struct lp_snap_metrics *metrics = NULL;
	struct lp_snap_layers *layers = NULL;
	struct lp_snap_meta *meta = NULL;
	struct lp_snap_svc *svc = NULL;
	struct lp_snap_grpc *grpc = NULL;
	struct lp_cri_proxy *cri = NULL;
	struct lp_cri_creds *cri_creds = NULL;
	struct lp_fdh *holder = NULL;
	struct held_list held = { 0 };
	struct timespec tick = { .tv_sec = HOLDER_CHECK_S };
	char path[LP_SNAP_PATH_MAX], *slash;
	bool had_holder = false;
	sigset_t sigs;
	int r, sig = 0, n, stale;

	*ret_exit_now = false;
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
	r = check_index_dirs(c, err);
	if (r < 0)
		goto out;
	r = lp_mkdir_p(c->root, 0755, 0700);
	if (r < 0) {
		lp_err_set(err, r, "%s: %s", c->root, strerror(-r));
		goto out;
	}
	/* the holder first: it refuses a second daemon on this root */
	r = lp_fdh_new(&holder);
	if (r < 0)
		goto out;
	r = holder_start(c, holder, &had_holder, err);
	if (r == -EBUSY)
		goto out;
	if (r < 0 && had_holder) {
		/* a holder of ours answered and could not be claimed: its
		 * connections may be live, and a start without it would
		 * clear their mounts; let the service manager try again */
		lp_log_err("the fd holder of %s answered but could not be "
			   "claimed: not starting without it",
			   c->root);
		goto out;
	}
	if (r < 0) {
		lp_log_warn("no fd holder: %s; running containers will not "
			    "survive a restart of this daemon",
			    lp_err_str(err, r));
		lp_err_clear(err);
		lp_fdh_free(holder);
		holder = NULL;
	}
	if (holder) {
		r = lp_fdh_list(holder, collect_held, &held, err);
		if (r < 0)
			goto out;
		if (held.oom) {
			r = lp_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	stale = count_layer_mounts(c->root);
	if (!had_holder && stale)
		lp_log_warn("no fd holder was running for %s (it was killed, "
			    "or the machine restarted): %d layer mount(s) "
			    "lost their connections; clearing them "
			    "(containers using them must be restarted)",
			    c->root, stale);
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
	if (c->cri_listen) {
		r = lp_cri_creds_new(&cri_creds);
		if (r < 0)
			goto out;
		lp_snap_layers_set_cri_creds(layers, cri_creds);
	}
	if (holder)
		lp_snap_layers_set_holder(layers, holder);
	n = holder ? resume_held(holder, &held, meta, layers) : 0;
	if (n)
		lp_log_warn("resumed %d layer(s) from the fd holder (pid %d): "
			    "running containers keep their files",
			    n, (int)lp_fdh_pid(holder));
	n = lp_snap_clear_stale_mounts(c->root, keep_resumed, &held);
	if (n)
		lp_log_warn("cleared %d stale mount(s) under %s", n, c->root);
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
	/* nothing mounts before gRPC serves: tails of unused layers go */
	n = lp_snap_layers_sweep_tails(layers, layer_used, meta);
	if (n)
		lp_log_info("deleted %d kept tail(s) of unused layers", n);

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
	if (c->cri_listen) {
		r = start_cri_proxy(c, cri_creds, &cri, err);
		if (r < 0)
			goto out;
	}
	lp_log_warn("lazypull snapshotter: serving %s (root %s%s%s)",
		    c->address, c->root,
		    c->metrics_address ? ", metrics on " : "",
		    c->metrics_address ? c->metrics_address : "");

	for (;;) {
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig > 0)
			break;
		if (holder)
			holder_check(c, holder, layers);
		lp_mount_trim_malloc(); /* what the memory budget freed */
	}
	r = 0;
	if (holder)
		holder_check(c, holder, layers); /* it must hold them now */
	/* a hand-over that failed while the holder lived (a timeout, its fd
	 * limit) is not retried by holder_check(): hand over again, the
	 * holder replaces what it has */
	if (holder && lp_fdh_alive(holder) &&
	    lp_snap_layers_hand_all(layers) < 0)
		lp_log_err("some layers are not with the fd holder (above): "
			   "their containers lose them when this daemon "
			   "exits");
	if (holder && !lp_fdh_alive(holder)) {
		lp_log_warn("no fd holder to hand the layers to: unmounting "
			    "them (running containers lose them)");
	} else if (holder) {
		/*
		 * Hand over: the holder has every connection already (since
		 * each mount), the metadata is crash-safe (SQLite, synchronous
		 * FULL): nothing to wait for, whatever runs on the layers.
		 */
		lp_log_warn("lazypull snapshotter: %s: the fd holder (pid %d) "
			    "keeps the layers for the next daemon; exiting",
			    strsignal(sig), (int)lp_fdh_pid(holder));
		unlink(c->address);
		if (cri)
			unlink(c->cri_listen);
		held_release(&held);
		*ret_exit_now = true;
		return 0;
	}
	lp_log_warn("lazypull snapshotter: %s, stopping", strsignal(sig));
out:
	if (r < 0 && layers && holder && lp_fdh_alive(holder)) {
		/* failed after taking the layers: unmounting them would break
		 * the containers a retry would keep */
		lp_log_warn("the fd holder (pid %d) keeps the layers for the "
			    "next start",
			    (int)lp_fdh_pid(holder));
		if (grpc)
			unlink(c->address);
		if (cri)
			unlink(c->cri_listen);
		held_release(&held);
		*ret_exit_now = true;
		return r;
	}
	lp_cri_proxy_stop(cri);
	if (cri)
		unlink(c->cri_listen);
	lp_snap_grpc_stop(grpc);
	if (grpc || r == 0)
		unlink(c->address);
	lp_snap_metrics_stop(metrics);
	lp_snap_layers_free(layers); /* unmounts every layer */
	lp_cri_creds_free(cri_creds); /* after the layers: they borrow it */
	lp_snap_svc_free(svc);
	lp_snap_meta_free(meta);
	lp_snap_metrics_free(metrics);
	held_release(&held);
	lp_fdh_free(holder);
	return r;
}

int lp_snap_teardown(const struct lp_snap_config *c, struct lp_err *err)
{
	struct lp_fdh *h = NULL;
	uint32_t version;
	pid_t pid, other = 0;
	bool have = false;
	int r, n;

	r = lp_fdh_new(&h);
	if (r < 0)
		return lp_err_set(err, r, "out of memory");
	r = lp_fdh_dial(h, c->root, &version, &pid, err);
	if (r == -EPROTO && version) {
		lp_log_warn("%s: stopping it", lp_err_str(err, r));
		lp_err_clear(err);
		lp_fdh_kill(pid);
	} else if (r == 0) {
		/* a claim keeps a daemon from starting while we unmount */
		r = lp_fdh_claim(h, c->unserved_timeout_s, &other, err);
		if (r < 0)
			goto out;
		have = true;
	} else if (r != -ENOENT && r != -ECONNREFUSED) {
		goto out;
	}
	lp_err_clear(err);
	n = lp_snap_clear_stale_mounts(c->root, NULL, NULL);
	r = 0;
	if (have) {
		r = lp_fdh_stop(h, err); /* the connections end */
		if (r < 0)
			goto out;
		lp_log_info("fd holder (pid %d) stopped", (int)pid);
	}
	r = n;
out:
	lp_fdh_free(h);
	return r;
}
