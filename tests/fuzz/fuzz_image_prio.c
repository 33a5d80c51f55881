// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: prioritised-file lists (lp_image_prio_load), plain and JSON
 * lines. The input is written to a file (the API takes a path); on success
 * every item must have a non-empty path and a layer index in [-1, layers
 * max), anything else aborts.
 *
 * The file lives in a directory made once per process (mkdtemp) and left
 * for the system's temporary-file cleanup: a fuzz run has no end to hook.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lp_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[] = "/tmp/lp-fuzz-image-prio.XXXXXX";
	static bool made;
	struct lp_image_prio_list l = { 0 };
	struct lp_err err;
	char path[128];
	size_t i;
	FILE *f;
	int r;

	if (!made) {
		if (!mkdtemp(dir))
			abort();
		made = true;
	}
	snprintf(path, sizeof(path), "%s/prio", dir);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	lp_err_clear(&err);
	r = lp_image_prio_load(path, &l, &err);
	if (r >= 0) {
		if ((size_t)r != l.n)
			abort();
		for (i = 0; i < l.n; i++)
			if (!l.items[i].path || !l.items[i].path[0] ||
			    l.items[i].layer_index < -1 ||
			    l.items[i].layer_index >= LP_REG_LAYERS_MAX)
				abort();
	}
	lp_image_prio_list_release(&l);
	return 0;
}
