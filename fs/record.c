// SPDX-License-Identifier: Apache-2.0
/*
 * Access recording, the profile of profile-guided prefetch: when switched
 * on, the first open of each regular file and the first readlink of each
 * symlink are remembered, in order, as TOC entry indexes. Only those count:
 * overlayfs looks names up (and stats them) in every lower layer, but opens
 * a file or reads a link only in the layer it takes it from, so a record
 * kept per layer mount names exactly the serving layer's entries. A mapping
 * (the dynamic loader's mmap) starts with an open too.
 *
 * Lock order: record.lock is a leaf (see fs_int.h); nothing is called with
 * it held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

int lp_fs_record_start(struct lp_fs *fs)
{
	struct fs_record *rec = &fs->record;
	uint32_t nr = lp_toc_nr_entries(fs->toc);
	uint8_t *seen = NULL;
	uint32_t *order = NULL;
	int r = 0;

	pthread_mutex_lock(&rec->lock);
	if (rec->seen)
		goto out; /* already on: keep what was recorded */
	/* every entry at most once: the order array never grows */
	seen = calloc(nr / 8 + 1, 1);
	order = malloc((nr ? nr : 1) * sizeof(*order));
	if (!seen || !order) {
		r = -ENOMEM;
		goto out;
	}
	rec->seen = seen;
	rec->order = order;
	rec->n = 0;
	seen = NULL;
	order = NULL;
	atomic_store_explicit(&rec->on, true, memory_order_release);
out:
	pthread_mutex_unlock(&rec->lock);
	free(seen);
	free(order);
	return r;
}

bool lp_fs_recording(struct lp_fs *fs)
{
	return atomic_load_explicit(&fs->record.on, memory_order_acquire);
}

void fs_record_access(struct lp_fs *fs, uint32_t idx)
{
	struct fs_record *rec = &fs->record;

	if (!atomic_load_explicit(&rec->on, memory_order_acquire))
		return;
	if (idx >= lp_toc_nr_entries(fs->toc))
		return;
	pthread_mutex_lock(&rec->lock);
	if (!(rec->seen[idx / 8] & (1u << (idx % 8)))) {
		rec->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
		rec->order[rec->n++] = idx;
	}
	pthread_mutex_unlock(&rec->lock);
}

int lp_fs_record_get(struct lp_fs *fs, uint32_t **ret_entries, size_t *ret_n)
{
	struct fs_record *rec = &fs->record;
	uint32_t *copy = NULL;
	size_t n = 0;
	int r = 0;

	pthread_mutex_lock(&rec->lock);
	if (rec->order)
		n = rec->n;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy) {
		r = -ENOMEM;
		goto out;
	}
	if (n)
		memcpy(copy, rec->order, n * sizeof(*copy));
	*ret_entries = copy;
	*ret_n = n;
	copy = NULL;
out:
	pthread_mutex_unlock(&rec->lock);
	free(copy);
	return r;
}

void fs_record_destroy(struct fs_record *rec)
{
	free(rec->seen);
	free(rec->order);
	pthread_mutex_destroy(&rec->lock);
}
