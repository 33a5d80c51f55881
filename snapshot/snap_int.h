/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Module-private interfaces of snapshot/: the metadata store (meta.c), the
 * pool of lazily mounted layers (layers.c), the snapshotter semantics
 * (service.c), metrics (metrics.c), the gzip index lookup (index_find.c)
 * and the gRPC transport (grpc_server.c).
 * Only the .c files of snapshot/ include this.
 *
 * Lock order across the module: service lock (service.c) -> layer pool lock
 * (layers.c) -> metrics lock (metrics.c). The gzip index cache's lock
 * (index_find.c) is taken alone. The metadata store has no lock of its own:
 * the service serialises every use of it.
 */
#ifndef LP_SNAP_INT_H
#define LP_SNAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lp_buf.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_fuse.h"
#include "lp_index.h"
#include "lp_index_sig.h"
#include "lp_mount.h"
#include "lp_snapshotter.h"

/* Bounds on what containerd sends (it enforces 4096 per label pair). */
#define LP_SNAP_KEY_MAX 4096 /* bytes of a key, name or parent */
#define LP_SNAP_LABEL_MAX 4096 /* bytes of one label key + value */
#define LP_SNAP_LABELS_MAX 256 /* labels per request */
#define LP_SNAP_FILTERS_MAX 64 /* List filters */
#define LP_SNAP_CHAIN_MAX 128 /* parents of one snapshot (overlay lowers) */
#define LP_SNAP_MOUNT_OPTS_MAX 8
#define LP_SNAP_NEIGHBOURS_MAX 128 /* layers resolved ahead of Prepare */

/* Labels containerd and its clients set. */
#define LP_LABEL_TARGET_REF "containerd.io/snapshot.ref"
#define LP_LABEL_REMOTE "containerd.io/snapshot/remote"
#define LP_LABEL_TOC_DIGEST LP_MOUNT_ANN_TOC_DIGEST
#define LP_LABEL_STARGZ_REF "containerd.io/snapshot/remote/stargz.reference"
#define LP_LABEL_STARGZ_DIGEST "containerd.io/snapshot/remote/stargz.digest"
#define LP_LABEL_STARGZ_LAYERS "containerd.io/snapshot/remote/stargz.layers"
#define LP_LABEL_CRI_REF "containerd.io/snapshot/cri.image-ref"
#define LP_LABEL_CRI_DIGEST "containerd.io/snapshot/cri.layer-digest"
#define LP_LABEL_CRI_LAYERS "containerd.io/snapshot/cri.image-layers"
/* the image manifest's digest (containerd >= 1.7 and its CRI plugin) */
#define LP_LABEL_CRI_MANIFEST "containerd.io/snapshot/cri.manifest-digest"

enum lp_snap_kind {
	LP_SNAP_KIND_UNKNOWN = 0, /* values as in the protocol's enum Kind */
	LP_SNAP_KIND_VIEW = 1,
	LP_SNAP_KIND_ACTIVE = 2,
	LP_SNAP_KIND_COMMITTED = 3,
};

struct lp_snap_label {
	char *key;
	char *value;
};

/* One snapshot as stored; every string is owned (lp_snap_rec_clear). */
struct lp_snap_rec {
	int64_t id; /* names its directory ROOT/snapshots/ID */
	char *key; /* the name, once committed */
	char *parent; /* "" for none */
	enum lp_snap_kind kind;
	int64_t created_ns, updated_ns;
	int64_t size, inodes; /* usage, recorded at commit */
	char *layer; /* remote snapshots: the layer digest; else NULL */
	struct lp_snap_label *labels;
	size_t n_labels;
};

void lp_snap_rec_clear(struct lp_snap_rec *r); /* NULL allowed */
/* lp_snap_rec_copy() - a deep copy of @r into @ret. 0 or -ENOMEM. */
int lp_snap_rec_copy(const struct lp_snap_rec *r, struct lp_snap_rec *ret);
/* lp_snap_rec_label() - the value of label @key, or NULL. */
const char *lp_snap_rec_label(const struct lp_snap_rec *r, const char *key);

/* What a remote layer is mounted through (recorded with its facts). */
enum lp_snap_layer_kind {
	LP_SNAP_LAYER_TOC = 0, /* eStargz: toc_digest is its TOC's digest */
	/* a plain gzip layer: toc_digest is its gzip index's digest, the
	 * index kept under ROOT/indexes (looked up again when missing) */
	LP_SNAP_LAYER_GZIP_INDEX = 1,
};

/* What it takes to mount a layer again without asking anyone. */
struct lp_snap_layer_facts {
	char digest[LP_DIGEST_STR_LEN + 1];
	char toc_digest[LP_DIGEST_STR_LEN + 1];
	enum lp_snap_layer_kind kind;
	char *ref; /* owned: image reference the blob is read through */
	uint64_t size; /* compressed blob size */
};

/* ---- metadata store (meta.c); not thread-safe: the service locks ---- */

struct lp_snap_meta;

/*
 * lp_snap_meta_open() - open or create the SQLite database @path (WAL,
 * synchronous FULL, foreign keys). Returns 0, -EIO (@err says why), -ENOMEM.
 */
int lp_snap_meta_open(const char *path, struct lp_snap_meta **ret_meta,
		      struct lp_err *err);
void lp_snap_meta_free(struct lp_snap_meta *m); /* NULL allowed */

/* Transactions: begin (immediate), commit, rollback. 0 or -EIO. */
int lp_snap_meta_begin(struct lp_snap_meta *m);
int lp_snap_meta_commit(struct lp_snap_meta *m);
void lp_snap_meta_rollback(struct lp_snap_meta *m);

/* lp_snap_meta_get() - the snapshot @key into @ret. 0, -ENOENT, -EIO. */
int lp_snap_meta_get(struct lp_snap_meta *m, const char *key,
		     struct lp_snap_rec *ret);

/*
 * lp_snap_meta_insert() - add @r (its id, timestamps ignored: set here and
 * written back into @r). Returns 0, -EEXIST (the key is taken), -EIO.
 */
int lp_snap_meta_insert(struct lp_snap_meta *m, struct lp_snap_rec *r);

/*
 * lp_snap_meta_update() - write @r's key, kind, size, inodes, created and
 * updated times and labels (replacing all) over row @r->id. 0, -EEXIST,
 * -ENOENT, -EIO.
 */
int lp_snap_meta_update(struct lp_snap_meta *m, const struct lp_snap_rec *r);

/* lp_snap_meta_delete() - remove row @id and its labels. 0 or -EIO. */
int lp_snap_meta_delete(struct lp_snap_meta *m, int64_t id);

/* lp_snap_meta_children() - how many snapshots have @name as parent. */
int lp_snap_meta_children(struct lp_snap_meta *m, const char *name);

/* lp_snap_meta_layer_users() - how many snapshots use layer @digest. */
int lp_snap_meta_layer_users(struct lp_snap_meta *m, const char *digest);

typedef int (*lp_snap_rec_fn)(void *opaque, const struct lp_snap_rec *r);

/*
 * lp_snap_meta_walk() - call @fn for every snapshot (labels filled in) until
 * it returns non-zero (that value is returned). 0 or -EIO otherwise.
 */
int lp_snap_meta_walk(struct lp_snap_meta *m, lp_snap_rec_fn fn, void *opaque);

/* lp_snap_meta_layer_put() - record (or replace) @f. 0 or -EIO. */
int lp_snap_meta_layer_put(struct lp_snap_meta *m,
			   const struct lp_snap_layer_facts *f);
/* lp_snap_meta_layer_get() - facts for @digest (ref owned by @ret). */
int lp_snap_meta_layer_get(struct lp_snap_meta *m, const char *digest,
			   struct lp_snap_layer_facts *ret);
/* lp_snap_meta_has_id() - is @id a row? 1, 0 or -EIO. */
int lp_snap_meta_has_id(struct lp_snap_meta *m, int64_t id);

/* ---- metrics (metrics.c) ------------------------------------------ */

enum lp_snap_fallback {
	LP_FALLBACK_NO_LABELS, /* no remote-snapshot labels at all */
	LP_FALLBACK_NO_TOC_DIGEST, /* labels but no TOC digest label */
	LP_FALLBACK_BAD_LABELS, /* malformed reference or digest */
	LP_FALLBACK_REGISTRY, /* manifest or blob not reachable */
	LP_FALLBACK_NOT_LAZY, /* not eStargz/zstd:chunked, TOC mismatch */
	LP_FALLBACK_MOUNT, /* FUSE mount failed */
	LP_FALLBACK_NO_INDEX, /* no TOC digest, no gzip index found */
	LP_FALLBACK_ZSTD_UNINDEXED, /* a tar+zstd layer without a TOC */
	LP_FALLBACK_BAD_INDEX, /* the gzip index found was refused */
	LP_FALLBACK_INDEX_TIMEOUT, /* the lookup ran out of time */
	LP_FALLBACK_COUNT,
};

enum lp_snap_rpc {
	LP_RPC_PREPARE,
	LP_RPC_VIEW,
	LP_RPC_MOUNTS,
	LP_RPC_COMMIT,
	LP_RPC_REMOVE,
	LP_RPC_STAT,
	LP_RPC_UPDATE,
	LP_RPC_LIST,
	LP_RPC_USAGE,
	LP_RPC_CLEANUP,
	LP_RPC_COUNT,
};

#define LP_GRPC_CODES 17 /* gRPC status codes 0..16 */

struct lp_snap_metrics;
struct lp_snap_layers;

int lp_snap_metrics_new(struct lp_snap_metrics **ret_m);
void lp_snap_metrics_free(struct lp_snap_metrics *m); /* stops serving */
/* lp_snap_metrics_stop() - stop the HTTP server (before freeing layers). */
void lp_snap_metrics_stop(struct lp_snap_metrics *m);
const char *lp_snap_fallback_name(enum lp_snap_fallback f);
const char *lp_snap_rpc_name(enum lp_snap_rpc rpc);
void lp_snap_metrics_fallback(struct lp_snap_metrics *m,
			      enum lp_snap_fallback f);
void lp_snap_metrics_remote(struct lp_snap_metrics *m, bool ok,
			    uint64_t mount_ns);
/* lp_snap_metrics_indexed() - one more layer mounted through a gzip index */
void lp_snap_metrics_indexed(struct lp_snap_metrics *m);
/* lp_snap_metrics_index_trust() - what one gzip index mount's signature
 * check concluded (lazypull_index_trust_total{result}) */
void lp_snap_metrics_index_trust(struct lp_snap_metrics *m,
				 enum lp_index_trust t);
/* what a layer mount's prefetch profile lookup found */
enum lp_snap_profile_result {
	LP_SNAP_PROFILE_APPLIED, /* a profile listing files of the layer */
	LP_SNAP_PROFILE_OTHER_LAYERS, /* a profile, nothing of this layer */
	LP_SNAP_PROFILE_NONE, /* no profile */
	LP_SNAP_PROFILE_INVALID, /* one was found and refused */
	LP_SNAP_PROFILE_UNREACHABLE, /* the registry could not be asked */
	LP_SNAP_PROFILE_RESULT_COUNT,
};
/* lp_snap_metrics_profile() - count one lookup's result */
void lp_snap_metrics_profile(struct lp_snap_metrics *m,
			     enum lp_snap_profile_result res);
void lp_snap_metrics_rpc(struct lp_snap_metrics *m, enum lp_snap_rpc rpc,
			 unsigned int code, uint64_t ns);
/*
 * lp_snap_metrics_render() - the Prometheus text exposition of @m and of
 * every layer @layers has mounted, appended to @out. 0, -EFBIG, -ENOMEM.
 */
int lp_snap_metrics_render(struct lp_snap_metrics *m,
			   struct lp_snap_layers *layers, struct lp_buf *out);
/*
 * lp_snap_metrics_serve() - serve GET /metrics on @addr ("host:port") until
 * lp_snap_metrics_free(). @layers is borrowed and must outlive @m's server.
 * Returns 0, -EINVAL (bad address), -EADDRINUSE/-EIO.
 */
int lp_snap_metrics_serve(struct lp_snap_metrics *m, const char *addr,
			  struct lp_snap_layers *layers, struct lp_err *err);

/* ---- finding the gzip index of a plain layer (index_find.c) ---------- */

/*
 * How much of a registry the lookup reads: artifacts of the image's
 * referrers examined (newest first), and the bytes of one index (the
 * format's own bound; an index is a few % of its layer).
 */
#define LP_SNAP_INDEX_REFERRERS_MAX 32
#define LP_SNAP_INDEX_OFFERS_MAX 1024 /* indexes those artifacts list */
/* connections lp_reg_warm() opens beside an image lookup's first request
 * (the manifest's): the lookup's client asks the referrers by API and by
 * tag at once (one more); the layers' client, while the lookup runs, for
 * the mount's first requests (the read-ahead's two, an on-demand read
 * beside them) */
#define LP_SNAP_WARM_LOOKUP 1
#define LP_SNAP_WARM_MOUNT 3
#define LP_SNAP_INDEX_MAX LP_INDEX_MAX_SIZE
/*
 * An index offered for a layer of N bytes (the manifest's size) is fetched
 * only when it is at most N / LP_SNAP_INDEX_LAYER_DIV + LP_SNAP_INDEX_SLACK
 * bytes (and LP_SNAP_INDEX_MAX), checked before the request: an index is
 * a few % of its layer, so a registry cannot make a lookup download and
 * hold more than that. At most LP_SNAP_INDEX_CANDIDATES_MAX indexes offered
 * for one layer are tried (newest first).
 */
#define LP_SNAP_INDEX_LAYER_DIV 8
#define LP_SNAP_INDEX_SLACK LP_MIB
#define LP_SNAP_INDEX_CANDIDATES_MAX 3

/*
 * One lookup (index_dirs, the manifest, the referrers, the candidates)
 * ends within this, checked before every request; past it the layer takes
 * the plain path (reason index_timeout). Each request of a lookup is
 * bounded by LP_SNAP_INDEX_REQUEST_MS (connect, then the whole request or
 * that long without a byte of a blob), one attempt per host: a stalling
 * registry holds a Prepare at most about their sum, not minutes.
 */
#define LP_SNAP_INDEX_LOOKUP_MS 5000
#define LP_SNAP_INDEX_REQUEST_MS 2000

/*
 * A prefetch profile lookup (lp_snap_profile_find: the referrers, the
 * artifact, its blob; the manifest too when no label names its digest) is
 * checked against LP_SNAP_PROFILE_LOOKUP_MS before every request, and each
 * request is bounded by LP_SNAP_PROFILE_REQUEST_MS (its own registry
 * client): a lookup ends within their sum, 1 s. It never touches a gzip
 * index lookup's deadline or answer; a failure (a timeout too) is cached
 * for the image like an answer, so its other layers do not wait again.
 */
#define LP_SNAP_PROFILE_LOOKUP_MS 600
#define LP_SNAP_PROFILE_REQUEST_MS 400

/*
 * What the registry said about an image (manifest layers, indexes its
 * referrers offer) is reused by its other layers' lookups for this long:
 * containerd prepares an image's layers one after another within seconds,
 * and an index pushed meanwhile is seen after at most this delay.
 */
#define LP_SNAP_INDEX_CACHE_TTL_S 30
#define LP_SNAP_INDEX_CACHE_ENTRIES 32 /* images and their profiles */

struct lp_reg;
struct lp_reg_ref;
struct lp_snap_index_cache;

/* lp_snap_index_cache_new() - an empty cache (thread-safe). 0, -ENOMEM. */
int lp_snap_index_cache_new(struct lp_snap_index_cache **ret_c);
/* lp_snap_index_cache_free() - NULL allowed; no lookup may be running. */
void lp_snap_index_cache_free(struct lp_snap_index_cache *c);

/* What the lookup found (owned; lp_snap_index_found_clear()). */
struct lp_snap_index_found {
	uint8_t *data; /* the index's bytes, parsed and checked */
	size_t len;
	char digest[LP_DIGEST_STR_LEN + 1]; /* sha256 of @data */
	uint64_t blob_size; /* of the layer, as the index says */
	/* @blob_size was checked against the size the image manifest's
	 * descriptor of the layer gives (an index from the registry): the
	 * mount may open the blob with it, no size request. False for an
	 * index from index_dirs (found before any manifest is read). */
	bool size_checked;
	char where[LP_SNAP_PATH_MAX]; /* a file, or "registry <artifact>" */
	/* its signature, as a sidecar's JSON ({"annotations": {...}},
	 * lp_index_sig_parse_json(); unchecked), NULL: none found; and the
	 * image manifest it was found for ("" not known) */
	char *sig;
	size_t sig_len;
	char manifest[LP_DIGEST_STR_LEN + 1];
};

void lp_snap_index_found_clear(struct lp_snap_index_found *f);

/*
 * lp_snap_index_bound() - the most bytes an index offered for a layer of
 * @layer_size bytes may have to be fetched (LP_SNAP_INDEX_LAYER_DIV,
 * LP_SNAP_INDEX_SLACK; @layer_size 0, not known: LP_SNAP_INDEX_MAX).
 */
uint64_t lp_snap_index_bound(uint64_t layer_size);

/*
 * lp_snap_read_file() - the bytes of regular file @path (no symlink
 * followed), at most @limit, into *@ret (malloc'ed). Returns 0, -ENOENT,
 * -EFBIG over @limit, -EINVAL not a regular file, -errno.
 */
int lp_snap_read_file(const char *path, size_t limit, uint8_t **ret,
		      size_t *ret_len);

/*
 * lp_snap_index_find() - the gzip index of plain layer @layer of image
 * @ref (its credentials ride on @ref), for a layer whose descriptor has no
 * TOC: first DIR/<hex>.gzidx in each of @c->index_dirs (no network), then
 * the image manifest (by @manifest_digest when given, else by @ref) for the
 * layer's media type, then the artifacts of type LP_INDEX_ARTIFACT_TYPE
 * that refer to the manifest (the referrers API, else the referrers tag
 * sha256-<hex>), newest first; what the registry said about the image is
 * kept in @cache for the image's other layers. A candidate is taken only when it parses
 * (lp_index_parse(), which validates it) and indexes @layer (digest, and
 * the descriptor's size when the manifest was read); a refused one is
 * logged and the next is tried. With @want_index (a digest), only the
 * index of that digest is taken (a remount: the one the layer was mounted
 * with). Returns 0 with @ret filled, or -errno with
 * *@ret_why: LP_FALLBACK_NO_INDEX (none), LP_FALLBACK_ZSTD_UNINDEXED (a
 * tar+zstd layer), LP_FALLBACK_BAD_INDEX (only refused ones),
 * LP_FALLBACK_REGISTRY (the manifest unreachable),
 * LP_FALLBACK_INDEX_TIMEOUT (past LP_SNAP_INDEX_LOOKUP_MS) and @err saying
 * why. The registry's failures are cached like its answers. @reg should be
 * a client with short timeouts (LP_SNAP_INDEX_REQUEST_MS).
 */
int lp_snap_index_find(struct lp_snap_index_cache *cache, struct lp_reg *reg,
		       const struct lp_snap_config *c,
		       const struct lp_reg_ref *ref,
		       const struct lp_digest *layer,
		       const char *manifest_digest, const char *want_index,
		       struct lp_snap_index_found *ret,
		       enum lp_snap_fallback *ret_why, struct lp_err *err);

/*
 * lp_snap_profile_find() - the prefetch profile of image @ref (by
 * @manifest_digest when given and well-formed) for layer @layer
 * (format/lp_profile.h): DIR/<manifest hex>.profile in @c->index_dirs,
 * else the newest referrer artifact of type LP_PROFILE_ARTIFACT_TYPE of
 * the manifest, looked for within LP_SNAP_PROFILE_LOOKUP_MS (@reg: a
 * client with LP_SNAP_PROFILE_REQUEST_MS timeouts) by one lookup per image
 * (single flight, its answer or failure cached like the gzip indexes';
 * the referrers a gzip index lookup saw are reused). Fills @ret with the layer's
 * paths in the profile's order (lp_prio_release) and @ret_where (@where_size
 * bytes) with where it came from. Returns 1 (a profile: @ret may be empty,
 * the profile names other layers only), 0 (none), -EINVAL/-EFBIG (the
 * profile refused), or the registry's -errno; @err says why.
 */
struct lp_prio_list;
int lp_snap_profile_find(struct lp_snap_index_cache *cache, struct lp_reg *reg,
			 const struct lp_snap_config *c,
			 const struct lp_reg_ref *ref,
			 const struct lp_digest *layer,
			 const char *manifest_digest, struct lp_prio_list *ret,
			 char *ret_where, size_t where_size,
			 struct lp_err *err);

/* ---- the pool of lazily mounted layers (layers.c) -------------------- */

/* A request to mount a layer, from Prepare's labels (all borrowed). */
struct lp_snap_layer_req {
	const char *ref; /* image reference */
	const char *digest; /* the layer's blob digest */
	/* NULL: no TOC; the layer is looked up as a plain gzip layer with a
	 * gzip index (index_find.c) */
	const char *toc_digest;
	const char *neighbours; /* comma-separated layer digests, or NULL */
	const char *manifest_digest; /* the image manifest's, or NULL */
};

/*
 * lp_snap_layers_new() - an empty pool mounting under @c->root/layers.
 * Borrows @c and @metrics for its lifetime. 0, -ENOMEM, -EIO (registry
 * client).
 */
int lp_snap_layers_new(const struct lp_snap_config *c,
		       struct lp_snap_metrics *metrics,
		       struct lp_snap_layers **ret_l);
/* lp_snap_layers_free() - unmount every layer, join threads. NULL ok. */
void lp_snap_layers_free(struct lp_snap_layers *l);

/*
 * lp_snap_layers_get() - the layer @req names, mounted: resolved through
 * the image manifest (size, annotations), TOC verified against
 * @req->toc_digest, FUSE-mounted and serving. Starts resolving the
 * neighbouring layers in the background. Waits for a mount already in
 * progress. Fills @ret_facts (ref owned by the caller) and the mount point
 * into @mnt (@mnt_size bytes). Returns 0, or -errno with the reason in
 * @err and the fallback class in *@ret_why.
 */
int lp_snap_layers_get(struct lp_snap_layers *l,
		       const struct lp_snap_layer_req *req,
		       struct lp_snap_layer_facts *ret_facts, char *mnt,
		       size_t mnt_size, enum lp_snap_fallback *ret_why,
		       struct lp_err *err);

/*
 * lp_snap_layers_ensure() - mount the layer @f describes unless it is
 * mounted already (restart, or after a failed remount). Mount point into
 * @mnt. Returns 0 or -errno (@err).
 */
int lp_snap_layers_ensure(struct lp_snap_layers *l,
			  const struct lp_snap_layer_facts *f, char *mnt,
			  size_t mnt_size, struct lp_err *err);

/*
 * lp_snap_layers_resume() - serve the existing connection @fd (the fd
 * holder's, with its saved state @st) of layer @f's mount, which a previous
 * daemon made: no remount, running containers keep their files. Takes @fd.
 * Returns 0 or -errno (@err); on failure the entry is FAILED like a failed
 * mount, and the caller drops the connection.
 */
int lp_snap_layers_resume(struct lp_snap_layers *l,
			  const struct lp_snap_layer_facts *f, int fd,
			  const struct lp_fuse_state *st, struct lp_err *err);

struct lp_fdh;
/*
 * lp_snap_layers_set_holder() - from now on hand every mounted layer's
 * connection to @h (borrowed, outlives the pool) and take it back when the
 * layer is released. Call before the pool is shared.
 */
void lp_snap_layers_set_holder(struct lp_snap_layers *l, struct lp_fdh *h);
/*
 * lp_snap_layers_sweep_tails() - delete the kept tails (ROOT/tails) and
 * gzip indexes (ROOT/indexes) of the layers @keep does not keep (the caller knows no snapshot uses them).
 * Call while nothing mounts. Returns how many were deleted.
 */
int lp_snap_layers_sweep_tails(struct lp_snap_layers *l,
			       bool (*keep)(void *opaque, const char *digest),
			       void *opaque);
/*
 * lp_snap_layers_hand_all() - hand every mounted layer to the holder again
 * (a new holder after the old one died; at SIGTERM, whatever a failed
 * hand-over missed: the holder replaces what it has). Returns how many
 * were handed, or -errno of the first that was not (after trying all).
 */
int lp_snap_layers_hand_all(struct lp_snap_layers *l);

/*
 * lp_snap_layers_path() - the mount point of layer @digest (mounted or
 * not) into @mnt. Returns 0 or -ENAMETOOLONG / -EINVAL.
 */
int lp_snap_layers_path(struct lp_snap_layers *l, const char *digest, char *mnt,
			size_t mnt_size);

/*
 * lp_snap_layers_release() - unmount layer @digest (no snapshot uses it
 * any more). Returns 0 or -errno from umount.
 */
int lp_snap_layers_release(struct lp_snap_layers *l, const char *digest);

/*
 * lp_snap_layers_release_unused() - unmount layers mounted ahead of use
 * (neighbours) for which @in_use returns false, if older than @min_age_s.
 */
void lp_snap_layers_release_unused(struct lp_snap_layers *l,
				   bool (*in_use)(void *opaque,
						  const char *digest),
				   void *opaque, unsigned int min_age_s);

typedef int (*lp_snap_layer_stats_fn)(void *opaque, const char *digest,
				      const char *stats_json);
/* lp_snap_layers_stats() - call @fn with each mounted layer's stats. */
int lp_snap_layers_stats(struct lp_snap_layers *l, lp_snap_layer_stats_fn fn,
			 void *opaque);

/*
 * lp_snap_clear_stale_mounts() - unmount (lazily) everything mounted under
 * @root, deepest first, except the mount points @keep (NULL: none) says to
 * keep: leftovers of a crashed daemon whose connections are gone. Returns
 * how many.
 */
int lp_snap_clear_stale_mounts(const char *root,
			       bool (*keep)(void *opaque, const char *mnt),
			       void *opaque);

/* ---- the fd holder's client side (fdholder.c) ----------------------- */

#define LP_FDH_SOCKET "fdholder.sock" /* under the root */
#define LP_FDH_LOG "fdholder.log" /* a spawned holder's log, under the root */
#define LP_FDH_KEY_MAX 96 /* a held connection's key (a layer digest) */
#define LP_FDH_ENTRIES_MAX 4096 /* connections one holder keeps */

struct lp_fdh;

/*
 * lp_fdh_msg_check() - is @msg (@n bytes received into a buffer of
 * lp_fdh_msg_size() bytes) a message of the holder's wire? Returns 0 (a
 * well-formed message of this protocol, or the fixed head of another
 * version: *@ret_version, may be NULL, tells which) or -EPROTO. The one
 * parser of the wire: both sides use it on every message.
 */
int lp_fdh_msg_check(void *msg, size_t n, uint32_t *ret_version);
size_t lp_fdh_msg_size(void);

/* lp_fdh_new() - a client, not connected yet. 0 or -ENOMEM. */
int lp_fdh_new(struct lp_fdh **ret_h);
/*
 * lp_fdh_dial() - connect @h to the fd holder of @root (replacing the
 * connection it had: a claim ends) and check its protocol: its version and
 * pid into *@ret_version, *@ret_pid when it answered. Returns 0, -ENOENT /
 * -ECONNREFUSED (none runs), -EPROTO (another version: @err says which;
 * lp_fdh_kill() its pid), -errno.
 */
int lp_fdh_dial(struct lp_fdh *h, const char *root, uint32_t *ret_version,
		pid_t *ret_pid, struct lp_err *err);
void lp_fdh_free(struct lp_fdh *h); /* NULL allowed; a claim ends */
pid_t lp_fdh_pid(const struct lp_fdh *h); /* the holder's pid */

/*
 * lp_fdh_spawn() - start a holder for @root (`lazypull fdholder
 * --exit-when-idle`, the running binary) in a session of its own, detached
 * from this process, logging to ROOT/fdholder.log. Returns 0 once started
 * (connect to it; it may take a moment to listen).
 */
int lp_fdh_spawn(const char *root, unsigned int timeout_s, struct lp_err *err);

/*
 * lp_fdh_claim() - make this connection the serving daemon's (it stays so
 * until lp_fdh_free() or this process ends). -EBUSY: another live daemon
 * claimed it (its pid in *@ret_other).
 */
int lp_fdh_claim(struct lp_fdh *h, unsigned int timeout_s, pid_t *ret_other,
		 struct lp_err *err);

/* lp_fdh_item_fn - one held connection; the callee owns @fd. */
typedef void (*lp_fdh_item_fn)(void *opaque, const char *key,
			       const struct lp_fuse_state *st, int fd);
/* lp_fdh_list() - call @fn for each held connection (dups of the fds). */
int lp_fdh_list(struct lp_fdh *h, lp_fdh_item_fn fn, void *opaque,
		struct lp_err *err);

/* lp_fdh_put() - hold a dup of @fd under @key (replacing). 0 or -errno. */
int lp_fdh_put(struct lp_fdh *h, const char *key,
	       const struct lp_fuse_state *st, int fd);
/* lp_fdh_del() - drop @key's connection. 0 or -errno. */
int lp_fdh_del(struct lp_fdh *h, const char *key);
/* lp_fdh_alive() - is the holder still at the other end? */
bool lp_fdh_alive(struct lp_fdh *h);
/*
 * lp_fdh_stop() - ask the holder to close everything and exit, and wait
 * for it. -EBUSY while a daemon claims it.
 */
int lp_fdh_stop(struct lp_fdh *h, struct lp_err *err);
/* lp_fdh_kill() - SIGTERM (then SIGKILL) holder @pid and wait for it. */
int lp_fdh_kill(pid_t pid);

/* ---- snapshotter semantics (service.c) -------------------------------- */

struct lp_snap_mount {
	const char *type; /* "bind" or "overlay" (static) */
	char *source;
	char *options[LP_SNAP_MOUNT_OPTS_MAX];
	size_t n_options;
};

void lp_snap_mount_clear(struct lp_snap_mount *m);

/* Borrowed label pair, as a request carries it. */
struct lp_snap_kv {
	const char *key;
	const char *value;
};

struct lp_snap_svc;

/*
 * lp_snap_svc_new() - the snapshotter over @meta and @layers (borrowed,
 * must outlive it). Creates ROOT/snapshots. 0, -ENOMEM, -errno (mkdir).
 */
int lp_snap_svc_new(const struct lp_snap_config *c, struct lp_snap_meta *meta,
		    struct lp_snap_layers *layers,
		    struct lp_snap_metrics *metrics,
		    struct lp_snap_svc **ret_svc);
void lp_snap_svc_free(struct lp_snap_svc *s); /* NULL allowed */

/*
 * The operations, with containerd's semantics. Each returns 0 or -errno,
 * mapped to gRPC codes by lp_snap_grpc_code(): -ENOENT NOT_FOUND, -EEXIST
 * ALREADY_EXISTS, -EBUSY FAILED_PRECONDITION, -EINVAL INVALID_ARGUMENT;
 * @err carries the message containerd shows.
 */
int lp_snap_svc_prepare(struct lp_snap_svc *s, const char *key,
			const char *parent, const struct lp_snap_kv *labels,
			size_t n_labels, bool view, struct lp_snap_mount *ret,
			struct lp_err *err);
int lp_snap_svc_mounts(struct lp_snap_svc *s, const char *key,
		       struct lp_snap_mount *ret, struct lp_err *err);
int lp_snap_svc_commit(struct lp_snap_svc *s, const char *name, const char *key,
		       const struct lp_snap_kv *labels, size_t n_labels,
		       struct lp_err *err);
int lp_snap_svc_remove(struct lp_snap_svc *s, const char *key,
		       struct lp_err *err);
int lp_snap_svc_stat(struct lp_snap_svc *s, const char *key,
		     struct lp_snap_rec *ret, struct lp_err *err);
/* @paths: update mask ("labels", "labels.KEY"); none: replace labels. */
int lp_snap_svc_update(struct lp_snap_svc *s, const char *key,
		       const struct lp_snap_kv *labels, size_t n_labels,
		       const char *const *paths, size_t n_paths,
		       struct lp_snap_rec *ret, struct lp_err *err);
int lp_snap_svc_usage(struct lp_snap_svc *s, const char *key, int64_t *ret_size,
		      int64_t *ret_inodes, struct lp_err *err);
/* @fn is called with the service lock held: it must not call back. */
int lp_snap_svc_list(struct lp_snap_svc *s, const char *const *filters,
		     size_t n_filters, lp_snap_rec_fn fn, void *opaque,
		     struct lp_err *err);
int lp_snap_svc_cleanup(struct lp_snap_svc *s, struct lp_err *err);

/*
 * lp_snap_svc_restore() - after a restart: remove directories no snapshot
 * owns and remount every layer a remote snapshot uses. Failures are logged
 * and retried on first use. Returns how many layers were mounted.
 */
int lp_snap_svc_restore(struct lp_snap_svc *s);

/*
 * lp_snap_filter_match() - does @r match containerd filter @filter
 * (comma-separated AND of `field==value`, `!=`, `~=` regexp, or presence;
 * fields name, parent, kind, labels.KEY / labels."KEY")? 1, 0, -EINVAL.
 */
int lp_snap_filter_match(const char *filter, const struct lp_snap_rec *r);

/* ---- gRPC transport (grpc_server.c) ---------------------------------- */

struct lp_snap_grpc;

/*
 * lp_snap_grpc_start() - listen on unix socket @path (an old socket file is
 * replaced) and serve @svc with @threads workers at first (0: default),
 * more while all are busy (grpc_pool.c). 0 or -errno.
 */
int lp_snap_grpc_start(const char *path, unsigned int threads,
		       struct lp_snap_svc *svc, struct lp_snap_metrics *metrics,
		       struct lp_snap_grpc **ret_g, struct lp_err *err);
/* lp_snap_grpc_stop() - cancel calls, join workers, free. NULL allowed. */
void lp_snap_grpc_stop(struct lp_snap_grpc *g);

/* lp_snap_grpc_code() - the gRPC status code for -errno @r. */
unsigned int lp_snap_grpc_code(int r);

/* lp_snap_now_ns() - wall clock, nanoseconds since the epoch. */
int64_t lp_snap_now_ns(void);

#endif /* LP_SNAP_INT_H */
