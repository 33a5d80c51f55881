// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC parse split over two threads. A big TOC's "entries" array is cut
 * at an entry boundary past a target byte: a second thread parses the
 * entries from there to the array's end into a builder of its own (a split
 * part, struct builder.frag), while the parsing thread parses the ones
 * before. When the serial scan reaches the first entry at or after the
 * target, it joins the part into its builder (split_join()) if the part
 * starts exactly there, and goes on after the array. By default the second
 * thread is the one that feeds the JSON (lp_toc_feed.lend: during a mount,
 * the inflating thread, once it is done), else one of its own; it chooses
 * the split point when all the JSON is in place, ahead of where the serial
 * scan is then, and a part still far from done when the scan gets there
 * is dropped rather than waited for (part_behind()).
 *
 * The result is the serial parse's, by construction: the split point is
 * only a guess (the '{' after "},", which may lie inside a string or a
 * nested value); the serial scan is what says where an entry starts, and
 * a part that does not start there is dropped. Everything the part could
 * not know alone (a parent, or an owner name carried forward, from before
 * the split; a duplicate of an earlier path) is settled at the join, in
 * JSON order, and anything unusual (the part failed, a duplicate across
 * the split, a bound only the sum passes, a root entry in the part) drops
 * the part: the parsing thread then parses those entries itself, so every
 * error, and its message, is the serial parse's. The part's arrays are
 * appended to the first part's with their indexes and pool offsets moved,
 * so the entries, chunks, xattrs and strings end up in the serial order.
 *
 * Threads: the part's thread writes only its own builder and reads the
 * JSON (all of it waited for through the feed first) and the first part's
 * hash key and payload end, which do not change; the parsing thread
 * reads the part only after it has ended (split_wait()). Lock order: only
 * @lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lp_buf.h"
#include "toc_int.h"

struct toc_split_probe toc_split_probe;

/*
 * the part of the JSON left when the thread starts that the serial scan
 * keeps, in percent: a bit less than half, as it also joins the part
 */
#define SPLIT_MAIN_SHARE 45

/* chunk entries skipped past a split candidate (a part cannot start with
   one: its file is before it) before the split is given up */
#define SPLIT_CHUNK_SKIP_MAX 4096

struct toc_split {
	const char *json;
	size_t len;
	const struct lp_toc_feed *feed;
	size_t target; /* 0: the thread chooses (@main_pos) */
	_Atomic size_t main_pos; /* where the serial scan is, with no target */
	pthread_t th;
	bool running; /* the thread is to be joined */
	bool lent; /* the part runs on the feed's thread (lend()) */
	bool job_done; /* protected by lock: the part has ended */
	bool done; /* the parsing thread is done with the split */
	bool seen; /* the parsing thread has read @point */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic bool decided; /* written under @lock; @point is set before */
	size_t point; /* protected by lock: where the part starts (@len: none) */
	_Atomic bool stop; /* the part is not wanted any more */
	_Atomic size_t part_at; /* where the part's parse is */
	/* the thread's until it is joined */
	struct builder *part;
	struct lp_err err;
	int result;
	size_t end;
};

static void split_job(void *arg)
{
	struct toc_split *sp = arg;
	size_t p = sp->len, t;
	int k;

	if (sp->feed &&
	    sp->feed->wait(sp->feed->arg, sp->len) != (ssize_t)sp->len)
		goto publish;
	t = sp->target;
	if (!t) { /* the serial scan takes its share of what is left */
		t = atomic_load_explicit(&sp->main_pos, memory_order_relaxed);
		t += (sp->len - t) / 100 * SPLIT_MAIN_SHARE;
	}
	p = toc_split_candidate(sp->json, sp->len, t);
	for (k = 0; p < sp->len && toc_frag_is_chunk(sp->json, sp->len, p);
	     k++) {
		if (k == SPLIT_CHUNK_SKIP_MAX) {
			p = sp->len;
			break;
		}
		p = toc_split_candidate(sp->json, sp->len, p + 1);
	}
publish:
	pthread_mutex_lock(&sp->lock);
	sp->point = p;
	atomic_store_explicit(&sp->decided, true, memory_order_release);
	pthread_cond_broadcast(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	sp->result = 1;
	if (p < sp->len)
		sp->result = toc_parse_frag(sp->part, sp->json, sp->len, p,
					    &sp->stop, &sp->part_at, &sp->end);
	pthread_mutex_lock(&sp->lock);
	sp->job_done = true;
	pthread_cond_broadcast(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
}

static void *split_main(void *arg)
{
	split_job(arg);
	return NULL;
}

/* wait until the part has ended (lent or on its own thread) */
static void split_wait(struct toc_split *sp)
{
	if (sp->running) {
		pthread_join(sp->th, NULL);
		sp->running = false;
	}
	if (sp->lent) {
		pthread_mutex_lock(&sp->lock);
		while (!sp->job_done)
			pthread_cond_wait(&sp->cond, &sp->lock);
		pthread_mutex_unlock(&sp->lock);
		sp->lent = false;
	}
}

struct toc_split *toc_split_start(struct builder *b, const char *json,
				  size_t len, const struct lp_toc_feed *feed,
				  size_t target)
{
	struct toc_split *sp = calloc(1, sizeof(*sp));
	struct builder *p = NULL;
	uint32_t off;

	if (!sp)
		goto fail;
	sp->json = json;
	sp->len = len;
	sp->feed = feed;
	sp->target = target;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	p = calloc(1, sizeof(*p));
	sp->part = p;
	if (!p)
		goto fail;
	p->err = &sp->err;
	p->payload_end = b->payload_end;
	memcpy(p->hash_key, b->hash_key, sizeof(p->hash_key));
	p->last_ent = LP_TOC_NO_INDEX;
	p->last_dir = LP_TOC_NO_INDEX;
	p->frag = true;
	/* offset 0 is "", as in the first part's pool (not copied over) */
	if (toc_pool_add(p, "", 0, &off) < 0)
		goto fail;
	/* the feed's thread, once the bytes are in: two threads, not three */
	if (feed && feed->lend && feed->lend(feed->arg, split_job, sp) == 0)
		sp->lent = true;
	else if (pthread_create(&sp->th, NULL, split_main, sp) == 0)
		sp->running = true;
	else
		goto fail;
	atomic_fetch_add_explicit(&toc_split_probe.started, 1,
				  memory_order_relaxed);
	return sp;
fail:
	toc_split_free(sp);
	return NULL;
}

/* stop and join the thread (the part stays for the caller) */
static void split_stop(struct toc_split *sp)
{
	if (!sp->done && (sp->running || sp->lent))
		atomic_fetch_add_explicit(&toc_split_probe.dropped, 1,
					  memory_order_relaxed);
	atomic_store(&sp->stop, true);
	/* a lent job that has not begun never will */
	if (sp->lent && sp->feed->lend(sp->feed->arg, NULL, NULL) == 0)
		sp->lent = false;
	split_wait(sp);
	sp->done = true;
}

/* split_stop(), and the part's memory given back at once: the scan
 * parses those entries itself now */
static void split_drop(struct toc_split *sp)
{
	split_stop(sp);
	if (sp->part) {
		toc_builder_release(sp->part);
		free(sp->part);
		sp->part = NULL;
	}
}

void toc_split_free(struct toc_split *sp)
{
	if (!sp)
		return;
	split_stop(sp);
	if (sp->part) {
		toc_builder_release(sp->part);
		free(sp->part);
	}
	pthread_mutex_destroy(&sp->lock);
	pthread_cond_destroy(&sp->cond);
	free(sp);
}

/* the first part's pool offset of part string @o ("" stays at 0) */
static inline uint32_t str_off(uint32_t o, uint32_t base)
{
	return o ? o - 1 + base : 0;
}

/* the first part's pool offset of a part's owner name @o of @id */
static uint32_t owner_off(const struct builder *b, const struct lp_hashmap *m,
			  const struct lp_hashmap *same, uint32_t o,
			  uint32_t id, uint32_t base)
{
	uint64_t v;

	if (o == TOC_OWNER_INHERIT)
		return lp_hashmap_get(m, id, &v) == 0 ? (uint32_t)v : 0;
	if (o && same->nr && lp_hashmap_get(same, o, &v) == 0)
		return (uint32_t)v;
	(void)b;
	return str_off(o, base);
}

/*
 * Append part @p to @b as if its entries had been parsed after @b's: 1,
 * 0 when it cannot be (then @b is as it was: parse them serially), or
 * -ENOMEM.
 */
static int split_join(struct builder *b, struct builder *p)
{
	uint32_t n1 = b->nr_ents, n2 = p->nr_ents, c1 = b->nr_chunks;
	uint32_t x1 = b->nr_xattrs, base = (uint32_t)b->pool_len, j;
	uint32_t d1 = b->nr_digs, f1 = b->nr_fdigs;
	size_t plen = p->pool_len - 1; /* without its leading "" */
	struct lp_hashmap same = { 0 }; /* part owner offset -> first's */
	int r;

	if ((size_t)n1 + n2 > LP_TOC_MAX_ENTRIES ||
	    (size_t)c1 + p->nr_chunks > LP_TOC_MAX_ENTRIES ||
	    b->pool_len + plen > POOL_MAX || n2 == 0) {
		r = 0;
		goto out;
	}
	if ((r = lp_grow_array((void **)&b->ents, &b->cap_ents, (size_t)n1 + n2,
			       sizeof(*b->ents))) < 0 ||
	    (r = lp_grow_array((void **)&b->strs, &b->cap_strs, (size_t)n1 + n2,
			       sizeof(*b->strs))) < 0 ||
	    (r = lp_grow_array((void **)&b->hashes, &b->cap_hashes,
			       (size_t)n1 + n2, sizeof(*b->hashes))) < 0 ||
	    (r = lp_grow_array((void **)&b->chunks, &b->cap_chunks,
			       (size_t)c1 + p->nr_chunks, sizeof(*b->chunks))) <
		    0 ||
	    (r = lp_grow_array((void **)&b->xattrs, &b->cap_xattrs,
			       (size_t)x1 + p->nr_xattrs, sizeof(*b->xattrs))) <
		    0 ||
	    (r = lp_grow_array((void **)&b->digs, &b->cap_digs,
			       (size_t)d1 + p->nr_digs, sizeof(*b->digs))) <
		    0 ||
	    (r = lp_grow_array((void **)&b->fdigs, &b->cap_fdigs,
			       (size_t)f1 + p->nr_fdigs, sizeof(*b->fdigs))) <
		    0 ||
	    (r = lp_grow_array((void **)&b->pool, &b->pool_cap,
			       b->pool_len + plen, 1)) < 0 ||
	    (r = toc_hash_reserve(b, n2)) < 0)
		goto out;
	/* owner names the serial parse would have taken from before the
	   split (the same name for the id: no new string) */
	for (size_t k = 0; k < p->nr_owner_new; k++) {
		uint32_t o = (uint32_t)(p->owner_new[k][0] >> 1);
		const struct lp_hashmap *m =
			(p->owner_new[k][0] & 1) ? &b->gmap : &b->umap;
		uint64_t prev;

		if (lp_hashmap_get(m, p->owner_new[k][1], &prev) == 0 && prev &&
		    strcmp(b->pool + prev, p->pool + o) == 0) {
			r = lp_hashmap_put(&same, o, prev);
			if (r < 0)
				goto out;
		}
	}
	/* the part's own path hash is done with (the peak of a big parse
	   is here: its arrays are freed as they are copied) */
	free(p->htab);
	p->htab = NULL;
	/* the strings first: the path hash compares paths in @b's pool */
	memcpy(b->pool + b->pool_len, p->pool + 1, plen);
	for (j = 0; j < n2; j++) {
		const struct ent_strs *s = &p->strs[j];
		struct ent_strs *d = &b->strs[n1 + j];
		const struct bent *e = &p->ents[j];

		d->path = str_off(s->path, base);
		d->name = str_off(s->name, base);
		d->link = str_off(s->link, base);
		d->user = owner_off(b, &b->umap, &same, s->user, e->uid, base);
		d->group =
			owner_off(b, &b->gmap, &same, s->group, e->gid, base);
		b->hashes[n1 + j] = p->hashes[j];
	}
	free(p->strs);
	p->strs = NULL;
	free(p->hashes);
	p->hashes = NULL;
	free(p->pool);
	p->pool = NULL;
	/* parents from before the split, duplicates across it, in order */
	for (j = 0; j < n2; j++) {
		struct bent *e = &p->ents[j];
		const char *path = b->pool + b->strs[n1 + j].path, *slash;
		size_t len;

		if (j + 8 < n2)
			__builtin_prefetch(&b->htab[b->hashes[n1 + j + 8] &
						    (b->hcap - 1)]);
		if (e->parent == TOC_FRAG_ROOT) {
			e->parent = 0;
		} else if (e->parent == LP_TOC_NO_INDEX) {
			slash = strrchr(path, '/');
			len = slash ? (size_t)(slash - path) : 0;
			e->parent = toc_hash_lookup(
				b, path, len, toc_path_hash(b, path, len));
		} else {
			e->parent += n1;
		}
		if (toc_hash_put_new(b, n1 + j) != 0) {
			/* the serial parse says what is wrong */
			r = toc_hash_rebuild(b, n1);
			goto out;
		}
	}
	for (j = 0; j < n2; j++) {
		struct bent *d = &b->ents[n1 + j];

		*d = p->ents[j];
		d->ino = n1 + j;
		d->first_chunk += c1;
		d->first_xattr += x1;
		if ((d->flags & LP_TOC_HAS_DIGEST) &&
		    d->fdig != TOC_FDIG_CHUNK && d->fdig != TOC_FDIG_EMPTY)
			d->fdig += f1;
	}
	free(p->ents);
	p->ents = NULL;
	for (j = 0; j < p->nr_chunks; j++) {
		b->chunks[c1 + j] = p->chunks[j];
		b->chunks[c1 + j].entry += n1;
		if (p->chunks[j].dig != LP_TOC_NO_INDEX)
			b->chunks[c1 + j].dig += d1;
	}
	/* the chunkDigests stay in chunk order: the part's follow */
	if (p->nr_digs)
		memcpy(b->digs + d1, p->digs, p->nr_digs * sizeof(*b->digs));
	if (p->nr_fdigs)
		memcpy(b->fdigs + f1, p->fdigs,
		       p->nr_fdigs * sizeof(*b->fdigs));
	free(p->digs);
	p->digs = NULL;
	free(p->fdigs);
	p->fdigs = NULL;
	for (j = 0; j < p->nr_xattrs; j++) {
		struct xattr_tmp *x = &b->xattrs[x1 + j];

		x->name = str_off(p->xattrs[j].name, base);
		x->value = str_off(p->xattrs[j].value, base);
		x->len = p->xattrs[j].len;
	}
	b->nr_ents += n2;
	b->nr_chunks += p->nr_chunks;
	b->nr_digs += p->nr_digs;
	b->nr_fdigs += p->nr_fdigs;
	b->nr_xattrs += p->nr_xattrs;
	b->pool_len += plen;
	if (p->landmark)
		b->prefetch_end = p->prefetch_end;
	if (p->last_ent != LP_TOC_NO_INDEX)
		b->last_ent = p->last_ent + n1;
	b->last_dir = LP_TOC_NO_INDEX;
	b->json_idx += p->json_idx;
	r = 1;
out:
	lp_hashmap_release(&same);
	return r;
}

/*
 * whether the part, not done yet, has more than half of itself left: its
 * thread got less of the machine than this one, and parsing the part here
 * would end sooner than waiting for it (a forced split always waits)
 */
static bool part_behind(struct toc_split *sp)
{
	size_t at = atomic_load_explicit(&sp->part_at, memory_order_relaxed);
	bool done;

	if (sp->target)
		return false;
	pthread_mutex_lock(&sp->lock);
	done = sp->job_done;
	pthread_mutex_unlock(&sp->lock);
	return !done && at < sp->point + (sp->len - sp->point) / 2;
}

int toc_split_at(struct toc_split *sp, struct builder *b, size_t pos,
		 size_t *ret_end)
{
	int r = 0;

	if (sp->done)
		return 0;
	if (!sp->target) {
		/* the thread chooses the point ahead of the scan: no wait */
		atomic_store_explicit(&sp->main_pos, pos, memory_order_relaxed);
		if (!atomic_load_explicit(&sp->decided, memory_order_acquire))
			return 0;
		sp->seen = true;
	}
	if (pos < sp->target)
		return 0;
	if (!sp->seen) {
		pthread_mutex_lock(&sp->lock);
		while (!sp->decided)
			pthread_cond_wait(&sp->cond, &sp->lock);
		pthread_mutex_unlock(&sp->lock);
		sp->seen = true;
	}
	if (sp->point >= sp->len || pos > sp->point) {
		split_drop(sp); /* none, or not where an entry starts */
		goto out;
	}
	if (pos < sp->point)
		goto out;
	if (part_behind(sp)) {
		split_drop(sp); /* parsing it here is sooner than waiting */
		goto out;
	}
	split_wait(sp);
	sp->done = true;
	if (sp->result == 0) {
		r = split_join(b, sp->part);
		if (r > 0)
			*ret_end = sp->end;
	}
	atomic_fetch_add_explicit(r > 0 ? &toc_split_probe.joined :
					  &toc_split_probe.dropped,
				  1, memory_order_relaxed);
	toc_builder_release(sp->part);
	free(sp->part);
	sp->part = NULL;
out:
	return r;
}
