/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prioritised-file lists, the one reader: the input of `lazypull convert
 * --prioritize` and `lazypull layer convert --prioritize`, and what
 * `lazypull optimize` records (optimize/record.c writes it).
 *
 * A line is a path, or a JSON object {"path": P, "layer_digest":
 * "sha256:...", "layer_index": N} whose layer members are optional
 * ("layerDigest" and "layerIndex" are accepted too; other members are
 * ignored). Blank lines and lines starting with '#' are skipped; blanks
 * around a plain path are not part of it (a path with edge blanks is
 * written as JSON). Paths are kept as written ("./" prefixes and all): the
 * converter normalises them when it matches them against a layer.
 */
#ifndef LP_PRIO_H
#define LP_PRIO_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_digest.h"
#include "lp_err.h"
#include "lp_format.h"

#define LP_PRIO_MAX_LINE 8192 /* one line, its newline included */
#define LP_PRIO_MAX_FILE (64 * LP_MIB) /* a whole list */
#define LP_PRIO_MAX_PATHS (1u << 20) /* paths in a list */
#define LP_PRIO_MAX_PATH LP_TOC_MAX_PATH /* one path */
/* layer_index is below this; equal to LP_REG_LAYERS_MAX (image/ checks) */
#define LP_PRIO_MAX_LAYERS 1024

/* one prioritised path, optionally restricted to one layer */
struct lp_prio {
	char *path; /* non-empty, at most LP_PRIO_MAX_PATH bytes */
	bool has_digest;
	struct lp_digest layer_digest; /* the layer's digest or diff-id */
	long layer_index; /* 0 = base layer; -1: not given */
};

struct lp_prio_list {
	struct lp_prio *items;
	size_t n;
};

/*
 * lp_prio_parse() - parse the list @data[0..@len); @name (a file name)
 * prefixes the messages in @err, which give the line number. Fills @ret
 * (free with lp_prio_release; left empty on failure). Returns the number of
 * paths, -EINVAL for a malformed line (a NUL byte, bad JSON, no string
 * "path", an empty path, a bad layer member), -EFBIG over an LP_PRIO_MAX_*
 * bound, or -ENOMEM.
 */
int lp_prio_parse(const char *data, size_t len, const char *name,
		  struct lp_prio_list *ret, struct lp_err *err);

/*
 * lp_prio_load() - lp_prio_parse() of the file at @path. Returns as
 * lp_prio_parse, or the -errno of opening or reading it.
 */
int lp_prio_load(const char *path, struct lp_prio_list *ret,
		 struct lp_err *err);

/* lp_prio_release() - free the items; @l is empty again. NULL allowed. */
void lp_prio_release(struct lp_prio_list *l);

#endif /* LP_PRIO_H */
