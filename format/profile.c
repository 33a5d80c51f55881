// SPDX-License-Identifier: Apache-2.0
/*
 * Prefetch profiles (lp_profile.h): one layer's share of a profile, read
 * one line at a time with the one prioritised-list parser (lp_prio_parse)
 * under the profile's own, tighter bounds. Only the layer's own items are
 * kept (at most LP_PROFILE_MAX_PER_LAYER): a line of another layer is
 * parsed and dropped, and a line without a layer digest refuses the
 * profile as soon as it is read, so a refused or foreign profile costs one
 * line's parse, not an item per line (a profile of 2 MiB of "a\n" would
 * otherwise build a million items before it is refused).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_buf.h"
#include "lp_profile.h"

/* room for "NAME:LINE" in messages */
#define PROFILE_WHERE_MAX 512

/* the items taken so far, grown by one */
static int take(struct lp_prio_list *l, size_t *cap, struct lp_prio *it)
{
	int r = lp_grow_array((void **)&l->items, cap, l->n + 1,
			      sizeof(*l->items));

	if (r < 0)
		return r;
	l->items[l->n++] = *it;
	memset(it, 0, sizeof(*it));
	return 0;
}

int lp_profile_layer(const void *data, size_t len, const char *name,
		     const struct lp_digest *layer, struct lp_prio_list *ret,
		     struct lp_err *err)
{
	struct lp_prio_list all = { 0 }, one = { 0 };
	const char *p = data;
	char where[PROFILE_WHERE_MAX];
	size_t pos = 0, lineno = 0, cap = 0, n;
	const char *nl;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (len > LP_PROFILE_MAX_SIZE)
		return lp_err_set(err, -EFBIG,
				  "%s: %zu bytes, over LP_PROFILE_MAX_SIZE "
				  "(%u)",
				  name, len, (unsigned)LP_PROFILE_MAX_SIZE);
	while (pos < len) {
		nl = memchr(p + pos, '\n', len - pos);
		n = nl ? (size_t)(nl - (p + pos)) + 1 : len - pos;
		lineno++;
		snprintf(where, sizeof(where), "%s line %zu", name, lineno);
		/* the line alone: its bounds, blanks and comments are the
		 * list reader's */
		r = lp_prio_parse(p + pos, n, where, &one, err);
		pos += n;
		if (r < 0)
			goto out;
		if (one.n == 0)
			continue; /* blank, a comment */
		if (!one.items[0].has_digest) {
			r = lp_err_set(err, -EINVAL,
				       "%s: entry %s names no "
				       "\"layer_digest\"",
				       where, one.items[0].path);
			goto out;
		}
		if (lp_digest_equal(&one.items[0].layer_digest, layer) &&
		    all.n < LP_PROFILE_MAX_PER_LAYER) {
			r = take(&all, &cap, &one.items[0]);
			if (r < 0)
				goto out;
			one.n = 0; /* its path moved to @all */
		}
		lp_prio_release(&one);
	}
	*ret = all;
	all.items = NULL;
	all.n = 0;
	r = (int)ret->n;
out:
	lp_prio_release(&one);
	lp_prio_release(&all);
	return r;
}
