/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to image/: where images are read from and written to. A store is
 * either a registry repository (through registry/, the only code that speaks
 * HTTP) or an OCI image layout directory ("oci:DIR[:TAG]": an oci-layout
 * file, index.json and blobs/sha256/HEX). Everything read is verified
 * against the digest and size that named it.
 *
 * Writing: blobs and untagged manifests first (put_blob*, put_manifest),
 * then lp_img_store_put_tag() last: for a registry the tagged manifest PUT,
 * for a layout the index.json rewrite (temporary file + rename).
 *
 * Threads: lp_img_store_open_blob() may be called from any thread; the rest
 * from one thread at a time.
 */
#ifndef LP_IMAGE_STORE_INT_H
#define LP_IMAGE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_blob.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_registry.h"

#define LP_IMG_PATH_MAX 4096 /* a layout directory path */

struct lp_img_store;

/*
 * lp_img_store_open() - parse @spec ("oci:DIR[:TAG]" or a registry
 * reference). @reg is borrowed (it must outlive the store). @for_write
 * creates the layout directory when missing and requires a tag for a
 * registry. Returns 0, -EINVAL bad spec, or -errno.
 */
int lp_img_store_open(const char *spec, struct lp_reg *reg, bool for_write,
		      struct lp_img_store **ret_st, struct lp_err *err);
void lp_img_store_free(struct lp_img_store *st); /* NULL allowed */

/* the spec as given, for messages */
const char *lp_img_store_name(const struct lp_img_store *st);
bool lp_img_store_is_layout(const struct lp_img_store *st);
/* the registry reference, or NULL for a layout */
const struct lp_reg_ref *lp_img_store_ref(const struct lp_img_store *st);

/*
 * lp_img_store_get_top() - the manifest or index the spec names (a layout
 * without TAG: its only image, or index.json itself when it lists
 * platforms). Free with lp_reg_manifest_free(). -ENOENT when absent.
 */
int lp_img_store_get_top(struct lp_img_store *st,
			 struct lp_reg_manifest **ret_m, struct lp_err *err);

/* lp_img_store_get_manifest() - the manifest @d names, verified. */
int lp_img_store_get_manifest(struct lp_img_store *st,
			      const struct lp_reg_desc *d,
			      struct lp_reg_manifest **ret_m,
			      struct lp_err *err);

/*
 * lp_img_store_get_small() - blob @d into memory (NUL-ended; at most
 * @limit bytes), verified. The caller frees *ret_data.
 */
int lp_img_store_get_small(struct lp_img_store *st, const struct lp_reg_desc *d,
			   size_t limit, char **ret_data, size_t *ret_len,
			   struct lp_err *err);

/*
 * lp_img_store_open_blob() - blob @d as a blob source (unverified: the
 * reader hashes what it reads). A layout blob whose file size differs from
 * d->size is -EBADMSG.
 */
int lp_img_store_open_blob(struct lp_img_store *st, const struct lp_reg_desc *d,
			   struct lp_blob **ret_blob, struct lp_err *err);

/*
 * lp_img_store_put_file() - store @size bytes of file @path as blob
 * @digest. @from (may be NULL) is where the blob came from: a registry
 * repository on the same host is asked for a cross-repository mount.
 */
int lp_img_store_put_file(struct lp_img_store *st,
			  const struct lp_digest *digest, uint64_t size,
			  const char *path, const struct lp_img_store *from,
			  struct lp_err *err);

/* lp_img_store_put_mem() - store @len bytes as a blob; *ret_digest. */
int lp_img_store_put_mem(struct lp_img_store *st, const void *data, size_t len,
			 struct lp_digest *ret_digest, struct lp_err *err);

/* lp_img_store_put_manifest() - store a manifest by digest, untagged. */
int lp_img_store_put_manifest(struct lp_img_store *st, const char *media_type,
			      const void *data, size_t len,
			      struct lp_digest *ret_digest, struct lp_err *err);

/*
 * lp_img_store_put_tag() - make the spec's tag name the manifest or index
 * @data (registry: PUT by tag; layout: blob, then index.json replaced
 * atomically, keeping other tags' entries). The last write of a conversion.
 */
int lp_img_store_put_tag(struct lp_img_store *st, const char *media_type,
			 const void *data, size_t len,
			 struct lp_digest *ret_digest, struct lp_err *err);

#endif /* LP_IMAGE_STORE_INT_H */
