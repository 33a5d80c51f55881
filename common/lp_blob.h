/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blob source: the one interface through which lazypull reads layer
 * bytes, whatever holds them (a local file, memory, a registry blob over HTTP
 * Range, a fault-injecting wrapper in tests). Sources stack: a wrapper is a
 * blob whose ops read from another blob.
 *
 * A blob is immutable and reference counted; lp_blob_pread() may be called
 * from any number of threads at once, so every implementation's pread must be
 * thread-safe. The size is known when the blob is made.
 *
 * Errors. Every read takes a struct lp_err (NULL allowed) that the source
 * fills where the error arises: what failed (blob, range, HTTP status and
 * the registry's reason) and whether another try later may succeed
 * (LP_ERR_RETRYABLE: a registry answering 5xx or 429, a timeout, a reset
 * connection; not a 404, a 403, a 401 after authenticating, a 410, a reply
 * that breaks the protocol). Sources do not log: the caller that decides
 * what to do with the error reports it, once. The codes a source returns:
 * -EIO when it could not deliver the bytes (the why in @err), -EBADMSG for
 * bytes known to be wrong, -ENOMEM; lp_blob itself adds -ERANGE and
 * -EINVAL for ranges the caller got wrong.
 */
#ifndef LP_BLOB_H
#define LP_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "lp_err.h"

struct lp_blob;

/*
 * Progress of a streamed read (lp_blob_pread_stream): the first @done bytes
 * of the caller's buffer are filled and final (never written again); @done
 * only grows. Return 0 to go on, or -errno to stop the read, which then
 * returns that error.
 */
typedef int (*lp_blob_progress_fn)(void *arg, size_t done);

/* One range of a multi-range read: @len bytes at blob offset @off. */
struct lp_blob_range {
	uint64_t off;
	size_t len;
	void *buf; /* receives exactly len bytes */
};

struct lp_blob_ops {
	/*
	 * Read exactly @len bytes at @off into @buf; the range is already
	 * checked to lie inside the blob. Return 0, or -errno (-EIO for a
	 * failed or short read, -EBADMSG for bytes known to be wrong) with
	 * @err (NULL allowed) saying why, marked LP_ERR_RETRYABLE when
	 * another try may succeed.
	 */
	int (*pread)(void *ctx, void *buf, size_t len, uint64_t off,
		     struct lp_err *err);
	/* Release @ctx; called once, when the last reference is dropped. */
	void (*close)(void *ctx);
	/*
	 * Optional (NULL: lp_blob_pread_multi() calls pread per range).
	 * Fill @n >= 2 non-empty ranges, sorted by offset, not overlapping, already
	 * checked to lie inside the blob, in as few round trips as the source
	 * can (one HTTP multi-range request). All or nothing: returns 0, or
	 * -errno as pread, and then no range is known to be filled.
	 */
	int (*pread_multi)(void *ctx, const struct lp_blob_range *ranges,
			   size_t n, struct lp_err *err);
	/*
	 * Optional (NULL: lp_blob_pread_stream() does one pread, then reports
	 * all of it). pread in one request that reports progress as bytes
	 * arrive: @fn (never NULL) each time a longer prefix of @buf is final.
	 * Bytes are written in order and never rewritten, also when the source
	 * retries (it resumes at the first missing byte). On failure the
	 * reported prefix stays valid.
	 */
	int (*pread_stream)(void *ctx, void *buf, size_t len, uint64_t off,
			    lp_blob_progress_fn fn, void *arg,
			    struct lp_err *err);
	/*
	 * Optional (NULL: nothing to do). The bytes the source gave for
	 * [@off, @off + @len) did not verify: a source with several places
	 * to read from (a registry's mirrors) reads them from elsewhere
	 * next time.
	 */
	void (*reject)(void *ctx, uint64_t off, uint64_t len);
};

/*
 * lp_blob_new() - wrap an implementation. @name (copied) names the blob in
 * error messages (a path, a digest). On success the blob owns @ctx and calls
 * ops->close(ctx) when freed; on failure @ctx is untouched and still the
 * caller's. The new blob has one reference, the caller's.
 */
int lp_blob_new(const struct lp_blob_ops *ops, void *ctx, uint64_t size,
		const char *name, struct lp_blob **ret_blob);

/* lp_blob_open_file() - a blob over a local file (read-only, pread(2)). */
int lp_blob_open_file(const char *path, struct lp_blob **ret_blob);

/*
 * lp_blob_new_mem() - a blob over a copy of @len bytes at @data.
 */
int lp_blob_new_mem(const void *data, size_t len, const char *name,
		    struct lp_blob **ret_blob);

/*
 * lp_blob_pread() - read exactly @len bytes at @off. Returns 0; -ERANGE when
 * [off, off+len) is not inside the blob; or the implementation's -errno.
 * On failure @err (NULL allowed) says what failed, naming the blob and the
 * range, and whether a retry may help (see the top of this file).
 */
int lp_blob_pread(struct lp_blob *blob, void *buf, size_t len, uint64_t off,
		  struct lp_err *err);

/*
 * lp_blob_pread_multi() - fill @n non-empty ranges (sorted by offset, not
 * overlapping) in one go where the source can (ops->pread_multi), else one
 * pread per range. Returns 0; -ERANGE when a range is not inside the blob;
 * -EINVAL for empty, unsorted or overlapping ranges; or the implementation's
 * -errno (then the contents of every buffer are undefined).
 */
int lp_blob_pread_multi(struct lp_blob *blob,
			const struct lp_blob_range *ranges, size_t n,
			struct lp_err *err);

/*
 * lp_blob_pread_stream() - lp_blob_pread() that calls @fn(@arg, done) each
 * time the filled prefix buf[0, done) grows (last call with done == @len on
 * success), so a caller can use the first bytes of a long read while the
 * rest is still on its way. One request where the source makes requests.
 * Returns as lp_blob_pread(), or @fn's error; on failure buf[0, done) of
 * the last report is still right.
 */
int lp_blob_pread_stream(struct lp_blob *blob, void *buf, size_t len,
			 uint64_t off, lp_blob_progress_fn fn, void *arg,
			 struct lp_err *err);

/*
 * lp_blob_reject() - tell @blob's source that the bytes it gave for
 * [@off, @off + @len) did not verify (a chunk digest mismatch), so that it
 * reads them from another place next time if it has one (ops->reject).
 */
void lp_blob_reject(struct lp_blob *blob, uint64_t off, uint64_t len);

uint64_t lp_blob_size(const struct lp_blob *blob);
const char *lp_blob_name(const struct lp_blob *blob);

/* lp_blob_ref() - take a reference; the caller drops it with lp_blob_unref. */
struct lp_blob *lp_blob_ref(struct lp_blob *blob);
/* lp_blob_unref() - drop a reference; NULL allowed. */
void lp_blob_unref(struct lp_blob *blob);

#endif /* LP_BLOB_H */
