// SPDX-License-Identifier: Apache-2.0
/*
 * Prioritised-file lists for `lazypull layer convert --prioritize`: the
 * paths of a list read by format/'s one reader (lp_prio.h), as the
 * NULL-terminated array lp_convert_opts.prioritized takes. Layer members
 * of JSON lines are checked by the reader and otherwise ignored here: a
 * layer conversion has one layer.
 */
#include <errno.h>
#include <stdlib.h>

#include "convert_int.h"
#include "lp_prio.h"

void lp_prio_list_free(char **paths)
{
	size_t i;

	if (!paths)
		return;
	for (i = 0; paths[i]; i++)
		free(paths[i]);
	free(paths);
}

int lp_prio_list_load(const char *path, char ***ret_paths, struct lp_err *err)
{
	struct lp_prio_list l = { 0 };
	char **paths = NULL;
	size_t i;
	int r;

	r = lp_prio_load(path, &l, err);
	if (r < 0)
		goto out;
	paths = calloc(l.n + 1, sizeof(*paths));
	if (!paths) {
		r = -ENOMEM;
		goto out;
	}
	/* the strings move to the array */
	for (i = 0; i < l.n; i++) {
		paths[i] = l.items[i].path;
		l.items[i].path = NULL;
	}
	*ret_paths = paths;
	r = (int)l.n;
out:
	lp_prio_release(&l);
	return r;
}
