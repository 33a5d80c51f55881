/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of contents (TOC) of an eStargz / zstd:chunked layer, parsed into
 * compact immutable arrays, and its JSON form.
 *
 * Model. Every non-chunk TOC JSON entry becomes one struct lp_toc_entry, kept
 * in TOC (= blob) order; directories implied by a path but missing from the
 * TOC are appended after them (flag LP_TOC_IMPLIED, mode 0755) and the root
 * directory is entry 0 whether or not the TOC names "./". Names are
 * normalised: no leading "./" or "/", no trailing "/", the root is "".
 * "chunk" entries become struct lp_toc_chunk records attached to their file;
 * a regular file always has at least one chunk record when its size is
 * non-zero (the reg entry's own offset/chunk fields form the first one).
 *
 * Inodes. A hardlink entry keeps type LP_TOC_HARDLINK and link_name, and its
 * inode (lp_toc_entry_ino()) is the entry index of its (final, resolved)
 * target; every other entry's is its own index. Attributes, chunks and xattrs
 * are read from the inode entry. lp_toc_entry_nlink() counts the names of an
 * inode (for directories, 2 + subdirectories).
 *
 * Directories. Each directory entry lists its children as a contiguous range
 * of a children array sorted bytewise by name, so lookups are binary searches.
 *
 * Thread rules: a struct lp_toc is immutable after lp_toc_parse() (and
 * lp_toc_spill_digests(), which its owner calls before sharing it); any
 * number of threads may read it at once.
 */
#ifndef LP_TOC_H
#define LP_TOC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

#include "lp_buf.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_format.h"

enum lp_toc_type {
	LP_TOC_DIR = 1,
	LP_TOC_REG,
	LP_TOC_SYMLINK,
	LP_TOC_HARDLINK,
	LP_TOC_CHAR,
	LP_TOC_BLOCK,
	LP_TOC_FIFO,
	LP_TOC_CHUNK, /* only in lp_toc_record, never an entry */
};

/* lp_toc_type_name() - the JSON name ("dir", "reg", ...). */
const char *lp_toc_type_name(enum lp_toc_type t);

enum {
	LP_TOC_IMPLIED = 1 << 0, /* directory not named in the TOC */
	LP_TOC_HAS_DIGEST = 1 << 1, /* `digest` present (reg) */
	LP_TOC_HAS_MODTIME = 1 << 2,
};

#define LP_TOC_NO_INDEX UINT32_MAX

/*
 * An entry as kept in memory (36 bytes): the fields every lookup, getattr
 * and read use. What few entries have (link targets, device numbers,
 * xattrs, a file digest other than its first chunk's, the file offsets of
 * the chunks of a file of several, a hardlink's target, a link count other
 * than 1) lives in side records found by entry index, the owners (uid, gid
 * and their names) in a deduplicated table, and a modification time
 * outside [1970, 2106) or with nanoseconds in a side table, all behind
 * accessors (lp_toc_entry_uid(), lp_toc_entry_link_name(),
 * lp_toc_entry_mtime() ...), as do the digests. Paths are not stored: the
 * string pool holds each entry's last component only (lp_toc_entry_name();
 * lp_toc_entry_path() builds the full path from the parent chain).
 *
 * first_chunk/nr_chunks (regular files) and first_child/nr_children
 * (directories) share their storage: test ->type before using either pair
 * (any other type has both counts 0).
 */
struct lp_toc_entry {
	uint64_t size; /* reg: file size */
	uint32_t mtime; /* private: use lp_toc_entry_mtime() */
	uint32_t name_off; /* private: use lp_toc_entry_name() */
	uint32_t parent; /* index of the parent directory entry */
	union {
		uint32_t first_chunk; /* reg: into lp_toc_chunk() */
		uint32_t first_child; /* dir: into lp_toc_child() */
	};
	union {
		uint32_t nr_chunks;
		uint32_t nr_children;
	};
	uint32_t owner_idx; /* private: use lp_toc_entry_uid() ... */
	uint16_t mode; /* permission bits only (& 07777) */
	uint8_t type; /* enum lp_toc_type */
	uint8_t flags; /* LP_TOC_* flags (and private ones) */
} __attribute__((packed, aligned(4)));

/*
 * One chunk, as lp_toc_chunk() returns it (a value: the TOC keeps a smaller
 * record and derives the file range, see format/toc_parse.c; the digest
 * lives in a shared, deduplicated table).
 */
struct lp_toc_chunk {
	uint64_t offset; /* blob offset of the compressed member */
	uint64_t chunk_offset; /* offset inside the file */
	uint32_t compressed_size; /* bytes from offset to the next member;
				     checked < 4 GiB when parsed */
	uint32_t chunk_size; /* resolved: never 0; <= LP_CHUNK_MAX_SIZE */
	uint32_t inner_offset; /* bytes to skip after decompressing;
				  <= LP_CHUNK_MAX_INNER_OFFSET */
	uint32_t entry; /* owning file entry */
	uint32_t digest_idx; /* private: use lp_toc_chunk_digest() */
} __attribute__((packed, aligned(4)));

struct lp_toc_xattr {
	const char *name;
	const uint8_t *value; /* decoded from base64 */
	uint32_t len;
};

struct lp_toc;

/*
 * lp_toc_parse() - parse TOC JSON (@len bytes, need not be NUL-terminated).
 * @payload_end is where the TOC starts in the blob: every member offset must
 * lie before it. Rejects, naming the entry: unknown types, `..` or paths
 * escaping the root, over-long names, duplicate names, a non-directory used
 * as a parent, hardlinks to missing or non-regular targets (or cycles),
 * offsets outside [0, payload_end), chunks that overlap, leave gaps or do not
 * add up to the file size, sizes over the LP_* bounds, bad base64, bad
 * digests, and any JSON LP_TOC_MAX_JSON_NESTING deep or more (as json-c
 * counts it: a tokener of that depth takes one level less).
 * On success *ret_toc is a new TOC owned by the caller (lp_toc_free).
 * Returns 0, -EINVAL (malformed), -EFBIG (over a bound), -ENOMEM.
 */
int lp_toc_parse(const void *json, size_t len, uint64_t payload_end,
		 struct lp_toc **ret_toc, struct lp_err *err);

/*
 * TOC JSON that is still arriving (being inflated) while it is parsed: its
 * bytes are written front to back into the buffer lp_toc_parse_fed() reads,
 * and the parser asks for them as it goes.
 */
struct lp_toc_feed {
	/*
	 * wait() - block until at least @want (<= the JSON's length) bytes
	 * from the start are in place; returns how many are (>= @want, <= the
	 * length), or -errno when they never will be (the parse fails with
	 * it). Called from the parsing thread, and (for all the bytes) from
	 * the split parse's second thread at the same time: thread-safe.
	 */
	ssize_t (*wait)(void *arg, size_t want);
	void *arg;
	/* bytes the parser asks for past the start of each entry (0: a
	   default of 256 KiB; tests use small ones to cut entries short) */
	size_t window;
	/*
	 * lend() - optional (NULL: not offered): run @job(@job_arg) on the
	 * thread that feeds the bytes, once they are all in place or never
	 * will be, before anything else that thread does then, so that the
	 * split parse needs no third thread on two cores. 0 when taken (the
	 * job then runs exactly once, unless withdrawn before it began),
	 * -errno when not (the thread is past that point, or there is none).
	 * @job NULL withdraws the job taken: 1 when it began already (the
	 * caller waits for it to end), else 0 (it will not run).
	 */
	int (*lend)(void *arg, void (*job)(void *), void *job_arg);
};

/*
 * lp_toc_parse_fed() - lp_toc_parse() of @json[0..@len) whose bytes arrive
 * through @feed (NULL: all are there): the same TOC, or the same error
 * and message, as lp_toc_parse() of the whole; a byte is read only once
 * @feed said it is in place. An entry cut short by the bytes in place is
 * scanned again once more have come.
 */
int lp_toc_parse_fed(const void *json, size_t len,
		     const struct lp_toc_feed *feed, uint64_t payload_end,
		     struct lp_toc **ret_toc, struct lp_err *err);

/* JSON this long or longer is parsed on two threads (lp_toc_parse_split) */
#define LP_TOC_SPLIT_MIN ((size_t)4 * 1024 * 1024)
/* lp_toc_parse_split()'s @split for a parse on one thread */
#define LP_TOC_SPLIT_NONE SIZE_MAX

/*
 * lp_toc_parse_split() - lp_toc_parse_fed() whose "entries" array may be
 * parsed on two threads: the entries from the first one that starts at or
 * after byte @split on a second thread, joined in order (0: JSON of
 * LP_TOC_SPLIT_MIN bytes or more is split about halfway through what the
 * first thread has left once all of it is in place, else not split;
 * LP_TOC_SPLIT_NONE: on one thread). The same TOC, or the same error and
 * message, as a parse on one thread, wherever the split falls; a part that
 * cannot be joined exactly is parsed again on the first thread. With
 * @feed, its wait() is also called from the second thread, for all the
 * bytes. lp_toc_parse_fed() is this with @split 0; tests force a split.
 */
int lp_toc_parse_split(const void *json, size_t len,
		       const struct lp_toc_feed *feed, size_t split,
		       uint64_t payload_end, struct lp_toc **ret_toc,
		       struct lp_err *err);

/* lp_toc_free() - NULL allowed. */
void lp_toc_free(struct lp_toc *toc);

uint32_t lp_toc_nr_entries(const struct lp_toc *toc);
uint32_t lp_toc_nr_chunks(const struct lp_toc *toc);
/* lp_toc_entry() - entry @i (< nr_entries); 0 is the root directory. */
const struct lp_toc_entry *lp_toc_entry(const struct lp_toc *toc, uint32_t i);
/*
 * lp_toc_chunk() - chunk @i (< nr_chunks), by value; past the end a record of
 * zeros with ->entry LP_TOC_NO_INDEX.
 */
struct lp_toc_chunk lp_toc_chunk(const struct lp_toc *toc, uint32_t i);
const struct lp_toc_xattr *lp_toc_xattr(const struct lp_toc *toc, uint32_t i);
/* lp_toc_child() - entry index of child @i of the children array. */
uint32_t lp_toc_child(const struct lp_toc *toc, uint32_t i);

/*
 * lp_toc_entry_path() - the normalised path of entry @i ("" for the root)
 * into @buf (@size bytes; LP_TOC_MAX_PATH + 1 always suffices), built from
 * the parent chain. Returns its length, -ENAMETOOLONG (@buf too small: it
 * holds "") or -ENOENT (no such entry).
 */
int lp_toc_entry_path(const struct lp_toc *toc, uint32_t i, char *buf,
		      size_t size);

/*
 * lp_toc_entry_digest() - the `digest` of regular file entry @e into *@ret.
 * Returns 1, 0 when the TOC gives none (*@ret untouched), or the read's
 * -errno (-EIO when it came back short) when the spilled digest table could
 * not be read (lp_toc_spill_digests()).
 */
int lp_toc_entry_digest(const struct lp_toc *toc, const struct lp_toc_entry *e,
			struct lp_digest *ret);

/*
 * lp_toc_entry_name() - the last component of @e's path, NUL-terminated
 * ("" for the root). Borrowed from @toc.
 */
const char *lp_toc_entry_name(const struct lp_toc *toc,
			      const struct lp_toc_entry *e);

/*
 * lp_toc_entry_link_name() - symlink target or hardlink target path
 * (hardlink: normalised), "" for any other entry. Borrowed from @toc.
 */
const char *lp_toc_entry_link_name(const struct lp_toc *toc,
				   const struct lp_toc_entry *e);

/*
 * lp_toc_entry_ino() - index of the inode entry of @e (an entry of @toc, from
 * lp_toc_entry()): a hardlink's resolved target, any other entry itself.
 */
uint32_t lp_toc_entry_ino(const struct lp_toc *toc,
			  const struct lp_toc_entry *e);

/*
 * lp_toc_entry_nlink() - the names of @e's inode (a hardlink: its target's;
 * a directory: 2 + subdirectories; else 1 + hardlinks to it).
 */
uint32_t lp_toc_entry_nlink(const struct lp_toc *toc,
			    const struct lp_toc_entry *e);

/*
 * lp_toc_entry_mtime() - the modification time of @e (0 when the TOC gives
 * none: see LP_TOC_HAS_MODTIME).
 */
void lp_toc_entry_mtime(const struct lp_toc *toc, const struct lp_toc_entry *e,
			int64_t *ret_sec, uint32_t *ret_nsec);

/* lp_toc_entry_uid(), lp_toc_entry_gid() - the numeric owner of @e. */
uint32_t lp_toc_entry_uid(const struct lp_toc *toc,
			  const struct lp_toc_entry *e);
uint32_t lp_toc_entry_gid(const struct lp_toc *toc,
			  const struct lp_toc_entry *e);

/*
 * lp_toc_entry_user_name(), lp_toc_entry_group_name() - the owner names,
 * carried forward as in the reference ("" when none). Borrowed from @toc.
 */
const char *lp_toc_entry_user_name(const struct lp_toc *toc,
				   const struct lp_toc_entry *e);
const char *lp_toc_entry_group_name(const struct lp_toc *toc,
				    const struct lp_toc_entry *e);

/* lp_toc_entry_dev() - devMajor/devMinor of @e (0 when not given). */
void lp_toc_entry_dev(const struct lp_toc *toc, const struct lp_toc_entry *e,
		      uint32_t *ret_major, uint32_t *ret_minor);

/*
 * lp_toc_entry_xattrs() - the xattrs of @e as an array of *@ret_nr records
 * (in the TOC's order), or NULL with *@ret_nr = 0 when it has none.
 */
const struct lp_toc_xattr *lp_toc_entry_xattrs(const struct lp_toc *toc,
					       const struct lp_toc_entry *e,
					       uint32_t *ret_nr);

/*
 * lp_toc_chunk_digest() - the `chunkDigest` of @c into *@ret. Returns 1, 0
 * when absent (*@ret untouched), or -errno as lp_toc_entry_digest().
 */
int lp_toc_chunk_digest(const struct lp_toc *toc, const struct lp_toc_chunk *c,
			struct lp_digest *ret);

/*
 * Digests out of the heap: a TOC whose digest table is at least this large
 * (32 bytes per distinct digest: about 32k chunks) moves it to a file when
 * its owner calls lp_toc_spill_digests(); smaller ones keep it in memory.
 */
#define LP_TOC_SPILL_MIN ((size_t)1 << 20)

/*
 * lp_toc_spill_digests() - move @toc's digest table (when it holds at least
 * @min_bytes: LP_TOC_SPILL_MIN, or 0 to always) into an unlinked file in
 * @dir (NULL: $TMPDIR, else /var/tmp) and free it from memory; the
 * digest accessors then read it back with pread() (a local file read, the
 * kernel's page cache in front). A memory-backed @dir (tmpfs) is no saving
 * and keeps the table in memory. Call before sharing @toc between threads.
 * Returns 1 (moved), 0 (kept in memory), or -errno with @err set (kept in
 * memory: @toc is as usable as before).
 */
int lp_toc_spill_digests(struct lp_toc *toc, const char *dir, size_t min_bytes,
			 struct lp_err *err);

/*
 * lp_toc_lookup() - the child of directory entry @dir named @name (@len
 * bytes). Returns its entry index (not resolved to an inode: use lp_toc_entry_ino()), or
 * LP_TOC_NO_INDEX.
 */
uint32_t lp_toc_lookup(const struct lp_toc *toc, uint32_t dir, const char *name,
		       size_t len);

/* lp_toc_lookup_path() - entry index of a path ("./" and "/" allowed). */
uint32_t lp_toc_lookup_path(const struct lp_toc *toc, const char *path);

/*
 * lp_toc_find_chunk() - index into lp_toc_chunk() of the chunk of inode entry
 * @ino that holds file offset @off, or LP_TOC_NO_INDEX past the end.
 */
uint32_t lp_toc_find_chunk(const struct lp_toc *toc, uint32_t ino,
			   uint64_t off);

/*
 * lp_toc_prefetch_end() - blob offset of `.prefetch.landmark`'s member (the
 * prefetch range is [0, end)), or 0 when the layer has no such landmark.
 */
uint64_t lp_toc_prefetch_end(const struct lp_toc *toc);

/*
 * TOC JSON writing, byte-compatible with the reference writer (Go's
 * json.MarshalIndent(toc, "", "\t") of estargz.JTOC): fields in the
 * reference's order, empty fields omitted, xattr values base64, xattr names
 * sorted. A record is one JSON entry as written: for a chunked file, the reg
 * record carries the first chunk and "chunk" records follow.
 */
struct lp_toc_record {
	const char *name; /* as written (the converter keeps tar names) */
	enum lp_toc_type type;
	uint64_t size;
	int64_t mtime_sec; /* written when has_modtime */
	uint32_t mtime_nsec;
	bool has_modtime;
	const char *link_name;
	uint32_t mode; /* as written; may include S_IF bits */
	uint32_t uid, gid;
	const char *user_name; /* NULL or "": omitted */
	const char *group_name;
	uint64_t offset;
	uint64_t inner_offset;
	uint32_t dev_major, dev_minor;
	const struct lp_toc_xattr *xattrs;
	uint32_t nr_xattrs;
	const struct lp_digest *digest; /* NULL: omitted */
	uint64_t chunk_offset;
	uint64_t chunk_size;
	const struct lp_digest *chunk_digest; /* NULL: omitted */
};

struct lp_toc_writer;

/* lp_toc_writer_new() - start a TOC of version 1, output capped at @limit. */
int lp_toc_writer_new(size_t limit, struct lp_toc_writer **ret_w);
/* lp_toc_writer_add() - append one record. -EFBIG past the limit. */
int lp_toc_writer_add(struct lp_toc_writer *w, const struct lp_toc_record *r);
/*
 * lp_toc_writer_finish() - close the JSON and move it into @out (which must
 * be empty); the writer can then only be freed.
 */
int lp_toc_writer_finish(struct lp_toc_writer *w, struct lp_buf *out);
/* lp_toc_writer_free() - NULL allowed. */
void lp_toc_writer_free(struct lp_toc_writer *w);

/*
 * lp_toc_write_json() - serialise a parsed TOC back to JSON (implied
 * directories are not written; chunk records follow their file).
 */
int lp_toc_write_json(const struct lp_toc *toc, struct lp_buf *out);

#endif /* LP_TOC_H */
