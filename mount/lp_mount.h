/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mounting one layer lazily: the steps `lazypull mount`, the snapshotter's
 * layer pool and `lazypull optimize` share, and the settings they share
 * (how much of a registry blob's tail the first request reads, the TOC
 * digest annotation, the process's malloc settings). The module sits where
 * fs/ (the filesystem and its FUSE adapter) and registry/ are both visible,
 * so neither of them depends on the other: cmd, snapshot and optimize call
 * it; it calls fs, registry, format and common.
 *
 * How to mount a registry layer:
 *	lp_mount_open_registry(reg, &ref, &digest, size, &blob, &tail,
 *			       &tail_len, &err);
 *	lp_mount_opts_init(&o);
 *	o.toc_digest = &toc; o.tail = tail; o.tail_len = tail_len;
 *	... o.fs / o.fuse fields ...
 *	lp_mount_layer(blob, MOUNTPOINT, &o, &fs, &fuse, NULL, &err);
 *	lp_fs_start(fs); then serve with lp_fuse_run() or lp_fuse_serve()
 */
#ifndef LP_MOUNT_H
#define LP_MOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "lp_blob.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_fs.h"
#include "lp_fuse.h"
#include "lp_registry.h"

/*
 * Bytes of a layer's tail read by its first request, which should hold the
 * footer and the whole TOC: a layer of ~8000 files (python3 on Debian) has a
 * 390 KB compressed TOC. A larger TOC costs one more request for the rest;
 * at 100 Mbit/s the 512 KiB take about two 20 ms round trips' worth. The
 * snapshotter's labels do not help: containerd's stargz.* and cri.* labels
 * carry the reference, digests and TOC digest, no blob or TOC size.
 */
#define LP_MOUNT_TAIL_BYTES (512 * 1024)

/* The layer descriptor annotation (and snapshot label) with the TOC digest. */
#define LP_MOUNT_ANN_TOC_DIGEST "containerd.io/snapshot/stargz/toc.digest"

struct lp_mount_opts {
	/* the TOC must have this digest; NULL: not verified (the caller
	 * decided so: --insecure-skip-toc-verify) */
	const struct lp_digest *toc_digest;
	/* the blob's last @tail_len bytes, read already (borrowed); 0: none */
	const void *tail;
	size_t tail_len;
	/* a plain gzip layer: mount it through this gzip index (the bytes
	 * of one, borrowed; lp_index.h) instead of reading a footer and TOC;
	 * toc_digest and tail are then unused. 0: an eStargz layer */
	const void *index;
	size_t index_len;
	/* with @index: the layer digest it must name (the descriptor's);
	 * NULL: not compared (a local file) */
	const struct lp_digest *index_layer;
	/* with @index: its signature verified against a key the node trusts
	 * (lp_index_sig.h; the caller checked it): reads may start at any
	 * checkpoint (lp_index_trust()) */
	bool index_trusted;
	struct lp_fs_options fs;
	struct lp_fuse_options fuse;
	/* resume (@resume_state set): serve this existing connection (a
	 * /dev/fuse fd another process mounted, taken by lp_mount_layer() in
	 * every case) with the state it saved, instead of mounting; a state
	 * without an fd (-1, the default) is refused, never mounted over */
	int resume_fd;
	const struct lp_fuse_state *resume_state;
};

/* What lp_mount_layer() did, for the caller's logs and error classes. */
struct lp_mount_report {
	bool layer_opened; /* footer and TOC read, TOC digest matched */
	uint64_t toc_ns; /* time taken to open the layer (TOC parse) */
};

/*
 * lp_mount_opts_init() - defaults: lp_fs_options_init(), no verification,
 * a new mount.
 */
void lp_mount_opts_init(struct lp_mount_opts *o);

/*
 * lp_mount_open_registry() - blob @digest of @ref's repository as a blob
 * source, and its last LP_MOUNT_TAIL_BYTES (footer and usually the whole
 * TOC) read with one suffix-range request into *@ret_tail (malloc'ed,
 * *@ret_tail_len bytes; the caller frees it). @size may be 0 (unknown: the
 * reply tells it). Holds its own reference on @reg. Returns 0 or as
 * lp_reg_blob_open_tail() (-EOPNOTSUPP: the registry needs the size).
 */
int lp_mount_open_registry(struct lp_reg *reg, const struct lp_reg_ref *ref,
			   const struct lp_digest *digest, uint64_t size,
			   struct lp_blob **ret_blob, uint8_t **ret_tail,
			   size_t *ret_tail_len, struct lp_err *err);

/*
 * lp_mount_layer() - open the layer in @blob (footer, TOC verified against
 * @o->toc_digest; or with @o->index a plain gzip layer through its gzip
 * index, whose span digests vouch for every chunk and whose file table is
 * checked against each file's tar header before the file is served), make its filesystem and mount it read-only at
 * @mountpoint (which must exist), or with @o->resume_fd serve that
 * connection of the mount at @mountpoint (lp_fuse_resume()). The fs takes
 * its own reference on @blob.
 * Starts no thread: the caller may fork, then lp_fs_start(*@ret_fs) and
 * serve *@ret_fuse. On success the caller owns both (lp_fuse_free() before
 * lp_fs_free()). Returns 0, or as lp_layer_open(), lp_fs_new(),
 * lp_fuse_mount() with @err saying what failed; @ret_report (NULL
 * allowed) tells how far it got.
 */
int lp_mount_layer(struct lp_blob *blob, const char *mountpoint,
		   const struct lp_mount_opts *o, struct lp_fs **ret_fs,
		   struct lp_fuse **ret_fuse,
		   struct lp_mount_report *ret_report, struct lp_err *err);

/*
 * lp_mount_tune_malloc() - the malloc settings of a process serving mounts
 * (big blocks mmap'd, two arenas), so that the memory budget is about what
 * the caches hold. Call before any thread exists.
 */
void lp_mount_tune_malloc(void);

/*
 * lp_mount_trim_malloc() - give the free pages inside the malloc heaps back
 * to the system (malloc_trim). Chunks freed by the memory budget, finished
 * fetches and parses leave holes that stay resident otherwise (1.6 MB of
 * 28 MB with 10 layers at defaults, docs/benchmarks.md). For a daemon's
 * idle loop: a walk over two arenas' free lists, cheap at once a second.
 */
void lp_mount_trim_malloc(void);

#endif /* LP_MOUNT_H */
