// SPDX-License-Identifier: Apache-2.0
/*
 * Capped growable buffer: see lp_buf.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_buf.h"

void lp_buf_init(struct lp_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->limit = limit;
}

int lp_buf_reserve(struct lp_buf *b, size_t extra)
{
	size_t need, n;
	uint8_t *p;

	if (extra > b->limit - b->len)
		return -EFBIG;
	need = b->len + extra + 1; /* room for the NUL */
	if (need <= b->alloc)
		return 0;
	n = b->alloc ? b->alloc : 256;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	if (n > b->limit + 1)
		n = b->limit + 1;
	p = realloc(b->data, n);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->alloc = n;
	return 0;
}

int lp_buf_append(struct lp_buf *b, const void *data, size_t len)
{
	int r;

	r = lp_buf_reserve(b, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int lp_buf_printf(struct lp_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = lp_buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void lp_buf_reset(struct lp_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void lp_buf_release(struct lp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

uint8_t *lp_buf_steal(struct lp_buf *b, size_t *ret_len)
{
	uint8_t *p = b->data;

	if (ret_len)
		*ret_len = b->len;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

int lp_grow_array(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (elem && n > SIZE_MAX / elem)
		return -ENOMEM;
	np = realloc(*p, n * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = n;
	return 0;
}
