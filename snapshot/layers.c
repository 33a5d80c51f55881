// SPDX-License-Identifier: Apache-2.0
/*
 * The pool of lazily mounted layers: one FUSE mount per layer digest under
 * ROOT/layers/HEX, each an lp_fs over a registry blob (lp_reg_open_blob)
 * served by its own session thread, sharing one chunk disk cache under
 * ROOT/cache. A layer is resolved once however many snapshots (in however
 * many containerd namespaces) use it; the first Prepare of an image starts
 * resolving the layers after it too, so their TOCs are fetched and their
 * prefetch runs before containerd asks for them.
 *
 * A plain gzip layer (no TOC digest in the labels) is mounted through its
 * gzip index (index_find.c finds it): the index is kept under
 * ROOT/indexes/<layer hex>.<index hex>, its digest stands in the layer's
 * facts where an eStargz layer's TOC digest stands, and the facts' kind
 * (LP_SNAP_LAYER_GZIP_INDEX) says so, so a restart remounts or resumes it
 * from the kept file (looked up again, by that digest, when the file is
 * missing or not the one recorded). The kept file outlives the mount (a
 * daemon stop, a failure); it goes with the layer's last user (release)
 * or at the next start (the sweep of unused layers).
 *
 * Prefetch profiles: a layer mounted lazily (eStargz or through a gzip
 * index, not a resumed one) asks index_find.c for its image's prefetch
 * profile (`lazypull optimize --profile-only`) in a thread of its own while
 * it reads its tail (or asks its blob's size), so that the mount waits for
 * the longer of the two, the profile's at most 1 s
 * (LP_SNAP_PROFILE_LOOKUP_MS + LP_SNAP_PROFILE_REQUEST_MS); the files it
 * lists for the layer are prefetched in its order at mount (lp_fs_options
 * .prefetch_files). The profile is the image's, the mount the layer's: a
 * layer shared by several images is mounted once, with the profile of the
 * image that mounted it first. A missing, refused or unreachable profile is
 * logged and counted (lazypull_profile_lookups_total) and the mount goes on
 * without it.
 *
 * Unmounting: lp_fuse_unmount() from this module's thread ends the session
 * loop; when a container still holds the mount it is detached and its
 * connection aborted, so the session thread always ends and can be joined.
 * Sessions run with lp_fuse_serve(): no signal handlers (the daemon takes
 * signals with sigwait()).
 *
 * An entry keeps its digest's mount point to itself from the first mkdir to
 * the last rmdir: it is unmounted while still listed (RELEASING, waited out
 * like RESOLVING) and unlinked only then, so a new entry for the same digest
 * (a request, a neighbour mounted ahead) cannot mount on the path while the
 * old one's umount2() and rmdir() of that path are still to come.
 *
 * Lock order: pool->lock only (it is taken after the service lock; nothing
 * else is taken while it is held, and no I/O is done under it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cri_int.h"
#include "lp_common.h"
#include "lp_footer.h"
#include "lp_fuse.h"
#include "lp_io.h"
#include "lp_log.h"
#include "lp_mount.h"
#include "lp_prio.h"
#include "lp_registry.h"
#include "snap_int.h"

#define LAYERS_DIR "layers"
#define CACHE_DIR "cache"
/* each mounted layer's tail (footer + TOC), for a restart without network */
#define TAILS_DIR "tails"
/* the gzip indexes plain layers are mounted through */
#define INDEXES_DIR "indexes"
#define LAYER_STATS_MAX (64 * 1024)

enum layer_state {
	LAYER_RESOLVING, /* one thread is mounting it; others wait */
	LAYER_MOUNTED,
	LAYER_FAILED, /* the next request tries again */
	LAYER_RELEASING, /* being unmounted, then unlinked; others wait */
};

struct layer {
	struct layer *next; /* protected by pool lock */
	struct layer *gone_next; /* release_unused()'s list, RELEASING */
	enum layer_state state; /* protected by pool lock */
	bool ahead; /* mounted ahead of use; protected by pool lock */
	unsigned int pins; /* users right now; protected by pool lock */
	char digest[LP_DIGEST_STR_LEN + 1]; /* immutable */
	char mnt[LP_SNAP_PATH_MAX]; /* immutable */
	/* the image manifest's digest when the labels said it, else "": its
	 * prefetch profile's key; written before the resolving thread
	 * starts */
	char manifest[LP_DIGEST_STR_LEN + 1];
	/* written by the resolving thread before it publishes the state */
	struct lp_snap_layer_facts facts;
	int error;
	enum lp_snap_fallback why;
	struct lp_err err;
	struct lp_fs *fs;
	struct lp_fuse *fuse;
	pthread_t session;
	bool session_started;
	bool resumed; /* served from a connection a previous daemon made */
	time_t mounted_at;
	time_t used_at; /* mounted, or last unpinned by a user; pool lock */
	uint64_t tail_ns, toc_ns; /* how long the tail read, TOC open took */
	/* a gzip index layer: the "proven once" record its proving pass
	 * writes when it is through (index_trust()); set before the mount */
	char proven_path[LP_SNAP_PATH_MAX + 8];
	/* facts.size was checked against the image manifest's descriptor of
	 * the layer (lp_snap_index_found.size_checked): the mount opens the
	 * blob with it instead of asking the registry. Written by claim()
	 * under the pool lock, read by the resolving thread it claimed for. */
	bool size_checked;
};

struct lp_snap_layers {
	const struct lp_snap_config *c; /* borrowed */
	struct lp_snap_metrics *metrics; /* borrowed */
	struct lp_reg *reg; /* thread-safe */
	/* the same with short timeouts, for gzip index lookups (their
	 * deadline: LP_SNAP_INDEX_LOOKUP_MS); thread-safe */
	struct lp_reg *index_reg;
	/* the same with shorter ones, for prefetch profile lookups
	 * (LP_SNAP_PROFILE_REQUEST_MS); thread-safe */
	struct lp_reg *profile_reg;
	/* images' manifests and referrers, for gzip index lookups;
	 * thread-safe */
	struct lp_snap_index_cache *index_cache;
	/* the config's index_trusted_keys, loaded; immutable */
	struct lp_index_keys *trusted_keys;
	/* prioritised fetching of all layers: one layer's reads quiet the
	 * others' background fetch */
	struct lp_fs_activity *activity;
	/* the memory tiers of all layers together stay within this */
	struct lp_fs_budget *mem_budget;
	struct lp_fdh *holder; /* borrowed, thread-safe; NULL: none */
	/* kubelet's pull credentials (CRI proxy); borrowed, thread-safe;
	 * NULL: no proxy */
	struct lp_cri_creds *cri_creds;
	char layers_dir[LP_SNAP_PATH_MAX];
	char cache_dir[LP_SNAP_PATH_MAX];
	char tails_dir[LP_SNAP_PATH_MAX];
	char indexes_dir[LP_SNAP_PATH_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a layer's state changed, a helper ended */
	struct layer *layers; /* protected by lock */
	unsigned int helpers; /* neighbour threads alive; protected by lock */
};

struct helper_arg {
	struct lp_snap_layers *l;
	struct layer *layer;
};

/* the manifest helper's copy of a request */
struct manifest_arg {
	struct lp_snap_layers *l;
	char *ref;
	char *digest;
	char *neighbours; /* NULL: none given */
};

/*
 * the config's index_trusted_keys into @l->trusted_keys; a key that cannot
 * be read is the config's error (logged: the daemon does not start), never
 * a mount's
 */
static int load_trusted_keys(struct lp_snap_layers *l)
{
	struct lp_err err = { 0 };
	size_t i;
	int r;

	r = lp_index_keys_new(&l->trusted_keys);
	for (i = 0; r == 0 && i < l->c->n_index_trusted_keys; i++) {
		r = lp_index_keys_load(l->trusted_keys,
				       l->c->index_trusted_keys[i], &err);
		if (r < 0)
			lp_log_err("config: index_trusted_keys[%zu]: %s", i,
				   lp_err_str(&err, r));
	}
	return r;
}

int lp_snap_layers_new(const struct lp_snap_config *c,
		       struct lp_snap_metrics *metrics,
		       struct lp_snap_layers **ret_l)
{
	struct lp_snap_layers *l = NULL;
	struct lp_reg_opts o;
	int r;

	l = calloc(1, sizeof(*l));
	if (!l) {
		r = -ENOMEM;
		goto out;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	l->c = c;
	l->metrics = metrics;
	l->activity = lp_fs_activity_new();
	if (!l->activity) {
		r = -ENOMEM;
		goto out;
	}
	r = lp_fs_budget_new(c->mem_cache_bytes ? c->mem_cache_bytes :
						  LP_SNAP_DEFAULT_MEM_CACHE,
			     &l->mem_budget);
	if (r < 0)
		goto out;
	if (snprintf(l->layers_dir, sizeof(l->layers_dir), "%s/" LAYERS_DIR,
		     c->root) >= (int)sizeof(l->layers_dir) ||
	    snprintf(l->cache_dir, sizeof(l->cache_dir), "%s/" CACHE_DIR,
		     c->root) >= (int)sizeof(l->cache_dir) ||
	    snprintf(l->tails_dir, sizeof(l->tails_dir), "%s/" TAILS_DIR,
		     c->root) >= (int)sizeof(l->tails_dir) ||
	    snprintf(l->indexes_dir, sizeof(l->indexes_dir), "%s/" INDEXES_DIR,
		     c->root) >= (int)sizeof(l->indexes_dir)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	r = lp_mkdir_p(l->layers_dir, 0700, 0700);
	if (r == 0)
		r = lp_mkdir_p(l->tails_dir, 0700, 0700);
	if (r == 0)
		r = lp_mkdir_p(l->indexes_dir, 0700, 0700);
	if (r < 0)
		goto out;
	lp_reg_opts_init(&o);
	o.insecure_hosts = (const char *const *)c->insecure;
	o.docker_config_dir = c->docker_config_dir;
	o.spool_dir = c->root; /* blobs of range-less hosts, unlinked */
	o.registry_config_dir =
		!c->registry_config_dir ? LP_REG_CONFIG_DIR_DEFAULT :
		*c->registry_config_dir ? c->registry_config_dir :
					  NULL;
	r = lp_reg_new(&o, &l->reg);
	if (r == 0) {
		o.connect_timeout_ms = LP_SNAP_INDEX_REQUEST_MS;
		o.request_timeout_ms = LP_SNAP_INDEX_REQUEST_MS;
		o.low_speed_limit = 1; /* a blob stalled that long */
		o.low_speed_time_s = (LP_SNAP_INDEX_REQUEST_MS + 999) / 1000;
		o.max_attempts = 1;
		o.retry_budget_ms = 0;
		r = lp_reg_new(&o, &l->index_reg);
	}
	if (r == 0) {
		o.connect_timeout_ms = LP_SNAP_PROFILE_REQUEST_MS;
		o.request_timeout_ms = LP_SNAP_PROFILE_REQUEST_MS;
		o.low_speed_time_s = 1;
		r = lp_reg_new(&o, &l->profile_reg);
	}
	if (r == 0)
		r = lp_snap_index_cache_new(&l->index_cache);
	if (r == 0)
		r = load_trusted_keys(l);
	if (r < 0)
		goto out;
	*ret_l = l;
	l = NULL;
out:
	lp_snap_layers_free(l);
	return r;
}

int lp_snap_layers_path(struct lp_snap_layers *l, const char *digest, char *mnt,
			size_t mnt_size)
{
	const char *hex = strchr(digest, ':');

	/* the hex part only: a ':' would split an overlay lowerdir list */
	if (!hex || !hex[1] || strchr(hex + 1, '/') || strchr(hex + 1, ':'))
		return -EINVAL;
	if (snprintf(mnt, mnt_size, "%s/%s", l->layers_dir, hex + 1) >=
	    (int)mnt_size)
		return -ENAMETOOLONG;
	return 0;
}

void lp_snap_layers_set_holder(struct lp_snap_layers *l, struct lp_fdh *h)
{
	l->holder = h;
}

void lp_snap_layers_set_cri_creds(struct lp_snap_layers *l,
				  struct lp_cri_creds *s)
{
	l->cri_creds = s;
}

/*
 * The credential hook: what kubelet gave with the CRI PullImage of @ref's
 * image, if anything, goes on @ref itself (@ref->auth, a reference the
 * caller drops with lp_reg_auth_unref()), so that this layer's requests,
 * and its blob's for as long as it is mounted, carry them: never the
 * shared client, where another image's pull would overwrite them.
 * Returns 1 set, 0 none (no proxy, or no pull with credentials).
 */
static int cri_credentials(struct lp_snap_layers *l, struct lp_reg_ref *ref)
{
	ref->auth = NULL;
	return l->cri_creds ? lp_cri_creds_get(l->cri_creds, ref, &ref->auth) :
			      0;
}

/* a refused layer (-EACCES): say whose credentials were refused or missing
 * (the registry's message first: lp_err keeps the first message set) */
static int auth_refused(struct lp_snap_layers *l, struct layer *y, int have)
{
	char cause[LP_ERR_MSG_MAX];

	snprintf(cause, sizeof(cause), "%s", lp_err_str(&y->err, -EACCES));
	lp_err_clear(&y->err);
	return lp_err_set(
		&y->err, -EACCES, "%s (%s)", cause,
		have > 0 ?
			"the credentials of its CRI PullImage were refused" :
		l->cri_creds ?
			"no credentials for this image from a CRI PullImage "
			"through the lazypull CRI proxy (is kubelet's "
			"--image-service-endpoint the proxy socket?)" :
			"no credentials: the CRI proxy is off (--cri-listen) "
			"and the docker config has none");
}

/* ROOT/tails/HEX: where layer @digest's tail is kept */
static int tail_path(struct lp_snap_layers *l, const char *digest, char *path,
		     size_t size)
{
	const char *hex = strchr(digest, ':');

	if (!hex ||
	    snprintf(path, size, "%s/%s", l->tails_dir, hex + 1) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * keep @y's tail (footer and the whole TOC, when it holds them) so that a
 * resume needs no registry: written to a temporary file and renamed; it is
 * checked against the TOC digest when read back, so a torn or stale file
 * only costs the network read it was meant to save
 */
static void save_tail(struct lp_snap_layers *l, struct layer *y,
		      const uint8_t *tail, size_t len)
{
	const struct lp_footer *ft = lp_layer_footer(lp_fs_layer(y->fs));
	char path[LP_SNAP_PATH_MAX], tmp[LP_SNAP_PATH_MAX + 8];
	int fd, r;

	if (!tail || !len || len > y->facts.size ||
	    ft->toc_offset < y->facts.size - len)
		return; /* the TOC is not all in it */
	if (tail_path(l, y->digest, path, sizeof(path)) < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	r = lp_write_all(fd, tail, len);
	if (close(fd) < 0 || r < 0 || rename(tmp, path) < 0)
		goto fail;
	return;
fail:
	lp_log_warn("layer %s: cannot keep its tail in %s: %s (a restart "
		    "reads it from the registry)",
		    y->digest, path, strerror(errno));
	unlink(tmp);
}

/* beside a kept index: its signature, its "proven once" record */
#define KEPT_SIG ".sig"
#define KEPT_PROVEN ".proven"

/* ROOT/indexes/<layer hex>.<index hex>@suffix: a kept gzip index ("") or
 * a file beside it (KEPT_SIG, KEPT_PROVEN) */
static int kept_file_path(struct lp_snap_layers *l, const char *digest,
			  const char *index_digest, const char *suffix,
			  char *path, size_t size)
{
	const char *hex = strchr(digest, ':'),
		   *ihex = strchr(index_digest, ':');

	if (!hex || !ihex ||
	    snprintf(path, size, "%s/%s.%s%s", l->indexes_dir, hex + 1,
		     ihex + 1, suffix) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static int kept_index_path(struct lp_snap_layers *l, const char *digest,
			   const char *index_digest, char *path, size_t size)
{
	return kept_file_path(l, digest, index_digest, "", path, size);
}

/*
 * keep @f's index for layer @digest (a temporary file renamed), and its
 * signature when it came with one: ROOT/indexes/<layer hex>.<index
 * hex>.sig, the manifest it was found for ("-" none) on the first line,
 * then the signature's JSON as found (checked at each mount:
 * index_trust())
 */
static int keep_index(struct lp_snap_layers *l, const char *digest,
		      const struct lp_snap_index_found *f)
{
	char path[LP_SNAP_PATH_MAX + 8];
	struct lp_buf b;
	int r;

	r = kept_index_path(l, digest, f->digest, path, sizeof(path));
	if (r < 0)
		return r;
	r = lp_file_write_atomic(path, f->data, f->len, 0600);
	if (r < 0 || !f->data)
		return r;
	r = kept_file_path(l, digest, f->digest, KEPT_SIG, path, sizeof(path));
	if (r < 0)
		return 0; /* unsigned then */
	if (!f->sig) {
		unlink(path); /* a signature kept before is not this one's */
		return 0;
	}
	lp_buf_init(&b, LP_INDEX_SIG_MAX_JSON + LP_DIGEST_STR_LEN + 2);
	r = lp_buf_printf(&b, "%s\n", f->manifest[0] ? f->manifest : "-");
	if (r == 0)
		r = lp_buf_append(&b, f->sig, f->sig_len);
	if (r == 0)
		r = lp_file_write_atomic(path, b.data, b.len, 0600);
	if (r < 0) /* unsigned then: never the mount's failure */
		lp_log_warn("layer %s: keeping its index signature %s: %s",
			    digest, path, strerror(-r));
	lp_buf_release(&b);
	return 0;
}

/*
 * index_trust() - what the kept signature of layer @y's index (@index,
 * @index_len bytes) makes of it under the config's trusted keys: checked
 * at every mount (a restart too), logged once per mount with the reason,
 * counted (lazypull_index_trust_total). Only LP_INDEX_TRUST_SIGNED makes
 * the mount trust the index's checkpoints; anything else is today's
 * proven-only default, never a failed mount.
 */
static enum lp_index_trust index_trust(struct lp_snap_layers *l,
				       struct layer *y,
				       const struct lp_digest *d,
				       const uint8_t *index, size_t index_len)
{
	char path[LP_SNAP_PATH_MAX + 8], ids[LP_DIGEST_STR_LEN + 1];
	struct lp_index_sig *sig = NULL;
	struct lp_digest id, md, *mp = NULL;
	struct lp_err why = { 0 };
	enum lp_index_trust t = LP_INDEX_TRUST_UNSIGNED;
	uint8_t *data = NULL;
	const char *nl;
	size_t len = 0;
	int r;

	lp_sha256(index, index_len, &id);
	lp_digest_format(&id, ids);
	if (kept_file_path(l, y->digest, ids, KEPT_PROVEN, y->proven_path,
			   sizeof(y->proven_path)) < 0 ||
	    kept_file_path(l, y->digest, y->facts.toc_digest, KEPT_SIG, path,
			   sizeof(path)) < 0) {
		y->proven_path[0] = '\0';
		goto out;
	}
	/* proven once on this node: these very bytes were found true of
	 * this layer by a pass that read it whole (the kept index's digest
	 * is checked when it is loaded; the name is both digests) */
	if (access(y->proven_path, F_OK) == 0) {
		t = LP_INDEX_TRUST_PROVEN;
		goto out;
	}
	r = lp_snap_read_file(path,
			      LP_INDEX_SIG_MAX_JSON + LP_DIGEST_STR_LEN + 2,
			      &data, &len);
	if (r < 0) {
		if (r != -ENOENT)
			lp_err_set(&why, r, "its kept signature %s: %s", path,
				   strerror(-r));
		else
			lp_err_set(&why, r, "the index is not signed");
		goto out;
	}
	nl = memchr(data, '\n', len);
	t = LP_INDEX_TRUST_BAD_SIGNATURE;
	if (!nl) {
		lp_err_set(&why, -EBADMSG,
			   "its kept signature %s is "
			   "malformed",
			   path);
		goto out;
	}
	if (lp_digest_parse_n((const char *)data, (size_t)(nl - (char *)data),
			      &md) == 0)
		mp = &md;
	nl++;
	r = lp_index_sig_parse_json(nl, len - (size_t)(nl - (char *)data), &sig,
				    &why);
	if (r == -ENOENT) {
		t = LP_INDEX_TRUST_UNSIGNED;
		goto out;
	}
	if (r < 0)
		goto out;
	t = lp_index_sig_check(sig, l->trusted_keys, mp, d, &id, &why);
out:
	if (t == LP_INDEX_TRUST_SIGNED)
		lp_log_info("layer %s: gzip index %s trusted: signed by a "
			    "trusted key; reads start at any checkpoint",
			    y->digest, y->facts.toc_digest);
	else if (t == LP_INDEX_TRUST_PROVEN)
		lp_log_info("layer %s: gzip index %s trusted: proven once on "
			    "this node (%s); reads start at any checkpoint",
			    y->digest, y->facts.toc_digest, y->proven_path);
	else if (lp_index_keys_count(l->trusted_keys)) /* the admin asked */
		lp_log_warn("layer %s: gzip index %s %s: %s; proven-only "
			    "reads",
			    y->digest, y->facts.toc_digest,
			    lp_index_trust_name(t), lp_err_str(&why, -EINVAL));
	else
		lp_log_info("layer %s: gzip index %s %s: %s; proven-only "
			    "reads",
			    y->digest, y->facts.toc_digest,
			    lp_index_trust_name(t), lp_err_str(&why, -EINVAL));
	lp_snap_metrics_index_trust(l->metrics, t);
	lp_index_sig_free(sig);
	free(data);
	return t;
}

/*
 * the kept gzip index of @y (whose facts name it by digest) into
 * *@ret_data; -ENOENT: none (an eStargz layer), -EBADMSG: its bytes are
 * not the ones the facts name
 */
static int load_kept_index(struct lp_snap_layers *l, struct layer *y,
			   uint8_t **ret_data, size_t *ret_len)
{
	char path[LP_SNAP_PATH_MAX], ds[LP_DIGEST_STR_LEN + 1];
	struct lp_digest d;
	int r;

	r = kept_index_path(l, y->digest, y->facts.toc_digest, path,
			    sizeof(path));
	if (r < 0)
		return r;
	r = lp_snap_read_file(path, LP_SNAP_INDEX_MAX, ret_data, ret_len);
	if (r < 0)
		return r;
	lp_sha256(*ret_data, *ret_len, &d);
	lp_digest_format(&d, ds);
	if (strcmp(ds, y->facts.toc_digest)) {
		free(*ret_data);
		*ret_data = NULL;
		return lp_err_set(&y->err, -EBADMSG,
				  "the kept gzip index %s has digest %s", path,
				  ds);
	}
	return 0;
}

static void drop_kept_index(struct lp_snap_layers *l, const char *digest,
			    const char *index_digest)
{
	static const char *const suffixes[] = { "", KEPT_SIG, KEPT_PROVEN };
	char path[LP_SNAP_PATH_MAX + 8];
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (kept_file_path(l, digest, index_digest, suffixes[i], path,
				   sizeof(path)) == 0)
			unlink(path);
}

/*
 * kept_index() - the gzip index plain layer @y was mounted with (its facts
 * name it by digest) into *@ret_data: the kept file, else (missing, or not
 * those bytes) the lookup again (index_find.c), taking only an index of
 * that digest, and kept again. On failure sets @y->why and @y->err.
 */
static int kept_index(struct lp_snap_layers *l, struct layer *y,
		      const struct lp_reg_ref *ref, const struct lp_digest *d,
		      uint8_t **ret_data, size_t *ret_len)
{
	struct lp_snap_index_found found = { 0 };
	struct lp_err err = { 0 };
	int r;

	r = load_kept_index(l, y, ret_data, ret_len);
	if (r == 0 || r == -ENOMEM || r == -ENAMETOOLONG) {
		if (r < 0) {
			y->why = LP_FALLBACK_MOUNT;
			lp_err_set(&y->err, r, "its kept gzip index: %s",
				   strerror(-r));
		}
		return r;
	}
	lp_log_warn("layer %s: its kept gzip index %s: %s; looking it up "
		    "again",
		    y->digest, y->facts.toc_digest, lp_err_str(&y->err, r));
	lp_err_clear(&y->err);
	r = lp_snap_index_find(l->index_cache, l->index_reg, l->c, ref, d, NULL,
			       y->facts.toc_digest, &found, &y->why, &err);
	if (r < 0) {
		lp_err_set(&y->err, r, "its gzip index %s, looked up again: %s",
			   y->facts.toc_digest, lp_err_str(&err, r));
		goto out;
	}
	r = keep_index(l, y->digest, &found);
	if (r < 0)
		lp_log_warn("layer %s: keeping its gzip index under %s: %s",
			    y->digest, l->indexes_dir, strerror(-r));
	lp_log_info("layer %s: gzip index %s found again in %s", y->digest,
		    found.digest, found.where);
	*ret_data = found.data;
	*ret_len = found.len;
	found.data = NULL;
	r = 0;
out:
	lp_snap_index_found_clear(&found);
	return r;
}

/* delete the files of @dir whose layer (the name up to the first '.')
 * @keep does not keep */
static int sweep_dir(const char *dir,
		     bool (*keep)(void *opaque, const char *digest),
		     void *opaque)
{
	char digest[LP_DIGEST_STR_LEN + 1], path[LP_SNAP_PATH_MAX];
	struct dirent *e;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' ||
		    snprintf(digest, sizeof(digest), "sha256:%.*s",
			     (int)strcspn(e->d_name, "."),
			     e->d_name) >= (int)sizeof(digest) ||
		    keep(opaque, digest))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) <
			    (int)sizeof(path) &&
		    unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int lp_snap_layers_sweep_tails(struct lp_snap_layers *l,
			       bool (*keep)(void *opaque, const char *digest),
			       void *opaque)
{
	return sweep_dir(l->tails_dir, keep, opaque) +
	       sweep_dir(l->indexes_dir, keep, opaque);
}

/* the saved tail of @y into *@ret_tail (malloc'ed); -ENOENT: none */
static int load_tail(struct lp_snap_layers *l, struct layer *y,
		     uint8_t **ret_tail, size_t *ret_len)
{
	char path[LP_SNAP_PATH_MAX];
	uint8_t *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd = -1, r;

	r = tail_path(l, y->digest, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size > LP_MOUNT_TAIL_BYTES ||
	    (uint64_t)st.st_size > y->facts.size) {
		r = -EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		r = -EIO;
		goto out;
	}
	*ret_tail = buf;
	*ret_len = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static void unpin(struct lp_snap_layers *l, struct layer *y);

/* give the fd holder @y's connection, so it outlives this process */
static int hand_over(struct lp_snap_layers *l, struct layer *y)
{
	struct lp_fuse_state st;
	int r;

	if (!l->holder)
		return 0;
	lp_fuse_get_state(y->fuse, &st);
	r = lp_fdh_put(l->holder, y->digest, &st, lp_fuse_fd(y->fuse));
	if (r < 0)
		lp_log_warn("layer %s: not handed to the fd holder: %s (it "
			    "is handed again when the holder is back, and at "
			    "the daemon's stop)",
			    y->digest, strerror(-r));
	return r;
}

int lp_snap_layers_hand_all(struct lp_snap_layers *l)
{
	struct layer *y, **pinned = NULL;
	size_t n = 0, i;
	int r, first = 0;

	/* pinned, an entry stays MOUNTED with its fuse: hand over unlocked */
	pthread_mutex_lock(&l->lock);
	for (y = l->layers; y; y = y->next)
		n += y->state == LAYER_MOUNTED;
	pinned = n ? calloc(n, sizeof(*pinned)) : NULL;
	n = 0;
	for (y = l->layers; y && pinned; y = y->next) {
		if (y->state != LAYER_MOUNTED)
			continue;
		y->pins++;
		pinned[n++] = y;
	}
	pthread_mutex_unlock(&l->lock);
	for (i = 0; i < n; i++) {
		r = hand_over(l, pinned[i]);
		if (r < 0 && !first)
			first = r;
		unpin(l, pinned[i]);
	}
	free(pinned);
	return first < 0 ? first : (int)n;
}

static void *session_main(void *arg)
{
	struct layer *y = arg;
	int r = lp_fuse_serve(y->fuse); /* the daemon handles signals */

	if (r < 0)
		lp_log_warn("layer %s: FUSE session: %s", y->digest,
			    strerror(-r));
	return NULL;
}

/*
 * layer_teardown() - unmount and free what a mount made (the entry itself
 * stays). The entry must be off limits to other threads: resolving, or off
 * the list.
 */
static void layer_teardown(struct lp_snap_layers *l, struct layer *y)
{
	char path[LP_SNAP_PATH_MAX];
	int r;

	if (y->session_started) {
		r = lp_fuse_unmount(y->fuse); /* busy: detached, aborted */
		if (r < 0)
			lp_log_warn("layer %s: unmounting %s: %s", y->digest,
				    y->mnt, strerror(-r));
		pthread_join(y->session, NULL);
		y->session_started = false;
		rmdir(y->mnt);
	}
	if (y->fuse && l->holder) {
		r = lp_fdh_del(l->holder, y->digest);
		if (r < 0)
			lp_log_warn("layer %s: the fd holder keeps it: %s",
				    y->digest, strerror(-r));
	}
	if (y->fuse && tail_path(l, y->digest, path, sizeof(path)) == 0)
		unlink(path);
	lp_fuse_free(y->fuse); /* the mount is gone: this only frees */
	y->fuse = NULL;
	lp_fs_free(y->fs);
	y->fs = NULL;
}

static void layer_destroy(struct lp_snap_layers *l, struct layer *y)
{
	if (!y)
		return;
	layer_teardown(l, y);
	free(y->facts.ref);
	free(y);
}

void lp_snap_layers_free(struct lp_snap_layers *l)
{
	struct layer *y;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	while (l->helpers)
		pthread_cond_wait(&l->cond, &l->lock);
	while ((y = l->layers)) {
		l->layers = y->next;
		pthread_mutex_unlock(&l->lock);
		layer_destroy(l, y);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	lp_reg_free(l->reg);
	lp_reg_free(l->index_reg);
	lp_reg_free(l->profile_reg);
	lp_snap_index_cache_free(l->index_cache);
	lp_index_keys_free(l->trusted_keys);
	lp_fs_activity_free(l->activity); /* after every layer's fs */
	lp_fs_budget_free(l->mem_budget); /* likewise */
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct layer *find_layer(struct lp_snap_layers *l, const char *digest)
{
	struct layer *y;

	for (y = l->layers; y; y = y->next)
		if (!strcmp(y->digest, digest))
			return y;
	return NULL;
}

/* the size of layer @d from the manifest of @ref (the slow way) */
static int size_from_manifest(struct lp_snap_layers *l,
			      const struct lp_reg_ref *ref,
			      const struct lp_digest *d, uint64_t *ret_size,
			      struct lp_err *err)
{
	struct lp_reg_manifest *m = NULL;
	const struct lp_reg_desc *desc;
	size_t i;
	int r;

	r = lp_reg_manifest_fetch(l->reg, ref, NULL, &m, err);
	if (r < 0)
		goto out;
	r = lp_err_set(err, -ENOENT, "the layer is not in the manifest");
	for (i = 0; i < lp_reg_manifest_count(m); i++) {
		desc = lp_reg_manifest_layer(m, i);
		if (lp_digest_equal(&desc->digest, d)) {
			*ret_size = desc->size;
			r = 0;
			break;
		}
	}
out:
	lp_reg_manifest_free(m);
	return r;
}

/*
 * open_tail() - the layer's blob and its last LP_MOUNT_TAIL_BYTES (footer
 * and, usually, the whole TOC) in one request; its size comes with the
 * reply. Only a registry that cannot answer a suffix range, for a layer
 * whose size nobody told us, costs the manifest. Sets @y->facts.size.
 */
static int open_tail(struct lp_snap_layers *l, struct layer *y,
		     const struct lp_reg_ref *ref, const struct lp_digest *d,
		     struct lp_blob **ret_blob, uint8_t **ret_tail,
		     size_t *ret_len)
{
	uint64_t size = y->facts.size;
	int r;

	r = lp_mount_open_registry(l->reg, ref, d, size, ret_blob, ret_tail,
				   ret_len, &y->err);
	if (r == -EOPNOTSUPP && !size) {
		lp_log_info("layer %s: %s; asking the manifest", y->digest,
			    lp_err_str(&y->err, r));
		lp_err_clear(&y->err);
		r = size_from_manifest(l, ref, d, &size, &y->err);
		if (r == 0)
			r = lp_mount_open_registry(l->reg, ref, d, size,
						   ret_blob, ret_tail, ret_len,
						   &y->err);
	}
	if (r < 0)
		return lp_err_set(&y->err, r, "reading the blob's tail: %s",
				  lp_err_str(&y->err, r));
	y->facts.size = lp_blob_size(*ret_blob);
	return 0;
}

/*
 * mount_layer() - the slow part, without the lock: open the blob, read and
 * verify the TOC, mount, start serving and fetching. Fills @y's fs, fuse,
 * session on success; on failure sets @y->why and @y->err.
 */
/* @y's reference and digests, parsed */
static int parse_facts(struct layer *y, struct lp_reg_ref *ref,
		       struct lp_digest *d, struct lp_digest *toc)
{
	y->why = LP_FALLBACK_BAD_LABELS;
	if (lp_reg_ref_parse(y->facts.ref, ref) < 0)
		return lp_err_set(&y->err, -EINVAL, "bad image reference '%s'",
				  y->facts.ref);
	if (lp_digest_parse(y->digest, d) < 0 ||
	    lp_digest_parse(y->facts.toc_digest, toc) < 0)
		return lp_err_set(&y->err, -EINVAL, "bad digest '%s' / '%s'",
				  y->digest, y->facts.toc_digest);
	return 0;
}

/* the mount options of every layer of the pool (@fsname: room for it) */
static void pool_opts(struct lp_snap_layers *l, struct layer *y,
		      struct lp_mount_opts *mo, const struct lp_digest *toc,
		      char *fsname, size_t fsname_size)
{
	lp_mount_opts_init(mo);
	mo->toc_digest = toc;
	mo->fs.mem_budget = l->mem_budget;
	mo->fs.cache_dir = l->cache_dir;
	mo->fs.disk_cache_bytes = l->c->disk_cache_bytes;
	mo->fs.prefetch = l->c->prefetch;
	mo->fs.background_fetch = l->c->background_fetch;
	mo->fs.background_quiet_ms = l->c->background_quiet_ms;
	mo->fs.activity = l->activity;
	mo->fs.index_window_rule = l->c->index_window_rule;
	snprintf(fsname, fsname_size, "lazypull:%s", y->digest);
	mo->fuse.fsname = fsname;
	mo->fuse.max_threads =
		l->c->fuse_threads ? l->c->fuse_threads : LP_FUSE_POOL_THREADS;
	mo->fuse.allow_other = true;
}

/*
 * find_profile() - the files of layer @y (@d, read through @ref) that its
 * image's prefetch profile lists, into @prof, and *@ret_paths an array of
 * their paths pointing into it (NULL: none; the caller frees it after the
 * mount). A missing, refused or unreachable profile is logged and counted:
 * never the mount's failure.
 */
static void find_profile(struct lp_snap_layers *l, struct layer *y,
			 const struct lp_reg_ref *ref,
			 const struct lp_digest *d, struct lp_prio_list *prof,
			 const char ***ret_paths)
{
	enum lp_snap_profile_result res = LP_SNAP_PROFILE_APPLIED;
	char where[LP_SNAP_PATH_MAX];
	struct lp_err err = { 0 };
	const char **paths = NULL;
	uint64_t t0 = lp_mono_ns();
	size_t i;
	int r;

	*ret_paths = NULL;
	r = lp_snap_profile_find(l->index_cache, l->profile_reg, l->c, ref, d,
				 y->manifest[0] ? y->manifest : NULL, prof,
				 where, sizeof(where), &err);
	if (r == 0) {
		res = LP_SNAP_PROFILE_NONE;
		lp_log_info("layer %s: no prefetch profile (%llu ms)",
			    y->digest,
			    (unsigned long long)(lp_mono_ns() - t0) / 1000000);
	} else if (r == -EINVAL || r == -EFBIG || r == -EBADMSG) {
		res = LP_SNAP_PROFILE_INVALID;
		lp_log_warn("layer %s: prefetch profile from %s refused: %s",
			    y->digest, where, lp_err_str(&err, r));
	} else if (r < 0) {
		res = LP_SNAP_PROFILE_UNREACHABLE;
		lp_log_warn("layer %s: no prefetch profile (%s)", y->digest,
			    lp_err_str(&err, r));
	} else if (!prof->n) {
		res = LP_SNAP_PROFILE_OTHER_LAYERS;
		lp_log_info("layer %s: the prefetch profile from %s lists none "
			    "of its files",
			    y->digest, where);
	} else {
		paths = calloc(prof->n, sizeof(*paths));
		if (!paths) {
			res = LP_SNAP_PROFILE_UNREACHABLE;
			lp_log_warn("layer %s: no memory for its prefetch "
				    "profile",
				    y->digest);
		} else {
			for (i = 0; i < prof->n; i++)
				paths[i] = prof->items[i].path;
			lp_log_info("layer %s: prefetch profile from %s lists "
				    "%zu files (%llu ms)",
				    y->digest, where, prof->n,
				    (unsigned long long)(lp_mono_ns() - t0) /
					    1000000);
		}
	}
	lp_snap_metrics_profile(l->metrics, res);
	*ret_paths = paths;
}

/*
 * A layer's profile lookup, run beside its tail (or blob size) request so
 * that the mount waits for whichever is longer, not for their sum
 * (profile_start(), profile_finish()). Everything it borrows (@l, @y, @ref
 * and its credentials, @d) outlives profile_finish(), which every path of
 * the mount calls.
 */
struct profile_job {
	struct lp_snap_layers *l;
	struct layer *y;
	const struct lp_reg_ref *ref;
	const struct lp_digest *d;
	bool wanted; /* prefetch and profile_lookup on */
	bool started; /* thread @t runs it */
	pthread_t t;
	bool done;
	struct lp_prio_list prof; /* what it found */
	const char **paths; /* into prof; NULL: nothing to prefetch */
};

static void *profile_main(void *arg)
{
	struct profile_job *j = arg;

	find_profile(j->l, j->y, j->ref, j->d, &j->prof, &j->paths);
	return NULL;
}

/* start @j's lookup in a thread (when none can be made, profile_finish()
 * runs it) */
static void profile_start(struct profile_job *j, struct lp_snap_layers *l,
			  struct layer *y, const struct lp_reg_ref *ref,
			  const struct lp_digest *d)
{
	sigset_t all, old;

	memset(j, 0, sizeof(*j));
	j->l = l;
	j->y = y;
	j->ref = ref;
	j->d = d;
	j->wanted = l->c->prefetch && l->c->profile_lookup;
	if (!j->wanted)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	j->started = pthread_create(&j->t, NULL, profile_main, j) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* wait for @j's lookup (or run it) and point @mo (NULL: a failed mount
 * path, nothing to point) at what it found */
static void profile_finish(struct profile_job *j, struct lp_mount_opts *mo)
{
	if (j->wanted && !j->done) {
		if (j->started)
			pthread_join(j->t, NULL);
		else if (mo)
			find_profile(j->l, j->y, j->ref, j->d, &j->prof,
				     &j->paths);
		j->done = true;
	}
	if (mo && j->paths) {
		mo->fs.prefetch_files = j->paths;
		mo->fs.n_prefetch_files = j->prof.n;
	}
}

/* what @j found, freed (after profile_finish() and the mount) */
static void profile_release(struct profile_job *j)
{
	free(j->paths);
	j->paths = NULL;
	lp_prio_release(&j->prof);
}

/* after lp_mount_layer(): the session thread, the fetch threads */
static int start_serving(struct lp_snap_layers *l, struct layer *y)
{
	sigset_t all, old;
	int r;

	/* the session and its workers must never take the daemon's signals */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&y->session, NULL, session_main, y);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return lp_err_set(&y->err, r, "session thread: %s",
				  strerror(-r));
	y->session_started = true;
	r = lp_fs_start(y->fs);
	if (r < 0)
		return lp_err_set(&y->err, r, "fetch threads: %s",
				  strerror(-r));
	y->mounted_at = time(NULL);
	y->used_at = y->mounted_at;
	return 0;
}

/* the error class of a failed lp_mount_layer() */
static void mount_failed(struct layer *y, int r,
			 const struct lp_mount_report *rep)
{
	/* not a lazy layer, a TOC that does not match its label, the rest of
	 * the TOC unreadable, or the mount itself failed */
	if (rep->layer_opened)
		y->why = LP_FALLBACK_MOUNT;
	else if (r == -EINVAL || r == -EBADMSG || r == -EFBIG)
		y->why = LP_FALLBACK_NOT_LAZY;
}

/*
 * open_blob_sized() - @y's blob, its size learnt from the registry (one
 * 1-byte suffix read: Content-Range) into @y->facts.size. Sets @y->err.
 */
static int open_blob_sized(struct lp_snap_layers *l, struct layer *y,
			   const struct lp_reg_ref *ref,
			   const struct lp_digest *d, struct lp_blob **ret_blob)
{
	struct lp_reg_blob *rb = NULL;
	uint8_t last;
	size_t n = 0;
	int r;

	r = lp_reg_blob_open_tail(l->reg, ref, d, 0, &last, 1, &n, &rb,
				  &y->err);
	if (r == 0) {
		y->facts.size = lp_reg_blob_size(rb);
		r = lp_reg_blob_as_blob(rb, ret_blob);
	}
	lp_reg_blob_unref(rb);
	return r;
}

/*
 * index_proven() - the proving pass of layer @arg (a struct layer) found
 * its index true: record it ("proven once", index_trust()), so that a
 * later mount of the layer with the same index blob on this node trusts
 * it from the start. From the pass's thread, which the layer's fs joins
 * before the layer goes.
 */
static void index_proven(void *arg)
{
	struct layer *y = arg;
	int r;

	r = lp_file_write_atomic(y->proven_path, "", 0, 0600);
	if (r < 0)
		lp_log_warn("layer %s: recording its proven gzip index %s: %s",
			    y->digest, y->proven_path, strerror(-r));
	else
		lp_log_info("layer %s: gzip index proven once: %s", y->digest,
			    y->proven_path);
}

/*
 * mount_indexed() - mount plain gzip layer @y through its gzip index
 * (@index, its kept bytes, borrowed): the registry blob, no tail to read
 * (the index is all the metadata). With @st, serve connection @resume_fd of
 * the existing mount instead (taken in every case). On failure sets
 * @y->why and @y->err.
 */
static int mount_indexed(struct lp_snap_layers *l, struct layer *y,
			 const struct lp_reg_ref *ref,
			 const struct lp_digest *d, const uint8_t *index,
			 size_t index_len, int resume_fd,
			 const struct lp_fuse_state *st)
{
	struct lp_mount_report rep = { 0 };
	struct profile_job job = { 0 };
	struct lp_mount_opts mo;
	struct lp_blob *blob = NULL;
	char fsname[LP_FUSE_FSNAME_MAX];
	enum lp_index_trust t;
	int r;

	y->why = LP_FALLBACK_REGISTRY;
	/* the profile looked for while the blob's size is asked */
	if (!st)
		profile_start(&job, l, y, ref, d);
	/* resumed: the size checked when it was mounted; an index the
	 * lookup checked against the manifest's size: that size (no request:
	 * the suffix read cost a cold start 26 ms and a new connection);
	 * else (an index from index_dirs, checked against no manifest, or a
	 * remount after a restart) the registry's, which the index's own
	 * must match when it opens */
	r = st || y->size_checked ?
		    lp_reg_open_blob(l->reg, ref, d, y->facts.size, &blob) :
		    open_blob_sized(l, y, ref, d, &blob);
	if (r < 0) {
		lp_err_set(&y->err, r, "opening the blob: %s", strerror(-r));
		goto out;
	}
	if (!st) {
		r = lp_mkdir_p(y->mnt, 0755, 0755);
		if (r < 0) {
			y->why = LP_FALLBACK_MOUNT;
			lp_err_set(&y->err, r, "mkdir %s: %s", y->mnt,
				   strerror(-r));
			goto out;
		}
	}
	pool_opts(l, y, &mo, NULL, fsname, sizeof(fsname));
	mo.index = index;
	mo.index_len = index_len;
	mo.index_layer = d;
	t = index_trust(l, y, d, index, index_len);
	mo.index_trusted =
		t == LP_INDEX_TRUST_SIGNED || t == LP_INDEX_TRUST_PROVEN;
	if (y->proven_path[0] && t != LP_INDEX_TRUST_PROVEN) {
		mo.fs.index_proven = index_proven;
		mo.fs.index_proven_arg = y;
	}
	if (st) {
		mo.resume_state = st;
		mo.resume_fd = resume_fd;
		resume_fd = -1; /* lp_mount_layer() takes it */
	} else {
		profile_finish(&job, &mo);
	}
	r = lp_mount_layer(blob, y->mnt, &mo, &y->fs, &y->fuse, &rep, &y->err);
	y->toc_ns = rep.toc_ns;
	if (r < 0) {
		/* refused when opened: the index does not fit the layer */
		y->why = rep.layer_opened ? LP_FALLBACK_MOUNT :
					    LP_FALLBACK_BAD_INDEX;
		goto out;
	}
	if (!st)
		hand_over(l, y);
	r = start_serving(l, y);
out:
	profile_finish(&job, NULL);
	profile_release(&job);
	if (resume_fd >= 0)
		close(resume_fd);
	lp_blob_unref(blob);
	return r;
}

/*
 * mount_layer() - the slow part, without the lock: open the blob, read and
 * verify the TOC, mount, hand the connection to the fd holder, start
 * serving and fetching. Fills @y's fs, fuse, session on success; on failure
 * sets @y->why and @y->err.
 */
static int mount_layer(struct lp_snap_layers *l, struct layer *y)
{
	struct profile_job job = { 0 };
	struct lp_mount_report rep;
	struct lp_mount_opts mo;
	struct lp_reg_ref ref;
	struct lp_digest d, toc;
	struct lp_blob *blob = NULL;
	char fsname[LP_FUSE_FSNAME_MAX];
	uint8_t *tail = NULL, *index = NULL;
	size_t tail_len = 0, index_len = 0;
	uint64_t t;
	int r, have;

	memset(&ref, 0, sizeof(ref));
	r = parse_facts(y, &ref, &d, &toc);
	if (r < 0)
		goto out;
	y->why = LP_FALLBACK_REGISTRY;
	have = cri_credentials(l, &ref);
	if (y->facts.kind == LP_SNAP_LAYER_GZIP_INDEX) {
		r = kept_index(l, y, &ref, &d, &index, &index_len);
		if (r == 0)
			r = mount_indexed(l, y, &ref, &d, index, index_len, -1,
					  NULL);
		/* the registry's refusal, not a local file's */
		if (r == -EACCES && y->why == LP_FALLBACK_REGISTRY)
			r = auth_refused(l, y, have);
		goto out;
	}
	/* the profile looked for while the tail is read: the mount waits
	 * for the longer of the two (the profile's: 1 s at most) */
	profile_start(&job, l, y, &ref, &d);
	t = lp_mono_ns();
	r = open_tail(l, y, &ref, &d, &blob, &tail, &tail_len);
	if (r == -EACCES)
		r = auth_refused(l, y, have);
	if (r < 0)
		goto out;
	y->tail_ns = lp_mono_ns() - t;
	r = lp_mkdir_p(y->mnt, 0755, 0755);
	if (r < 0) {
		y->why = LP_FALLBACK_MOUNT;
		lp_err_set(&y->err, r, "mkdir %s: %s", y->mnt, strerror(-r));
		goto out;
	}
	pool_opts(l, y, &mo, &toc, fsname, sizeof(fsname));
	mo.tail = tail;
	mo.tail_len = tail_len;
	profile_finish(&job, &mo);
	r = lp_mount_layer(blob, y->mnt, &mo, &y->fs, &y->fuse, &rep, &y->err);
	y->toc_ns = rep.toc_ns;
	if (r < 0) {
		mount_failed(y, r, &rep);
		goto out;
	}
	save_tail(l, y, tail, tail_len);
	hand_over(l, y);
	r = start_serving(l, y);
out:
	profile_finish(&job, NULL); /* before @ref's credentials go */
	profile_release(&job);
	lp_reg_auth_unref(ref.auth); /* the blob holds its own */
	free(index);
	free(tail);
	lp_blob_unref(blob);
	return r;
}

/*
 * resume_layer() - serve connection @fd of @y's existing mount (a previous
 * daemon's, handed back by the fd holder): the layer opened from the tail
 * kept at mount time (no request; else from the registry), checked against
 * the TOC digest of the metadata, then lp_mount_layer() in resume mode.
 * Takes @fd.
 */
static int resume_layer(struct lp_snap_layers *l, struct layer *y, int fd,
			const struct lp_fuse_state *st)
{
	struct lp_mount_report rep = { 0 };
	struct lp_mount_opts mo;
	struct lp_reg_ref ref;
	struct lp_digest d, toc;
	struct lp_blob *blob = NULL;
	char fsname[LP_FUSE_FSNAME_MAX];
	uint8_t *tail = NULL;
	size_t tail_len = 0;
	int r;

	y->resumed = true;
	r = parse_facts(y, &ref, &d, &toc);
	if (r < 0)
		goto out;
	if (y->facts.kind == LP_SNAP_LAYER_GZIP_INDEX) {
		/* a plain gzip layer: @tail is its index */
		r = kept_index(l, y, &ref, &d, &tail, &tail_len);
		if (r == 0)
			r = mount_indexed(l, y, &ref, &d, tail, tail_len, fd,
					  st);
		else
			close(fd);
		if (r < 0)
			lp_err_set(&y->err, r,
				   "resuming through its gzip "
				   "index: %s",
				   strerror(-r));
		fd = -1; /* taken */
		goto out;
	}
	pool_opts(l, y, &mo, &toc, fsname, sizeof(fsname));
	mo.resume_state = st;
	r = y->facts.size ? load_tail(l, y, &tail, &tail_len) : -ENOENT;
	if (r == 0)
		r = lp_reg_open_blob(l->reg, &ref, &d, y->facts.size, &blob);
	if (r == 0) {
		mo.tail = tail;
		mo.tail_len = tail_len;
		mo.resume_fd = dup(fd);
		if (mo.resume_fd < 0) {
			r = lp_err_set(&y->err, -errno,
				       "layer %s: dup of its connection: %s",
				       y->digest, strerror(errno));
			goto out;
		}
		r = lp_mount_layer(blob, y->mnt, &mo, &y->fs, &y->fuse, &rep,
				   &y->err);
		if (r < 0 && !rep.layer_opened) {
			lp_log_warn("layer %s: the kept tail does not open "
				    "(%s): reading it from the registry",
				    y->digest, lp_err_str(&y->err, r));
			lp_err_clear(&y->err);
			r = -EAGAIN;
		}
	}
	if (r < 0 && !rep.layer_opened) { /* no kept tail, or a bad one */
		free(tail);
		tail = NULL;
		lp_blob_unref(blob);
		blob = NULL;
		y->why = LP_FALLBACK_REGISTRY;
		r = open_tail(l, y, &ref, &d, &blob, &tail, &tail_len);
		if (r < 0)
			goto out;
		mo.tail = tail;
		mo.tail_len = tail_len;
		mo.resume_fd = fd;
		fd = -1;
		r = lp_mount_layer(blob, y->mnt, &mo, &y->fs, &y->fuse, &rep,
				   &y->err);
		if (r == 0)
			save_tail(l, y, tail, tail_len);
	}
	y->toc_ns = rep.toc_ns;
	if (r < 0) {
		mount_failed(y, r, &rep);
		goto out;
	}
	r = start_serving(l, y);
out:
	if (fd >= 0)
		close(fd);
	free(tail);
	lp_blob_unref(blob);
	return r;
}

/* publish the outcome of a resolution (the caller pinned @y) */
static void finish_layer(struct lp_snap_layers *l, struct layer *y, int r,
			 uint64_t t0)
{
	if (r < 0)
		layer_teardown(l, y);
	lp_snap_metrics_remote(l->metrics, r == 0, lp_mono_ns() - t0);
	/* like lp_snap_metrics_remote(): mounts, remounts and resumes */
	if (r == 0 && y->facts.kind == LP_SNAP_LAYER_GZIP_INDEX)
		lp_snap_metrics_indexed(l->metrics);
	if (r < 0)
		lp_log_warn("layer %s (%s): cannot mount lazily: %s", y->digest,
			    y->facts.ref, lp_err_str(&y->err, r));
	else
		lp_log_info("layer %s %s%s at %s in %llu ms (tail "
			    "%llu ms, TOC %llu ms)",
			    y->digest,
			    y->resumed ? "resumed" : "mounted lazily",
			    y->facts.kind == LP_SNAP_LAYER_GZIP_INDEX ?
				    " through its gzip index" :
				    "",
			    y->mnt,
			    (unsigned long long)(lp_mono_ns() - t0) / 1000000,
			    (unsigned long long)y->tail_ns / 1000000,
			    (unsigned long long)y->toc_ns / 1000000);
	pthread_mutex_lock(&l->lock);
	y->error = r;
	y->state = r < 0 ? LAYER_FAILED : LAYER_MOUNTED;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* a user is done with @y: release_unused() counts its grace from now */
static void unpin(struct lp_snap_layers *l, struct layer *y)
{
	pthread_mutex_lock(&l->lock);
	y->pins--;
	y->used_at = time(NULL);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void *helper_main(void *arg)
{
	struct helper_arg *h = arg;
	struct lp_snap_layers *l = h->l;
	uint64_t t0 = lp_mono_ns();

	finish_layer(l, h->layer, mount_layer(l, h->layer), t0);
	pthread_mutex_lock(&l->lock);
	h->layer->pins--;
	l->helpers--;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	free(h);
	return NULL;
}

static struct layer *new_layer(struct lp_snap_layers *l, const char *digest,
			       const char *ref, uint64_t size,
			       const char *toc_digest)
{
	struct layer *y = calloc(1, sizeof(*y));

	if (!y)
		return NULL;
	if (snprintf(y->digest, sizeof(y->digest), "%s", digest) >=
		    (int)sizeof(y->digest) ||
	    snprintf(y->facts.toc_digest, sizeof(y->facts.toc_digest), "%s",
		     toc_digest) >= (int)sizeof(y->facts.toc_digest) ||
	    lp_snap_layers_path(l, digest, y->mnt, sizeof(y->mnt)) < 0)
		goto fail;
	snprintf(y->facts.digest, sizeof(y->facts.digest), "%s", digest);
	y->facts.size = size;
	y->facts.ref = strdup(ref);
	if (!y->facts.ref)
		goto fail;
	y->state = LAYER_RESOLVING;
	return y;
fail:
	free(y->facts.ref);
	free(y);
	return NULL;
}

/* resolve the neighbours the manifest knows, each in its own thread */
static void start_neighbours(struct lp_snap_layers *l,
			     const struct lp_reg_manifest *m,
			     const struct lp_snap_layer_req *req)
{
	char ds[LP_DIGEST_STR_LEN + 1];
	const struct lp_reg_desc *d;
	struct helper_arg *h;
	struct layer *y;
	pthread_t t;
	sigset_t all, old;
	size_t i, started = 0;
	const char *toc;

	for (i = 0; i < lp_reg_manifest_count(m); i++) {
		if (started >= LP_SNAP_NEIGHBOURS_MAX)
			break;
		d = lp_reg_manifest_layer(m, i);
		lp_digest_format(&d->digest, ds);
		if (!strcmp(ds, req->digest))
			continue;
		if (req->neighbours && !strstr(req->neighbours, ds))
			continue;
		toc = lp_reg_desc_annotation(d, LP_LABEL_TOC_DIGEST);
		if (!toc)
			continue;
		pthread_mutex_lock(&l->lock);
		if (find_layer(l, ds)) {
			pthread_mutex_unlock(&l->lock);
			continue;
		}
		/* no manifest digest: its lookups go by the reference, as
		 * the first layer's did, and share the cached answer */
		y = new_layer(l, ds, req->ref, d->size, toc);
		h = y ? malloc(sizeof(*h)) : NULL;
		if (!h) {
			pthread_mutex_unlock(&l->lock);
			free(y ? y->facts.ref : NULL);
			free(y);
			break;
		}
		h->l = l;
		h->layer = y;
		y->ahead = true;
		y->pins = 1; /* the helper's */
		y->next = l->layers;
		l->layers = y;
		l->helpers++;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&t, NULL, helper_main, h) == 0) {
			pthread_detach(t);
			started++;
		} else {
			l->helpers--;
			l->layers = y->next;
			free(h);
			free(y->facts.ref);
			free(y);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_mutex_unlock(&l->lock);
	}
	if (started)
		lp_log_info("resolving %zu more layer(s) of %s ahead of use",
			    started, req->ref);
}

/* does comma-separated @list name a digest other than @self? */
static bool names_other(const char *list, const char *self)
{
	size_t n = strlen(self), k;
	const char *p = list, *e;

	while (*p) {
		e = strchr(p, ',');
		k = e ? (size_t)(e - p) : strlen(p);
		if (k && (k != n || strncmp(p, self, n)))
			return true;
		p += k + (e ? 1 : 0);
	}
	return false;
}

static void manifest_arg_free(struct manifest_arg *a)
{
	if (!a)
		return;
	free(a->ref);
	free(a->digest);
	free(a->neighbours);
	free(a);
}

/*
 * The manifest, off the critical path: it tells the neighbours' TOC digests
 * and sizes, and whether the layer is in the image at all (a warning only:
 * the layer is read by its digest and its TOC checked against the label).
 */
static void *manifest_main(void *arg)
{
	struct manifest_arg *a = arg;
	struct lp_snap_layers *l = a->l;
	struct lp_snap_layer_req req = { .ref = a->ref,
					 .digest = a->digest,
					 .neighbours = a->neighbours };
	struct lp_reg_manifest *m = NULL;
	struct lp_reg_ref ref;
	struct lp_digest want;
	struct lp_err err;
	size_t i;
	int r;

	lp_err_clear(&err);
	memset(&ref, 0, sizeof(ref));
	if (lp_reg_ref_parse(a->ref, &ref) < 0 ||
	    lp_digest_parse(a->digest, &want) < 0)
		goto out;
	cri_credentials(l, &ref);
	r = lp_reg_manifest_fetch(l->reg, &ref, NULL, &m, &err);
	if (r < 0) {
		lp_log_warn("%s: manifest: %s (no layers resolved ahead)",
			    a->ref, lp_err_str(&err, r));
		goto out;
	}
	for (i = 0; i < lp_reg_manifest_count(m); i++)
		if (lp_digest_equal(&lp_reg_manifest_layer(m, i)->digest,
				    &want))
			break;
	if (i == lp_reg_manifest_count(m)) {
		lp_log_warn("layer %s is not in the manifest of %s", a->digest,
			    a->ref);
		goto out;
	}
	start_neighbours(l, m, &req);
out:
	lp_reg_auth_unref(ref.auth);
	lp_reg_manifest_free(m);
	manifest_arg_free(a);
	pthread_mutex_lock(&l->lock);
	l->helpers--;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/*
 * start_manifest_helper() - fetch @req's manifest in the background (for
 * the neighbours), unless the labels list no other layer. Best effort.
 */
static void start_manifest_helper(struct lp_snap_layers *l,
				  const struct lp_snap_layer_req *req)
{
	struct manifest_arg *a = NULL;
	sigset_t all, old;
	pthread_t t;
	int r;

	if (req->neighbours && !names_other(req->neighbours, req->digest))
		return;
	a = calloc(1, sizeof(*a));
	if (!a)
		goto fail;
	a->l = l;
	a->ref = strdup(req->ref);
	a->digest = strdup(req->digest);
	a->neighbours = req->neighbours ? strdup(req->neighbours) : NULL;
	if (!a->ref || !a->digest || (req->neighbours && !a->neighbours))
		goto fail;
	pthread_mutex_lock(&l->lock);
	l->helpers++;
	pthread_mutex_unlock(&l->lock);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&t, NULL, manifest_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0) {
		pthread_detach(t);
		return;
	}
	pthread_mutex_lock(&l->lock);
	l->helpers--;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
fail:
	lp_log_warn("%s: cannot start the manifest fetch; no layers "
		    "resolved ahead",
		    req->ref);
	manifest_arg_free(a);
}

/*
 * claim() - pin @digest's entry, waiting while another thread resolves it.
 * A mounted entry is returned as is (*ret_claimed false). A failed or absent
 * one is (re)made from the facts given and returned RESOLVING, owned by the
 * caller (*ret_claimed true); without facts (@ref NULL) that is -EAGAIN.
 * @size_checked: @size is the manifest's for the layer (layer.size_checked).
 * The caller unpins. Returns 0, -EAGAIN, -ENOMEM.
 */
static int claim(struct lp_snap_layers *l, const char *digest, const char *ref,
		 uint64_t size, bool size_checked, const char *toc_digest,
		 enum lp_snap_layer_kind kind, struct layer **ret_y,
		 bool *ret_claimed)
{
	struct layer *y;
	char *nref = NULL;
	int r = 0;

	*ret_claimed = false;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		y = find_layer(l, digest);
		if (!y || (y->state != LAYER_RESOLVING &&
			   y->state != LAYER_RELEASING))
			break;
		pthread_cond_wait(&l->cond, &l->lock);
	}
	if (y && y->state == LAYER_MOUNTED) {
		y->ahead = false;
		y->pins++;
		*ret_y = y;
		goto out;
	}
	if (!ref) {
		r = -EAGAIN;
		goto out;
	}
	if (y) { /* failed before: try again with the facts given now */
		nref = strdup(ref);
		if (!nref) {
			r = -ENOMEM;
			goto out;
		}
		free(y->facts.ref);
		y->facts.ref = nref;
		y->facts.size = size;
		/* the last try's image; the caller says this one's */
		y->manifest[0] = '\0';
		snprintf(y->facts.toc_digest, sizeof(y->facts.toc_digest), "%s",
			 toc_digest);
		y->facts.kind = kind;
		lp_err_clear(&y->err);
		y->error = 0;
	} else {
		y = new_layer(l, digest, ref, size, toc_digest);
		if (!y) {
			r = -ENOMEM;
			goto out;
		}
		y->facts.kind = kind;
		y->next = l->layers;
		l->layers = y;
	}
	y->size_checked = size_checked;
	y->state = LAYER_RESOLVING;
	y->ahead = false;
	y->pins++;
	*ret_y = y;
	*ret_claimed = true;
out:
	pthread_mutex_unlock(&l->lock);
	return r;
}

/* resolve a claimed entry in this thread; 0 or its error (@err) */
static int resolve_claimed(struct lp_snap_layers *l, struct layer *y,
			   bool claimed, enum lp_snap_fallback *ret_why,
			   struct lp_err *err)
{
	uint64_t t0 = lp_mono_ns();
	int r;

	if (claimed) {
		r = mount_layer(l, y);
		finish_layer(l, y, r, t0);
	}
	/* pinned: the entry cannot change under us */
	if (y->state == LAYER_MOUNTED)
		return 0;
	r = y->error < 0 ? y->error : -EIO;
	if (ret_why)
		*ret_why = y->why;
	return lp_err_set(err, r, "%s", lp_err_str(&y->err, r));
}

/* @ret_facts (may be NULL) gets its own copy of the reference */
static int copy_out(struct layer *y, struct lp_snap_layer_facts *ret_facts,
		    char *mnt, size_t mnt_size)
{
	if (snprintf(mnt, mnt_size, "%s", y->mnt) >= (int)mnt_size)
		return -ENAMETOOLONG;
	if (ret_facts) {
		*ret_facts = y->facts;
		ret_facts->ref = strdup(y->facts.ref);
		if (!ret_facts->ref)
			return -ENOMEM;
	}
	return 0;
}

/*
 * find_index() - for a layer without a TOC digest: the gzip index to mount
 * it through, found (index_find.c) and kept under ROOT/indexes (*@ret_kept
 * true; its bytes freed once kept: the mount reads the kept file), its
 * digest and the blob size into @found; or the TOC or index digest the
 * layer is mounted with already, and its kind. Returns 0 or -errno with
 * *@ret_why and @err.
 */
static int find_index(struct lp_snap_layers *l,
		      const struct lp_snap_layer_req *req,
		      struct lp_reg_ref *ref, const struct lp_digest *want,
		      struct lp_snap_index_found *found,
		      enum lp_snap_layer_kind *ret_kind, bool *ret_kept,
		      enum lp_snap_fallback *ret_why, struct lp_err *err)
{
	struct layer *y;
	uint64_t t0 = lp_mono_ns();
	int r;

	/* mounted already (through an index, or its TOC: another image
	 * named it with its annotation): no lookup */
	pthread_mutex_lock(&l->lock);
	y = find_layer(l, req->digest);
	if (y && y->state == LAYER_MOUNTED) {
		snprintf(found->digest, sizeof(found->digest), "%s",
			 y->facts.toc_digest);
		found->blob_size = y->facts.size;
		*ret_kind = y->facts.kind;
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	pthread_mutex_unlock(&l->lock);
	cri_credentials(l, ref);
	/* connections for the mount's first requests, opened while the
	 * lookup runs (registry/warm.c) */
	(void)lp_reg_warm(l->reg, ref, LP_SNAP_WARM_MOUNT);
	r = lp_snap_index_find(l->index_cache, l->index_reg, l->c, ref, want,
			       req->manifest_digest, NULL, found, ret_why, err);
	lp_reg_auth_unref(ref->auth);
	ref->auth = NULL;
	if (r < 0)
		return r;
	r = keep_index(l, req->digest, found);
	if (r < 0) {
		*ret_why = LP_FALLBACK_MOUNT;
		return lp_err_set(err, r, "keeping its gzip index under %s: %s",
				  l->indexes_dir, strerror(-r));
	}
	*ret_kept = true;
	lp_log_info("layer %s: gzip index %s (%zu bytes) from %s in %llu ms",
		    req->digest, found->digest, found->len, found->where,
		    (unsigned long long)(lp_mono_ns() - t0) / 1000000);
	free(found->data); /* not held twice: the mount reads the kept file */
	found->data = NULL;
	return 0;
}

int lp_snap_layers_get(struct lp_snap_layers *l,
		       const struct lp_snap_layer_req *req,
		       struct lp_snap_layer_facts *ret_facts, char *mnt,
		       size_t mnt_size, enum lp_snap_fallback *ret_why,
		       struct lp_err *err)
{
	struct lp_snap_index_found found = { 0 };
	const char *toc = req->toc_digest;
	enum lp_snap_layer_kind kind = LP_SNAP_LAYER_TOC;
	bool kept = false; /* an index found by this call, kept */
	struct layer *y = NULL;
	struct lp_reg_ref ref;
	struct lp_digest want;
	bool claimed, known;
	int r;

	*ret_why = LP_FALLBACK_BAD_LABELS;
	memset(ret_facts, 0, sizeof(*ret_facts));
	if (lp_reg_ref_parse(req->ref, &ref) < 0)
		return lp_err_set(err, -EINVAL, "bad image reference '%s'",
				  req->ref);
	if (lp_digest_parse(req->digest, &want) < 0)
		return lp_err_set(err, -EINVAL, "bad layer digest '%s'",
				  req->digest);
	if (!toc) {
		kind = LP_SNAP_LAYER_GZIP_INDEX;
		r = find_index(l, req, &ref, &want, &found, &kind, &kept,
			       ret_why, err);
		if (r < 0)
			goto out;
		toc = found.digest;
	}
	/* mounted or being mounted (a neighbour, another namespace)? */
	pthread_mutex_lock(&l->lock);
	y = find_layer(l, req->digest);
	known = y && (y->state == LAYER_RESOLVING || y->state == LAYER_MOUNTED);
	pthread_mutex_unlock(&l->lock);
	y = NULL;
	/* the size comes with the blob's tail (or the index); no manifest on
	 * the way */
	r = claim(l, req->digest, req->ref, found.blob_size,
		  kept && found.size_checked, toc, kind, &y, &claimed);
	if (r < 0) {
		lp_err_set(err, r, "layer %s: %s", req->digest, strerror(-r));
		y = NULL;
		goto out;
	}
	if (!known && req->toc_digest)
		start_manifest_helper(l, req);
	if (claimed) /* a failed entry re-claimed: this request's image */
		snprintf(y->manifest, sizeof(y->manifest), "%s",
			 req->manifest_digest ? req->manifest_digest : "");
	r = resolve_claimed(l, y, claimed, ret_why, err);
	if (r < 0)
		goto out;
	/* no TOC digest asked for: whatever it is mounted through vouches */
	if (req->toc_digest && strcmp(y->facts.toc_digest, req->toc_digest)) {
		*ret_why = LP_FALLBACK_NOT_LAZY;
		r = lp_err_set(err, -EBADMSG,
			       "layer %s is mounted with TOC digest %s, "
			       "the label says %s",
			       req->digest, y->facts.toc_digest,
			       req->toc_digest);
		goto out;
	}
	if (l->c->prefetch && l->c->prefetch_timeout_ms &&
	    lp_fs_wait_prefetch(y->fs, l->c->prefetch_timeout_ms) == -ETIMEDOUT)
		lp_log_info("layer %s: prefetch still running after %u ms",
			    y->digest, l->c->prefetch_timeout_ms);
	r = copy_out(y, ret_facts, mnt, mnt_size);
out:
	/* found an index another one was mounted with meanwhile */
	if (kept && (!y || strcmp(y->facts.toc_digest, found.digest)))
		drop_kept_index(l, req->digest, found.digest);
	lp_snap_index_found_clear(&found);
	if (y)
		unpin(l, y);
	return r;
}

int lp_snap_layers_ensure(struct lp_snap_layers *l,
			  const struct lp_snap_layer_facts *f, char *mnt,
			  size_t mnt_size, struct lp_err *err)
{
	struct layer *y = NULL;
	bool claimed;
	int r;

	r = claim(l, f->digest, f->ref, f->size, false, f->toc_digest, f->kind,
		  &y, &claimed);
	if (r < 0)
		return lp_err_set(err, r, "layer %s: %s", f->digest,
				  strerror(-r));
	r = resolve_claimed(l, y, claimed, NULL, err);
	if (r == 0)
		r = copy_out(y, NULL, mnt, mnt_size);
	unpin(l, y);
	return r;
}

int lp_snap_layers_resume(struct lp_snap_layers *l,
			  const struct lp_snap_layer_facts *f, int fd,
			  const struct lp_fuse_state *st, struct lp_err *err)
{
	struct layer *y = NULL;
	uint64_t t0 = lp_mono_ns();
	bool claimed;
	int r;

	r = claim(l, f->digest, f->ref, f->size, false, f->toc_digest, f->kind,
		  &y, &claimed);
	if (r < 0 || !claimed) {
		close(fd);
		if (y)
			unpin(l, y);
		return lp_err_set(err, r < 0 ? r : -EEXIST, "layer %s: %s",
				  f->digest,
				  r < 0 ? strerror(-r) : "mounted already");
	}
	r = resume_layer(l, y, fd, st);
	finish_layer(l, y, r, t0);
	if (r < 0)
		lp_err_set(err, r, "%s", lp_err_str(&y->err, r));
	unpin(l, y);
	return r;
}

/*
 * unmount @y, which the caller made RELEASING (it stays listed meanwhile),
 * then unlink and free it
 */
static void release_entry(struct lp_snap_layers *l, struct layer *y)
{
	struct layer **pp;

	layer_teardown(l, y);
	/* no snapshot uses it any more: its kept index goes too */
	if (y->facts.kind == LP_SNAP_LAYER_GZIP_INDEX)
		drop_kept_index(l, y->digest, y->facts.toc_digest);
	pthread_mutex_lock(&l->lock);
	for (pp = &l->layers; *pp != y; pp = &(*pp)->next)
		;
	*pp = y->next;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	layer_destroy(l, y);
}

int lp_snap_layers_release(struct lp_snap_layers *l, const char *digest)
{
	struct layer *y;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		y = find_layer(l, digest);
		if (!y || (!y->pins && y->state != LAYER_RESOLVING &&
			   y->state != LAYER_RELEASING))
			break;
		pthread_cond_wait(&l->cond, &l->lock);
	}
	if (y)
		y->state = LAYER_RELEASING;
	pthread_mutex_unlock(&l->lock);
	if (!y)
		return 0;
	lp_log_info("layer %s: unmounting %s", y->digest, y->mnt);
	release_entry(l, y);
	return 0;
}

void lp_snap_layers_release_unused(struct lp_snap_layers *l,
				   bool (*in_use)(void *opaque,
						  const char *digest),
				   void *opaque, unsigned int min_age_s)
{
	struct layer *y, *gone = NULL;
	time_t now = time(NULL);

	pthread_mutex_lock(&l->lock);
	for (y = l->layers; y; y = y->next) {
		if (!y->pins &&
		    (y->state == LAYER_FAILED ||
		     (y->state == LAYER_MOUNTED &&
		      now - y->used_at >= (time_t)min_age_s)) &&
		    !in_use(opaque, y->digest)) {
			y->state = LAYER_RELEASING; /* listed until unmounted */
			y->gone_next = gone;
			gone = y;
		}
	}
	pthread_mutex_unlock(&l->lock);
	while ((y = gone)) {
		gone = y->gone_next;
		lp_log_info("layer %s: unused, unmounting", y->digest);
		release_entry(l, y);
	}
}

int lp_snap_layers_stats(struct lp_snap_layers *l, lp_snap_layer_stats_fn fn,
			 void *opaque)
{
	struct lp_buf b;
	struct layer *y;
	int r = 0;

	lp_buf_init(&b, LAYER_STATS_MAX);
	pthread_mutex_lock(&l->lock);
	for (y = l->layers; y && !r; y = y->next) {
		if (y->state != LAYER_MOUNTED)
			continue;
		lp_buf_reset(&b);
		r = lp_fs_stats_json(y->fs, &b);
		if (r == 0)
			r = fn(opaque, y->digest, (const char *)b.data);
	}
	pthread_mutex_unlock(&l->lock);
	lp_buf_release(&b);
	return r;
}

/* /proc/self/mountinfo escapes ' ', '\t', '\n', '\\' as \ooo */
static void unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] &&
		    s[3]) {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

int lp_snap_clear_stale_mounts(const char *root,
			       bool (*keep)(void *opaque, const char *mnt),
			       void *opaque)
{
	char **paths = NULL, **np, *line = NULL, *mp, *save;
	size_t n = 0, cap = 0, rootlen = strlen(root), i;
	int count = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root MOUNTPOINT ... */
		save = NULL;
		strtok_r(line, " ", &save);
		for (i = 0, mp = NULL; i < 4; i++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape_octal(mp);
		if (strncmp(mp, root, rootlen) || mp[rootlen] != '/')
			continue;
		if (keep && keep(opaque, mp))
			continue;
		np = realloc(paths, (n + 1) * sizeof(*paths));
		if (!np)
			break;
		paths = np;
		paths[n] = strdup(mp);
		if (paths[n])
			n++;
	}
	fclose(f);
	free(line);
	if (n)
		qsort(paths, n, sizeof(*paths), by_length_desc);
	for (i = 0; i < n; i++) {
		if (umount2(paths[i], MNT_DETACH) == 0) {
			lp_log_warn("cleared stale mount %s", paths[i]);
			count++;
		}
		free(paths[i]);
	}
	free(paths);
	return count;
}
