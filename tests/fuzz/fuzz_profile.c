// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: prefetch profiles (format/'s lp_profile_layer, what the
 * snapshotter reads from a registry artifact or an index_dirs file). The
 * input's first byte picks the layer asked for (a digest of 32 equal
 * bytes); the rest is the profile. On success every path must be non-empty,
 * NUL-free, within LP_PRIO_MAX_PATH, of that layer, and at most
 * LP_PROFILE_MAX_PER_LAYER of them; on failure nothing is handed out. The
 * oracle is the whole-list reader: lp_profile_layer (one line at a time)
 * takes a profile exactly when lp_prio_parse takes it and every item names
 * a layer digest, and then hands out lp_prio_parse's items of that layer,
 * in order, up to the cap.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_prio_list l = { 0 }, all = { 0 };
	struct lp_err err = { 0 }, err2 = { 0 };
	struct lp_digest layer;
	size_t i, k, n;
	bool valid;
	int r, r2;

	if (size < 1)
		return 0;
	memset(&layer, 0, sizeof(layer));
	memset(layer.b, data[0], sizeof(layer.b));
	r = lp_profile_layer(data + 1, size - 1, "fuzz", &layer, &l, &err);
	if (r < 0 && (l.n || l.items))
		abort();
	if (r >= 0) {
		if ((size_t)r != l.n || l.n > LP_PROFILE_MAX_PER_LAYER)
			abort();
		for (i = 0; i < l.n; i++) {
			if (!l.items[i].path || !l.items[i].has_digest ||
			    !lp_digest_equal(&l.items[i].layer_digest, &layer))
				abort();
			n = strlen(l.items[i].path);
			if (n == 0 || n > LP_PRIO_MAX_PATH)
				abort();
		}
	}
	if (size - 1 <= LP_PROFILE_MAX_SIZE && r != -ENOMEM) {
		r2 = lp_prio_parse((const char *)data + 1, size - 1, "fuzz",
				   &all, &err2);
		valid = r2 >= 0;
		for (i = 0; valid && i < all.n; i++)
			valid = all.items[i].has_digest;
		if (r2 != -ENOMEM && valid != (r >= 0))
			abort();
		for (i = 0, k = 0; r >= 0 && i < all.n && k < l.n; i++) {
			if (!lp_digest_equal(&all.items[i].layer_digest,
					     &layer))
				continue;
			if (strcmp(all.items[i].path, l.items[k++].path))
				abort();
		}
		if (r >= 0 && k != l.n)
			abort();
	}
	lp_prio_release(&all);
	lp_prio_release(&l);
	lp_err_clear(&err);
	lp_err_clear(&err2);
	return 0;
}
