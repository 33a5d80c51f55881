// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshotter's semantics, as containerd's snapshots.Snapshotter
 * interface defines them, independent of the wire: Prepare/View make an
 * active/view snapshot on a committed parent, Commit turns an active one
 * into a named committed one, Remove refuses snapshots with children, and
 * Mounts describe the container rootfs (bind for no or one read-only layer,
 * overlay otherwise, lowerdirs = the parents' directories or layer mounts).
 *
 * The remote path: a Prepare carrying containerd.io/snapshot.ref (the
 * target chainID), the layer-locating labels (ctr-remote's stargz.* or
 * CRI's cri.*) and the TOC digest label (or, without one, a gzip index
 * found for the plain layer: layers.c) mounts the layer lazily, records a
 * committed snapshot under the bare chainID with the label
 * containerd.io/snapshot/remote and answers ALREADY_EXISTS: containerd then
 * finds it (List with a snapshot.ref filter, Stat) and skips the download.
 * Any layer that cannot take that path takes the plain one (an empty
 * directory containerd fills), with one log line and a metric; `strict`
 * refuses it instead.
 *
 * On disk: ROOT/snapshots/ID/{fs,work}, ID the metadata row id (never
 * reused). A directory is made inside the transaction that adds its row and
 * removed after the one that deletes it; a crash in between leaves an
 * orphan directory, removed at start and by Cleanup.
 *
 * Lock order: s->lock, then the layer pool's lock (inside lp_snap_layers_*).
 * Mounting a new layer (slow: registry round trips) happens without s->lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lp_log.h"
#include "snap_int.h"

#define SNAPSHOTS_DIR "snapshots"
#define REMOTE_LABEL_VALUE "remote snapshot"
#define UNUSED_LAYER_GRACE_S 60 /* layers mounted ahead, never used */
#define OVERLAY_OPTION_MAX (LP_SNAP_CHAIN_MAX * LP_SNAP_PATH_MAX)

struct lp_snap_svc {
	const struct lp_snap_config *c; /* borrowed, immutable */
	struct lp_snap_layers *layers; /* borrowed, thread-safe */
	struct lp_snap_metrics *metrics; /* borrowed, thread-safe */
	char dir[LP_SNAP_PATH_MAX]; /* ROOT/snapshots */
	pthread_mutex_t lock;
	struct lp_snap_meta *meta; /* protected by lock */
};

int64_t lp_snap_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void lp_snap_mount_clear(struct lp_snap_mount *m)
{
	size_t i;

	if (!m)
		return;
	free(m->source);
	for (i = 0; i < m->n_options; i++)
		free(m->options[i]);
	memset(m, 0, sizeof(*m));
}

int lp_snap_svc_new(const struct lp_snap_config *c, struct lp_snap_meta *meta,
		    struct lp_snap_layers *layers,
		    struct lp_snap_metrics *metrics,
		    struct lp_snap_svc **ret_svc)
{
	struct lp_snap_svc *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (snprintf(s->dir, sizeof(s->dir), "%s/" SNAPSHOTS_DIR, c->root) >=
	    (int)sizeof(s->dir)) {
		free(s);
		return -ENAMETOOLONG;
	}
	if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
		int r = -errno;

		free(s);
		return r;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->c = c;
	s->meta = meta;
	s->layers = layers;
	s->metrics = metrics;
	*ret_svc = s;
	return 0;
}

void lp_snap_svc_free(struct lp_snap_svc *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- helpers ---------------------------------------------------------- */

static int snap_path(struct lp_snap_svc *s, int64_t id, const char *sub,
		     char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%lld%s%s", s->dir, (long long)id,
			 sub ? "/" : "", sub ? sub : "");

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		lp_log_warn("remove %s: %s", path, strerror(errno));
	return 0;
}

/* rm -rf, never crossing into another filesystem (a stray mount) */
static void remove_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

#define USAGE_DEPTH_MAX 256 /* directory nesting du follows */

/* du of directory fd @dfd (consumed), not crossing filesystems */
static void usage_walk(int dfd, dev_t dev, unsigned int depth, int64_t *size,
		       int64_t *inodes)
{
	struct dirent *de;
	struct stat st;
	DIR *d = fdopendir(dfd);
	int fd;

	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		(*inodes)++;
		*size += (int64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode) || st.st_dev != dev ||
		    depth >= USAGE_DEPTH_MAX)
			continue;
		fd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			usage_walk(fd, dev, depth + 1, size, inodes);
	}
	closedir(d);
}

/* disk usage (bytes allocated, inodes) of the tree at @path */
static void dir_usage(const char *path, int64_t *size, int64_t *inodes)
{
	struct stat st;
	int fd;

	*size = *inodes = 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	usage_walk(fd, st.st_dev, 0, size, inodes);
}

static const char *kv_get(const struct lp_snap_kv *kv, size_t n,
			  const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].value;
	return NULL;
}

/* whether @kv carries the remote-snapshot label (with a value) */
static bool remote_label_given(const struct lp_snap_kv *kv, size_t n)
{
	const char *v = kv_get(kv, n, LP_LABEL_REMOTE);

	return v && *v;
}

static int check_labels(const struct lp_snap_kv *kv, size_t n,
			struct lp_err *err)
{
	size_t i;

	if (n > LP_SNAP_LABELS_MAX)
		return lp_err_set(err, -EINVAL, "too many labels (%zu > %d)", n,
				  LP_SNAP_LABELS_MAX);
	for (i = 0; i < n; i++)
		if (strlen(kv[i].key) + strlen(kv[i].value) > LP_SNAP_LABEL_MAX)
			return lp_err_set(err, -EINVAL,
					  "label key and value of %.64s "
					  "greater than maximum size %d bytes",
					  kv[i].key, LP_SNAP_LABEL_MAX);
	return 0;
}

static int check_key(const char *what, const char *key, struct lp_err *err)
{
	if (!*key)
		return lp_err_set(err, -EINVAL, "%s is empty", what);
	if (strlen(key) > LP_SNAP_KEY_MAX)
		return lp_err_set(err, -EINVAL, "%s too long", what);
	return 0;
}

/*
 * set_labels() - copy @n pairs (and @extra, when not NULL) into @r's owned
 * labels, leaving out those with an empty value: containerd's metastore
 * does not store them, so an empty value is no label (and, in an Update's
 * "labels.KEY", deletes KEY).
 */
static int set_labels(struct lp_snap_rec *r, const struct lp_snap_kv *kv,
		      size_t n, const struct lp_snap_kv *extra)
{
	size_t i, j, total = n + (extra ? 1 : 0);

	r->labels = total ? calloc(total, sizeof(*r->labels)) : NULL;
	if (total && !r->labels)
		return -ENOMEM;
	for (i = 0; i < total; i++) {
		const struct lp_snap_kv *p = i < n ? &kv[i] : extra;

		if (!*p->value)
			continue;
		j = r->n_labels++;
		r->labels[j].key = strdup(p->key);
		r->labels[j].value = strdup(p->value);
		if (!r->labels[j].key || !r->labels[j].value)
			return -ENOMEM;
	}
	return 0;
}

/*
 * replace_labels() - @r's labels become copies of the @n pairs @kv (which
 * may point into @r's own labels). 0 or -ENOMEM (@r unchanged).
 */
static int replace_labels(struct lp_snap_rec *r, const struct lp_snap_kv *kv,
			  size_t n)
{
	struct lp_snap_rec tmp = { 0 };
	size_t i;
	int ret;

	ret = set_labels(&tmp, kv, n, NULL);
	if (ret < 0) {
		lp_snap_rec_clear(&tmp);
		return ret;
	}
	for (i = 0; i < r->n_labels; i++) {
		free(r->labels[i].key);
		free(r->labels[i].value);
	}
	free(r->labels);
	r->labels = tmp.labels;
	r->n_labels = tmp.n_labels;
	return 0;
}

static int mount_add_option(struct lp_snap_mount *m, const char *opt)
{
	if (m->n_options >= LP_SNAP_MOUNT_OPTS_MAX)
		return -E2BIG;
	m->options[m->n_options] = strdup(opt);
	if (!m->options[m->n_options])
		return -ENOMEM;
	m->n_options++;
	return 0;
}

/*
 * lower_path() - the directory a committed snapshot contributes as an
 * overlay lower: its layer's mount (mounted again if needed) or its fs dir.
 * Service lock held.
 */
static int lower_path(struct lp_snap_svc *s, const struct lp_snap_rec *p,
		      char *out, size_t size, struct lp_err *err)
{
	struct lp_snap_layer_facts f = { 0 };
	int r;

	if (!p->layer)
		return snap_path(s, p->id, "fs", out, size);
	r = lp_snap_meta_layer_get(s->meta, p->layer, &f);
	if (r < 0) {
		lp_err_set(err, r,
			   "layer %s of snapshot %s: no facts to "
			   "mount it",
			   p->layer, p->key);
		goto out;
	}
	r = lp_snap_layers_ensure(s->layers, &f, out, size, err);
out:
	free(f.ref);
	return r;
}

/* mounts for @r (active or view); service lock held */
static int build_mounts(struct lp_snap_svc *s, const struct lp_snap_rec *r,
			struct lp_snap_mount *m, struct lp_err *err)
{
	struct lp_snap_rec p = { 0 };
	char path[LP_SNAP_PATH_MAX], *lower = NULL, *opt = NULL;
	size_t len = 0, depth = 0;
	char *parent = NULL;
	int ret;

	memset(m, 0, sizeof(*m));
	lower = malloc(OVERLAY_OPTION_MAX);
	opt = malloc(OVERLAY_OPTION_MAX + 16);
	parent = strdup(r->parent);
	if (!lower || !opt || !parent) {
		ret = -ENOMEM;
		goto out;
	}
	lower[0] = '\0';
	while (*parent) {
		if (++depth > LP_SNAP_CHAIN_MAX) {
			ret = lp_err_set(err, -E2BIG,
					 "snapshot %s: more than %d parents",
					 r->key, LP_SNAP_CHAIN_MAX);
			goto out;
		}
		ret = lp_snap_meta_get(s->meta, parent, &p);
		if (ret < 0) {
			lp_err_set(err, ret, "parent %s of %s: %s", parent,
				   r->key, strerror(-ret));
			goto out;
		}
		ret = lower_path(s, &p, path, sizeof(path), err);
		if (ret < 0)
			goto out;
		if (len + strlen(path) + 2 > OVERLAY_OPTION_MAX) {
			ret = lp_err_set(err, -E2BIG, "lowerdir too long");
			goto out;
		}
		len += (size_t)snprintf(lower + len, OVERLAY_OPTION_MAX - len,
					"%s%s", len ? ":" : "", path);
		free(parent);
		parent = p.parent;
		p.parent = NULL;
		lp_snap_rec_clear(&p);
	}

	if (depth == 0 || (depth == 1 && r->kind == LP_SNAP_KIND_VIEW)) {
		if (depth == 0) {
			ret = snap_path(s, r->id, "fs", path, sizeof(path));
			if (ret < 0)
				goto out;
		}
		m->type = "bind";
		m->source = strdup(depth ? lower : path);
		ret = m->source ? 0 : -ENOMEM;
		if (!ret)
			ret = mount_add_option(
				m, r->kind == LP_SNAP_KIND_VIEW ? "ro" : "rw");
		if (!ret)
			ret = mount_add_option(m, "rbind");
		goto out;
	}
	m->type = "overlay";
	m->source = strdup("overlay");
	ret = m->source ? 0 : -ENOMEM;
	if (!ret)
		ret = mount_add_option(m, "index=off");
	if (!ret && r->kind == LP_SNAP_KIND_ACTIVE) {
		ret = snap_path(s, r->id, "work", path, sizeof(path));
		if (!ret) {
			snprintf(opt, OVERLAY_OPTION_MAX, "workdir=%s", path);
			ret = mount_add_option(m, opt);
		}
		if (!ret)
			ret = snap_path(s, r->id, "fs", path, sizeof(path));
		if (!ret) {
			snprintf(opt, OVERLAY_OPTION_MAX, "upperdir=%s", path);
			ret = mount_add_option(m, opt);
		}
	}
	if (!ret) {
		snprintf(opt, OVERLAY_OPTION_MAX + 16, "lowerdir=%s", lower);
		ret = mount_add_option(m, opt);
	}
out:
	if (ret < 0)
		lp_snap_mount_clear(m);
	lp_snap_rec_clear(&p);
	free(parent);
	free(lower);
	free(opt);
	return ret;
}

/* ---- Prepare / View --------------------------------------------------- */

/* the chain ID in an unpack key ("[NS/N/]extract-ID CHAINID"), or NULL */
static const char *unpack_chain_id(const char *key)
{
	const char *e = strstr(key, "extract-"), *sp;

	if (!e || (e != key && e[-1] != '/'))
		return NULL;
	sp = strchr(e, ' ');
	return sp && !strncmp(sp + 1, "sha256:", 7) ? sp + 1 : NULL;
}

/*
 * try_remote() - the remote path. Returns -EEXIST when the layer is (now)
 * a committed remote snapshot, 1 to take the plain path, or another -errno
 * to refuse the Prepare (strict mode).
 */
static int try_remote(struct lp_snap_svc *s, const char *key,
		      const char *parent, const struct lp_snap_kv *labels,
		      size_t n_labels, struct lp_err *err)
{
	const char *target = kv_get(labels, n_labels, LP_LABEL_TARGET_REF);
	struct lp_snap_kv remote = { LP_LABEL_REMOTE, REMOTE_LABEL_VALUE };
	struct lp_snap_layer_facts facts = { 0 };
	struct lp_snap_layer_req req = { 0 };
	struct lp_snap_rec rec = { 0 };
	enum lp_snap_fallback why = LP_FALLBACK_NO_LABELS;
	char mnt[LP_SNAP_PATH_MAX];
	struct lp_err why_err = { 0 };
	int r;

	if (!target) {
		/*
		 * No target: a container's rootfs, or a layer unpacked by a
		 * client that sends no labels (ctr image pull unpacks with
		 * rootfs.ApplyLayers). containerd names the latter "extract-ID
		 * CHAINID": count and log those as plain-path layers.
		 */
		target = unpack_chain_id(key);
		if (!target)
			return 1;
		lp_err_set(&why_err, -ENOENT,
			   "no labels (the client sends "
			   "none: not a remote-snapshot pull)");
		r = -ENOENT;
		goto fallback;
	}

	/* committed already (another namespace, a retried pull)? */
	pthread_mutex_lock(&s->lock);
	r = lp_snap_meta_get(s->meta, target, &rec);
	pthread_mutex_unlock(&s->lock);
	if (r == 0 && rec.kind == LP_SNAP_KIND_COMMITTED &&
	    !strcmp(rec.parent, parent)) {
		lp_snap_rec_clear(&rec);
		return lp_err_set(err, -EEXIST,
				  "target snapshot %s: already "
				  "exists",
				  target);
	}
	lp_snap_rec_clear(&rec);

	req.ref = kv_get(labels, n_labels, LP_LABEL_STARGZ_REF);
	req.digest = kv_get(labels, n_labels, LP_LABEL_STARGZ_DIGEST);
	req.neighbours = kv_get(labels, n_labels, LP_LABEL_STARGZ_LAYERS);
	if (!req.ref || !req.digest) {
		req.ref = kv_get(labels, n_labels, LP_LABEL_CRI_REF);
		req.digest = kv_get(labels, n_labels, LP_LABEL_CRI_DIGEST);
		req.neighbours = kv_get(labels, n_labels, LP_LABEL_CRI_LAYERS);
	}
	req.toc_digest = kv_get(labels, n_labels, LP_LABEL_TOC_DIGEST);
	req.manifest_digest = kv_get(labels, n_labels, LP_LABEL_CRI_MANIFEST);
	if (!req.ref || !req.digest) {
		why = LP_FALLBACK_NO_LABELS;
		lp_err_set(&why_err, -ENOENT, "no layer-locating labels");
		r = -ENOENT;
		goto fallback;
	}
	/* no TOC: a plain layer, lazy only through a gzip index (layers.c
	 * looks for one) */
	if (!req.toc_digest && (!s->c->index_lookup || !s->layers)) {
		why = LP_FALLBACK_NO_TOC_DIGEST;
		lp_err_set(&why_err, -ENOENT,
			   "no " LP_LABEL_TOC_DIGEST
			   " label (not eStargz, or unverifiable) and no "
			   "gzip index lookup (%s)",
			   s->c->index_lookup ? "no layer pool" :
						"index_lookup is off");
		r = -ENOENT;
		goto fallback;
	}
	r = lp_snap_layers_get(s->layers, &req, &facts, mnt, sizeof(mnt), &why,
			       &why_err);
	if (r < 0)
		goto fallback;

	pthread_mutex_lock(&s->lock);
	rec.key = strdup(target);
	rec.parent = strdup(parent);
	rec.layer = strdup(req.digest);
	rec.kind = LP_SNAP_KIND_COMMITTED;
	r = rec.key && rec.parent && rec.layer ? 0 : -ENOMEM;
	if (!r)
		r = set_labels(&rec, labels, n_labels,
			       remote_label_given(labels, n_labels) ? NULL :
								      &remote);
	if (!r)
		r = lp_snap_meta_begin(s->meta);
	if (!r) {
		r = lp_snap_meta_insert(s->meta, &rec);
		if (!r)
			r = lp_snap_meta_layer_put(s->meta, &facts);
		if (!r)
			r = lp_snap_meta_commit(s->meta);
		if (r < 0)
			lp_snap_meta_rollback(s->meta);
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0 && r != -EEXIST) {
		lp_err_set(err, r, "recording remote snapshot %s: %s", target,
			   strerror(-r));
		goto out;
	}
	lp_log_info("layer %s: remote snapshot %s (key %s) on %s", req.digest,
		    target, key, mnt);
	r = lp_err_set(err, -EEXIST, "target snapshot %s: already exists",
		       target);
	goto out;

fallback:
	lp_snap_metrics_fallback(s->metrics, why);
	if (s->c->strict) {
		lp_log_err("layer %s: refused (strict): %s: %s",
			   req.digest ? req.digest : target,
			   lp_snap_fallback_name(why), lp_err_str(&why_err, r));
		r = lp_err_set(err, -EPERM,
			       "layer %s cannot be mounted lazily (%s: %s) "
			       "and the snapshotter is strict",
			       req.digest ? req.digest : target,
			       lp_snap_fallback_name(why),
			       lp_err_str(&why_err, r));
		goto out;
	}
	lp_log_warn("layer %s (chain %s): plain path: %s: %s",
		    req.digest ? req.digest : "?", target,
		    lp_snap_fallback_name(why), lp_err_str(&why_err, r));
	r = 1;
out:
	lp_snap_rec_clear(&rec);
	free(facts.ref);
	return r;
}

int lp_snap_svc_prepare(struct lp_snap_svc *s, const char *key,
			const char *parent, const struct lp_snap_kv *labels,
			size_t n_labels, bool view, struct lp_snap_mount *ret,
			struct lp_err *err)
{
	struct lp_snap_rec rec = { 0 }, p = { 0 };
	char path[LP_SNAP_PATH_MAX];
	bool in_tx = false;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = check_key("key", key, err);
	if (!r)
		r = check_labels(labels, n_labels, err);
	if (r < 0)
		return r;
	if (!view) {
		r = try_remote(s, key, parent, labels, n_labels, err);
		if (r <= 0)
			return r;
	}

	pthread_mutex_lock(&s->lock);
	if (*parent) {
		r = lp_snap_meta_get(s->meta, parent, &p);
		if (r == -ENOENT) {
			r = lp_err_set(err, r,
				       "parent snapshot %s does not "
				       "exist",
				       parent);
			goto out;
		}
		if (r < 0)
			goto out;
		if (p.kind != LP_SNAP_KIND_COMMITTED) {
			r = lp_err_set(err, -EINVAL,
				       "parent %s is not a "
				       "committed snapshot",
				       parent);
			goto out;
		}
	}
	rec.key = strdup(key);
	rec.parent = strdup(parent);
	rec.kind = view ? LP_SNAP_KIND_VIEW : LP_SNAP_KIND_ACTIVE;
	r = rec.key && rec.parent ? 0 : -ENOMEM;
	if (!r)
		r = set_labels(&rec, labels, n_labels, NULL);
	if (!r)
		r = lp_snap_meta_begin(s->meta);
	if (r < 0)
		goto out;
	in_tx = true;
	r = lp_snap_meta_insert(s->meta, &rec);
	if (r == -EEXIST) {
		r = lp_err_set(err, r, "snapshot %s: already exists", key);
		goto out;
	}
	if (r < 0)
		goto out;
	r = snap_path(s, rec.id, NULL, path, sizeof(path));
	if (!r && mkdir(path, 0700) < 0)
		r = -errno;
	if (!r)
		r = snap_path(s, rec.id, "fs", path, sizeof(path));
	if (!r && mkdir(path, 0755) < 0)
		r = -errno;
	if (!r && !view)
		r = snap_path(s, rec.id, "work", path, sizeof(path));
	if (!r && !view && mkdir(path, 0711) < 0)
		r = -errno;
	if (r < 0) {
		lp_err_set(err, r, "snapshot %s: creating %s: %s", key, path,
			   strerror(-r));
		goto out;
	}
	r = build_mounts(s, &rec, ret, err);
	if (r < 0)
		goto out;
	r = lp_snap_meta_commit(s->meta);
	in_tx = r < 0;
out:
	if (in_tx) {
		lp_snap_meta_rollback(s->meta);
		if (rec.id &&
		    snap_path(s, rec.id, NULL, path, sizeof(path)) == 0)
			remove_tree(path);
		lp_snap_mount_clear(ret);
	}
	pthread_mutex_unlock(&s->lock);
	lp_snap_rec_clear(&rec);
	lp_snap_rec_clear(&p);
	return r;
}

/* ---- the other operations ---------------------------------------------- */

static int get_locked(struct lp_snap_svc *s, const char *key,
		      struct lp_snap_rec *r, struct lp_err *err)
{
	int ret = lp_snap_meta_get(s->meta, key, r);

	if (ret == -ENOENT)
		lp_err_set(err, ret, "snapshot %s does not exist", key);
	return ret;
}

int lp_snap_svc_mounts(struct lp_snap_svc *s, const char *key,
		       struct lp_snap_mount *ret, struct lp_err *err)
{
	struct lp_snap_rec rec = { 0 };
	int r;

	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&s->lock);
	r = get_locked(s, key, &rec, err);
	if (r < 0)
		goto out;
	if (rec.kind != LP_SNAP_KIND_ACTIVE && rec.kind != LP_SNAP_KIND_VIEW) {
		r = lp_err_set(err, -EBUSY,
			       "snapshot %s is not active or a "
			       "view",
			       key);
		goto out;
	}
	r = build_mounts(s, &rec, ret, err);
out:
	pthread_mutex_unlock(&s->lock);
	lp_snap_rec_clear(&rec);
	return r;
}

int lp_snap_svc_commit(struct lp_snap_svc *s, const char *name, const char *key,
		       const struct lp_snap_kv *labels, size_t n_labels,
		       struct lp_err *err)
{
	struct lp_snap_rec rec = { 0 };
	char path[LP_SNAP_PATH_MAX];
	char *nk;
	int r;

	r = check_key("name", name, err);
	if (!r)
		r = check_labels(labels, n_labels, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	r = get_locked(s, key, &rec, err);
	if (r < 0)
		goto out;
	if (rec.kind != LP_SNAP_KIND_ACTIVE) {
		r = lp_err_set(err, -EBUSY, "snapshot %s is not active", key);
		goto out;
	}
	nk = strdup(name);
	if (!nk) {
		r = -ENOMEM;
		goto out;
	}
	free(rec.key);
	rec.key = nk;
	rec.kind = LP_SNAP_KIND_COMMITTED;
	/* as containerd's metastore: a committed snapshot is a new one, born
	 * (and last updated) now, with the commit's labels and none of the
	 * active snapshot's */
	rec.created_ns = rec.updated_ns = lp_snap_now_ns();
	r = replace_labels(&rec, labels, n_labels);
	if (r < 0)
		goto out;
	r = snap_path(s, rec.id, "fs", path, sizeof(path));
	if (r < 0)
		goto out;
	dir_usage(path, &rec.size, &rec.inodes);
	r = lp_snap_meta_begin(s->meta);
	if (r < 0)
		goto out;
	r = lp_snap_meta_update(s->meta, &rec);
	if (!r)
		r = lp_snap_meta_commit(s->meta);
	if (r < 0)
		lp_snap_meta_rollback(s->meta);
	if (r == -EEXIST)
		lp_err_set(err, r, "snapshot %s: already exists", name);
	if (!r && snap_path(s, rec.id, "work", path, sizeof(path)) == 0)
		remove_tree(path); /* only an active overlay needs it */
out:
	pthread_mutex_unlock(&s->lock);
	lp_snap_rec_clear(&rec);
	return r;
}

int lp_snap_svc_remove(struct lp_snap_svc *s, const char *key,
		       struct lp_err *err)
{
	struct lp_snap_rec rec = { 0 };
	char path[LP_SNAP_PATH_MAX];
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_locked(s, key, &rec, err);
	if (r < 0)
		goto out;
	r = lp_snap_meta_children(s->meta, key);
	if (r > 0) {
		r = lp_err_set(err, -EBUSY,
			       "cannot remove snapshot %s with "
			       "child",
			       key);
		goto out;
	}
	if (r < 0)
		goto out;
	r = lp_snap_meta_begin(s->meta);
	if (r < 0)
		goto out;
	r = lp_snap_meta_delete(s->meta, rec.id);
	if (!r)
		r = lp_snap_meta_commit(s->meta);
	if (r < 0) {
		lp_snap_meta_rollback(s->meta);
		goto out;
	}
	if (snap_path(s, rec.id, NULL, path, sizeof(path)) == 0)
		remove_tree(path);
	if (rec.layer && lp_snap_meta_layer_users(s->meta, rec.layer) == 0)
		lp_snap_layers_release(s->layers, rec.layer);
	lp_log_debug("removed snapshot %s", key);
out:
	pthread_mutex_unlock(&s->lock);
	lp_snap_rec_clear(&rec);
	return r;
}

int lp_snap_svc_stat(struct lp_snap_svc *s, const char *key,
		     struct lp_snap_rec *ret, struct lp_err *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_locked(s, key, ret, err);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/*
 * apply_mask() - the new labels of @rec after an Update with @kv and the
 * mask @paths: none or "labels" replace them all; "labels.KEY" sets KEY
 * from @kv or deletes it when @kv lacks it; other fields are immutable.
 */
static int apply_mask(struct lp_snap_rec *rec, const struct lp_snap_kv *kv,
		      size_t n, const char *const *paths, size_t n_paths,
		      struct lp_err *err)
{
	struct lp_snap_kv *cur = NULL;
	bool all = n_paths == 0;
	size_t i, j, m = 0;
	const char *k, *v;
	int r = 0;

	for (i = 0; i < n_paths; i++) {
		if (!strcmp(paths[i], "labels"))
			all = true;
		else if (strncmp(paths[i], "labels.", 7))
			return lp_err_set(err, -EINVAL,
					  "cannot update %s field on snapshot "
					  "%s",
					  paths[i], rec->key);
	}
	if (all)
		return replace_labels(rec, kv, n);
	cur = calloc(rec->n_labels + n_paths, sizeof(*cur));
	if (!cur)
		return -ENOMEM;
	for (i = 0; i < rec->n_labels; i++) {
		cur[m].key = rec->labels[i].key;
		cur[m++].value = rec->labels[i].value;
	}
	for (j = 0; j < n_paths; j++) {
		k = paths[j] + 7;
		v = kv_get(kv, n, k);
		for (i = 0; i < m && strcmp(cur[i].key, k); i++)
			;
		if (i < m && !v) { /* delete, keep the array dense */
			cur[i] = cur[--m];
		} else if (i < m) {
			cur[i].value = v;
		} else if (v) {
			cur[m].key = k;
			cur[m++].value = v;
		}
	}
	if (m > LP_SNAP_LABELS_MAX)
		r = lp_err_set(err, -EINVAL, "too many labels");
	else
		r = replace_labels(rec, cur, m);
	free(cur);
	return r;
}

int lp_snap_svc_update(struct lp_snap_svc *s, const char *key,
		       const struct lp_snap_kv *labels, size_t n_labels,
		       const char *const *paths, size_t n_paths,
		       struct lp_snap_rec *ret, struct lp_err *err)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = check_labels(labels, n_labels, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	r = get_locked(s, key, ret, err);
	if (r < 0)
		goto out;
	r = apply_mask(ret, labels, n_labels, paths, n_paths, err);
	if (r < 0)
		goto out;
	ret->updated_ns = lp_snap_now_ns();
	r = lp_snap_meta_begin(s->meta);
	if (r < 0)
		goto out;
	r = lp_snap_meta_update(s->meta, ret);
	if (!r)
		r = lp_snap_meta_commit(s->meta);
	if (r < 0)
		lp_snap_meta_rollback(s->meta);
out:
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		lp_snap_rec_clear(ret);
	return r;
}

int lp_snap_svc_usage(struct lp_snap_svc *s, const char *key, int64_t *ret_size,
		      int64_t *ret_inodes, struct lp_err *err)
{
	struct lp_snap_rec rec = { 0 };
	char path[LP_SNAP_PATH_MAX];
	int r;

	*ret_size = *ret_inodes = 0;
	pthread_mutex_lock(&s->lock);
	r = get_locked(s, key, &rec, err);
	if (r < 0)
		goto out;
	if (rec.kind == LP_SNAP_KIND_COMMITTED || rec.layer) {
		*ret_size = rec.size; /* remote: nothing on disk but cache */
		*ret_inodes = rec.inodes;
		goto out;
	}
	r = snap_path(s, rec.id, "fs", path, sizeof(path));
	if (!r)
		dir_usage(path, ret_size, ret_inodes);
out:
	pthread_mutex_unlock(&s->lock);
	lp_snap_rec_clear(&rec);
	return r;
}

struct list_ctx {
	const char *const *filters;
	size_t n;
	lp_snap_rec_fn fn;
	void *opaque;
};

static int list_one(void *opaque, const struct lp_snap_rec *r)
{
	struct list_ctx *lc = opaque;
	size_t i;
	int m = lc->n ? 0 : 1;

	for (i = 0; i < lc->n && !m; i++) {
		m = lp_snap_filter_match(lc->filters[i], r);
		if (m < 0)
			return m;
	}
	return m ? lc->fn(lc->opaque, r) : 0;
}

int lp_snap_svc_list(struct lp_snap_svc *s, const char *const *filters,
		     size_t n_filters, lp_snap_rec_fn fn, void *opaque,
		     struct lp_err *err)
{
	struct list_ctx lc = { filters, n_filters, fn, opaque };
	int r;

	if (n_filters > LP_SNAP_FILTERS_MAX)
		return lp_err_set(err, -EINVAL, "too many filters");
	pthread_mutex_lock(&s->lock);
	r = lp_snap_meta_walk(s->meta, list_one, &lc);
	pthread_mutex_unlock(&s->lock);
	if (r == -EINVAL)
		lp_err_set(err, r, "bad filter");
	return r;
}

/* remove directories under ROOT/snapshots that no row owns; lock held */
static int remove_orphans(struct lp_snap_svc *s)
{
	char path[LP_SNAP_PATH_MAX];
	struct dirent *de;
	DIR *d;
	char *end;
	long long id;
	int n = 0;

	d = opendir(s->dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		id = strtoll(de->d_name, &end, 10);
		if (*end == '\0' && end != de->d_name &&
		    lp_snap_meta_has_id(s->meta, id) != 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		lp_log_info("removing orphan snapshot directory %s", path);
		remove_tree(path);
		n++;
	}
	closedir(d);
	return n;
}

static bool layer_in_use(void *opaque, const char *digest)
{
	struct lp_snap_svc *s = opaque;

	return lp_snap_meta_layer_users(s->meta, digest) != 0;
}

int lp_snap_svc_cleanup(struct lp_snap_svc *s, struct lp_err *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = remove_orphans(s);
	lp_snap_layers_release_unused(s->layers, layer_in_use, s,
				      UNUSED_LAYER_GRACE_S);
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? lp_err_set(err, r, "cleanup: %s", strerror(-r)) : 0;
}

struct restore_ctx {
	char (*digests)[LP_DIGEST_STR_LEN + 1];
	size_t n, cap;
};

static int collect_layer(void *opaque, const struct lp_snap_rec *r)
{
	struct restore_ctx *rc = opaque;
	void *nd;
	size_t i;

	if (!r->layer)
		return 0;
	for (i = 0; i < rc->n; i++)
		if (!strcmp(rc->digests[i], r->layer))
			return 0;
	if (rc->n == rc->cap) {
		rc->cap = rc->cap ? rc->cap * 2 : 16;
		nd = realloc(rc->digests, rc->cap * sizeof(*rc->digests));
		if (!nd)
			return -ENOMEM;
		rc->digests = nd;
	}
	snprintf(rc->digests[rc->n++], LP_DIGEST_STR_LEN + 1, "%s", r->layer);
	return 0;
}

int lp_snap_svc_restore(struct lp_snap_svc *s)
{
	struct restore_ctx rc = { 0 };
	struct lp_snap_layer_facts f;
	char mnt[LP_SNAP_PATH_MAX];
	struct lp_err err;
	int mounted = 0;
	size_t i;

	pthread_mutex_lock(&s->lock);
	remove_orphans(s);
	lp_snap_meta_walk(s->meta, collect_layer, &rc);
	for (i = 0; i < rc.n; i++) {
		lp_err_clear(&err);
		if (lp_snap_meta_layer_get(s->meta, rc.digests[i], &f) < 0) {
			lp_log_err("layer %s: no facts recorded; its "
				   "snapshots cannot be mounted",
				   rc.digests[i]);
			continue;
		}
		if (lp_snap_layers_ensure(s->layers, &f, mnt, sizeof(mnt),
					  &err) == 0)
			mounted++;
		else
			lp_log_warn("layer %s: remount failed (retried on "
				    "use): %s",
				    f.digest, lp_err_str(&err, -EIO));
		free(f.ref);
	}
	pthread_mutex_unlock(&s->lock);
	free(rc.digests);
	return mounted;
}
