/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to registry/hosts*.c: the list behind struct lp_hosts, which the
 * hosts.toml parser (hosts_toml.c) builds and the resolver (hosts.c) fills
 * in, filters and frees, and the path helper both use.
 */
#ifndef LP_HOSTS_INT_H
#define LP_HOSTS_INT_H

#include <stddef.h>

#include "lp_err.h"
#include "lp_hosts.h"

struct lp_hosts {
	struct lp_host *v; /* calloc'ed, n entries, each owned */
	size_t n;
};

/* reg_hosts_release() - free what @h owns and zero it; NULL allowed. */
void reg_hosts_release(struct lp_host *h);

/*
 * reg_hosts_path() - @p as it is when absolute, else @dir "/" @p cleaned
 * lexically (as Go's filepath.Join: no "." or "..", no "//"), in a new
 * string in *ret_path. Returns 0, -EINVAL for an empty @p, -ENAMETOOLONG
 * over LP_HOSTS_PATH_MAX, -ENOMEM.
 */
int reg_hosts_path(const char *dir, const char *p, char **ret_path);

/* reg_hosts_path_clean() - clean @path in place as Go's path.Clean. */
void reg_hosts_path_clean(char *path);

#endif /* LP_HOSTS_INT_H */
