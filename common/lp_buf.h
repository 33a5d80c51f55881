/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer with a hard cap (as curl's dynbuf): appending past
 * the cap fails with -EFBIG instead of growing without bound. The data is
 * always NUL-terminated (the NUL is not counted in len), so a buffer holding
 * text can be passed to string functions.
 *
 * lp_grow_array() is the same growth for arrays whose bound the caller
 * checks (entry counts, pools): capacity doubles, from 16 elements.
 */
#ifndef LP_BUF_H
#define LP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct lp_buf {
	uint8_t *data; /* NULL until the first append */
	size_t len;
	size_t alloc;
	size_t limit; /* len never exceeds this */
};

/* lp_buf_init() - an empty buffer that may hold up to @limit bytes. */
void lp_buf_init(struct lp_buf *b, size_t limit);

/* lp_buf_append() - 0, -EFBIG past the limit, -ENOMEM. */
int lp_buf_append(struct lp_buf *b, const void *data, size_t len);

/* lp_buf_printf() - append formatted text; same returns as lp_buf_append. */
int lp_buf_printf(struct lp_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* lp_buf_reserve() - make room for @extra more bytes without appending. */
int lp_buf_reserve(struct lp_buf *b, size_t extra);

/* lp_buf_reset() - len = 0, keeps the allocation. */
void lp_buf_reset(struct lp_buf *b);

/* lp_buf_release() - free the data; the buffer is empty again. */
void lp_buf_release(struct lp_buf *b);

/* lp_buf_steal() - hand the data to the caller (free() it); buffer empties. */
uint8_t *lp_buf_steal(struct lp_buf *b, size_t *ret_len);

/*
 * lp_grow_array() - make room for @need elements of @elem bytes in the
 * realloc'ed array *@p of *@cap elements, doubling *@cap. On failure *@p and
 * *@cap are unchanged. Returns 0, or -ENOMEM (also when the size overflows).
 */
int lp_grow_array(void **p, size_t *cap, size_t need, size_t elem);

#endif /* LP_BUF_H */
