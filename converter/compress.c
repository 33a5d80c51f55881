// SPDX-License-Identifier: Apache-2.0
/*
 * Parallel member compression. The converter appends the uncompressed tar
 * stream here and says where members end (lp_cv_pool_cut); members are
 * grouped into batches of about LP_CV_BATCH_TARGET bytes which a pool of
 * worker threads compresses (each member into its own gzip member or zstd
 * frame, libdeflate / libzstd, one compressor per worker) and digests (chunk
 * digests requested with lp_cv_pool_digest). The calling thread writes the
 * finished batches strictly in submission order, so the output does not
 * depend on the number of threads; member boundaries are decided by the
 * caller alone. At most 2 * threads + 1 batches are in flight, which bounds
 * memory.
 *
 * Lock order: only pool->lock. The calling thread owns the batch being
 * filled; a queued batch belongs to the pool until it is DONE.
 */
#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "lp_io.h"
#include "convert_int.h"

#define LP_CV_BATCH_TARGET (1 * LP_MIB)

enum { LP_BATCH_QUEUED = 1, LP_BATCH_RUNNING, LP_BATCH_DONE };

struct lp_cv_dig {
	size_t off, len, rec;
	struct lp_digest d;
};

struct lp_cv_batch {
	struct lp_cv_batch *next; /* queue or free list */
	uint8_t *in;
	size_t in_len, in_cap;
	size_t *mend; /* member i ends at mend[i] in @in */
	size_t nr_members, cap_members;
	uint64_t first_member;
	struct lp_cv_dig *dig;
	size_t nr_dig, cap_dig;
	uint8_t *out;
	size_t out_cap;
	size_t *cend; /* compressed ends, as mend */
	int state; /* protected by pool->lock */
	int err; /* set by the worker before DONE */
};

struct lp_cv_pool {
	struct lp_cv_pool_opts o;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a batch was queued, or stop */
	pthread_cond_t done; /* a batch finished */
	struct lp_cv_batch *head, *tail; /* protected by lock */
	bool stop; /* protected by lock */
	unsigned int nr_inflight; /* caller thread only */
	unsigned int max_inflight;
	pthread_t *threads;
	unsigned int nr_threads;
	struct lp_cv_batch *cur; /* being filled: caller only */
	struct lp_cv_batch *free_list; /* caller only */
	uint64_t next_member;
	uint64_t offset; /* bytes written to out_fd */
	struct lp_sha256 *blob_sha;
	int err;
};

static void lp_batch_free(struct lp_cv_batch *b)
{
	if (!b)
		return;
	free(b->in);
	free(b->mend);
	free(b->dig);
	free(b->out);
	free(b->cend);
	free(b);
}

static size_t lp_bound(enum lp_compression comp, size_t len)
{
	if (comp == LP_COMP_ZSTD)
		return ZSTD_compressBound(len);
	/* libdeflate's bound does not depend on the compressor's level */
	return libdeflate_gzip_compress_bound(NULL, len);
}

struct lp_cv_worker_ctx {
	struct libdeflate_compressor *gz;
	ZSTD_CCtx *zs;
};

static int lp_compress_one(const struct lp_cv_pool_opts *o,
			   struct lp_cv_worker_ctx *w, const uint8_t *in,
			   size_t len, uint8_t *out, size_t cap, size_t *ret)
{
	if (o->comp == LP_COMP_ZSTD) {
		size_t n =
			ZSTD_compressCCtx(w->zs, out, cap, in, len, o->level);

		if (ZSTD_isError(n))
			return -EIO;
		*ret = n;
		return 0;
	}
	*ret = libdeflate_gzip_compress(w->gz, in, len, out, cap);
	return *ret ? 0 : -EIO;
}

static int lp_batch_run(const struct lp_cv_pool_opts *o,
			struct lp_cv_worker_ctx *w, struct lp_cv_batch *b)
{
	size_t i, start = 0, cpos = 0, need = 0;
	int r = 0;

	for (i = 0; i < b->nr_members; i++)
		need += lp_bound(o->comp,
				 b->mend[i] - (i ? b->mend[i - 1] : 0));
	if (need > b->out_cap) {
		free(b->out);
		b->out = malloc(need);
		b->out_cap = b->out ? need : 0;
		if (!b->out)
			return -ENOMEM;
	}
	for (i = 0; r == 0 && i < b->nr_members; i++) {
		size_t len = b->mend[i] - start, n;

		r = lp_compress_one(o, w, b->in + start, len, b->out + cpos,
				    b->out_cap - cpos, &n);
		cpos += n;
		b->cend[i] = cpos;
		start = b->mend[i];
	}
	for (i = 0; r == 0 && i < b->nr_dig; i++)
		lp_sha256(b->in + b->dig[i].off, b->dig[i].len, &b->dig[i].d);
	return r;
}

static void *lp_worker(void *arg)
{
	struct lp_cv_pool *p = arg;
	struct lp_cv_worker_ctx w = { 0 };
	int init_err = 0;

	if (p->o.comp == LP_COMP_ZSTD)
		w.zs = ZSTD_createCCtx();
	else
		w.gz = libdeflate_alloc_compressor(p->o.level);
	if (!w.zs && !w.gz)
		init_err = -ENOMEM;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct lp_cv_batch *b;

		for (b = p->head; b && b->state != LP_BATCH_QUEUED; b = b->next)
			;
		if (!b) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		b->state = LP_BATCH_RUNNING;
		pthread_mutex_unlock(&p->lock);
		b->err = init_err ? init_err : lp_batch_run(&p->o, &w, b);
		pthread_mutex_lock(&p->lock);
		b->state = LP_BATCH_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	ZSTD_freeCCtx(w.zs);
	libdeflate_free_compressor(w.gz);
	return NULL;
}

int lp_cv_pool_write_raw(struct lp_cv_pool *p, const void *data, size_t len)
{
	int r = lp_write_all(p->o.out_fd, data, len);

	if (r < 0)
		return r;
	lp_sha256_update(p->blob_sha, data, len);
	p->offset += len;
	return 0;
}

/* Wait for the oldest batch, write it out and recycle it. */
static int lp_pool_retire(struct lp_cv_pool *p)
{
	struct lp_cv_batch *b;
	size_t i, cstart = 0;
	int r;

	pthread_mutex_lock(&p->lock);
	b = p->head;
	while (b->state != LP_BATCH_DONE)
		pthread_cond_wait(&p->done, &p->lock);
	p->head = b->next;
	if (!p->head)
		p->tail = NULL;
	pthread_mutex_unlock(&p->lock);
	p->nr_inflight--;

	r = b->err;
	for (i = 0; r == 0 && i < b->nr_members; i++) {
		size_t clen = b->cend[i] - cstart;

		if (p->o.on_member)
			p->o.on_member(p->o.cb_ctx, b->first_member + i,
				       p->offset, clen);
		r = lp_cv_pool_write_raw(p, b->out + cstart, clen);
		cstart = b->cend[i];
	}
	for (i = 0; r == 0 && i < b->nr_dig; i++)
		if (p->o.on_digest)
			p->o.on_digest(p->o.cb_ctx, b->dig[i].rec,
				       &b->dig[i].d);
	b->in_len = b->nr_members = b->nr_dig = 0;
	b->next = p->free_list;
	p->free_list = b;
	return r;
}

static int lp_pool_submit(struct lp_cv_pool *p)
{
	struct lp_cv_batch *b = p->cur;
	int r;

	if (!b || !b->nr_members)
		return 0;
	while (p->nr_inflight >= p->max_inflight) {
		r = lp_pool_retire(p);
		if (r < 0)
			return r;
	}
	free(b->cend);
	b->cend = malloc(b->nr_members * sizeof(*b->cend));
	if (!b->cend)
		return -ENOMEM;
	p->cur = NULL;
	b->next = NULL;
	b->state = LP_BATCH_QUEUED;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = b;
	else
		p->head = b;
	p->tail = b;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	p->nr_inflight++;
	return 0;
}

static int lp_pool_cur(struct lp_cv_pool *p, struct lp_cv_batch **ret)
{
	struct lp_cv_batch *b = p->cur;

	if (!b) {
		b = p->free_list;
		if (b) {
			p->free_list = b->next;
		} else {
			b = calloc(1, sizeof(*b));
			if (!b)
				return -ENOMEM;
		}
		b->first_member = p->next_member;
		p->cur = b;
	}
	*ret = b;
	return 0;
}

int lp_cv_pool_reserve(struct lp_cv_pool *p, size_t len, uint8_t **ret)
{
	struct lp_cv_batch *b;
	int r;

	r = p->err ? p->err : lp_pool_cur(p, &b);
	if (r == 0)
		r = lp_grow_array((void **)&b->in, &b->in_cap, b->in_len + len,
				  1);
	if (r == 0)
		*ret = b->in + b->in_len;
	return r;
}

/* lp_cv_pool_commit() - @len bytes written at the lp_cv_pool_reserve()
 * pointer are now part of the member. */
void lp_cv_pool_commit(struct lp_cv_pool *p, size_t len)
{
	p->cur->in_len += len;
}

int lp_cv_pool_append(struct lp_cv_pool *p, const void *data, size_t len)
{
	uint8_t *dst = NULL;
	int r;

	if (!len)
		return 0;
	r = lp_cv_pool_reserve(p, len, &dst);
	if (r < 0)
		return r;
	memcpy(dst, data, len);
	lp_cv_pool_commit(p, len);
	return 0;
}

int lp_cv_pool_digest(struct lp_cv_pool *p, size_t len, size_t rec)
{
	struct lp_cv_batch *b = p->cur;
	int r;

	if (!b || b->in_len < len)
		return -EINVAL;
	r = lp_grow_array((void **)&b->dig, &b->cap_dig, b->nr_dig + 1,
			  sizeof(*b->dig));
	if (r < 0)
		return r;
	b->dig[b->nr_dig].off = b->in_len - len;
	b->dig[b->nr_dig].len = len;
	b->dig[b->nr_dig].rec = rec;
	b->nr_dig++;
	return 0;
}

int lp_cv_pool_cut(struct lp_cv_pool *p, uint64_t *ret_member)
{
	struct lp_cv_batch *b = p->cur;
	size_t last;
	int r = p->err;

	if (r == 0 && b) {
		last = b->nr_members ? b->mend[b->nr_members - 1] : 0;
		if (b->in_len > last) {
			r = lp_grow_array((void **)&b->mend, &b->cap_members,
					  b->nr_members + 1, sizeof(*b->mend));
			if (r == 0) {
				b->mend[b->nr_members++] = b->in_len;
				p->next_member++;
			}
		}
		if (r == 0 && b->in_len >= LP_CV_BATCH_TARGET)
			r = lp_pool_submit(p);
	}
	if (r < 0)
		p->err = r;
	else if (ret_member)
		*ret_member = p->next_member;
	return r;
}

int lp_cv_pool_flush(struct lp_cv_pool *p)
{
	int r = lp_cv_pool_cut(p, NULL);

	if (r == 0)
		r = lp_pool_submit(p);
	while (p->nr_inflight) {
		int r2 = lp_pool_retire(p);

		if (r == 0)
			r = r2;
	}
	if (r < 0)
		p->err = r;
	return r;
}

uint64_t lp_cv_pool_offset(const struct lp_cv_pool *p)
{
	return p->offset;
}

struct lp_sha256 *lp_cv_pool_blob_sha(struct lp_cv_pool *p)
{
	return p->blob_sha;
}

int lp_cv_pool_new(const struct lp_cv_pool_opts *o, struct lp_cv_pool **ret)
{
	struct lp_cv_pool *p = NULL;
	unsigned int i;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *o;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->max_inflight = 2 * o->threads + 1;
	r = lp_sha256_new(&p->blob_sha);
	if (r < 0)
		goto out;
	p->threads = calloc(o->threads, sizeof(*p->threads));
	if (!p->threads) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < o->threads; i++) {
		if (pthread_create(&p->threads[i], NULL, lp_worker, p)) {
			r = -EAGAIN;
			goto out;
		}
		p->nr_threads++;
	}
	*ret = p;
	p = NULL;
out:
	lp_cv_pool_free(p);
	return r;
}

void lp_cv_pool_free(struct lp_cv_pool *p)
{
	struct lp_cv_batch *b;
	unsigned int i;

	if (!p)
		return;
	/* let running batches finish; queued ones are dropped after join */
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	for (b = p->head; b; b = b->next)
		if (b->state == LP_BATCH_QUEUED)
			b->state = LP_BATCH_DONE;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nr_threads; i++)
		pthread_join(p->threads[i], NULL);
	while ((b = p->head)) {
		p->head = b->next;
		lp_batch_free(b);
	}
	while ((b = p->free_list)) {
		p->free_list = b->next;
		lp_batch_free(b);
	}
	lp_batch_free(p->cur);
	lp_sha256_free(p->blob_sha);
	free(p->threads);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int lp_cv_compress(enum lp_compression comp, int level, const void *in,
		   size_t len, struct lp_buf *out)
{
	struct lp_cv_pool_opts o = { .comp = comp, .level = level };
	struct lp_cv_worker_ctx w = { 0 };
	size_t cap = lp_bound(comp, len), n = 0;
	int r;

	if (comp == LP_COMP_ZSTD)
		w.zs = ZSTD_createCCtx();
	else
		w.gz = libdeflate_alloc_compressor(level);
	r = (w.zs || w.gz) ? lp_buf_reserve(out, cap) : -ENOMEM;
	if (r == 0)
		r = lp_compress_one(&o, &w, in, len, out->data + out->len, cap,
				    &n);
	if (r == 0)
		out->len += n;
	ZSTD_freeCCtx(w.zs);
	libdeflate_free_compressor(w.gz);
	return r;
}
