/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading one image for running it: resolve a registry reference or an OCI
 * image layout "oci:DIR[:TAG]" to the image manifest for one platform, fetch
 * its config (verified), and hand out its layers either as lazily read blob
 * sources (for a lazy mount, which verifies by TOC digest) or copied whole
 * into a file with their digest checked. `lazypull optimize` uses it to
 * mount an image's layers; lp_image_convert() then rewrites the image.
 *
 * Threads: lp_image_src_open_layer() may be called from any thread; the
 * rest from one thread at a time. A struct lp_image_src is otherwise
 * immutable after lp_image_src_open().
 */
#ifndef LP_IMAGE_SOURCE_H
#define LP_IMAGE_SOURCE_H

#include <stddef.h>

#include "lp_blob.h"
#include "lp_err.h"
#include "lp_registry.h"

struct lp_image_src;

/*
 * lp_image_src_open() - the image @spec names, for @platform
 * ("os/arch[/variant]"; NULL: the host's; a single-manifest image whose
 * config names another platform is refused only when @platform is given).
 * @reg_opts (may be NULL) configures the registry client the source keeps.
 * Returns 0; -ENOENT (no such image or platform), -EINVAL (bad spec, a
 * config that is not an image config), -EBADMSG, -EPROTO, -EFBIG, or an I/O
 * -errno; @err says which. Free with lp_image_src_free().
 */
int lp_image_src_open(const char *spec, const struct lp_reg_opts *reg_opts,
		      const char *platform, struct lp_image_src **ret_src,
		      struct lp_err *err);
void lp_image_src_free(struct lp_image_src *src); /* NULL allowed */

/* the spec as given, for messages (borrowed) */
const char *lp_image_src_name(const struct lp_image_src *src);

/* the config JSON as stored, NUL-terminated (borrowed), its length */
const char *lp_image_src_config(const struct lp_image_src *src,
				size_t *ret_len);

/* the image's layers, base first; descriptors borrowed from the source */
size_t lp_image_src_nr_layers(const struct lp_image_src *src);
const struct lp_reg_desc *lp_image_src_layer(const struct lp_image_src *src,
					     size_t i);

/*
 * lp_image_src_open_layer() - layer @i as a blob source read on demand
 * (registry Range reads or the layout file). NOT verified as a whole: use
 * it only with a reader that verifies what it reads (a TOC digest). The
 * caller drops it with lp_blob_unref(). Returns 0 or -errno.
 */
int lp_image_src_open_layer(struct lp_image_src *src, size_t i,
			    struct lp_blob **ret_blob, struct lp_err *err);

/*
 * lp_image_src_fetch_layer() - copy layer @i whole into @fd (from its
 * current position), checking its size and digest against the descriptor.
 * Returns 0, -EBADMSG (mismatch: the file's contents must not be used), or
 * an I/O -errno.
 */
int lp_image_src_fetch_layer(struct lp_image_src *src, size_t i, int fd,
			     struct lp_err *err);

#endif /* LP_IMAGE_SOURCE_H */
