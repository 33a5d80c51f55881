/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prefetch profiles: the prioritised file list `lazypull optimize
 * --profile-only` records for an image without reconverting it (issue 14,
 * "prefetch without reconversion"), and what the snapshotter prefetches by
 * when it mounts that image's layers lazily (eStargz or gzip-indexed).
 *
 * A profile is the JSON-lines format of lp_prio.h, one line per file in
 * first-access order, every line naming its layer by digest:
 *	{"path":"bin/busybox","layer_digest":"sha256:...","layer_index":0}
 * It travels as an OCI artifact whose subject is the image manifest
 * (artifactType LP_PROFILE_ARTIFACT_TYPE, one layer of media type
 * LP_PROFILE_MEDIA_TYPE: the list), pushed through the referrers API or
 * the referrers tag schema like `lazypull index`'s, or as a file
 * DIR/<manifest hex>LP_PROFILE_SUFFIX (`--output DIR`, the snapshotter's
 * index_dirs). The image's manifest and digest never change.
 *
 * A profile comes from outside: it is bounded (LP_PROFILE_MAX_SIZE bytes,
 * LP_PROFILE_MAX_PER_LAYER files taken per layer) and a line without a
 * layer digest makes the whole profile invalid (a layer index alone is
 * ambiguous once layers are shared between images), refused as soon as
 * that line is read: only the asked layer's items are ever allocated.
 */
#ifndef LP_PROFILE_H
#define LP_PROFILE_H

#include <stddef.h>

#include "lp_digest.h"
#include "lp_err.h"
#include "lp_prio.h"

#define LP_PROFILE_ARTIFACT_TYPE "application/vnd.lazypull.profile.v1"
#define LP_PROFILE_MEDIA_TYPE "application/vnd.lazypull.profile.v1+jsonl"
#define LP_PROFILE_SUFFIX ".profile"
/* the whole list: what a slow link fetches within the snapshotter's small
 * request timeout, and a bound on the parse (one line at a time) */
#define LP_PROFILE_MAX_SIZE (2 * LP_MIB)
#define LP_PROFILE_MAX_PER_LAYER 16384 /* files prefetched in one layer */

/*
 * lp_profile_layer() - the paths profile @data (@len bytes; @name for
 * messages) lists for layer @layer, in its order, into @ret (free with
 * lp_prio_release; left empty on failure); at most
 * LP_PROFILE_MAX_PER_LAYER (the rest dropped). Returns the number of paths
 * (0: the profile names other layers only), -EFBIG (over
 * LP_PROFILE_MAX_SIZE or an lp_prio bound), -EINVAL (a malformed line, a
 * line without "layer_digest"), -ENOMEM; @err says which.
 */
int lp_profile_layer(const void *data, size_t len, const char *name,
		     const struct lp_digest *layer, struct lp_prio_list *ret,
		     struct lp_err *err);

#endif /* LP_PROFILE_H */
