// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: prioritised-file lists (format/'s lp_prio_parse, the one
 * reader behind `convert --prioritize`, `layer convert --prioritize` and
 * optimize records), plain and JSON lines. On success every item must have
 * a non-empty path within LP_PRIO_MAX_PATH holding no NUL and a layer index
 * in [-1, LP_PRIO_MAX_LAYERS); anything else aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_prio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	size_t i, n;
	int r;

	r = lp_prio_parse((const char *)data, size, "fuzz", &l, &err);
	if (r < 0 && l.n)
		abort();
	if (r >= 0) {
		if ((size_t)r != l.n)
			abort();
		for (i = 0; i < l.n; i++) {
			if (!l.items[i].path)
				abort();
			n = strlen(l.items[i].path);
			if (n == 0 || n > LP_PRIO_MAX_PATH ||
			    l.items[i].layer_index < -1 ||
			    l.items[i].layer_index >= LP_PRIO_MAX_LAYERS)
				abort();
		}
	}
	lp_prio_release(&l);
	lp_err_clear(&err);
	return 0;
}
