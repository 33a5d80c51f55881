// SPDX-License-Identifier: Apache-2.0
/*
 * The memory tier of the chunk cache and its single flight: a table of the
 * chunks being fetched or held (a hash on the TOC chunk index, sized to what
 * is cached, not to the layer), a chunk is fetched by exactly one thread
 * however many readers want it (the others wait on `settled`), and only
 * verified data is published.
 * READY chunks sit on an LRU list stamped by the budget's clock; the tier is
 * a member of the process's memory budget (mem_budget.c), which charges
 * each chunk kept (its bytes and its record) before it goes in and, to make
 * room, has the tiers of all layers evict their coldest chunks, globally
 * least recent first (cache_shrink): unpinned chunks go first, then pinned
 * ones, which readers keep alive by their references until they are done,
 * so the tiers together never hold more than the budget.
 *
 * What is kept: chunks read on demand (with their read-ahead) and
 * prefetched ones, most recent first. Chunks the background fetch brings
 * are handed to whoever waits for them but not kept when there is a disk
 * tier: the disk tier has them, and once read, the kernel's page cache; a
 * daemon with many layers would otherwise fill its budget with the rest of
 * every layer (measured in docs/benchmarks.md). Without a disk tier they
 * are kept, cold: evicted before anything a reader used.
 *
 * What to claim together is the planner's (fs/plan.c) and who fills a
 * claim the pipeline's (fs/pipeline.c): this file only claims the absent
 * chunks of the range it is given and publishes what it is handed. A run of
 * chunks claimed together is published chunk by chunk, so a reader waiting
 * on one wakes as soon as that one is in, not when the run ends.
 *
 * Lock order: budget.lock, then cache.lock (the budget's eviction calls
 * cache_shrink with its lock held); no other lock is taken while
 * cache.lock is held, and budget.lock is never taken while holding it
 * (fs_budget_reserve and fs_budget_enforce run unlocked; fetching runs
 * unlocked).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

#define TAB_MIN 16 /* slots; a power of two */

static size_t tab_home(const struct fs_cache *c, uint32_t ci)
{
	return (size_t)(ci * 0x9e3779b1u) & (c->tab_cap - 1);
}

static struct fs_chunk *tab_get(const struct fs_cache *c, uint32_t ci)
{
	size_t mask = c->tab_cap - 1, i;

	for (i = tab_home(c, ci); c->tab[i]; i = (i + 1) & mask) {
		if (c->tab[i]->ci == ci)
			return c->tab[i];
	}
	return NULL;
}

static void tab_place(struct fs_cache *c, struct fs_chunk *ch)
{
	size_t mask = c->tab_cap - 1, i;

	for (i = tab_home(c, ch->ci); c->tab[i]; i = (i + 1) & mask)
		;
	c->tab[i] = ch;
}

static int tab_resize(struct fs_cache *c, size_t cap)
{
	struct fs_chunk **old = c->tab;
	size_t old_cap = c->tab_cap, i;

	c->tab = calloc(cap, sizeof(*c->tab));
	if (!c->tab) {
		c->tab = old;
		return -ENOMEM;
	}
	c->tab_cap = cap;
	for (i = 0; i < old_cap; i++) {
		if (old[i])
			tab_place(c, old[i]);
	}
	free(old);
	return 0;
}

/* room for one more chunk (load at most 1/2); -ENOMEM leaves it as it was */
static int tab_reserve(struct fs_cache *c)
{
	if ((c->tab_used + 1) * 2 <= c->tab_cap)
		return 0;
	return tab_resize(c, c->tab_cap * 2);
}

/* after tab_reserve(); @ch->ci must not be in the table */
static void tab_add(struct fs_cache *c, struct fs_chunk *ch)
{
	tab_place(c, ch);
	c->tab_used++;
}

/* take chunk @ci out (linear probing: later members of its run move up) */
static void tab_del(struct fs_cache *c, uint32_t ci)
{
	size_t mask = c->tab_cap - 1, i, j, k;

	for (i = tab_home(c, ci); c->tab[i]->ci != ci; i = (i + 1) & mask)
		;
	for (j = (i + 1) & mask; c->tab[j]; j = (j + 1) & mask) {
		k = tab_home(c, c->tab[j]->ci);
		/* move unless its home lies cyclically in (i, j] */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			c->tab[i] = c->tab[j];
			i = j;
		}
	}
	c->tab[i] = NULL;
	c->tab_used--;
	/* give memory back after a burst (failure keeps the bigger table) */
	if (c->tab_cap > TAB_MIN && c->tab_used * 8 < c->tab_cap)
		tab_resize(c, c->tab_cap / 2);
}

static size_t cache_shrink(struct fs_mem_member *m, uint64_t upto, size_t want,
			   bool pinned);

int fs_cache_init(struct fs_cache *c, uint32_t nr_chunks,
		  struct lp_fs_budget *mem, bool keep_background)
{
	int r = 0;

	memset(c, 0, sizeof(*c));
	c->tab = calloc(TAB_MIN, sizeof(*c->tab));
	c->tab_cap = TAB_MIN;
	if (!c->tab) {
		r = -ENOMEM;
		goto out;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->settled, NULL);
	c->lru.lru_next = &c->lru;
	c->lru.lru_prev = &c->lru;
	c->mem = mem;
	c->budget = lp_fs_budget_bytes(mem);
	c->keep_background = keep_background;
	c->nr_chunks = nr_chunks;
	c->member.shrink = cache_shrink;
	fs_budget_join(mem, &c->member);
out:
	return r;
}

static void chunk_unref_locked(struct fs_chunk *ch)
{
	if (--ch->refs)
		return;
	free(ch->data);
	free(ch);
}

/* what a kept chunk is charged: its bytes and its record */
static size_t chunk_charge(const struct fs_chunk *ch)
{
	return ch->len + sizeof(*ch);
}

/* tell the budget how old our coldest chunk is (after any LRU change) */
static void note_cold(struct fs_cache *c)
{
	atomic_store(&c->member.cold, c->lru.lru_prev == &c->lru ?
					      UINT64_MAX :
					      c->lru.lru_prev->stamp);
}

static void lru_unlink(struct fs_cache *c, struct fs_chunk *ch)
{
	ch->lru_prev->lru_next = ch->lru_next;
	ch->lru_next->lru_prev = ch->lru_prev;
	ch->in_lru = false;
	note_cold(c);
}

/*
 * Put @ch at the recent end, stamped now, or (@cold) at the cold end with
 * stamp 0: older than anything a reader used, in every layer. Either way
 * the list stays ordered by stamp.
 */
static void lru_add(struct fs_cache *c, struct fs_chunk *ch, bool cold)
{
	struct fs_chunk *prev = cold ? c->lru.lru_prev : &c->lru;

	ch->stamp = cold ? 0 : fs_budget_stamp(c->mem);
	ch->lru_prev = prev;
	ch->lru_next = prev->lru_next;
	prev->lru_next->lru_prev = ch;
	prev->lru_next = ch;
	ch->in_lru = true;
	note_cold(c);
}

void fs_cache_destroy(struct fs_cache *c)
{
	size_t i;

	if (!c->tab)
		return;
	fs_budget_leave(c->mem, &c->member); /* no evictor comes here now */
	fs_budget_release(c->mem, c->used);
	for (i = 0; i < c->tab_cap; i++) {
		struct fs_chunk *ch = c->tab[i];

		/* threads are gone: only the table reference is left */
		if (ch) {
			free(ch->data);
			free(ch);
		}
	}
	free(c->tab);
	c->tab = NULL;
	pthread_cond_destroy(&c->settled);
	pthread_mutex_destroy(&c->lock);
}

/* take READY chunk @ch out of the tier; returns the bytes it was charged */
static size_t evict_locked(struct fs_cache *c, struct fs_chunk *ch)
{
	size_t charge = chunk_charge(ch);

	lru_unlink(c, ch);
	tab_del(c, ch->ci);
	c->used -= charge;
	chunk_unref_locked(ch);
	return charge;
}

/*
 * The budget's eviction (struct fs_mem_member.shrink): least recent first,
 * those with stamps up to @upto (at least FS_BUDGET_BATCH bytes of them
 * regardless: progress in few picks), unpinned ones
 * only unless @pinned. A pinned chunk leaves the tier but not memory: its
 * readers keep their references and the data goes with the last one, so
 * the tiers never hold more than the budget and what readers hold in
 * flight is theirs (a too-small budget means refetching, never an
 * overrun).
 */
static size_t cache_shrink(struct fs_mem_member *m, uint64_t upto, size_t want,
			   bool pinned)
{
	struct fs_cache *c =
		(struct fs_cache *)((char *)m -
				    offsetof(struct fs_cache, member));
	struct fs_chunk *ch, *prev;
	size_t freed = 0;

	pthread_mutex_lock(&c->lock);
	for (ch = c->lru.lru_prev; ch != &c->lru && freed < want; ch = prev) {
		prev = ch->lru_prev;
		if (freed >= FS_BUDGET_BATCH && ch->stamp > upto)
			break; /* another layer's chunks are older now */
		if (pinned || ch->refs == 1)
			freed += evict_locked(c, ch);
	}
	pthread_mutex_unlock(&c->lock);
	return freed;
}

static void touch_locked(struct fs_cache *c, struct fs_chunk *ch)
{
	if (!ch->in_lru)
		return;
	lru_unlink(c, ch);
	lru_add(c, ch, false);
}

/*
 * claim @ci and its absent successors below @end; the caller has made room
 * for @ci (tab_reserve)
 */
static uint32_t claim_locked(struct fs_cache *c, uint32_t ci, uint32_t end,
			     struct fs_chunk *first)
{
	uint32_t n = 1, j;

	first->ci = ci;
	first->state = FS_CHUNK_LOADING;
	first->refs = 1; /* the table's */
	tab_add(c, first);
	if (end > c->nr_chunks)
		end = c->nr_chunks;
	for (j = ci + 1; j < end && n < FS_MAX_RUN; j++, n++) {
		struct fs_chunk *ch;

		if (tab_get(c, j) || tab_reserve(c) < 0)
			break;
		ch = calloc(1, sizeof(*ch));
		if (!ch)
			break;
		ch->ci = j;
		ch->state = FS_CHUNK_LOADING;
		ch->refs = 1;
		tab_add(c, ch);
	}
	return n;
}

/* whether a reader waits for claimed chunk @ci (it holds a reference) */
static bool has_waiters(struct fs_cache *c, uint32_t ci)
{
	bool waiters;

	pthread_mutex_lock(&c->lock);
	waiters = tab_get(c, ci)->refs > 1;
	pthread_mutex_unlock(&c->lock);
	return waiters;
}

/*
 * Settle one claimed chunk: READY with @data (the cache takes it) when
 * @res is 0, else FAILED and out of the table. Waiters wake at once, each
 * for its own chunk, not when the rest of the run is in. A READY chunk is
 * kept (charged, room made first) unless it came from the background
 * fetch, a disk tier has it, and nobody waited for it (a reader who did
 * is probably reading on in it). One not kept leaves the table at once
 * and goes with its last waiter, unless the caller pins it (@ret_pin) for
 * its disk-tier write: then it stays findable, uncharged and off the LRU
 * (transient), until fs_chunk_written(), so that no reader finds it in
 * neither tier in between (bounded by the writer's queue).
 */
void fs_chunk_publish(struct lp_fs *fs, uint32_t ci, uint8_t *data, int res,
		      bool retryable, enum fs_fetch_kind kind,
		      struct fs_chunk **ret_pin)
{
	struct fs_cache *c = &fs->cache;
	size_t len = lp_toc_chunk(fs->toc, ci).chunk_size;
	size_t charge = len + sizeof(struct fs_chunk);
	struct fs_chunk *ch;
	bool keep = res == 0;

	if (keep && kind == FS_FETCH_BACKGROUND && !c->keep_background)
		keep = has_waiters(c, ci);
	if (keep)
		fs_budget_reserve(c->mem, charge); /* before, unlocked */
	pthread_mutex_lock(&c->lock);
	ch = tab_get(c, ci);
	if (res == 0) {
		ch->data = data;
		ch->len = len;
		ch->state = FS_CHUNK_READY;
	}
	if (keep) {
		c->used += charge;
		lru_add(c, ch, kind == FS_FETCH_BACKGROUND);
		if (ret_pin) {
			ch->refs++;
			*ret_pin = ch;
		}
	} else if (res == 0 && ret_pin) {
		/* not kept, but findable until the disk tier has it: a reader
		 * in between would otherwise go to the blob for it */
		ch->transient = true;
		ch->refs++;
		*ret_pin = ch;
	} else if (res == 0) {
		tab_del(c, ci); /* waiters keep theirs */
		chunk_unref_locked(ch);
	} else {
		ch->state = FS_CHUNK_FAILED;
		ch->error = res;
		ch->retryable = retryable;
		tab_del(c, ci);
		chunk_unref_locked(ch);
	}
	pthread_cond_broadcast(&c->settled);
	pthread_mutex_unlock(&c->lock);
	if (keep) {
		/* room again for what others reserved meanwhile; the peak is
		 * what the tier holds once that is done */
		fs_budget_enforce(c->mem);
		pthread_mutex_lock(&c->lock);
		if (c->used > c->peak)
			c->peak = c->used;
		pthread_mutex_unlock(&c->lock);
	}
}

int fs_chunk_claim(struct lp_fs *fs, uint32_t ci, uint32_t end,
		   struct fs_chunk **ret_chunk, uint32_t *ret_n,
		   bool *ret_retryable)
{
	struct fs_cache *c = &fs->cache;
	struct fs_chunk *ch, *fresh;
	int r;

	*ret_n = 1;
	*ret_retryable = false;
	/* allocated outside the lock; freed below when not needed */
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	ch = tab_get(c, ci);
	if (ch && ch->state == FS_CHUNK_READY) {
		if (ret_chunk) {
			ch->refs++;
			touch_locked(c, ch);
			*ret_chunk = ch;
		}
		r = FS_CLAIM_READY;
	} else if (ch && !ret_chunk) {
		r = FS_CLAIM_BUSY;
	} else if (ch) {
		/* LOADING: single flight, wait for the fetcher */
		ch->refs++;
		while (ch->state == FS_CHUNK_LOADING)
			pthread_cond_wait(&c->settled, &c->lock);
		if (ch->state == FS_CHUNK_READY) {
			touch_locked(c, ch);
			*ret_chunk = ch;
			r = FS_CLAIM_WAITED;
		} else {
			r = ch->error;
			*ret_retryable = ch->retryable;
			chunk_unref_locked(ch);
		}
	} else if (tab_reserve(c) < 0) {
		r = -ENOMEM;
	} else {
		*ret_n = claim_locked(c, ci, end, fresh);
		if (ret_chunk) {
			fresh->refs++; /* pinned before anyone can evict it */
			*ret_chunk = fresh;
		}
		fresh = NULL;
		r = FS_CLAIM_CLAIMED;
	}
	pthread_mutex_unlock(&c->lock);
	free(fresh);
	return r;
}

void fs_chunk_written(struct lp_fs *fs, struct fs_chunk *ch)
{
	struct fs_cache *c = &fs->cache;

	pthread_mutex_lock(&c->lock);
	if (ch->transient) {
		ch->transient = false;
		if (tab_get(c, ch->ci) == ch) {
			/* drop the table's reference; the caller's pin stays */
			tab_del(c, ch->ci);
			chunk_unref_locked(ch);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

struct fs_chunk *fs_chunk_pin_ready(struct lp_fs *fs, uint32_t ci)
{
	struct fs_chunk *ch;

	pthread_mutex_lock(&fs->cache.lock);
	ch = tab_get(&fs->cache, ci);
	if (ch && ch->state == FS_CHUNK_READY)
		ch->refs++;
	else
		ch = NULL;
	pthread_mutex_unlock(&fs->cache.lock);
	return ch;
}

void fs_chunk_put(struct lp_fs *fs, struct fs_chunk *chunk)
{
	if (!chunk)
		return;
	pthread_mutex_lock(&fs->cache.lock);
	chunk_unref_locked(chunk);
	pthread_mutex_unlock(&fs->cache.lock);
}

bool fs_chunk_is_cached(struct lp_fs *fs, uint32_t ci)
{
	struct fs_chunk *ch;
	bool ready;

	pthread_mutex_lock(&fs->cache.lock);
	ch = tab_get(&fs->cache, ci);
	ready = ch && ch->state == FS_CHUNK_READY;
	pthread_mutex_unlock(&fs->cache.lock);
	return ready;
}

bool fs_chunk_is_present(struct lp_fs *fs, uint32_t ci)
{
	bool present;

	pthread_mutex_lock(&fs->cache.lock);
	present = tab_get(&fs->cache, ci) != NULL;
	pthread_mutex_unlock(&fs->cache.lock);
	return present;
}

void fs_cache_usage(struct lp_fs *fs, size_t *ret_used, size_t *ret_peak)
{
	pthread_mutex_lock(&fs->cache.lock);
	*ret_used = fs->cache.used;
	*ret_peak = fs->cache.peak;
	pthread_mutex_unlock(&fs->cache.lock);
}
