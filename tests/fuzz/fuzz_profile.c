// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: prefetch profiles (format/'s lp_profile_layer, what the
 * snapshotter reads from a registry artifact or an index_dirs file). The
 * input's first byte picks the layer asked for (a digest of 32 equal
 * bytes); the rest is the profile. On success every path must be non-empty,
 * NUL-free, within LP_PRIO_MAX_PATH, of that layer, and at most
 * LP_PROFILE_MAX_PER_LAYER of them; on failure nothing is handed out.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	struct lp_digest layer;
	size_t i, n;
	int r;

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
	lp_prio_release(&l);
	lp_err_clear(&err);
	return 0;
}
