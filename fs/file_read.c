// SPDX-License-Identifier: Apache-2.0
/*
 * File reads: the hop from a file range to the chunks that cover it. Each
 * chunk is taken pinned from the cache (fetched, coalesced with its missing
 * neighbours, when absent), the wanted bytes are copied out, and the pin is
 * dropped; or, for lp_fs_read_pin(), the pins are kept and the caller
 * replies straight from cache memory (no copy, no buffer). Whether a read
 * continues where the file's last one ended (or starts it) is noted here;
 * how far it then fetches along (read-ahead, the following files) is the
 * planner's (fs_plan_read_limit).
 *
 * Reads come with or without an open handle: a mount whose kernel stopped
 * sending FUSE_OPEN (fs/fuse_ops.c) reads by inode alone, so nothing here
 * depends on a handle but the control file's snapshot. Where a file's last
 * read ended is kept per inode in a fixed table (fs_int.h, struct lp_fs
 * seq), not per handle.
 *
 * What a failed read answers (lp_fs_reply_errno) is decided here too: reads
 * are where the data path's errors reach a caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

_Static_assert((uint64_t)FS_SEQ_SLOTS << (64 - FS_SEQ_OFF_BITS) >=
		       (uint64_t)UINT32_MAX + 1,
	       "a sequential-read slot holds any entry index");

struct lp_fs_file {
	uint32_t idx; /* inode entry; unused for the control file */
	uint8_t *snapshot; /* control file: its contents */
	size_t snapshot_len;
};

static uint64_t seq_word(uint32_t idx, uint64_t off)
{
	return ((uint64_t)(idx / FS_SEQ_SLOTS) << FS_SEQ_OFF_BITS) | off;
}

/* whether a read of entry @idx at @off goes on where the last one ended */
static bool seq_continues(struct lp_fs *fs, uint32_t idx, uint64_t off)
{
	atomic_uint_fast64_t *slot = &fs->seq[idx % FS_SEQ_SLOTS];

	if (off == 0)
		return true;
	return off < (1ull << FS_SEQ_OFF_BITS) &&
	       atomic_load_explicit(slot, memory_order_relaxed) ==
		       seq_word(idx, off);
}

static void seq_note(struct lp_fs *fs, uint32_t idx, uint64_t end)
{
	atomic_uint_fast64_t *slot = &fs->seq[idx % FS_SEQ_SLOTS];

	/* past the offset bits: forget it (0 matches no read but at 0) */
	atomic_store_explicit(
		slot, end < (1ull << FS_SEQ_OFF_BITS) ? seq_word(idx, end) : 0,
		memory_order_relaxed);
}

/* the entry holding the data of regular file @ino (a hardlink's target) */
static int file_index(struct lp_fs *fs, uint64_t ino, uint32_t *ret_idx)
{
	struct stat st;
	int r;

	if (ino == fs->ctl_dir_ino)
		return -EISDIR;
	r = lp_fs_getattr(fs, ino, &st);
	if (r < 0)
		return r;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	*ret_idx = lp_toc_entry_ino(fs->toc,
				    lp_toc_entry(fs->toc, (uint32_t)(ino - 1)));
	return 0;
}

int lp_fs_open(struct lp_fs *fs, uint64_t ino, int flags,
	       struct lp_fs_file **ret_file, bool *ret_direct_io)
{
	struct lp_fs_file *f = NULL;
	uint32_t idx = 0;
	int r = 0;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
		r = -EROFS;
		goto out;
	}
	if (ino != fs->stats_ino) {
		r = file_index(fs, ino, &idx);
		if (r == 0 && fs_poisoned(fs, NULL) < 0)
			r = -EIO;
		if (r < 0)
			goto out;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	*ret_direct_io = false;
	if (ino == fs->stats_ino) {
		/* the lookup's snapshot: the size fstat reports */
		r = fs_stats_file_copy(fs, &f->snapshot, &f->snapshot_len);
		if (r < 0)
			goto out;
		*ret_direct_io = true;
	} else {
		f->idx = idx;
		fs_record_access(fs, f->idx);
	}
	*ret_file = f;
	f = NULL;
out:
	free(f);
	return r;
}

void lp_fs_release(struct lp_fs *fs, struct lp_fs_file *file)
{
	if (!file)
		return;
	free(file->snapshot);
	free(file);
}

/* the chunks a read covers: [ci, last], fetching along up to limit */
struct read_plan {
	size_t size; /* clamped to the file; 0: nothing to read */
	uint32_t ci, last, limit;
};

static int plan_read(struct lp_fs *fs, uint32_t idx, size_t size, uint64_t off,
		     struct read_plan *p, struct lp_err *err)
{
	const struct lp_toc_entry *e = lp_toc_entry(fs->toc, idx);
	int r = 0;

	p->size = 0;
	r = fs_poisoned(fs, err);
	if (r < 0 || off >= e->size || !size)
		goto out;
	r = fs_check_file(fs, idx, err);
	if (r < 0)
		goto out;
	size = lp_min_u64(size, e->size - off);
	if (size > INT32_MAX)
		size = INT32_MAX;
	p->ci = lp_toc_find_chunk(fs->toc, idx, off);
	p->last = lp_toc_find_chunk(fs->toc, idx, off + size - 1);
	if (p->ci == LP_TOC_NO_INDEX || p->last == LP_TOC_NO_INDEX) {
		char path[LP_TOC_MAX_PATH + 1];

		lp_toc_entry_path(fs->toc, idx, path, sizeof(path));
		r = lp_err_set(err, -EIO, "layer %s: file %s: no chunk at %llu",
			       lp_blob_name(fs->blob), path,
			       (unsigned long long)off);
		goto out;
	}
	p->limit = fs_plan_read_limit(fs->toc, idx, p->last,
				      seq_continues(fs, idx, off));
	p->size = size;
out:
	return r;
}

/*
 * What a read of @ino reads: the entry in *@ret_idx (0 returned), or the
 * control file's bytes straight into @buf when @buf is given (1 returned,
 * the count in *@ret_done; without @buf -E2BIG: they cannot be pinned).
 */
static int read_target(struct lp_fs *fs, uint64_t ino, struct lp_fs_file *file,
		       void *buf, size_t size, uint64_t off, uint32_t *ret_idx,
		       size_t *ret_done)
{
	if (file && file->snapshot) {
		*ret_done = 0;
		if (buf && off < file->snapshot_len) {
			*ret_done = lp_min_u64(size, file->snapshot_len - off);
			memcpy(buf, file->snapshot + off, *ret_done);
		}
		return buf ? 1 : -E2BIG;
	}
	if (file) {
		*ret_idx = file->idx;
		return 0;
	}
	if (ino == fs->stats_ino) {
		if (!buf)
			return -E2BIG;
		*ret_done = fs_stats_file_read(fs, buf, size, off);
		return 1;
	}
	return file_index(fs, ino, ret_idx);
}

int lp_fs_read(struct lp_fs *fs, uint64_t ino, struct lp_fs_file *file,
	       void *buf, size_t size, uint64_t off, struct lp_err *err)
{
	struct read_plan p;
	uint8_t *dst = buf;
	size_t done = 0;
	uint32_t ci, idx = 0;
	int r;

	r = read_target(fs, ino, file, buf, size, off, &idx, &done);
	if (r != 0)
		goto out;
	r = plan_read(fs, idx, size, off, &p, err);
	if (r < 0 || !p.size)
		goto out;
	for (ci = p.ci; done < p.size; ci++) {
		const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
		struct fs_chunk *ch = NULL;
		uint64_t in = off + done - c.chunk_offset;
		size_t n = lp_min_u64(p.size - done, c.chunk_size - in);

		r = fs_chunk_get(fs, ci, p.limit, FS_FETCH_ONDEMAND, &ch, NULL,
				 err);
		if (r < 0)
			goto out;
		memcpy(dst + done, ch->data + in, n);
		fs_chunk_put(fs, ch);
		done += n;
	}
	/* a lie found while this read was on its way: serve nothing */
	r = fs_poisoned(fs, err);
	if (r < 0)
		goto out;
	seq_note(fs, idx, off + done);
out:
	return r < 0 ? r : (int)done;
}

int lp_fs_read_pin(struct lp_fs *fs, uint64_t ino, struct lp_fs_file *file,
		   size_t size, uint64_t off, struct lp_fs_segs *segs,
		   struct lp_err *err)
{
	struct read_plan p;
	size_t done = 0;
	uint32_t ci, idx = 0;
	int r;

	segs->nr = 0;
	r = read_target(fs, ino, file, NULL, size, off, &idx, &done);
	if (r < 0)
		goto out;
	r = plan_read(fs, idx, size, off, &p, err);
	if (r < 0 || !p.size)
		goto out;
	if (p.last - p.ci >= LP_FS_READ_MAX_SEGS) {
		r = -E2BIG;
		goto out;
	}
	for (ci = p.ci; done < p.size; ci++) {
		const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
		struct fs_chunk *ch = NULL;
		uint64_t in = off + done - c.chunk_offset;
		size_t n = lp_min_u64(p.size - done, c.chunk_size - in);

		r = fs_chunk_get(fs, ci, p.limit, FS_FETCH_ONDEMAND, &ch, NULL,
				 err);
		if (r < 0)
			goto out;
		/* the pin keeps the verified, immutable data alive */
		segs->iov[segs->nr].iov_base = ch->data + in;
		segs->iov[segs->nr].iov_len = n;
		segs->pins[segs->nr++] = ch;
		done += n;
	}
	/* a lie found while this read was on its way: serve nothing */
	r = fs_poisoned(fs, err);
	if (r < 0)
		goto out;
	seq_note(fs, idx, off + done);
out:
	if (r < 0)
		lp_fs_read_unpin(fs, segs);
	return r < 0 ? r : (int)done;
}

void lp_fs_read_unpin(struct lp_fs *fs, struct lp_fs_segs *segs)
{
	unsigned int i;

	for (i = 0; i < segs->nr; i++)
		fs_chunk_put(fs, segs->pins[i]);
	segs->nr = 0;
}

static void header_checked(void *arg, uint32_t entry)
{
	struct lp_fs *fs = arg;

	atomic_store(&fs->hdr_checked[entry], 1);
}

static int header_read(void *arg, uint64_t off, void *buf, size_t len,
		       struct lp_err *err)
{
	return fs_index_read(arg, off, buf, len, err);
}

int fs_check_file(struct lp_fs *fs, uint32_t idx, struct lp_err *err)
{
	int r;

	if (!fs->ix || atomic_load(&fs->hdr_checked[idx]))
		return 0;
	/* two first readers may both check: harmless, and no lock held;
	 * the headers around it in its span are checked with it, from the
	 * span decoded whole, which the reads of its files then copy from */
	atomic_fetch_add(&fs->stats.index_header_checks, 1);
	r = lp_layer_check_file(fs->layer, idx, fs_index_streamed(fs),
				header_read, fs, header_checked, fs, err);
	if (r < 0) {
		atomic_fetch_add(&fs->stats.verify_failures, 1);
		if (r == -EBADMSG)
			fs_poison(fs, r, err); /* a lie found is a lie */
		return r; /* @err says why */
	}
	atomic_store(&fs->hdr_checked[idx], 1);
	return 0;
}

int lp_fs_reply_errno(int r)
{
	switch (-r) {
	case EBADMSG:
	case EFBIG:
	case EPROTO:
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case EAGAIN:
		return EIO;
	default:
		return r < 0 ? -r : EIO;
	}
}
