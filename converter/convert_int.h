/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Converter internals shared by its files: the model of one input tar entry
 * (struct lp_cv_entry), the tar reader over libarchive (tar_read.c), the tar
 * header encoder that re-encodes an entry exactly as Go's archive/tar writer
 * does in the reference converter (tar_header.c), and the parallel member
 * compressor (compress.c). Not included from other modules.
 */
#ifndef LP_CONVERT_INT_H
#define LP_CONVERT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lp_buf.h"
#include "lp_convert.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_format.h"

/* Bounds on what an input tar may claim (house rule 8). */
#define LP_CV_MAX_NAME LP_TOC_MAX_PATH /* path or link target */
#define LP_CV_MAX_USER_NAME 256 /* uname / gname */
#define LP_CV_MAX_XATTRS LP_TOC_MAX_XATTRS /* per entry */
#define LP_CV_MAX_XATTR_NAME 255
#define LP_CV_MAX_XATTR_VALUE LP_TOC_MAX_XATTR_VALUE
#define LP_CV_MAX_ENTRIES LP_TOC_MAX_ENTRIES /* entries in one layer */
#define LP_CV_MIN_CHUNK_SIZE (4 * LP_KIB)
#define LP_CV_MAX_CHUNK_SIZE LP_CHUNK_MAX_SIZE
#define LP_CV_MAX_THREADS 256
/* PAX extended header data of one entry: Go's maxSpecialFileSize */
#define LP_CV_MAX_PAX_DATA (1 * LP_MIB)

/* Go's archive/tar Format bits */
enum lp_cv_tar_format {
	LP_CV_FMT_UNKNOWN = 0,
	LP_CV_FMT_USTAR = 1 << 1,
	LP_CV_FMT_PAX = 1 << 2,
	LP_CV_FMT_GNU = 1 << 3,
};

struct lp_cv_xattr {
	char *name;
	uint8_t *value;
	size_t len;
};

/* One input entry, as Go's tar.Reader would have returned its header. */
struct lp_cv_entry {
	char *name; /* as in the tar (e.g. "./usr/bin/") */
	char *link_name; /* "" when none */
	char *uname, *gname;
	char typeflag; /* '0' '1' '2' '3' '4' '5' '6' */
	uint8_t format; /* enum lp_cv_tar_format, as Go's reader guesses it */
	bool has_atime, has_ctime;
	int64_t mode; /* permission bits (& 07777) */
	int64_t uid, gid;
	int64_t size; /* payload bytes (reg only; 0 otherwise) */
	int64_t dev_major, dev_minor;
	int64_t mtime, atime, ctime;
	uint32_t mtime_ns, atime_ns, ctime_ns;
	struct lp_cv_xattr *xattrs;
	uint32_t nr_xattrs;
	uint64_t spool_off; /* prioritised mode: payload offset in the spool */
};

void lp_cv_entry_clear(struct lp_cv_entry *e);

/*
 * lp_cv_tar_header() - append to @out the tar header block(s) Go's
 * tar.Writer.WriteHeader() writes for @e (PAX extended header or GNU long
 * name records first, when needed). Returns 0, -EINVAL when Go could not
 * encode it either (a key with '=', a file name ending in '/'), -EFBIG.
 */
int lp_cv_tar_header(const struct lp_cv_entry *e, struct lp_buf *out,
		     struct lp_err *err);

/* lp_cv_is_ascii() - true when every byte of @s is below 0x80. */
bool lp_cv_is_ascii(const char *s);

/* lp_cv_clean_name() - Go's strings.TrimPrefix(path.Clean("/"+name), "/"),
 * the reference's cleanEntryName; a new string. */
char *lp_cv_clean_name(const char *name);

/* lp_cv_tar_simple_header() - the USTAR header of a plain regular file
 * with only a name and a size (landmarks, the TOC entry). */
int lp_cv_tar_simple_header(const char *name, uint64_t size,
			    struct lp_buf *out);

/* ---- tar reading (tar_read.c) ---- */
struct lp_cv_reader;

/*
 * A plain tar stream pulled from a callback: set *buf to the next bytes and
 * return how many (0 at the end), or -errno.
 */
typedef ssize_t (*lp_cv_read_fn)(void *ctx, const void **buf);

/* lp_cv_reader_new() - read a tar, tar.gz or tar.zst stream from @fd. */
int lp_cv_reader_new(int fd, struct lp_cv_reader **ret_rd, struct lp_err *err);
/*
 * lp_cv_reader_new_cb() - read a plain (uncompressed) tar stream from @fn
 * (the gzip indexer inflates it itself, to know where it is in the blob).
 */
int lp_cv_reader_new_cb(lp_cv_read_fn fn, void *ctx,
			struct lp_cv_reader **ret_rd, struct lp_err *err);
/*
 * lp_cv_reader_offsets() - where the entry lp_cv_reader_next() returned
 * lies in the uncompressed stream: its first header block (PAX and GNU
 * long-name records included) and its payload. Returns 0, -EOPNOTSUPP for a
 * sparse file (its payload is not stored as read), -EINVAL with no entry.
 */
int lp_cv_reader_offsets(struct lp_cv_reader *rd, uint64_t *ret_hdr,
			 uint64_t *ret_data);
/*
 * lp_cv_reader_next() - fill @e (cleared first) with the next entry.
 * Returns 1 for an entry, 0 at the end, or -errno (err names the entry).
 */
int lp_cv_reader_next(struct lp_cv_reader *rd, struct lp_cv_entry *e,
		      struct lp_err *err);
/*
 * lp_cv_reader_read() - read exactly @len bytes of the current entry's
 * payload (sparse holes read as zeros). 0 or -errno.
 */
int lp_cv_reader_read(struct lp_cv_reader *rd, void *buf, size_t len,
		      const struct lp_cv_entry *e, struct lp_err *err);
void lp_cv_reader_free(struct lp_cv_reader *rd);

/* ---- parallel member compression (compress.c) ---- */
struct lp_cv_pool;

/*
 * A digest to compute in a worker over part of a member (a chunk), and
 * where the result goes once the batch is written: record @rec.
 */
typedef void (*lp_cv_digest_cb)(void *ctx, size_t rec,
				const struct lp_digest *d);
typedef void (*lp_cv_member_cb)(void *ctx, uint64_t member, uint64_t offset,
				uint64_t csize);

struct lp_cv_pool_opts {
	enum lp_compression comp;
	int level;
	unsigned int threads;
	int out_fd;
	lp_cv_digest_cb on_digest;
	lp_cv_member_cb on_member;
	void *cb_ctx;
};

int lp_cv_pool_new(const struct lp_cv_pool_opts *o, struct lp_cv_pool **ret);
/*
 * lp_cv_pool_append() - append uncompressed bytes to the current member.
 */
int lp_cv_pool_append(struct lp_cv_pool *p, const void *data, size_t len);
/*
 * lp_cv_pool_reserve() - a pointer to @len writable bytes at the end of the
 * current member (to read payload straight into), valid until the next call.
 */
int lp_cv_pool_reserve(struct lp_cv_pool *p, size_t len, uint8_t **ret);
/* lp_cv_pool_commit() - @len reserved bytes were written: append them. */
void lp_cv_pool_commit(struct lp_cv_pool *p, size_t len);
/*
 * lp_cv_pool_digest() - ask for the sha256 of the last @len bytes appended,
 * delivered to on_digest(@rec) when the member is written.
 */
int lp_cv_pool_digest(struct lp_cv_pool *p, size_t len, size_t rec);
/*
 * lp_cv_pool_cut() - end the current member (if it holds anything) and
 * return the index of the next one through @ret_member.
 */
int lp_cv_pool_cut(struct lp_cv_pool *p, uint64_t *ret_member);
/* lp_cv_pool_flush() - cut, then wait for and write every member. */
int lp_cv_pool_flush(struct lp_cv_pool *p);
/* bytes written to out_fd so far (valid after flush) */
uint64_t lp_cv_pool_offset(const struct lp_cv_pool *p);
/* lp_cv_pool_blob_sha() - the running sha256 of everything written. */
struct lp_sha256 *lp_cv_pool_blob_sha(struct lp_cv_pool *p);
/* lp_cv_pool_write_raw() - write bytes as they are (after a flush). */
int lp_cv_pool_write_raw(struct lp_cv_pool *p, const void *data, size_t len);
/* lp_cv_compress() - compress one buffer in the calling thread. */
int lp_cv_compress(enum lp_compression comp, int level, const void *in,
		   size_t len, struct lp_buf *out);
void lp_cv_pool_free(struct lp_cv_pool *p);

#endif /* LP_CONVERT_INT_H */
