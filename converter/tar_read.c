// SPDX-License-Identifier: Apache-2.0
/*
 * The converter's input: a tar stream (plain, gzip or zstd, told apart by
 * magic) read from a file descriptor with libarchive, restricted to the tar
 * formats (ustar, pax, GNU incl. long names and sparse files, which read
 * expanded). Each header becomes a struct lp_cv_entry holding what Go's
 * tar.Reader would have reported for it, every outside size checked against
 * the LP_CV_MAX_* bounds, so that errors name the entry at fault.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "convert_int.h"

#define LP_CV_READ_BLOCK (256 * 1024)
#define LP_CV_MAX_ID UINT32_MAX

struct lp_cv_reader {
	struct archive *a;
	struct archive_entry *cur; /* the last entry read (libarchive's) */
	uint64_t nr_entries;
	lp_cv_read_fn read_fn; /* lp_cv_reader_new_cb() */
	void *read_ctx;
};

/* libarchive's errno: I/O errors pass through, the rest is bad input. */
static int lp_ar_errno(struct archive *a)
{
	int e = archive_errno(a);

	switch (e) {
	case ENOMEM:
	case EIO:
	case EBADF:
	case EISDIR:
	case ENOSPC:
	case EINTR:
		return -e;
	}
	return -EINVAL;
}

static const char *lp_ar_msg(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown error";
}

int lp_cv_reader_new(int fd, struct lp_cv_reader **ret_rd, struct lp_err *err)
{
	struct lp_cv_reader *rd = NULL;
	int r = 0;

	rd = calloc(1, sizeof(*rd));
	if (!rd) {
		r = -ENOMEM;
		goto out;
	}
	rd->a = archive_read_new();
	if (!rd->a) {
		r = -ENOMEM;
		goto out;
	}
	if (archive_read_support_filter_gzip(rd->a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(rd->a) != ARCHIVE_OK ||
	    archive_read_support_filter_none(rd->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(rd->a) != ARCHIVE_OK ||
	    archive_read_support_format_gnutar(rd->a) != ARCHIVE_OK) {
		r = lp_err_set(err, -EOPNOTSUPP, "libarchive: %s",
			       lp_ar_msg(rd->a));
		goto out;
	}
	if (archive_read_open_fd(rd->a, fd, LP_CV_READ_BLOCK) != ARCHIVE_OK) {
		r = lp_err_set(err, lp_ar_errno(rd->a),
			       "input is not a tar, tar.gz or tar.zst: %s",
			       lp_ar_msg(rd->a));
		goto out;
	}
	*ret_rd = rd;
	rd = NULL;
out:
	lp_cv_reader_free(rd);
	return r;
}

static la_ssize_t cb_read(struct archive *a, void *ctx, const void **buf)
{
	struct lp_cv_reader *rd = ctx;
	ssize_t n = rd->read_fn(rd->read_ctx, buf);

	if (n < 0) {
		archive_set_error(a, (int)-n, "input read failed");
		return -1;
	}
	return n;
}

int lp_cv_reader_new_cb(lp_cv_read_fn fn, void *ctx,
			struct lp_cv_reader **ret_rd, struct lp_err *err)
{
	struct lp_cv_reader *rd = NULL;
	int r = 0;

	rd = calloc(1, sizeof(*rd));
	if (!rd) {
		r = -ENOMEM;
		goto out;
	}
	rd->read_fn = fn;
	rd->read_ctx = ctx;
	rd->a = archive_read_new();
	if (!rd->a) {
		r = -ENOMEM;
		goto out;
	}
	if (archive_read_support_filter_none(rd->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(rd->a) != ARCHIVE_OK ||
	    archive_read_support_format_gnutar(rd->a) != ARCHIVE_OK) {
		r = lp_err_set(err, -EOPNOTSUPP, "libarchive: %s",
			       lp_ar_msg(rd->a));
		goto out;
	}
	if (archive_read_open(rd->a, rd, NULL, cb_read, NULL) != ARCHIVE_OK) {
		r = lp_err_set(err, lp_ar_errno(rd->a),
			       "input is not a tar stream: %s",
			       lp_ar_msg(rd->a));
		goto out;
	}
	*ret_rd = rd;
	rd = NULL;
out:
	lp_cv_reader_free(rd);
	return r;
}

int lp_cv_reader_offsets(struct lp_cv_reader *rd, uint64_t *ret_hdr,
			 uint64_t *ret_data)
{
	la_int64_t hdr = archive_read_header_position(rd->a);
	la_int64_t data = archive_filter_bytes(rd->a, 0);

	if (!rd->cur || hdr < 0 || data < hdr)
		return -EINVAL;
	if (archive_entry_sparse_count(rd->cur) > 0)
		return -EOPNOTSUPP;
	*ret_hdr = (uint64_t)hdr;
	*ret_data = (uint64_t)data;
	return 0;
}

void lp_cv_reader_free(struct lp_cv_reader *rd)
{
	if (!rd)
		return;
	if (rd->a)
		archive_read_free(rd->a);
	free(rd);
}

static int lp_dup_bounded(const char *s, size_t max, char **ret)
{
	if (!s)
		s = "";
	if (strnlen(s, max + 1) > max)
		return -EFBIG;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int lp_read_xattrs(struct archive_entry *ae, struct lp_cv_entry *e,
			  struct lp_err *err)
{
	const char *name;
	const void *value;
	size_t size;
	int n = archive_entry_xattr_reset(ae), r = 0;

	if (n <= 0)
		return 0;
	if ((unsigned)n > LP_CV_MAX_XATTRS)
		return lp_err_set(err, -EFBIG, "entry %s: %d xattrs (max %u)",
				  e->name, n, (unsigned)LP_CV_MAX_XATTRS);
	e->xattrs = calloc((size_t)n, sizeof(*e->xattrs));
	if (!e->xattrs)
		return -ENOMEM;
	while (archive_entry_xattr_next(ae, &name, &value, &size) ==
	       ARCHIVE_OK) {
		struct lp_cv_xattr *x = &e->xattrs[e->nr_xattrs];

		if (e->nr_xattrs >= (uint32_t)n)
			break;
		if (!name || !*name || strlen(name) > LP_CV_MAX_XATTR_NAME ||
		    size > LP_CV_MAX_XATTR_VALUE)
			return lp_err_set(
				err, -EFBIG,
				"entry %s: xattr name or value over "
				"%u/%llu bytes",
				e->name, LP_CV_MAX_XATTR_NAME,
				(unsigned long long)LP_CV_MAX_XATTR_VALUE);
		x->name = strdup(name);
		x->value = malloc(size ? size : 1);
		if (!x->name || !x->value) {
			free(x->name);
			free(x->value);
			x->name = NULL;
			x->value = NULL;
			return -ENOMEM;
		}
		if (size)
			memcpy(x->value, value, size);
		x->len = size;
		e->nr_xattrs++;
	}
	return r;
}

/* Whether Go's reader would have seen a PAX header before this entry. */
static bool lp_needs_pax(const struct lp_cv_entry *e)
{
	return e->has_atime || e->has_ctime || e->mtime_ns || e->nr_xattrs ||
	       !lp_cv_is_ascii(e->name) || strlen(e->name) > 100 ||
	       !lp_cv_is_ascii(e->link_name) || strlen(e->link_name) > 100 ||
	       !lp_cv_is_ascii(e->uname) || strlen(e->uname) > 32 ||
	       !lp_cv_is_ascii(e->gname) || strlen(e->gname) > 32 ||
	       e->uid > 07777777 || e->gid > 07777777 ||
	       e->size > 077777777777LL || e->mtime < 0 ||
	       e->mtime > 077777777777LL;
}

int lp_cv_reader_next(struct lp_cv_reader *rd, struct lp_cv_entry *e,
		      struct lp_err *err)
{
	struct archive_entry *ae;
	const char *hl;
	int r;

	lp_cv_entry_clear(e);
	rd->cur = NULL;
	r = archive_read_next_header(rd->a, &ae);
	if (r == ARCHIVE_EOF)
		return 0;
	/* ARCHIVE_WARN: e.g. a name not convertible to the locale; the raw
	 * bytes are still there and are what we want */
	if (r < ARCHIVE_WARN)
		return lp_err_set(err, lp_ar_errno(rd->a),
				  "tar header after entry #%llu: %s",
				  (unsigned long long)rd->nr_entries,
				  lp_ar_msg(rd->a));
	rd->cur = ae;
	if (++rd->nr_entries > LP_CV_MAX_ENTRIES)
		return lp_err_set(err, -EFBIG, "more than %u tar entries",
				  (unsigned)LP_CV_MAX_ENTRIES);
	r = lp_dup_bounded(archive_entry_pathname(ae), LP_CV_MAX_NAME,
			   &e->name);
	if (r == 0 && !e->name[0])
		r = -EINVAL;
	if (r < 0)
		return lp_err_set(err, r, "tar entry #%llu: %s name",
				  (unsigned long long)rd->nr_entries,
				  r == -EFBIG ? "over-long" : "empty or bad");
	hl = archive_entry_hardlink(ae);
	r = lp_dup_bounded(hl ? hl : archive_entry_symlink(ae), LP_CV_MAX_NAME,
			   &e->link_name);
	if (r == 0)
		r = lp_dup_bounded(archive_entry_uname(ae), LP_CV_MAX_USER_NAME,
				   &e->uname);
	if (r == 0)
		r = lp_dup_bounded(archive_entry_gname(ae), LP_CV_MAX_USER_NAME,
				   &e->gname);
	if (r < 0)
		return lp_err_set(err, r,
				  "entry %s: link target or owner "
				  "name too long",
				  e->name);

	if (hl) {
		e->typeflag = '1';
	} else {
		switch (archive_entry_filetype(ae)) {
		case AE_IFREG:
			e->typeflag = '0';
			break;
		case AE_IFDIR:
			e->typeflag = '5';
			break;
		case AE_IFLNK:
			e->typeflag = '2';
			break;
		case AE_IFCHR:
			e->typeflag = '3';
			break;
		case AE_IFBLK:
			e->typeflag = '4';
			break;
		case AE_IFIFO:
			e->typeflag = '6';
			break;
		default:
			return lp_err_set(err, -EINVAL,
					  "entry %s: unsupported file type "
					  "0%o",
					  e->name,
					  (unsigned)archive_entry_filetype(ae));
		}
	}
	e->mode = archive_entry_perm(ae) & 07777;
	e->uid = archive_entry_uid(ae);
	e->gid = archive_entry_gid(ae);
	if (e->uid < 0 || e->gid < 0 || e->uid > LP_CV_MAX_ID ||
	    e->gid > LP_CV_MAX_ID)
		return lp_err_set(err, -EFBIG, "entry %s: uid/gid out of range",
				  e->name);
	if (e->typeflag == '0') {
		int64_t size = archive_entry_size(ae);

		if (size < 0 || (uint64_t)size > LP_FILE_MAX_SIZE)
			return lp_err_set(err, -EFBIG,
					  "entry %s: size %lld over %llu",
					  e->name, (long long)size,
					  (unsigned long long)LP_FILE_MAX_SIZE);
		e->size = size;
	}
	if (e->typeflag == '3' || e->typeflag == '4') {
		e->dev_major = archive_entry_rdevmajor(ae);
		e->dev_minor = archive_entry_rdevminor(ae);
	}
	e->mtime = archive_entry_mtime(ae);
	e->mtime_ns = (uint32_t)archive_entry_mtime_nsec(ae);
	if (archive_entry_atime_is_set(ae)) {
		e->has_atime = true;
		e->atime = archive_entry_atime(ae);
		e->atime_ns = (uint32_t)archive_entry_atime_nsec(ae);
	}
	if (archive_entry_ctime_is_set(ae)) {
		e->has_ctime = true;
		e->ctime = archive_entry_ctime(ae);
		e->ctime_ns = (uint32_t)archive_entry_ctime_nsec(ae);
	}
	if (e->mtime_ns >= 1000000000u || e->atime_ns >= 1000000000u ||
	    e->ctime_ns >= 1000000000u)
		return lp_err_set(err, -EINVAL, "entry %s: bad timestamp",
				  e->name);
	r = lp_read_xattrs(ae, e, err);
	if (r < 0)
		return lp_err_set(err, r, "entry %s: bad xattrs", e->name);

	if (archive_format(rd->a) == ARCHIVE_FORMAT_TAR_GNUTAR)
		e->format = LP_CV_FMT_GNU;
	else if (!lp_cv_is_ascii(e->name) || !lp_cv_is_ascii(e->link_name) ||
		 !lp_cv_is_ascii(e->uname) || !lp_cv_is_ascii(e->gname))
		/* Go's reader calls a ustar block with non-ASCII bytes (tar
		 * writers other than Go's put them there) FormatUnknown */
		e->format = LP_CV_FMT_UNKNOWN;
	else if (lp_needs_pax(e))
		e->format = LP_CV_FMT_PAX;
	else
		e->format = LP_CV_FMT_USTAR;
	return 1;
}

int lp_cv_reader_read(struct lp_cv_reader *rd, void *buf, size_t len,
		      const struct lp_cv_entry *e, struct lp_err *err)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		la_ssize_t n = archive_read_data(rd->a, p + done, len - done);

		if (n < 0)
			return lp_err_set(err, lp_ar_errno(rd->a),
					  "entry %s: payload at byte %zu: %s",
					  e->name, done, lp_ar_msg(rd->a));
		if (n == 0)
			return lp_err_set(err, -EINVAL,
					  "entry %s: payload truncated at "
					  "byte %zu",
					  e->name, done);
		done += (size_t)n;
	}
	return 0;
}
