/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry client: the only part of lazypull that speaks HTTP. It parses
 * image references, authenticates (anonymous, Basic, Bearer tokens, docker
 * config.json and credential helpers), fetches and verifies manifests
 * (OCI/Docker, indexes with platform selection), fetches whole blobs, and
 * opens a blob as an lp_blob whose pread is an HTTP Range GET.
 *
 * Threads: a struct lp_reg may be used from any number of threads at once
 * (it keeps a pool of curl handles sharing connections, DNS and TLS sessions).
 * So may a struct lp_reg_blob. A struct lp_reg_manifest is immutable after it
 * is made and may be read from any thread.
 *
 * How to read a layer lazily:
 *	lp_reg_opts_init(&o);
 *	lp_reg_new(&o, &reg);
 *	lp_reg_ref_parse("127.0.0.1:5000/app:v1", &ref);
 *	lp_reg_manifest_fetch(reg, &ref, NULL, &m, &err);
 *	d = lp_reg_manifest_layer(m, 0);
 *	lp_reg_open_blob(reg, &ref, &d->digest, d->size, &blob);
 *	lp_blob_pread(blob, buf, len, off);
 *	lp_blob_unref(blob); lp_reg_manifest_free(m); lp_reg_free(reg);
 * Where requests go: with lp_reg_opts.registry_config_dir, manifests and
 * blobs are fetched from the registry's hosts.toml hosts in order (a tag
 * is resolved only by hosts with the "resolve" capability, content by
 * digest from those with "pull"); a host that fails (refused, 5xx, a
 * timeout, 404, a bad reply) is passed over for the next one, and for a
 * while (LP_REG_HOST_DOWN_MS) for later requests too. Pushes go to the
 * registry of the reference.
 *
 * Without a manifest (the snapshotter, which knows the layer's digest from
 * containerd): lp_reg_blob_open_tail() reads the blob's tail and learns its
 * size in one request; lp_layer_open_tail() opens the layer from that tail.
 */
#ifndef LP_REGISTRY_H
#define LP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_blob.h"
#include "lp_digest.h"
#include "lp_err.h"

/* ---- references ---------------------------------------------------- */

#define LP_REG_HOST_MAX 256 /* "host:port" or "[v6]:port", with NUL */
#define LP_REG_REPO_MAX 256 /* path component, with NUL */
#define LP_REG_TAG_MAX 129 /* 128 characters, with NUL */
#define LP_REG_REF_MAX 1024 /* a whole reference string */

#define LP_REG_DOCKER_HUB "registry-1.docker.io"
/* containerd's hosts.toml directory by convention (its config_path) */
#define LP_REG_CONFIG_DIR_DEFAULT "/etc/containerd/certs.d"
#define LP_REG_HOSTS_RECHECK_MS 1000 /* lp_reg_opts.hosts_recheck_ms */

struct lp_reg_auth;

/*
 * A parsed image reference; a plain value, copy it freely. @auth, when set
 * (lp_reg_ref_parse() leaves it NULL), is the credential this reference's
 * requests use instead of the client's per-host ones: borrowed, the
 * caller keeps its own reference for as long as a call with the ref runs;
 * a blob opened from it takes one of its own (lp_reg_blob_open()).
 */
struct lp_reg_ref {
	char host[LP_REG_HOST_MAX]; /* as used in URLs: "h:p", "[::1]:5000" */
	char repo[LP_REG_REPO_MAX]; /* "library/busybox" */
	char tag[LP_REG_TAG_MAX]; /* "" when the reference has only a digest */
	bool has_digest;
	struct lp_digest digest; /* valid when has_digest */
	struct lp_reg_auth *auth; /* NULL: the client's credentials */
};

/*
 * lp_reg_ref_parse() - parse "[host[:port]/]repo[:tag][@sha256:HEX]".
 * The first component is a host when it holds a '.' or ':', is "localhost",
 * or is an IPv6 literal "[...]"; otherwise the host is Docker Hub
 * (registry-1.docker.io, also for "docker.io" and "index.docker.io"), where a
 * one-component repo gets "library/". With neither tag nor digest the tag is
 * "latest". Returns 0, or -EINVAL for a malformed reference (upper case in
 * the repo, empty components, bad digest, over a length limit).
 */
int lp_reg_ref_parse(const char *s, struct lp_reg_ref *ret_ref);

/*
 * lp_reg_ref_format() - "host/repo[:tag][@digest]" into @out (@size bytes).
 * Returns the length, or -ENAMETOOLONG when it does not fit.
 */
int lp_reg_ref_format(const struct lp_reg_ref *ref, char *out, size_t size);

/* ---- client -------------------------------------------------------- */

#define LP_REG_MANIFEST_MAX (4 * 1024 * 1024) /* bytes of one manifest */
#define LP_REG_LAYERS_MAX 1024 /* layers in one manifest */
#define LP_REG_INDEX_MAX 1024 /* entries in one index */
#define LP_REG_ANNOTATIONS_MAX 256 /* per descriptor */

struct lp_reg;

struct lp_reg_opts {
	/*
	 * Hosts ("host" or "host:port") spoken to over plain HTTP. NULL-ended
	 * array, borrowed for the duration of lp_reg_new() (it is copied).
	 */
	const char *const *insecure_hosts;
	/* Plain HTTP for localhost, 127.0.0.0/8 and ::1 (default true). */
	bool loopback_plain_http;
	/* PEM bundle of CAs to trust instead of the system ones, or NULL. */
	const char *ca_file;
	/* Directory holding config.json; NULL: $DOCKER_CONFIG or ~/.docker. */
	const char *docker_config_dir;
	/*
	 * containerd's certs.d-style directory of hosts.toml files
	 * (docs/registry-config.md): each registry's content is fetched from
	 * its hosts in order (mirrors, then the server), with their TLS
	 * settings and headers. A directory that does not exist is the same
	 * as one without files. NULL: every request goes to the registry of
	 * the reference, as lp_reg_url() says.
	 */
	const char *registry_config_dir;
	/*
	 * A registry's hosts.toml files (and the certificates they name) are
	 * looked at again (stat) at most this often, as a request for its
	 * content starts; changed, the requests that start from then on use
	 * the new hosts (a blob already open keeps those it began with). 0:
	 * at every request. Default LP_REG_HOSTS_RECHECK_MS.
	 */
	long hosts_recheck_ms;
	/* "os/arch[/variant]" picked from an index; NULL: the host's. */
	const char *platform;
	const char *user_agent; /* NULL: "lazypull/VERSION" */
	long connect_timeout_ms; /* default 10000 */
	long low_speed_time_s; /* abort a transfer this slow... */
	long low_speed_limit; /* ...below this many bytes/s */
	long request_timeout_ms; /* whole small request; 0: none */
	unsigned int max_attempts; /* tries per request (default 5) */
	long retry_budget_ms; /* total back-off per request */
	/*
	 * Where a blob from a host that answers ranges with the whole blob is
	 * spooled (an unlinked file, gone with the blob); NULL: $TMPDIR, else
	 * /var/tmp. Copied.
	 */
	const char *spool_dir;
};

/* lp_reg_opts_init() - fill @o with the defaults. */
void lp_reg_opts_init(struct lp_reg_opts *o);

/*
 * lp_reg_new() - a client. @opts may be NULL (defaults); its strings are
 * copied. Returns 0 and the client in *ret_reg, -ENOMEM, or -EIO when curl
 * cannot be initialised. Free with lp_reg_free().
 */
int lp_reg_new(const struct lp_reg_opts *opts, struct lp_reg **ret_reg);

/*
 * lp_reg_free() - free the client; NULL allowed. Blobs opened from it keep
 * it alive (they hold a reference), so it may be freed before them.
 */
void lp_reg_free(struct lp_reg *reg);

/*
 * lp_reg_set_credentials() - use Basic credentials @user/@secret for @host
 * (as in a reference) instead of those from the docker config. Copied. An
 * empty @user makes @secret an identity token (an OAuth2 refresh token,
 * traded at the host's Bearer token server). Returns 0, -EFBIG (over
 * LP_REG_CRED_MAX - 1 bytes), -ENOMEM.
 */
int lp_reg_set_credentials(struct lp_reg *reg, const char *host,
			   const char *user, const char *secret);

/*
 * lp_reg_auth_new() - a refcounted credential for the requests of one
 * reference (lp_reg_ref.auth), not the client's: @user/@secret as in
 * lp_reg_set_credentials(), sent only to @host (a mirror of it gets its
 * own credentials). Each handle is one identity: bearer tokens fetched
 * with it are cached for it alone, never handed to a request with other
 * credentials or none. Copied. Returns 0, -EFBIG, -ENOMEM.
 */
int lp_reg_auth_new(const char *host, const char *user, const char *secret,
		    struct lp_reg_auth **ret);

/* lp_reg_auth_ref() - one more reference to @a (NULL allowed); returns @a. */
struct lp_reg_auth *lp_reg_auth_ref(struct lp_reg_auth *a);

/* lp_reg_auth_unref() - drop one; the last wipes the secret. NULL allowed. */
void lp_reg_auth_unref(struct lp_reg_auth *a);

/* ---- manifests ----------------------------------------------------- */

#define LP_REG_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define LP_REG_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define LP_REG_MT_DOCKER_MANIFEST \
	"application/vnd.docker.distribution.manifest.v2+json"
#define LP_REG_MT_DOCKER_LIST \
	"application/vnd.docker.distribution.manifest.list.v2+json"

struct lp_reg_annotation {
	const char *key;
	const char *value;
};

struct lp_reg_platform {
	const char *os; /* "" when absent */
	const char *arch;
	const char *variant;
};

/* A descriptor; its strings belong to the manifest that holds it. */
struct lp_reg_desc {
	const char *media_type;
	struct lp_digest digest;
	uint64_t size;
	const struct lp_reg_annotation *annotations;
	size_t n_annotations;
	struct lp_reg_platform platform; /* index entries only */
	const char *artifact_type; /* "artifactType", or NULL when absent */
};

/* lp_reg_desc_annotation() - the value for @key, or NULL. */
const char *lp_reg_desc_annotation(const struct lp_reg_desc *d,
				   const char *key);

struct lp_reg_manifest;

/*
 * lp_reg_manifest_parse() - parse @len bytes of a manifest or index.
 * @media_type is the Content-Type it came with (NULL or "" when unknown; the
 * "mediaType" field decides then). The bytes are copied; the digest recorded
 * is their sha256. Returns 0, -EPROTO for JSON that is not a manifest,
 * -EFBIG over a LP_REG_* limit, -EOPNOTSUPP for other media types (schema1).
 */
int lp_reg_manifest_parse(const void *data, size_t len, const char *media_type,
			  struct lp_reg_manifest **ret_m);

/*
 * lp_reg_manifest_fetch() - GET the manifest @ref names, verify its digest
 * (against @ref's digest, else against Docker-Content-Digest when sent) and,
 * for an index, fetch and verify the entry for @platform ("os/arch[/variant]";
 * NULL: the client's). The result is always an image manifest. Returns 0,
 * -ENOENT no such manifest or no entry for the platform, -EACCES refused,
 * -EBADMSG digest mismatch, -EPROTO bad reply, -EFBIG too big, -ETIMEDOUT,
 * -EIO. @err (may be NULL) says what failed. Free with lp_reg_manifest_free.
 */
int lp_reg_manifest_fetch(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const char *platform, struct lp_reg_manifest **ret_m,
			  struct lp_err *err);

/*
 * lp_reg_manifest_get() - like lp_reg_manifest_fetch(), but an index is
 * returned as it is, not resolved to a platform's manifest (image conversion
 * needs every entry). Verified the same way. Returns as
 * lp_reg_manifest_fetch().
 */
int lp_reg_manifest_get(struct lp_reg *reg, const struct lp_reg_ref *ref,
			struct lp_reg_manifest **ret_m, struct lp_err *err);

/* lp_reg_manifest_free() - NULL allowed; frees every borrowed string too. */
void lp_reg_manifest_free(struct lp_reg_manifest *m);

/* true for an OCI index or Docker manifest list */
bool lp_reg_manifest_is_index(const struct lp_reg_manifest *m);
const char *lp_reg_manifest_media_type(const struct lp_reg_manifest *m);
const struct lp_digest *lp_reg_manifest_digest(const struct lp_reg_manifest *m);
/* the exact bytes the digest is over; borrowed */
const void *lp_reg_manifest_raw(const struct lp_reg_manifest *m, size_t *len);
/* image manifest: the config descriptor; NULL for an index */
const struct lp_reg_desc *
lp_reg_manifest_config(const struct lp_reg_manifest *m);
/* image manifest: layers; index: entries */
size_t lp_reg_manifest_count(const struct lp_reg_manifest *m);
const struct lp_reg_desc *lp_reg_manifest_layer(const struct lp_reg_manifest *m,
						size_t i);

/*
 * lp_reg_index_select() - the first index entry that is an image manifest
 * for @platform ("os/arch[/variant]"; NULL: the host's, e.g. linux/amd64).
 * An arm64 entry without variant matches "v8". Returns 0, -ENOENT, -EINVAL
 * for a malformed @platform or a non-index @m.
 */
int lp_reg_index_select(const struct lp_reg_manifest *m, const char *platform,
			const struct lp_reg_desc **ret_desc);

/* ---- blobs --------------------------------------------------------- */

/*
 * lp_reg_fetch_blob() - GET the whole blob @digest of @size bytes from
 * @ref's repository into @fd from offset 0 (pwrite; the file is truncated
 * to @size). Verifies size and digest. Returns 0, -EBADMSG mismatch,
 * -ENOENT, -EACCES, -EPROTO, -ETIMEDOUT, -EIO or a write error.
 */
int lp_reg_fetch_blob(struct lp_reg *reg, const struct lp_reg_ref *ref,
		      const struct lp_digest *digest, uint64_t size, int fd,
		      struct lp_err *err);

/*
 * lp_reg_fetch_blob_mem() - the same into memory, for configs: at most
 * @limit bytes (-EFBIG beyond). *ret_data is malloc'ed and NUL-terminated
 * (the NUL not counted); the caller frees it.
 */
int lp_reg_fetch_blob_mem(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_digest *digest, size_t limit,
			  void **ret_data, size_t *ret_len, struct lp_err *err);

/* A registry blob read by ranges; reference counted, thread-safe. */
struct lp_reg_blob;

/*
 * lp_reg_blob_open() - a handle on blob @digest of @size bytes in @ref's
 * repository. No request is made. Holds a reference on @reg. Returns 0 or
 * -ENOMEM. Drop with lp_reg_blob_unref().
 */
int lp_reg_blob_open(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *digest, uint64_t size,
		     struct lp_reg_blob **ret_rb);
#define LP_REG_TAIL_MAX (64 * 1024 * 1024) /* bytes of one tail read */

/*
 * lp_reg_blob_open_tail() - lp_reg_blob_open() that also reads the blob's
 * last min(@want, size) bytes into @buf (@want bytes of room) with one
 * suffix range request (Range: bytes=-@want), learning the blob's size from
 * the reply's Content-Range: no manifest needed. @size is the size when the
 * caller knows it (0: unknown); a reply that disagrees is -EPROTO. A
 * registry that answers the suffix with the whole blob (200) is stopped
 * after the headers when the blob exceeds @want, and a 416 is taken as a
 * quirk: then the tail is read by an explicit range (one more request) when
 * the size is known from Content-Length, Content-Range or @size, else it is
 * -EOPNOTSUPP. Sets *ret_len and *ret_rb (drop with lp_reg_blob_unref()).
 * Returns 0, -EINVAL (@want 0 or over LP_REG_TAIL_MAX), -EOPNOTSUPP, or as
 * lp_reg_blob_pread().
 */
int lp_reg_blob_open_tail(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_digest *digest, uint64_t size,
			  void *buf, size_t want, size_t *ret_len,
			  struct lp_reg_blob **ret_rb, struct lp_err *err);
struct lp_reg_blob *lp_reg_blob_ref(struct lp_reg_blob *rb);

/*
 * lp_reg_blob_reject() - the bytes read at [@off, @off + @len) did not
 * verify: the host that sent them (as far as @rb remembers its recent
 * reads; else the host it reads from now) is passed over for this blob for
 * a while, so that the next read goes to the next host. Logged once.
 * Also reachable as lp_blob_reject() on the lp_blob of lp_reg_blob_as_blob.
 */
void lp_reg_blob_reject(struct lp_reg_blob *rb, uint64_t off, uint64_t len);
/* lp_reg_blob_size() - the blob's size (given, or learnt from its tail). */
uint64_t lp_reg_blob_size(const struct lp_reg_blob *rb);
void lp_reg_blob_unref(struct lp_reg_blob *rb); /* NULL allowed */

/*
 * lp_reg_blob_pread() - exactly @len bytes at @off, by one Range GET
 * (retried; after a reply cut short, for the missing tail only). Never fills @buf with bytes from elsewhere in the blob: the
 * reply's Content-Range must match, and a 200 reply is sliced. Returns 0,
 * -ERANGE outside the blob (or 416), -EPROTO, -EACCES, -ENOENT, -ETIMEDOUT,
 * -EIO.
 */
int lp_reg_blob_pread(struct lp_reg_blob *rb, void *buf, size_t len,
		      uint64_t off, struct lp_err *err);

struct lp_reg_range {
	uint64_t off;
	size_t len;
	void *buf; /* receives exactly len bytes */
};

#define LP_REG_MULTI_MAX 64 /* ranges per multi-range request */

/*
 * lp_reg_blob_pread_multi() - fill @n ranges (sorted, not overlapping, at
 * most LP_REG_MULTI_MAX) with one multi-range request when the registry
 * answers multipart/byteranges; when it answers 400 or 200 instead, the blob
 * remembers that and reads the ranges one by one. Returns as
 * lp_reg_blob_pread(); -EINVAL for unsorted or overlapping ranges.
 */
int lp_reg_blob_pread_multi(struct lp_reg_blob *rb,
			    const struct lp_reg_range *ranges, size_t n,
			    struct lp_err *err);

/*
 * lp_reg_blob_as_blob() - an lp_blob reading through @rb (it takes its own
 * reference on @rb). Its reads answer the blob interface's codes (lp_blob.h):
 * -EIO when the registry did not deliver, the reason, HTTP status and
 * retryability in the reader's struct lp_err; nothing is logged. Returns 0
 * or -ENOMEM.
 */
int lp_reg_blob_as_blob(struct lp_reg_blob *rb, struct lp_blob **ret_blob);

/*
 * lp_reg_open_blob() - lp_reg_blob_open() + lp_reg_blob_as_blob(): the
 * registry blob as a plain blob source for fs/.
 */
int lp_reg_open_blob(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *digest, uint64_t size,
		     struct lp_blob **ret_blob);

/* ---- push ---------------------------------------------------------- */

/*
 * lp_reg_blob_exists() - HEAD the blob. Returns 1 present, 0 absent, or
 * -errno.
 */
int lp_reg_blob_exists(struct lp_reg *reg, const struct lp_reg_ref *ref,
		       const struct lp_digest *digest, struct lp_err *err);

/*
 * lp_reg_push_blob() - upload @size bytes read from @fd (from offset 0) as
 * blob @digest into @ref's repository, unless it is already there. When
 * @mount_from (a repository on the same host, or NULL) has it, it is mounted
 * instead of uploaded. Small blobs go in one POST+PUT; bigger ones in
 * PATCH chunks. Returns 0 or -errno.
 */
int lp_reg_push_blob(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *digest, uint64_t size, int fd,
		     const char *mount_from, struct lp_err *err);

/*
 * lp_reg_push_manifest() - PUT @len bytes of a manifest of @media_type under
 * @ref's tag (or its digest when it has no tag). *ret_digest (may be NULL)
 * receives the manifest's digest. Returns 0 or -errno.
 */
int lp_reg_push_manifest(struct lp_reg *reg, const struct lp_reg_ref *ref,
			 const char *media_type, const void *data, size_t len,
			 struct lp_digest *ret_digest, struct lp_err *err);

/*
 * lp_reg_push_referrer() - push @len bytes of an OCI image manifest whose
 * "subject" is the manifest @subject (an artifact: @artifact_type) into
 * @ref's repository by digest, and make it findable from @subject: when
 * the registry's referrers API (GET /v2/REPO/referrers/DIGEST) lists it,
 * nothing more; else the referrers tag schema: the OCI index tagged
 * "sha256-<hex>" gets an entry for it (created, or updated keeping the
 * other entries). Neither @subject nor any tag of it changes. Sets
 * *ret_digest (may be NULL). Returns 1 (API), 0 (tag schema) or -errno.
 */
int lp_reg_push_referrer(struct lp_reg *reg, const struct lp_reg_ref *ref,
			 const struct lp_digest *subject,
			 const char *artifact_type, const void *data,
			 size_t len, struct lp_digest *ret_digest,
			 struct lp_err *err);

/*
 * lp_reg_referrers() - the index of the manifests that name @subject as
 * their subject: the referrers API's answer (asked for @artifact_type
 * only when given: ?artifactType=, which a registry may ignore), else the
 * index under the referrers tag (never filtered: filter the entries by
 * their artifact_type). The tag is asked at the same time as the API (on
 * a thread of the call's, joined before it returns) unless the host's
 * last answer to the API was an index; its answer is used only when the
 * API's was not an index. Returns 0 (free *ret_index with
 * lp_reg_manifest_free), -ENOENT none, or -errno.
 */
int lp_reg_referrers(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *subject, const char *artifact_type,
		     struct lp_reg_manifest **ret_index, struct lp_err *err);

/*
 * lp_reg_warm() - open @n more connections to the host @ref's requests go
 * to first, in the background (registry/warm.c: each a ping of the API
 * root on a thread of its own; its connection stays in the client's cache
 * for the requests that follow): at most once per LP_REG_WARM_EVERY_MS
 * per host. For a caller about to make several requests at once. Returns
 * 0 (started, maybe fewer than @n, or warmed lately), or -errno (none
 * started).
 */
#define LP_REG_WARM_EVERY_MS 10000
int lp_reg_warm(struct lp_reg *reg, const struct lp_reg_ref *ref,
		unsigned int n);

/*
 * lp_reg_referrers_from() - lp_reg_referrers(), and *@ret_api (may be
 * NULL): true when the referrers API answered (asked with @artifact_type,
 * it may have left out the other types: ask again for another type),
 * false when the referrers tag did (never filtered: every type is in it).
 */
int lp_reg_referrers_from(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_digest *subject,
			  const char *artifact_type,
			  struct lp_reg_manifest **ret_index, bool *ret_api,
			  struct lp_err *err);

#endif /* LP_REGISTRY_H */
