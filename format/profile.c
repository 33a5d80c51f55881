// SPDX-License-Identifier: Apache-2.0
/*
 * Prefetch profiles (lp_profile.h): one layer's share of a profile, read
 * with the one prioritised-list parser (lp_prio_parse) under the profile's
 * own, tighter bounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lp_profile.h"

int lp_profile_layer(const void *data, size_t len, const char *name,
		     const struct lp_digest *layer, struct lp_prio_list *ret,
		     struct lp_err *err)
{
	struct lp_prio_list all = { 0 };
	size_t i, n = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (len > LP_PROFILE_MAX_SIZE)
		return lp_err_set(err, -EFBIG,
				  "%s: %zu bytes, over LP_PROFILE_MAX_SIZE "
				  "(%u)",
				  name, len, (unsigned)LP_PROFILE_MAX_SIZE);
	r = lp_prio_parse(data, len, name, &all, err);
	if (r < 0)
		return r;
	for (i = 0; i < all.n; i++) {
		if (!all.items[i].has_digest) {
			r = lp_err_set(err, -EINVAL,
				       "%s: entry %zu (%s) names no "
				       "\"layer_digest\"",
				       name, i + 1, all.items[i].path);
			goto out;
		}
	}
	/* the layer's items, moved to the front in order */
	for (i = 0; i < all.n; i++) {
		struct lp_prio it = all.items[i];

		if (!lp_digest_equal(&it.layer_digest, layer) ||
		    n >= LP_PROFILE_MAX_PER_LAYER)
			continue;
		all.items[i] = all.items[n];
		all.items[n++] = it;
	}
	for (i = n; i < all.n; i++)
		free(all.items[i].path);
	all.n = n;
	*ret = all;
	all.items = NULL;
	all.n = 0;
	r = (int)n;
out:
	lp_prio_release(&all);
	return r;
}
