// SPDX-License-Identifier: Apache-2.0
/*
 * lp_mount_layer() and what goes with it (lp_mount.h): the one sequence
 * that turns a layer blob into a served FUSE mount (layer open with TOC
 * verification, filesystem, FUSE mount), the one tail read of a registry
 * layer, and the one set of malloc settings (and trimming) for processes
 * that serve mounts.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lp_common.h"
#include "lp_indexer.h"
#include "lp_layer.h"
#include "lp_log.h"
#include "lp_mount.h"

/*
 * Blocks this large (TOC JSON, the parser's growing arrays, chunk buffers
 * up to 4 MiB, FUSE request buffers) are mmap'd and go back to the system
 * when freed. glibc's default threshold grows to 32 MiB after the first
 * such free, and then every layer's parse and every chunk ever read leave
 * megabytes of freed but resident pages in the heaps.
 */
#define MOUNT_MMAP_THRESHOLD (128 * 1024)
/* FUSE, fetch and gRPC threads would otherwise get an arena each */
#define MOUNT_MALLOC_ARENAS 2

void lp_mount_tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, MOUNT_MMAP_THRESHOLD);
	mallopt(M_ARENA_MAX, MOUNT_MALLOC_ARENAS);
}

void lp_mount_trim_malloc(void)
{
	malloc_trim(0);
}

void lp_mount_opts_init(struct lp_mount_opts *o)
{
	memset(o, 0, sizeof(*o));
	lp_fs_options_init(&o->fs);
	o->resume_fd = -1;
}

int lp_mount_open_registry(struct lp_reg *reg, const struct lp_reg_ref *ref,
			   const struct lp_digest *digest, uint64_t size,
			   struct lp_blob **ret_blob, uint8_t **ret_tail,
			   size_t *ret_tail_len, struct lp_err *err)
{
	struct lp_reg_blob *rb = NULL;
	uint8_t *tail;
	int r;

	tail = malloc(LP_MOUNT_TAIL_BYTES);
	if (!tail) {
		r = lp_err_set(err, -ENOMEM, "no memory for the layer's tail");
		goto out;
	}
	r = lp_reg_blob_open_tail(reg, ref, digest, size, tail,
				  LP_MOUNT_TAIL_BYTES, ret_tail_len, &rb, err);
	if (r < 0)
		goto out;
	r = lp_reg_blob_as_blob(rb, ret_blob);
	if (r < 0) {
		lp_err_set(err, r, "blob: %s", strerror(-r));
		goto out;
	}
	*ret_tail = tail;
	tail = NULL;
out:
	free(tail);
	lp_reg_blob_unref(rb);
	return r;
}

/* the plain gzip layer in @blob through the gzip index @o->index */
static int open_index_layer(struct lp_blob *blob, const struct lp_mount_opts *o,
			    struct lp_layer **ret_layer, struct lp_err *err)
{
	struct lp_index *ix = NULL;
	char want[LP_DIGEST_STR_LEN + 1], got[LP_DIGEST_STR_LEN + 1];
	int r;

	r = lp_index_parse(o->index, o->index_len, &ix, err);
	if (r < 0)
		goto out;
	if (o->index_layer &&
	    !lp_digest_equal(o->index_layer, lp_index_blob_digest(ix))) {
		lp_digest_format(o->index_layer, want);
		lp_digest_format(lp_index_blob_digest(ix), got);
		r = lp_err_set(err, -EBADMSG,
			       "the gzip index is of layer %s, not %s", got,
			       want);
		goto out;
	}
	if (o->index_trusted)
		lp_index_trust(ix);
	r = lp_layer_open_index(blob, ix, lp_index_check_header, ret_layer,
				err);
	ix = NULL; /* taken */
out:
	lp_index_free(ix);
	return r;
}

int lp_mount_layer(struct lp_blob *blob, const char *mountpoint,
		   const struct lp_mount_opts *o, struct lp_fs **ret_fs,
		   struct lp_fuse **ret_fuse,
		   struct lp_mount_report *ret_report, struct lp_err *err)
{
	struct lp_mount_report rep = { 0 };
	struct lp_err why = { 0 };
	struct lp_layer *layer = NULL;
	struct lp_fuse *fuse = NULL;
	struct lp_fs *fs = NULL;
	uint64_t t = lp_mono_ns();
	int resume_fd = o->resume_fd, r;

	if (o->index)
		r = open_index_layer(blob, o, &layer, err);
	else
		r = lp_layer_open_tail(blob, o->tail, o->tail ? o->tail_len : 0,
				       o->toc_digest, &layer, err);
	rep.toc_ns = lp_mono_ns() - t;
	if (r < 0)
		goto out;
	rep.layer_opened = true;
	lp_layer_drop_toc_json(layer); /* a mount never serves it */
	/* a big TOC's digests to a file beside the disk tier (or the
	   default): on an error they stay in memory, the mount goes on */
	if (lp_layer_spill_toc_digests(layer, o->fs.cache_dir, &why) < 0)
		lp_log_warn("%s: TOC digests kept in memory: %s", mountpoint,
			    why.msg);
	r = lp_fs_new(layer, &o->fs, &fs, err); /* takes the layer */
	layer = NULL;
	if (r < 0)
		goto out;
	if (o->resume_state && resume_fd < 0)
		/* never a new mount on top of the connection to resume */
		r = lp_err_set(err, -EBADF, "%s: no connection to resume",
			       mountpoint);
	else if (o->resume_state)
		r = lp_fuse_resume(fs, resume_fd, mountpoint, o->resume_state,
				   &o->fuse, &fuse, err);
	else
		r = lp_fuse_mount(fs, mountpoint, &o->fuse, &fuse, err);
	resume_fd = -1; /* taken by lp_fuse_resume() */
	if (r < 0)
		goto out;
	*ret_fs = fs;
	*ret_fuse = fuse;
	fs = NULL;
out:
	if (resume_fd >= 0)
		close(resume_fd);
	if (ret_report)
		*ret_report = rep;
	lp_fs_free(fs);
	return r;
}
