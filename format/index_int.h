/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gzip index's parser (index.c) hands its stream (index_stream.c):
 * a checkpoint's compressed window. Not included from other modules.
 */
#ifndef LP_INDEX_INT_H
#define LP_INDEX_INT_H

#include "lp_index.h"

/*
 * lp_index_checkpoint_mark_verified() - checkpoint @i is a proven resume
 * point: a stream that started at a verified checkpoint reached it and
 * found the inflate state there to be the one the index describes. Only
 * index_stream.c calls it (atomic: any thread).
 */
void lp_index_checkpoint_mark_verified(const struct lp_index *ix, size_t i);
/* lp_index_last_verified() - the last verified checkpoint <= @i (0 is). */
size_t lp_index_last_verified(const struct lp_index *ix, size_t i);

/* the @c->window_len bytes of checkpoint @c's compressed window */
const uint8_t *lp_index_window_data(const struct lp_index *ix,
				    const struct lp_index_checkpoint *c);

#endif /* LP_INDEX_INT_H */
