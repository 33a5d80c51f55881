// SPDX-License-Identifier: Apache-2.0
/*
 * One memory budget for every layer of a process: the byte count of all
 * memory tiers together (struct lp_fs_budget, made once by whoever mounts
 * the layers and passed to each in lp_fs_options.mem_budget) and the one
 * decision of what leaves memory when a chunk needs room.
 *
 * Each layer's tier (chunk_cache.c) keeps its own table, single flight and
 * LRU list under its own lock, and joins the budget as a member. A chunk
 * carries a stamp from the budget's clock, taken when it is used, so every
 * member's LRU list is ordered by one process-wide notion of "recent"; the
 * budget evicts from the member whose coldest chunk is the oldest, down to
 * the next member's coldest, and so on: the merge of the members' LRU
 * lists, which is a global LRU without a global list or lock on the read
 * path (to within FS_BUDGET_BATCH bytes a pick, so that tiny chunks
 * interleaved across many layers do not cost a scan of the members each). Why not the alternatives: one list under one lock would serialise
 * every cache hit of every layer on one mutex; each layer evicting only its
 * own chunks until the total fits would make the layer that is being read
 * give up its hot chunks while idle layers keep their cold ones forever.
 *
 * Room is made before a chunk is charged (fs_budget_reserve), under the
 * budget's lock, so the charged total stays within the budget: chunks
 * nobody uses go first, then chunks readers have pinned (they leave the
 * tier, the readers keep their references and the memory goes with the
 * last one), so what exceeds the budget is only what readers hold in
 * flight. Fetchers reserving at the same time can each count on room the
 * other's chunk, not in a tier yet, cannot give back: once its chunk is in,
 * each evicts again (fs_budget_enforce), and the peak is taken then. A
 * tier charges its chunks' bytes plus their records.
 *
 * What it does not do: count anything but chunks in memory tiers and the
 * compressed spans of gzip index mounts and the spans they keep decoded
 * whole (format/index_spans.c, fs/index_fetch.c: members like a tier;
 * TOCs, threads, buffers of fetches in flight are outside the budget), or
 * look at the process's RSS.
 *
 * Lock order: budget.lock, then a member's cache.lock (inside the member's
 * shrink callback); nobody takes budget.lock while holding a cache.lock.
 * `used` and the clock are atomics, updated without the lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs_int.h"

struct lp_fs_budget {
	size_t limit; /* immutable */
	atomic_size_t used; /* charged bytes of every member */
	atomic_size_t peak; /* the highest used seen */
	atomic_uint_fast64_t clock; /* the last stamp handed out */
	pthread_mutex_t lock; /* serialises eviction and reservation */
	struct fs_mem_member head; /* sentinel of the members; protected by
				      lock */
	unsigned int gen; /* eviction rounds; protected by lock */
};

int lp_fs_budget_new(size_t bytes, struct lp_fs_budget **ret_budget)
{
	struct lp_fs_budget *b;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->limit = bytes ? bytes : LP_FS_DEFAULT_MEM_CACHE;
	pthread_mutex_init(&b->lock, NULL);
	b->head.next = &b->head;
	b->head.prev = &b->head;
	*ret_budget = b;
	return 0;
}

void lp_fs_budget_free(struct lp_fs_budget *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

size_t lp_fs_budget_bytes(const struct lp_fs_budget *b)
{
	return b->limit;
}

void lp_fs_budget_usage(struct lp_fs_budget *b, size_t *ret_used,
			size_t *ret_peak)
{
	*ret_used = atomic_load(&b->used);
	*ret_peak = atomic_load(&b->peak);
}

uint64_t fs_budget_stamp(struct lp_fs_budget *b)
{
	return atomic_fetch_add(&b->clock, 1) + 1;
}

void fs_budget_join(struct lp_fs_budget *b, struct fs_mem_member *m)
{
	atomic_store(&m->cold, UINT64_MAX);
	pthread_mutex_lock(&b->lock);
	m->prev = b->head.prev;
	m->next = &b->head;
	b->head.prev->next = m;
	b->head.prev = m;
	pthread_mutex_unlock(&b->lock);
}

void fs_budget_leave(struct lp_fs_budget *b, struct fs_mem_member *m)
{
	pthread_mutex_lock(&b->lock);
	m->prev->next = m->next;
	m->next->prev = m->prev;
	m->prev = m->next = NULL;
	pthread_mutex_unlock(&b->lock);
}

void fs_budget_release(struct lp_fs_budget *b, size_t bytes)
{
	atomic_fetch_sub(&b->used, bytes);
}

/*
 * The member with the oldest coldest chunk, not yet found empty in round
 * @gen, and the stamp of the runner-up's coldest (UINT64_MAX: none): what
 * the chosen one may evict down to before another member is older.
 */
static struct fs_mem_member *coldest(struct lp_fs_budget *b, unsigned int gen,
				     uint64_t *ret_next)
{
	struct fs_mem_member *m, *best = NULL;
	uint64_t best_cold = UINT64_MAX, next = UINT64_MAX;

	for (m = b->head.next; m != &b->head; m = m->next) {
		uint64_t cold = atomic_load(&m->cold);

		if (m->gen == gen || cold == UINT64_MAX)
			continue;
		if (!best || cold < best_cold) {
			if (best)
				next = best_cold;
			best = m;
			best_cold = cold;
		} else if (cold < next) {
			next = cold;
		}
	}
	*ret_next = next;
	return best;
}

/* evict until used + @bytes fits (pass 0: unpinned chunks; pass 1: any) */
static void make_room_locked(struct lp_fs_budget *b, size_t bytes)
{
	int pass;

	for (pass = 0; pass < 2; pass++) {
		unsigned int gen = ++b->gen;

		for (;;) {
			size_t used = atomic_load(&b->used), freed;
			struct fs_mem_member *m;
			uint64_t next;

			if (used + bytes <= b->limit)
				return;
			m = coldest(b, gen, &next);
			if (!m)
				break;
			freed = m->shrink(m, next, used + bytes - b->limit,
					  pass == 1);
			if (freed)
				atomic_fetch_sub(&b->used, freed);
			else
				m->gen = gen; /* nothing more there this pass */
		}
	}
}

static void note_peak(struct lp_fs_budget *b, size_t used)
{
	size_t peak = atomic_load(&b->peak);

	while (used > peak &&
	       !atomic_compare_exchange_weak(&b->peak, &peak, used))
		;
}

void fs_budget_reserve(struct lp_fs_budget *b, size_t bytes)
{
	pthread_mutex_lock(&b->lock);
	make_room_locked(b, bytes);
	atomic_fetch_add(&b->used, bytes);
	pthread_mutex_unlock(&b->lock);
}

void fs_budget_enforce(struct lp_fs_budget *b)
{
	if (atomic_load(&b->used) > b->limit) {
		pthread_mutex_lock(&b->lock);
		make_room_locked(b, 0);
		pthread_mutex_unlock(&b->lock);
	}
	note_peak(b, atomic_load(&b->used));
}
