/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lazy filesystem core: an inode view of one layer's TOC plus file reads
 * through a verified chunk cache (memory tier under a byte budget that the
 * layers of a process may share, optional
 * persistent disk tier keyed by chunk digest), prefetch of the prioritised
 * range and a low-priority background fetch of the rest. No FUSE types here:
 * the core is driven by fs/fuse_ops.c in a mount and directly by unit tests
 * and tools.
 *
 * Inodes. Inode numbers are derived, never allocated: entry index + 1, so the
 * root (entry 0) is 1 (= FUSE_ROOT_ID) and a hardlink reports its target's
 * number. Two numbers past the TOC name the hidden control directory
 * `/.lazypull` and its `stats` file. Nothing is allocated per lookup, so there
 * is nothing to free on forget.
 *
 * Overlayfs conventions (a mount is an overlay lower layer): `.wh.NAME` is
 * shown as a 0/0 character device NAME; `.wh..wh..opq` is hidden and its
 * directory reports `trusted.overlay.opaque=y`; the landmark files
 * `.prefetch.landmark` and `.no.prefetch.landmark` are hidden.
 *
 * What it does not do: write anything to the tree, track open counts or
 * lookups, or report errors itself. Functions return -errno and, when given a
 * struct lp_err, say what failed (layer, file, offset); the caller logs once.
 *
 * Thread rules: after lp_fs_new() every function except lp_fs_start() and
 * lp_fs_free() may be called from any number of threads at once.
 */
#ifndef LP_FS_H
#define LP_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include "lp_buf.h"
#include "lp_err.h"
#include "lp_layer.h"

/* Bounds and defaults (sizes in bytes). */
#define LP_FS_ROOT_INO 1
#define LP_FS_DEFAULT_MEM_CACHE (256 * LP_MIB)
#define LP_FS_DEFAULT_DISK_CACHE (8 * LP_GIB)
/* what is fetched together and when: fs/plan.c (FS_PLAN_* in fs_int.h) */
#define LP_FS_STATS_MAX (64 * LP_KIB) /* the stats JSON */
#define LP_FS_READ_MAX_SEGS 8 /* chunks one lp_fs_read_pin() may span */
#define LP_FS_CONTROL_DIR ".lazypull"
/* background fetch waits this long after the last prefetch/on-demand fetch */
#define LP_FS_DEFAULT_BACKGROUND_QUIET_MS 1000
#define LP_FS_MAX_BACKGROUND_QUIET_MS (600u * 1000u)
#define LP_FS_STATS_FILE "stats"
#define LP_FS_PREFETCH_FILES_MAX 65536 /* opts.prefetch_files taken */

struct lp_fs;
struct lp_fs_file;
struct lp_fs_activity;
struct lp_fs_budget;

struct lp_fs_options {
	/* borrowed, outlives the fs: the memory budget shared by the layers
	 * of a process (lp_fs_budget_new). NULL: the fs makes its own of
	 * mem_cache_bytes */
	struct lp_fs_budget *mem_budget;
	size_t mem_cache_bytes; /* without mem_budget; 0: the default */
	/* NULL: no disk tier. Every lp_fs of the process caching in the same
	 * directory shares one tier: one byte count, bounded by the smallest
	 * disk_cache_bytes any of them asked for. */
	const char *cache_dir;
	uint64_t disk_cache_bytes; /* 0: LP_FS_DEFAULT_DISK_CACHE */
	bool prefetch; /* fetch [0, prefetch landmark) on start */
	/*
	 * A prefetch profile (format/lp_profile.h): these files (TOC paths)
	 * are prefetched on start, in this order, before the prefetch range;
	 * a path the layer does not have is passed over (counted in the
	 * stats). Borrowed until lp_fs_new() returns; at most
	 * LP_FS_PREFETCH_FILES_MAX (the rest ignored). Only with prefetch.
	 * A layer with a profile defers its background fetch as an
	 * optimised one does.
	 */
	const char *const *prefetch_files;
	size_t n_prefetch_files;
	bool background_fetch; /* then fetch the rest at low priority */
	/*
	 * Background fetch starts, and resumes, only after this many ms without
	 * prioritised fetching (prefetch, on-demand reads) in @activity; after
	 * waiting 10 times that in all it only stands aside while on-demand
	 * fetches run, so a busy workload delays it but never starves it.
	 * 0: start at once. Bounded by LP_FS_MAX_BACKGROUND_QUIET_MS.
	 */
	unsigned int background_quiet_ms;
	/* borrowed, outlives the fs; shared by the layers of a process so one
	 * layer's reads quiet the others' background fetch. NULL: its own. */
	struct lp_fs_activity *activity;
	/*
	 * A layer mounted through a gzip index (docs/format.md, "mounting
	 * through a gzip index"): false (the default), reads start only at
	 * checkpoints a stream from the layer's first byte has proven (a
	 * stream from the last one: a cold read deep in a layer fetches the
	 * layer up to it); true (opt-in, `--index-window-rule`), a read may
	 * start at a checkpoint nobody has proven yet, serving only bytes
	 * that do not depend on its window and BELIEVING its position (its
	 * uncompressed offset) until the proving pass passes it: a forged
	 * position serves other bytes of the layer, so this trades the
	 * guarantee for fewer bytes fetched. Either way, until the proving
	 * pass is through, what is not verified is listed in docs/format.md.
	 */
	bool index_window_rule;
	/*
	 * A gzip index layer: called once, from the proving pass's thread,
	 * when the pass has checked every claim of the index and the blob's
	 * sha256 (the index is true of this layer); NULL: nothing. The
	 * snapshotter records it ("proven once": docs/format.md).
	 */
	void (*index_proven)(void *arg);
	void *index_proven_arg;
};

/* lp_fs_options_init() - defaults: prefetch and background fetch on. */
void lp_fs_options_init(struct lp_fs_options *opts);

/*
 * lp_fs_activity_new() - prioritised-fetch activity to share between the
 * filesystems of a process (lp_fs_options.activity). NULL: out of memory.
 * Free after every lp_fs using it.
 */
struct lp_fs_activity *lp_fs_activity_new(void);
void lp_fs_activity_free(struct lp_fs_activity *a);

/*
 * lp_fs_budget_new() - a memory budget of @bytes (0: LP_FS_DEFAULT_MEM_CACHE)
 * for the memory tiers of every filesystem given it in
 * lp_fs_options.mem_budget: their chunks together stay within it (beyond it
 * only what readers hold pinned while they copy), the least recently used
 * chunk of any of them leaving first. Returns 0 or -ENOMEM. Free after
 * every lp_fs using it (lp_fs_budget_free, NULL allowed).
 */
int lp_fs_budget_new(size_t bytes, struct lp_fs_budget **ret_budget);
void lp_fs_budget_free(struct lp_fs_budget *b);

/* lp_fs_budget_bytes() - the budget's size. */
size_t lp_fs_budget_bytes(const struct lp_fs_budget *b);

/* lp_fs_budget_usage() - bytes charged to @b now and at most (chunk bytes
 * and their records, gzip index spans). Any thread. */
void lp_fs_budget_usage(struct lp_fs_budget *b, size_t *ret_used,
			size_t *ret_peak);

/*
 * lp_fs_new() - a filesystem over @layer (whose TOC digest the caller has
 * verified or deliberately skipped). Takes ownership of @layer (freed by
 * lp_fs_free, also on failure). Creates the disk tier's directories when
 * @opts->cache_dir is set. Starts no thread of the filesystem: call
 * lp_fs_start() (after any fork); the one exception, a disk tier's first
 * open of a directory holding the old one-file-per-chunk layout starts a
 * detached thread that deletes it (docs/fs.md), so open before a fork only
 * a directory without it. Returns 0, -ENOMEM, or the disk tier's -errno
 * (@err says which).
 */
int lp_fs_new(struct lp_layer *layer, const struct lp_fs_options *opts,
	      struct lp_fs **ret_fs, struct lp_err *err);

/*
 * lp_fs_start() - start prefetch and background fetch as configured. Call
 * once, from the thread that made @fs. Returns 0 or -errno (thread creation).
 */
int lp_fs_start(struct lp_fs *fs);

/*
 * lp_fs_wait_prefetch() - wait until prefetch finished or @timeout_ms passed
 * (0: do not wait). Returns 0 when finished (or there is nothing to
 * prefetch), -ETIMEDOUT, or the prefetch's error.
 */
int lp_fs_wait_prefetch(struct lp_fs *fs, unsigned int timeout_ms);

/* lp_fs_free() - stop and join the threads, free everything. NULL allowed. */
void lp_fs_free(struct lp_fs *fs);

/* lp_fs_layer() - the layer (borrowed). */
struct lp_layer *lp_fs_layer(const struct lp_fs *fs);

/*
 * lp_fs_volatile() - whether the attributes and contents of @ino may change
 * (the control file): a cache must not keep them. Everything else is fixed
 * for the life of @fs.
 */
bool lp_fs_volatile(const struct lp_fs *fs, uint64_t ino);

/*
 * lp_fs_recording() - whether access recording was started (lp_fs_open()
 * of a regular file must then be called for each first access).
 */
bool lp_fs_recording(struct lp_fs *fs);

/*
 * lp_fs_getattr() - attributes of inode @ino into @st (st_ino, st_mode with
 * S_IF bits, nlink, uid, gid, rdev, size, blksize, blocks, times).
 * Returns 0 or -ENOENT.
 */
int lp_fs_getattr(struct lp_fs *fs, uint64_t ino, struct stat *st);

/*
 * lp_fs_lookup() - the child @name of directory @parent, its attributes in
 * @st (st->st_ino is its inode). A lookup of the control file makes a new
 * snapshot of its JSON (see lp_fs_read) with a new mtime. Returns 0,
 * -ENOENT, -ENOTDIR, -ENAMETOOLONG, -ENOMEM.
 */
int lp_fs_lookup(struct lp_fs *fs, uint64_t parent, const char *name,
		 struct stat *st);

/*
 * Directory listing callback: one entry (@name, its attributes @st) and the
 * offset to pass back to continue after it. Return 0 to go on, 1 to stop
 * (the entry was not consumed and will be offered again from its offset).
 * @st with st_nlink 0: only its inode number and its type bits (none:
 * unknown) are known, nothing else may be handed out (a gzip index layer's
 * entry whose tar header is not checked yet: a lookup checks it).
 */
typedef int (*lp_fs_dirent_fn)(void *opaque, const char *name,
			       const struct stat *st, uint64_t next_off);

/*
 * lp_fs_readdir() - list directory @ino from offset @off (0 = start; "." and
 * ".." come first), calling @fn until it stops or the listing ends. Hidden
 * names are skipped; offsets stay stable. Returns 0, -ENOENT, -ENOTDIR.
 */
int lp_fs_readdir(struct lp_fs *fs, uint64_t ino, uint64_t off,
		  lp_fs_dirent_fn fn, void *opaque);

/*
 * lp_fs_readlink() - the target of symlink @ino (borrowed, lives as long as
 * @fs). Returns 0, -ENOENT, -EINVAL (not a symlink).
 */
int lp_fs_readlink(struct lp_fs *fs, uint64_t ino, const char **ret_target);

/*
 * lp_fs_getxattr() - copy the value of xattr @name of @ino into @buf
 * (@size bytes; 0 asks for the length only). Returns the value's length,
 * -ENODATA, -ERANGE (@buf too small), -ENOENT.
 */
int lp_fs_getxattr(struct lp_fs *fs, uint64_t ino, const char *name, void *buf,
		   size_t size);

/*
 * lp_fs_listxattr() - the NUL-separated xattr names of @ino into @buf
 * (@size 0: length only). Returns the length, -ERANGE, -ENOENT.
 */
int lp_fs_listxattr(struct lp_fs *fs, uint64_t ino, char *buf, size_t size);

/*
 * lp_fs_open() - open @ino for reading. Write access (@flags O_WRONLY,
 * O_RDWR, O_TRUNC) is refused with -EROFS; directories with -EISDIR; other
 * non-regular files with -EINVAL. On success *ret_file is a handle the
 * caller frees with lp_fs_release(); an open of a regular file is what
 * access recording counts. @ret_direct_io is set for the control file: the
 * handle holds a snapshot of its JSON made now, served bypassing page
 * caches. Opening is optional: lp_fs_read() also reads by inode alone.
 */
int lp_fs_open(struct lp_fs *fs, uint64_t ino, int flags,
	       struct lp_fs_file **ret_file, bool *ret_direct_io);

/*
 * lp_fs_read() - read up to @size bytes at @off of file @ino into @buf,
 * through handle @file from lp_fs_open(), or without one (@file NULL; the
 * control file then reads the snapshot its last lp_fs_lookup() made, which
 * lp_fs_getattr() and lp_fs_lookup() report the size of). Every byte
 * returned comes from a chunk whose digest was verified. Returns the number
 * of bytes (0 at or past the end), -EBADMSG (a chunk failed verification
 * or has no digest to verify against: @err names layer, file and offset),
 * -EIO (the blob source could not deliver: @err says why, with the HTTP
 * status and whether a retry may help), -ENOMEM, and without a handle
 * -EISDIR/-EINVAL/-ENOENT for an inode that is not a regular file. Short
 * only at the end of the file.
 */
int lp_fs_read(struct lp_fs *fs, uint64_t ino, struct lp_fs_file *file,
	       void *buf, size_t size, uint64_t off, struct lp_err *err);

/*
 * lp_fs_reply_errno() - the errno to answer a file-system request with for
 * the core's error @r (< 0), by the errno alone: what the data path returns
 * for a bad medium (-EBADMSG corrupt or unverifiable bytes, -EFBIG a chunk
 * over a bound, -EPROTO a broken reply, and transport codes that a source
 * should have turned into -EIO) becomes EIO, as applications expect of a
 * disk; everything else passes as it is (ENOMEM stays ENOMEM, ENOENT,
 * ENOTDIR, ERANGE, ENODATA, EROFS, EIO...). The one mapping of core errors
 * to replies; fs/fuse_ops.c's reply_error() uses it.
 */
int lp_fs_reply_errno(int r);

/*
 * A read served in place by lp_fs_read_pin(): iov[0..nr) hold the bytes, in
 * order. pins[] belong to the core (the chunks kept alive for iov).
 */
struct lp_fs_segs {
	struct iovec iov[LP_FS_READ_MAX_SEGS];
	unsigned int nr;
	void *pins[LP_FS_READ_MAX_SEGS];
};

/*
 * lp_fs_read_pin() - lp_fs_read() without the copy: on success @segs points
 * into verified cache memory that stays valid and unchanged until
 * lp_fs_read_unpin(); a reply can be written straight from it. Returns the
 * byte count (0 at or past the end) or the errors of lp_fs_read(), and
 * -E2BIG when the range spans more than LP_FS_READ_MAX_SEGS chunks or is
 * the control file's (use lp_fs_read()). Nothing stays pinned on failure.
 */
int lp_fs_read_pin(struct lp_fs *fs, uint64_t ino, struct lp_fs_file *file,
		   size_t size, uint64_t off, struct lp_fs_segs *segs,
		   struct lp_err *err);

/* lp_fs_read_unpin() - release what lp_fs_read_pin() pinned in @segs. */
void lp_fs_read_unpin(struct lp_fs *fs, struct lp_fs_segs *segs);

/* lp_fs_release() - free a handle from lp_fs_open(). NULL allowed. */
void lp_fs_release(struct lp_fs *fs, struct lp_fs_file *file);

/* lp_fs_statfs() - sizes and counts for statfs(2). */
void lp_fs_statfs(struct lp_fs *fs, struct statvfs *st);

/*
 * lp_fs_stats_json() - append the layer's statistics as one JSON object to
 * @out: fetched and total bytes, prefetch and background state, on-demand
 * fetch count and latency (with the histogram of struct lp_fs_stats), cache
 * hits, FUSE operation counts. Returns 0, -EFBIG, -ENOMEM.
 */
int lp_fs_stats_json(struct lp_fs *fs, struct lp_buf *out);

/*
 * Statistics as numbers (the same counters as the JSON), for exporters and
 * tests. Every counter only grows; they are read one by one without a lock,
 * so counters read together may be a few events apart while reads go on.
 */

/* On-demand fetch latency histogram: bucket i counts fetches that took at
 * most lp_fs_latency_bound_ns(i) (100 us ... 10 s); one more, +Inf. */
#define LP_FS_LATENCY_BUCKETS 16

/* FUSE operations counted by the adapter (lp_fs_count_op). */
enum lp_fs_op {
	LP_FS_OP_LOOKUP,
	LP_FS_OP_GETATTR,
	LP_FS_OP_READLINK,
	LP_FS_OP_OPENDIR,
	LP_FS_OP_READDIR,
	LP_FS_OP_READDIRPLUS,
	LP_FS_OP_OPEN,
	LP_FS_OP_READ,
	LP_FS_OP_RELEASE,
	LP_FS_OP_GETXATTR,
	LP_FS_OP_LISTXATTR,
	LP_FS_OP_STATFS,
	LP_FS_OP_COUNT
};

struct lp_fs_stats {
	uint64_t fetched_bytes; /* compressed, from the blob */
	uint64_t fetched_chunks; /* = cache misses */
	uint64_t mem_hits;
	uint64_t disk_hits;
	uint64_t ondemand_fetches; /* a reader waited */
	uint64_t ondemand_ns_total;
	uint64_t ondemand_ns_max;
	/* cumulative, Prometheus style: [i] = fetches that took at most
	 * lp_fs_latency_bound_ns(i); [LP_FS_LATENCY_BUCKETS] = all of them */
	uint64_t ondemand_le[LP_FS_LATENCY_BUCKETS + 1];
	uint64_t ops[LP_FS_OP_COUNT]; /* by enum lp_fs_op */
};

/* lp_fs_stats_get() - the counters of @fs into @ret. */
void lp_fs_stats_get(struct lp_fs *fs, struct lp_fs_stats *ret);

/* lp_fs_latency_bound_ns() - upper bound of bucket @i (< LP_FS_LATENCY_
 * BUCKETS) in nanoseconds; UINT64_MAX (+Inf) for any other @i. */
uint64_t lp_fs_latency_bound_ns(unsigned int i);

/* lp_fs_op_name() - "lookup", "getattr", ...; "unknown" out of range. */
const char *lp_fs_op_name(enum lp_fs_op op);

/*
 * lp_fs_count_op() - count one FUSE operation @op on @fs (a relaxed atomic
 * increment; any thread). The adapter calls it once per request it serves;
 * the core's own functions count nothing, so tools calling them directly do
 * not show up as FUSE traffic.
 */
void lp_fs_count_op(struct lp_fs *fs, enum lp_fs_op op);

/*
 * Access recording (for profile-guided prefetch, `lazypull optimize`).
 *
 *	lp_fs_record_start(fs);		before or while serving
 *	... the workload runs on the mount ...
 *	lp_fs_record_get(fs, &idx, &n);	entry indexes, first access first
 *	lp_toc_entry_path(lp_layer_toc(lp_fs_layer(fs)), idx[i], ...)
 *	free(idx);
 *
 * What counts as an access: lp_fs_open() of a regular file (recorded as the
 * entry holding its data: a hardlink's target) and lp_fs_readlink() of a
 * symlink. Lookups, getattr, readdir and xattrs do not count (overlayfs
 * performs those on every lower layer; it opens files only in the layer that
 * serves them). Each entry is recorded once. Off unless started.
 */

/*
 * lp_fs_record_start() - start recording accesses (idempotent: a second
 * call keeps what was recorded). May be called from any thread. Returns 0 or
 * -ENOMEM.
 */
int lp_fs_record_start(struct lp_fs *fs);

/*
 * lp_fs_record_get() - a copy of the recorded TOC entry indexes (into
 * lp_toc_entry()) in first-access order; empty when recording was never
 * started. Recording goes on. The caller frees *@ret_entries (non-NULL even
 * when *@ret_n is 0). Returns 0 or -ENOMEM.
 */
int lp_fs_record_get(struct lp_fs *fs, uint32_t **ret_entries, size_t *ret_n);

#endif /* LP_FS_H */
