// SPDX-License-Identifier: Apache-2.0
/*
 * The blob-source interface (lp_blob.h) and its two local implementations:
 * a file read with pread(2) and a buffer in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lp_blob.h"

struct lp_blob {
	atomic_uint refs;
	const struct lp_blob_ops *ops;
	void *ctx;
	uint64_t size;
	char *name;
};

int lp_blob_new(const struct lp_blob_ops *ops, void *ctx, uint64_t size,
		const char *name, struct lp_blob **ret_blob)
{
	struct lp_blob *b;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->name = strdup(name ? name : "blob");
	if (!b->name) {
		free(b);
		return -ENOMEM;
	}
	atomic_init(&b->refs, 1);
	b->ops = ops;
	b->ctx = ctx;
	b->size = size;
	*ret_blob = b;
	return 0;
}

static int out_of_blob(struct lp_blob *blob, uint64_t off, size_t len,
		       struct lp_err *err)
{
	return lp_err_set(err, -ERANGE,
			  "blob %s: range %llu+%zu outside its %llu bytes",
			  blob->name, (unsigned long long)off, len,
			  (unsigned long long)blob->size);
}

/* a source that failed without saying why: name the blob and the range */
static int read_failed(struct lp_blob *blob, uint64_t off, size_t len, int r,
		       struct lp_err *err)
{
	if (r < 0)
		lp_err_set(err, r, "blob %s: reading %zu bytes at %llu: %s",
			   blob->name, len, (unsigned long long)off,
			   strerror(-r));
	return r;
}

int lp_blob_pread(struct lp_blob *blob, void *buf, size_t len, uint64_t off,
		  struct lp_err *err)
{
	if (off > blob->size || len > blob->size - off)
		return out_of_blob(blob, off, len, err);
	if (!len)
		return 0;
	return read_failed(blob, off, len,
			   blob->ops->pread(blob->ctx, buf, len, off, err),
			   err);
}

int lp_blob_pread_multi(struct lp_blob *blob,
			const struct lp_blob_range *ranges, size_t n,
			struct lp_err *err)
{
	const struct lp_blob_range *g;
	size_t i;
	int r = 0;

	for (i = 0; i < n; i++) {
		g = &ranges[i];
		if (g->off > blob->size || g->len > blob->size - g->off) {
			r = out_of_blob(blob, g->off, g->len, err);
			goto out;
		}
		if (!g->len ||
		    (i && g->off < ranges[i - 1].off + ranges[i - 1].len)) {
			r = lp_err_set(err, -EINVAL,
				       "blob %s: ranges empty, unsorted or "
				       "overlapping",
				       blob->name);
			goto out;
		}
	}
	if (n >= 2 && blob->ops->pread_multi) {
		r = blob->ops->pread_multi(blob->ctx, ranges, n, err);
		if (r < 0)
			lp_err_set(err, r, "blob %s: reading %zu ranges: %s",
				   blob->name, n, strerror(-r));
		goto out;
	}
	for (i = 0; i < n && r == 0; i++)
		r = read_failed(blob, ranges[i].off, ranges[i].len,
				blob->ops->pread(blob->ctx, ranges[i].buf,
						 ranges[i].len, ranges[i].off,
						 err),
				err);
out:
	return r;
}

int lp_blob_pread_stream(struct lp_blob *blob, void *buf, size_t len,
			 uint64_t off, lp_blob_progress_fn fn, void *arg,
			 struct lp_err *err)
{
	int r;

	if (off > blob->size || len > blob->size - off)
		return out_of_blob(blob, off, len, err);
	if (!len)
		return 0;
	if (blob->ops->pread_stream) {
		r = blob->ops->pread_stream(blob->ctx, buf, len, off, fn, arg,
					    err);
		return read_failed(blob, off, len, r, err);
	}
	/* a source that cannot stream (a wrapper): one read, then all of it */
	r = read_failed(blob, off, len,
			blob->ops->pread(blob->ctx, buf, len, off, err), err);
	if (r == 0)
		r = fn(arg, len);
	return r;
}

void lp_blob_reject(struct lp_blob *blob, uint64_t off, uint64_t len)
{
	if (blob->ops->reject)
		blob->ops->reject(blob->ctx, off, len);
}

uint64_t lp_blob_size(const struct lp_blob *blob)
{
	return blob->size;
}

const char *lp_blob_name(const struct lp_blob *blob)
{
	return blob->name;
}

struct lp_blob *lp_blob_ref(struct lp_blob *blob)
{
	atomic_fetch_add(&blob->refs, 1);
	return blob;
}

void lp_blob_unref(struct lp_blob *blob)
{
	if (!blob || atomic_fetch_sub(&blob->refs, 1) != 1)
		return;
	if (blob->ops->close)
		blob->ops->close(blob->ctx);
	free(blob->name);
	free(blob);
}

/* --- local file --- */

struct file_blob {
	int fd;
};

static int file_pread(void *ctx, void *buf, size_t len, uint64_t off,
		      struct lp_err *err)
{
	struct file_blob *f = ctx;
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(f->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lp_err_set(err, -errno, "pread at %llu: %s",
					  (unsigned long long)off,
					  strerror(errno));
		if (n == 0) /* the file shrank under us */
			return lp_err_set(err, -EIO, "end of file at %llu",
					  (unsigned long long)off);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* pieces small enough that the first chunks of a long read go ahead */
#define FILE_STREAM_PIECE (256 * 1024)

static int file_pread_stream(void *ctx, void *buf, size_t len, uint64_t off,
			     lp_blob_progress_fn fn, void *arg,
			     struct lp_err *err)
{
	size_t done = 0, n;
	int r = 0;

	while (done < len && r == 0) {
		n = len - done < FILE_STREAM_PIECE ? len - done :
						     FILE_STREAM_PIECE;
		r = file_pread(ctx, (uint8_t *)buf + done, n, off + done, err);
		if (r == 0) {
			done += n;
			r = fn(arg, done);
		}
	}
	return r;
}

static void file_close(void *ctx)
{
	struct file_blob *f = ctx;

	close(f->fd);
	free(f);
}

static const struct lp_blob_ops file_ops = {
	.pread = file_pread,
	.close = file_close,
	.pread_stream = file_pread_stream,
};

int lp_blob_open_file(const char *path, struct lp_blob **ret_blob)
{
	struct file_blob *f = NULL;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto fail;
	}
	f = malloc(sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto fail;
	}
	f->fd = fd;
	r = lp_blob_new(&file_ops, f, (uint64_t)st.st_size, path, ret_blob);
	if (r < 0)
		goto fail;
	return 0;
fail:
	free(f);
	close(fd);
	return r;
}

/* --- memory --- */

struct mem_blob {
	size_t len;
	uint8_t data[];
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off,
		     struct lp_err *err)
{
	struct mem_blob *m = ctx;

	(void)err;
	memcpy(buf, m->data + off, len);
	return 0;
}

static void mem_close(void *ctx)
{
	free(ctx);
}

static const struct lp_blob_ops mem_ops = {
	.pread = mem_pread,
	.close = mem_close,
};

int lp_blob_new_mem(const void *data, size_t len, const char *name,
		    struct lp_blob **ret_blob)
{
	struct mem_blob *m;
	int r;

	m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->len = len;
	if (len)
		memcpy(m->data, data, len);
	r = lp_blob_new(&mem_ops, m, len, name ? name : "memory", ret_blob);
	if (r < 0)
		free(m);
	return r;
}
