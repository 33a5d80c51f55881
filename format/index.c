// SPDX-License-Identifier: Apache-2.0
/*
 * The gzip index format (docs/format.md, "gzip index"): parsing with every
 * count, offset and size bounded and cross-checked (an index comes from the
 * network and must not be able to point a reader outside the blob, make it
 * inflate without bound, or give one path two places), lookups by path, and
 * the writer the builder fills in stream order. The writer validates its
 * output by parsing it: one definition of a valid index.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lp_buf.h"
#include "index_int.h"

/* header field offsets */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_FLAGS = 12,
	H_BLOB_SIZE = 16,
	H_USIZE = 24,
	H_BLOB_DIGEST = 32,
	H_SPAN_SIZE = 64,
	H_NR_CP = 68,
	H_NR_FILES = 72,
	H_STRINGS = 76,
	H_WINDOWS = 80,
	H_RESERVED = 88, /* 0 unless LP_INDEX_FLAG_GRAINS: */
	H_GRAIN_SIZE = 88,
	H_NR_GRAINS = 92,
};

/* checkpoint record field offsets */
enum {
	C_IN = 0,
	C_OUT = 8,
	C_WINDOW_OFF = 16,
	C_WINDOW_LEN = 20,
	C_BITS = 24,
	C_KIND = 25,
	C_WINDOW_RAW = 26,
	C_RESERVED = 28,
	C_SPAN = 32,
};

/* file record field offsets */
enum {
	F_HDR_OFF = 0,
	F_DATA_OFF = 8,
	F_SIZE = 16,
	F_MTIME = 24,
	F_MODE = 32,
	F_UID = 36,
	F_GID = 40,
	F_DEVMAJ = 44,
	F_DEVMIN = 48,
	F_NAME = 52,
	F_LINK = 56,
	F_XATTRS = 60,
	F_TYPE = 64,
	F_RESERVED = 65,
};

#define TAR_BLOCK 512
#define MAX_WINDOW_LEN (LP_INDEX_WINDOW + 1024) /* > compressBound(32 KiB) */

/* grain digests are read in place from the parsed bytes */
_Static_assert(sizeof(struct lp_digest) == LP_SHA256_LEN &&
		       _Alignof(struct lp_digest) == 1,
	       "a grain record is a struct lp_digest");

struct lp_index {
	uint8_t *data; /* the index as parsed (windows are read from here) */
	size_t len;
	uint64_t blob_size, usize;
	struct lp_digest blob_digest;
	uint32_t span_size;
	struct lp_index_checkpoint *cps;
	size_t nr_cps;
	struct lp_index_file *files;
	size_t nr_files;
	struct lp_index_xattr *xattrs;
	char *arena; /* NUL-terminated copies of paths, links, xattr names */
	uint32_t *by_path; /* file indexes sorted by (path, index) */
	const uint8_t *windows;
	uint64_t windows_size;
	/* grain digests (0, NULL without): span i's are grains[first_grain[i]]
	 * up to grains[first_grain[i + 1]] (nr_cps + 1 entries) */
	uint32_t grain_size;
	const struct lp_digest *grains; /* in data */
	uint32_t *first_grain;
	/*
	 * Bit i: checkpoint i is a proven resume point (index_stream.c). Set
	 * once, never cleared; the only mutable part of a parsed index, so
	 * atomic: streams on any thread test and set it without a lock.
	 */
	_Atomic uint64_t *verified;
	/*
	 * Set once (lp_index_trust()), never cleared: the index's signature
	 * verified against a key the node trusts (format/index_sig.c), so a
	 * read may start at any checkpoint with one decode; and how many
	 * decodes did so from a checkpoint no stream had proven yet.
	 */
	_Atomic bool trusted;
	_Atomic uint64_t trusted_reads;
	/* the span cache (index_spans.c; off unless a reader turns it on),
	 * locked inside: readers on any thread share it */
	struct lp_index_spans *spans;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t round_block(uint64_t n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* a normalised path: components separated by one '/', none "." or "..",
 * none longer than LP_TOC_MAX_NAME, at most LP_TOC_MAX_DEPTH of them */
static bool path_ok(const char *s, size_t len)
{
	size_t i, start = 0, depth = 0;

	if (len == 0 || len > LP_TOC_MAX_PATH)
		return false;
	for (i = 0; i <= len; i++) {
		size_t n;

		if (i < len && s[i] == 0)
			return false;
		if (i < len && s[i] != '/')
			continue;
		n = i - start;
		if (n == 0 || n > LP_TOC_MAX_NAME ||
		    (n == 1 && s[start] == '.') ||
		    (n == 2 && s[start] == '.' && s[start + 1] == '.'))
			return false;
		if (++depth > LP_TOC_MAX_DEPTH)
			return false;
		start = i + 1;
	}
	return true;
}

struct parse {
	const uint8_t *strings;
	uint32_t strings_size;
	struct lp_buf arena;
	struct lp_err *err;
};

/* the string at @ref (LE16 length, bytes) copied into the arena; its arena
 * offset in *ret */
static int take_string(struct parse *p, uint32_t ref, bool is_path,
		       bool root_ok, size_t file, const char *what, size_t *ret)
{
	uint32_t n;
	const char *s;

	if (ref > p->strings_size || p->strings_size - ref < 2)
		return lp_err_set(p->err, -EBADMSG,
				  "gzip index: file #%zu: %s reference %u "
				  "outside the strings section (%u bytes)",
				  file, what, ref, p->strings_size);
	n = p->strings[ref] | (uint32_t)p->strings[ref + 1] << 8;
	if (n > p->strings_size - ref - 2)
		return lp_err_set(p->err, -EBADMSG,
				  "gzip index: file #%zu: %s of %u bytes runs "
				  "past the strings section",
				  file, what, n);
	s = (const char *)p->strings + ref + 2;
	if (n > LP_TOC_MAX_PATH || memchr(s, 0, n) ||
	    (is_path && !path_ok(s, n) && !(root_ok && n == 1 && s[0] == '.')))
		return lp_err_set(
			p->err, n > LP_TOC_MAX_PATH ? -EFBIG : -EBADMSG,
			"gzip index: file #%zu: %s \"%.*s\" is not a "
			"normalised path of at most %u bytes and %u "
			"components",
			file, what, (int)(n > 200 ? 200 : n), s,
			(unsigned)LP_TOC_MAX_PATH, (unsigned)LP_TOC_MAX_DEPTH);
	*ret = p->arena.len;
	if (lp_buf_append(&p->arena, s, n) < 0 ||
	    lp_buf_append(&p->arena, "", 1) < 0)
		return lp_err_set(p->err, -EFBIG,
				  "gzip index: strings over %llu bytes",
				  (unsigned long long)LP_INDEX_MAX_STRINGS);
	return 0;
}

static int parse_checkpoints(struct lp_index *ix, const uint8_t *rec,
			     struct lp_err *err)
{
	size_t i;

	for (i = 0; i < ix->nr_cps; i++, rec += LP_INDEX_CP_SIZE) {
		struct lp_index_checkpoint *c = &ix->cps[i];
		uint64_t start, end, out_end;

		c->in = lp_get_le64(rec + C_IN);
		c->out = lp_get_le64(rec + C_OUT);
		c->window_off = lp_get_le32(rec + C_WINDOW_OFF);
		c->window_len = lp_get_le32(rec + C_WINDOW_LEN);
		c->bits = rec[C_BITS];
		c->kind = rec[C_KIND];
		c->window_raw = (uint16_t)(rec[C_WINDOW_RAW] |
					   rec[C_WINDOW_RAW + 1] << 8);
		memcpy(c->span.b, rec + C_SPAN, LP_SHA256_LEN);
		if (!all_zero(rec + C_RESERVED, C_SPAN - C_RESERVED) ||
		    c->bits > 7 || c->kind > LP_INDEX_CP_MEMBER)
			return lp_err_set(err, -EBADMSG,
					  "gzip index: checkpoint #%zu: bad "
					  "kind, bit count or reserved bytes",
					  i);
		if (c->kind == LP_INDEX_CP_MEMBER ?
			    c->bits || c->window_len || c->window_raw :
			    !c->window_len || c->window_len > MAX_WINDOW_LEN ||
				    !c->window_raw ||
				    c->window_raw > LP_INDEX_WINDOW ||
				    c->window_raw > c->out ||
				    (uint64_t)c->window_off + c->window_len >
					    ix->windows_size)
			return lp_err_set(err, -EBADMSG,
					  "gzip index: checkpoint #%zu: bad "
					  "window (%u bytes at %u, %u raw)",
					  i, c->window_len, c->window_off,
					  c->window_raw);
		if (i == 0 ? c->in || c->out || c->kind != LP_INDEX_CP_MEMBER :
			     c->in <= ix->cps[i - 1].in ||
				     c->out <= ix->cps[i - 1].out)
			return lp_err_set(
				err, -EBADMSG,
				"gzip index: checkpoint #%zu (in %llu "
				"out %llu) is not after the one "
				"before it (the first is at 0)",
				i, (unsigned long long)c->in,
				(unsigned long long)c->out);
		if (c->in >= ix->blob_size || c->out > ix->usize ||
		    (c->bits && c->in == 0))
			return lp_err_set(err, -EBADMSG,
					  "gzip index: checkpoint #%zu: offset "
					  "%llu past the blob (%llu bytes) or "
					  "uncompressed offset %llu past %llu",
					  i, (unsigned long long)c->in,
					  (unsigned long long)ix->blob_size,
					  (unsigned long long)c->out,
					  (unsigned long long)ix->usize);
		if (i > 0) {
			lp_index_span_range(ix, i - 1, &start, &end);
			out_end = c->out;
			if (end - start > LP_INDEX_MAX_SPAN_IN ||
			    out_end - ix->cps[i - 1].out >
				    LP_INDEX_MAX_SPAN_OUT)
				return lp_err_set(
					err, -EFBIG,
					"gzip index: span #%zu of %llu "
					"compressed / %llu bytes over %llu / "
					"%llu",
					i - 1,
					(unsigned long long)(end - start),
					(unsigned long long)(out_end -
							     ix->cps[i - 1]
								     .out),
					(unsigned long long)
						LP_INDEX_MAX_SPAN_IN,
					(unsigned long long)
						LP_INDEX_MAX_SPAN_OUT);
		}
	}
	/* the last span */
	{
		uint64_t start, end;

		lp_index_span_range(ix, ix->nr_cps - 1, &start, &end);
		if (end - start > LP_INDEX_MAX_SPAN_IN ||
		    ix->usize - ix->cps[ix->nr_cps - 1].out >
			    LP_INDEX_MAX_SPAN_OUT)
			return lp_err_set(
				err, -EFBIG,
				"gzip index: last span over %llu "
				"compressed / %llu bytes",
				(unsigned long long)LP_INDEX_MAX_SPAN_IN,
				(unsigned long long)LP_INDEX_MAX_SPAN_OUT);
	}
	return 0;
}

struct file_refs {
	size_t name, link; /* arena offsets; SIZE_MAX: none */
	size_t xattr0; /* first in ix->xattrs */
};

static int parse_xattrs(struct lp_index *ix, struct parse *p, uint32_t ref,
			size_t file, size_t *nr_x, size_t *cap_x,
			size_t **names, size_t *cap_names, size_t *ret_n)
{
	const uint8_t *s = p->strings;
	uint64_t at = ref;
	uint32_t n, k;

	if (at + 2 > p->strings_size)
		goto bad;
	n = s[at] | (uint32_t)s[at + 1] << 8;
	at += 2;
	if (n == 0 || n > LP_TOC_MAX_XATTRS)
		return lp_err_set(p->err, -EFBIG,
				  "gzip index: file #%zu: %u xattrs (1..%u)",
				  file, n, (unsigned)LP_TOC_MAX_XATTRS);
	if (*nr_x + n > LP_INDEX_MAX_XATTRS_TOTAL)
		return lp_err_set(p->err, -EFBIG,
				  "gzip index: over %u xattrs in all",
				  LP_INDEX_MAX_XATTRS_TOTAL);
	if (lp_grow_array((void **)&ix->xattrs, cap_x, *nr_x + n,
			  sizeof(*ix->xattrs)) < 0 ||
	    lp_grow_array((void **)names, cap_names, *nr_x + n,
			  sizeof(**names)) < 0)
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		struct lp_index_xattr *x = &ix->xattrs[*nr_x + k];
		uint32_t nl, vl;

		if (at + 2 > p->strings_size)
			goto bad;
		nl = s[at] | (uint32_t)s[at + 1] << 8;
		at += 2;
		if (nl == 0 || nl > 255 || at + nl > p->strings_size ||
		    memchr(s + at, 0, nl))
			goto bad;
		(*names)[*nr_x + k] = p->arena.len;
		if (lp_buf_append(&p->arena, s + at, nl) < 0 ||
		    lp_buf_append(&p->arena, "", 1) < 0)
			return lp_err_set(
				p->err, -EFBIG,
				"gzip index: strings over %llu bytes",
				(unsigned long long)LP_INDEX_MAX_STRINGS);
		at += nl;
		if (at + 4 > p->strings_size)
			goto bad;
		vl = lp_get_le32(s + at);
		at += 4;
		if (vl > LP_TOC_MAX_XATTR_VALUE || at + vl > p->strings_size)
			goto bad;
		x->value = s + at;
		x->len = vl;
		at += vl;
	}
	*nr_x += n;
	*ret_n = n;
	return 0;
bad:
	return lp_err_set(p->err, -EBADMSG,
			  "gzip index: file #%zu: xattrs at %u run past the "
			  "strings section or are malformed",
			  file, ref);
}

static int parse_files(struct lp_index *ix, const uint8_t *rec, struct parse *p)
{
	struct file_refs *refs = NULL;
	size_t *xnames = NULL, nr_x = 0, cap_x = 0, cap_names = 0, i;
	uint64_t prev_end = 0;
	int r = 0;

	refs = calloc(ix->nr_files ? ix->nr_files : 1, sizeof(*refs));
	if (!refs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < ix->nr_files; i++, rec += LP_INDEX_FILE_SIZE) {
		struct lp_index_file *f = &ix->files[i];
		uint32_t name_ref = lp_get_le32(rec + F_NAME);
		uint32_t link_ref = lp_get_le32(rec + F_LINK);
		uint32_t xattr_ref = lp_get_le32(rec + F_XATTRS);
		size_t nx = 0;

		f->hdr_off = lp_get_le64(rec + F_HDR_OFF);
		f->data_off = lp_get_le64(rec + F_DATA_OFF);
		f->size = lp_get_le64(rec + F_SIZE);
		f->mtime = (int64_t)lp_get_le64(rec + F_MTIME);
		f->mode = lp_get_le32(rec + F_MODE);
		f->uid = lp_get_le32(rec + F_UID);
		f->gid = lp_get_le32(rec + F_GID);
		f->dev_major = lp_get_le32(rec + F_DEVMAJ);
		f->dev_minor = lp_get_le32(rec + F_DEVMIN);
		f->type = (char)rec[F_TYPE];
		if (!all_zero(rec + F_RESERVED,
			      LP_INDEX_FILE_SIZE - F_RESERVED) ||
		    f->type < '0' || f->type > '6' || f->mode > 07777) {
			r = lp_err_set(p->err, -EBADMSG,
				       "gzip index: file #%zu: bad type, mode "
				       "or reserved bytes",
				       i);
			goto out;
		}
		if (f->hdr_off % TAR_BLOCK || f->data_off % TAR_BLOCK ||
		    f->hdr_off < prev_end || f->data_off <= f->hdr_off ||
		    f->data_off - f->hdr_off > LP_INDEX_MAX_HEADER ||
		    (f->type != '0' && f->size) || f->size > LP_FILE_MAX_SIZE ||
		    f->data_off > ix->usize ||
		    f->size > ix->usize - f->data_off) {
			r = lp_err_set(p->err, -EBADMSG,
				       "gzip index: file #%zu: header at %llu, "
				       "data at %llu, %llu bytes: not block "
				       "aligned, overlapping the entry before "
				       "it (which ends at %llu) or past the "
				       "end of the layer (%llu bytes)",
				       i, (unsigned long long)f->hdr_off,
				       (unsigned long long)f->data_off,
				       (unsigned long long)f->size,
				       (unsigned long long)prev_end,
				       (unsigned long long)ix->usize);
			goto out;
		}
		prev_end = f->data_off + round_block(f->size);
		/* "." is the root directory's path */
		r = take_string(p, name_ref, true, f->type == '5', i, "path",
				&refs[i].name);
		if (r < 0)
			goto out;
		refs[i].link = SIZE_MAX;
		if (link_ref != LP_INDEX_NONE) {
			r = take_string(p, link_ref, f->type == '1', false, i,
					"link target", &refs[i].link);
			if (r < 0)
				goto out;
		} else if (f->type == '1' || f->type == '2') {
			r = lp_err_set(p->err, -EBADMSG,
				       "gzip index: file #%zu: a link without "
				       "a target",
				       i);
			goto out;
		}
		refs[i].xattr0 = nr_x;
		if (xattr_ref != LP_INDEX_NONE) {
			r = parse_xattrs(ix, p, xattr_ref, i, &nr_x, &cap_x,
					 &xnames, &cap_names, &nx);
			if (r < 0)
				goto out;
		}
		f->nr_xattrs = (uint32_t)nx;
	}
	/* the arena is complete: point into it */
	for (i = 0; i < ix->nr_files; i++) {
		struct lp_index_file *f = &ix->files[i];
		size_t k;

		f->path = (const char *)p->arena.data + refs[i].name;
		f->link = refs[i].link == SIZE_MAX ?
				  "" :
				  (const char *)p->arena.data + refs[i].link;
		f->xattrs = f->nr_xattrs ? ix->xattrs + refs[i].xattr0 : NULL;
		for (k = 0; k < f->nr_xattrs; k++)
			ix->xattrs[refs[i].xattr0 + k].name =
				(const char *)p->arena.data +
				xnames[refs[i].xattr0 + k];
	}
out:
	free(refs);
	free(xnames);
	return r;
}

/* each span's first grain (ix->first_grain), the spans' grains counted
 * from the checkpoints (already checked) against the @nr_grains the header
 * says */
static int parse_grains(struct lp_index *ix, uint32_t nr_grains,
			struct lp_err *err)
{
	uint64_t total = 0, start, end;
	size_t i;

	for (i = 0; i < ix->nr_cps; i++) {
		ix->first_grain[i] = (uint32_t)total;
		lp_index_span_range(ix, i, &start, &end);
		total += (end - start + ix->grain_size - 1) / ix->grain_size;
		if (total > nr_grains)
			break;
	}
	if (total != nr_grains)
		return lp_err_set(err, -EBADMSG,
				  "gzip index: %u grain digests, but its %zu "
				  "spans have %s%llu grains of %u bytes",
				  nr_grains, ix->nr_cps,
				  i < ix->nr_cps ? "at least " : "",
				  (unsigned long long)total, ix->grain_size);
	ix->first_grain[ix->nr_cps] = nr_grains;
	return 0;
}

static int by_path_cmp(const void *a, const void *b, void *arg)
{
	const struct lp_index *ix = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int c = strcmp(ix->files[x].path, ix->files[y].path);

	return c ? c : (x > y) - (x < y);
}

int lp_index_parse(const void *data, size_t len, struct lp_index **ret_ix,
		   struct lp_err *err)
{
	struct lp_index *ix = NULL;
	struct parse p = { 0 };
	const uint8_t *h = data;
	uint64_t need, grains_size = 0;
	uint32_t strings_size, nr_cp, nr_files, version, flags, nr_grains = 0;
	size_t i;
	int r = 0;

	lp_buf_init(&p.arena, LP_INDEX_MAX_STRINGS);
	p.err = err;
	if (len < LP_INDEX_HEADER_SIZE || memcmp(h, LP_INDEX_MAGIC, 8)) {
		r = lp_err_set(err, -EBADMSG,
			       "not a lazypull gzip index (no magic)");
		goto out;
	}
	if (len > LP_INDEX_MAX_SIZE) {
		r = lp_err_set(err, -EFBIG, "gzip index of %zu bytes over %llu",
			       len, (unsigned long long)LP_INDEX_MAX_SIZE);
		goto out;
	}
	version = lp_get_le32(h + H_VERSION);
	flags = lp_get_le32(h + H_FLAGS);
	if (version != LP_INDEX_VERSION || (flags & ~LP_INDEX_FLAG_GRAINS)) {
		r = lp_err_set(err, -EOPNOTSUPP,
			       "gzip index version %u flags %#x (this reader: "
			       "version %u, flags %#x at most)",
			       version, flags, LP_INDEX_VERSION,
			       LP_INDEX_FLAG_GRAINS);
		goto out;
	}
	ix = calloc(1, sizeof(*ix));
	if (!ix) {
		r = -ENOMEM;
		goto out;
	}
	ix->blob_size = lp_get_le64(h + H_BLOB_SIZE);
	ix->usize = lp_get_le64(h + H_USIZE);
	memcpy(ix->blob_digest.b, h + H_BLOB_DIGEST, LP_SHA256_LEN);
	ix->span_size = lp_get_le32(h + H_SPAN_SIZE);
	nr_cp = lp_get_le32(h + H_NR_CP);
	nr_files = lp_get_le32(h + H_NR_FILES);
	strings_size = lp_get_le32(h + H_STRINGS);
	ix->windows_size = lp_get_le64(h + H_WINDOWS);
	if ((!(flags & LP_INDEX_FLAG_GRAINS) &&
	     !all_zero(h + H_RESERVED, LP_INDEX_HEADER_SIZE - H_RESERVED)) ||
	    ix->blob_size == 0 || ix->usize > LP_FILE_MAX_SIZE) {
		r = lp_err_set(err, -EBADMSG,
			       "gzip index: bad header (reserved bytes, blob "
			       "size 0 or uncompressed size over 2^50)");
		goto out;
	}
	if (nr_cp == 0 || nr_cp > LP_INDEX_MAX_CHECKPOINTS) {
		r = lp_err_set(err, nr_cp ? -EFBIG : -EBADMSG,
			       "gzip index: %u checkpoints (1..%u)", nr_cp,
			       LP_INDEX_MAX_CHECKPOINTS);
		goto out;
	}
	if (nr_files > LP_INDEX_MAX_FILES) {
		r = lp_err_set(err, -EFBIG, "gzip index: %u files (max %u)",
			       nr_files, (unsigned)LP_INDEX_MAX_FILES);
		goto out;
	}
	if (strings_size > LP_INDEX_MAX_STRINGS ||
	    ix->windows_size > LP_INDEX_MAX_SIZE) {
		r = lp_err_set(err, -EFBIG,
			       "gzip index: %u bytes of strings (max %llu) or "
			       "%llu bytes of windows (max %llu)",
			       strings_size,
			       (unsigned long long)LP_INDEX_MAX_STRINGS,
			       (unsigned long long)ix->windows_size,
			       (unsigned long long)LP_INDEX_MAX_SIZE);
		goto out;
	}
	if (flags & LP_INDEX_FLAG_GRAINS) {
		ix->grain_size = lp_get_le32(h + H_GRAIN_SIZE);
		nr_grains = lp_get_le32(h + H_NR_GRAINS);
		if (!lp_index_grain_size_ok(ix->grain_size)) {
			r = lp_err_set(err, -EBADMSG,
				       "gzip index: grain size %u is not a "
				       "power of two in %u..%u",
				       ix->grain_size, LP_INDEX_GRAIN_MIN,
				       LP_INDEX_GRAIN_MAX);
			goto out;
		}
		/* a span of n bytes has ceil(n / G) grains, and the spans
		 * share at most a byte with the one before: no true index
		 * has more (before anything is sized by the count) */
		if (nr_grains > ix->blob_size / ix->grain_size + nr_cp) {
			r = lp_err_set(
				err, -EBADMSG,
				"gzip index: %u grain digests, more than "
				"%llu bytes in %u spans can have",
				nr_grains, (unsigned long long)ix->blob_size,
				nr_cp);
			goto out;
		}
		grains_size = (uint64_t)nr_grains * LP_SHA256_LEN;
	}
	need = LP_INDEX_HEADER_SIZE + (uint64_t)nr_cp * LP_INDEX_CP_SIZE +
	       (uint64_t)nr_files * LP_INDEX_FILE_SIZE + strings_size +
	       ix->windows_size + grains_size;
	if (need != len) {
		r = lp_err_set(err, -EBADMSG,
			       "gzip index of %zu bytes, its header says %llu",
			       len, (unsigned long long)need);
		goto out;
	}
	ix->data = malloc(len);
	ix->nr_cps = nr_cp;
	ix->nr_files = nr_files;
	ix->cps = calloc(nr_cp, sizeof(*ix->cps));
	ix->files = calloc(nr_files ? nr_files : 1, sizeof(*ix->files));
	ix->by_path = calloc(nr_files ? nr_files : 1, sizeof(*ix->by_path));
	ix->verified = calloc((nr_cp + 63) / 64, sizeof(*ix->verified));
	if (ix->grain_size)
		ix->first_grain =
			calloc((size_t)nr_cp + 1, sizeof(*ix->first_grain));
	if (!ix->data || !ix->cps || !ix->files || !ix->by_path ||
	    !ix->verified || (ix->grain_size && !ix->first_grain) ||
	    lp_index_spans_new(nr_cp, &ix->spans) < 0) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(ix->data, data, len);
	ix->len = len;
	ix->windows = ix->data + len - grains_size - ix->windows_size;
	p.strings = ix->windows - strings_size;
	p.strings_size = strings_size;
	r = parse_checkpoints(ix, ix->data + LP_INDEX_HEADER_SIZE, err);
	if (r < 0)
		goto out;
	if (ix->grain_size) {
		ix->grains = (const struct lp_digest *)(ix->data + len -
							grains_size);
		r = parse_grains(ix, nr_grains, err);
		if (r < 0)
			goto out;
	}
	r = parse_files(ix,
			ix->data + LP_INDEX_HEADER_SIZE +
				(size_t)nr_cp * LP_INDEX_CP_SIZE,
			&p);
	if (r < 0)
		goto out;
	ix->arena = (char *)lp_buf_steal(&p.arena, &need);
	/* parse_files pointed into p.arena.data, which now is ix->arena */
	for (i = 0; i < nr_files; i++)
		ix->by_path[i] = (uint32_t)i;
	qsort_r(ix->by_path, nr_files, sizeof(*ix->by_path), by_path_cmp, ix);
	/* checkpoint 0 is the blob's first byte: inflating from there is what
	 * the layer's bytes are */
	lp_index_checkpoint_mark_verified(ix, 0);
	*ret_ix = ix;
	ix = NULL;
out:
	lp_buf_release(&p.arena);
	lp_index_free(ix);
	return r;
}

void lp_index_free(struct lp_index *ix)
{
	if (!ix)
		return;
	free(ix->data);
	free(ix->cps);
	free(ix->files);
	free(ix->xattrs);
	free(ix->arena);
	free(ix->by_path);
	free((void *)ix->verified);
	free(ix->first_grain);
	lp_index_spans_free(ix->spans);
	free(ix);
}

int lp_index_serialise(const struct lp_index *ix, struct lp_buf *out)
{
	return lp_buf_append(out, ix->data, ix->len);
}

uint64_t lp_index_blob_size(const struct lp_index *ix)
{
	return ix->blob_size;
}

uint64_t lp_index_uncompressed_size(const struct lp_index *ix)
{
	return ix->usize;
}

const struct lp_digest *lp_index_blob_digest(const struct lp_index *ix)
{
	return &ix->blob_digest;
}

uint32_t lp_index_span_size(const struct lp_index *ix)
{
	return ix->span_size;
}

uint32_t lp_index_grain_size(const struct lp_index *ix)
{
	return ix->grain_size;
}

size_t lp_index_nr_grains(const struct lp_index *ix, size_t i)
{
	if (!ix->grain_size || i >= ix->nr_cps)
		return 0;
	return ix->first_grain[i + 1] - ix->first_grain[i];
}

const struct lp_digest *lp_index_grain(const struct lp_index *ix, size_t i,
				       size_t g)
{
	if (g >= lp_index_nr_grains(ix, i))
		return NULL;
	return &ix->grains[ix->first_grain[i] + g];
}

size_t lp_index_nr_checkpoints(const struct lp_index *ix)
{
	return ix->nr_cps;
}

const struct lp_index_checkpoint *lp_index_checkpoint(const struct lp_index *ix,
						      size_t i)
{
	return i < ix->nr_cps ? &ix->cps[i] : NULL;
}

size_t lp_index_nr_files(const struct lp_index *ix)
{
	return ix->nr_files;
}

const struct lp_index_file *lp_index_file(const struct lp_index *ix, size_t i)
{
	return i < ix->nr_files ? &ix->files[i] : NULL;
}

bool lp_index_checkpoint_verified(const struct lp_index *ix, size_t i)
{
	return i < ix->nr_cps && (atomic_load_explicit(&ix->verified[i / 64],
						       memory_order_acquire) >>
				  (i % 64)) &
					 1;
}

void lp_index_trust(const struct lp_index *ix)
{
	atomic_store_explicit(&((struct lp_index *)ix)->trusted, true,
			      memory_order_release);
}

bool lp_index_trusted(const struct lp_index *ix)
{
	return atomic_load_explicit(&ix->trusted, memory_order_acquire);
}

bool lp_index_checkpoint_startable(const struct lp_index *ix, size_t i)
{
	return i < ix->nr_cps &&
	       (lp_index_trusted(ix) || lp_index_checkpoint_verified(ix, i));
}

uint64_t lp_index_trusted_reads(const struct lp_index *ix)
{
	return atomic_load_explicit(&ix->trusted_reads, memory_order_relaxed);
}

void lp_index_count_trusted_read(const struct lp_index *ix)
{
	atomic_fetch_add_explicit(&((struct lp_index *)ix)->trusted_reads, 1,
				  memory_order_relaxed);
}

struct lp_index_spans *lp_index_spans_of(const struct lp_index *ix)
{
	return ix->spans;
}

void lp_index_checkpoint_mark_verified(const struct lp_index *ix, size_t i)
{
	if (i < ix->nr_cps)
		atomic_fetch_or_explicit(&ix->verified[i / 64],
					 (uint64_t)1 << (i % 64),
					 memory_order_release);
}

size_t lp_index_span_of(const struct lp_index *ix, uint64_t off)
{
	size_t lo = 0, hi = lp_index_nr_checkpoints(ix);

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (lp_index_checkpoint(ix, mid)->out <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

uint64_t lp_index_span_out_end(const struct lp_index *ix, size_t i)
{
	return i + 1 < lp_index_nr_checkpoints(ix) ?
		       lp_index_checkpoint(ix, i + 1)->out :
		       lp_index_uncompressed_size(ix);
}

size_t lp_index_last_verified(const struct lp_index *ix, size_t i)
{
	size_t w = i / 64;
	uint64_t bits;

	/* bits of word w at or below i */
	bits = atomic_load_explicit(&ix->verified[w], memory_order_acquire) &
	       (i % 64 == 63 ? UINT64_MAX : ((uint64_t)2 << (i % 64)) - 1);
	while (!bits && w > 0)
		bits = atomic_load_explicit(&ix->verified[--w],
					    memory_order_acquire);
	/* bit 0 of word 0 is set by lp_index_parse */
	return bits ? w * 64 + 63 - (size_t)__builtin_clzll(bits) : 0;
}

const uint8_t *lp_index_window_data(const struct lp_index *ix,
				    const struct lp_index_checkpoint *c)
{
	return ix->windows + c->window_off;
}

void lp_index_span_range(const struct lp_index *ix, size_t i,
			 uint64_t *ret_start, uint64_t *ret_end)
{
	const struct lp_index_checkpoint *c = &ix->cps[i];

	*ret_start = c->in - (c->bits ? 1 : 0);
	*ret_end = i + 1 < ix->nr_cps ? ix->cps[i + 1].in : ix->blob_size;
}

int lp_index_lookup(const struct lp_index *ix, const char *path)
{
	size_t lo = 0, hi = ix->nr_files, n;
	int found = -ENOENT;

	while (path[0] == '.' && path[1] == '/')
		path += 2;
	while (path[0] == '/')
		path++;
	n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	if (n == 0) { /* "/", "./": the root */
		path = ".";
		n = 1;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *p = ix->files[ix->by_path[mid]].path;
		int c = strncmp(p, path, n);

		if (c == 0 && p[n])
			c = 1;
		if (c <= 0) {
			if (c == 0)
				found = (int)ix->by_path[mid];
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return found;
}

/* ---- the writer ------------------------------------------------------ */

struct lp_index_writer {
	uint32_t span_size, grain_size;
	struct lp_buf cps, files, strings, windows, grains;
	size_t nr_cps, nr_files, nr_grains;
	/* the windows' compressor, reset for each (compress2()'s output at
	 * WINDOW_LEVEL without its allocation per window); z_live: made */
	z_stream z;
	bool z_live;
};

#define WINDOW_LEVEL 6 /* part of the format's bytes: never change it */

int lp_index_writer_new(uint32_t span_size, uint32_t grain_size,
			struct lp_index_writer **ret_w)
{
	struct lp_index_writer *w = NULL;

	if (grain_size && !lp_index_grain_size_ok(grain_size))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->span_size = span_size;
	w->grain_size = grain_size;
	lp_buf_init(&w->cps,
		    (size_t)LP_INDEX_MAX_CHECKPOINTS * LP_INDEX_CP_SIZE);
	lp_buf_init(&w->files, (size_t)LP_INDEX_MAX_FILES * LP_INDEX_FILE_SIZE);
	lp_buf_init(&w->strings, LP_INDEX_MAX_STRINGS);
	lp_buf_init(&w->windows, LP_INDEX_MAX_SIZE);
	lp_buf_init(&w->grains, LP_INDEX_MAX_SIZE);
	*ret_w = w;
	return 0;
}

void lp_index_writer_free(struct lp_index_writer *w)
{
	if (!w)
		return;
	lp_buf_release(&w->cps);
	lp_buf_release(&w->files);
	lp_buf_release(&w->strings);
	lp_buf_release(&w->windows);
	lp_buf_release(&w->grains);
	if (w->z_live)
		deflateEnd(&w->z);
	free(w);
}

/* @len bytes at @src deflated into @dst (*@dst_len bytes; the length
 * written back), as compress2(dst, dst_len, src, len, WINDOW_LEVEL) */
static int compress_window(struct lp_index_writer *w, uint8_t *dst,
			   uLongf *dst_len, const uint8_t *src, uInt len)
{
	if (!w->z_live) {
		if (deflateInit(&w->z, WINDOW_LEVEL) != Z_OK)
			return -ENOMEM;
		w->z_live = true;
	} else if (deflateReset(&w->z) != Z_OK) {
		return -EINVAL;
	}
	w->z.next_in = (Bytef *)src;
	w->z.avail_in = len;
	w->z.next_out = dst;
	w->z.avail_out = (uInt)*dst_len;
	if (deflate(&w->z, Z_FINISH) != Z_STREAM_END)
		return -ENOMEM; /* as compress2(): the buffer is too small */
	*dst_len = w->z.total_out;
	return 0;
}

int lp_index_writer_add_checkpoint(struct lp_index_writer *w,
				   const struct lp_index_checkpoint *cp,
				   const uint8_t *window)
{
	uint8_t rec[LP_INDEX_CP_SIZE] = { 0 };
	uint8_t z[MAX_WINDOW_LEN];
	uLongf zlen = sizeof(z);
	uint32_t woff = 0, wlen = 0;
	int r;

	if (cp->kind == LP_INDEX_CP_DEFLATE) {
		r = compress_window(w, z, &zlen, window, cp->window_raw);
		if (r < 0)
			return r;
		if (w->windows.len > UINT32_MAX - zlen)
			return -EFBIG;
		woff = (uint32_t)w->windows.len;
		wlen = (uint32_t)zlen;
		r = lp_buf_append(&w->windows, z, zlen);
		if (r < 0)
			return r;
	}
	lp_put_le64(rec + C_IN, cp->in);
	lp_put_le64(rec + C_OUT, cp->out);
	lp_put_le32(rec + C_WINDOW_OFF, woff);
	lp_put_le32(rec + C_WINDOW_LEN, wlen);
	rec[C_BITS] = cp->bits;
	rec[C_KIND] = cp->kind;
	rec[C_WINDOW_RAW] = (uint8_t)cp->window_raw;
	rec[C_WINDOW_RAW + 1] = (uint8_t)(cp->window_raw >> 8);
	r = lp_buf_append(&w->cps, rec, sizeof(rec));
	if (r == 0)
		w->nr_cps++;
	return r;
}

void lp_index_writer_set_span(struct lp_index_writer *w,
			      const struct lp_digest *d)
{
	if (w->nr_cps)
		memcpy(w->cps.data + (w->nr_cps - 1) * LP_INDEX_CP_SIZE +
			       C_SPAN,
		       d->b, LP_SHA256_LEN);
}

int lp_index_writer_add_grain(struct lp_index_writer *w,
			      const struct lp_digest *d)
{
	int r;

	if (!w->grain_size)
		return -EINVAL;
	if (w->nr_grains >= UINT32_MAX)
		return -EFBIG;
	r = lp_buf_append(&w->grains, d->b, LP_SHA256_LEN);
	if (r == 0)
		w->nr_grains++;
	return r;
}

static int put_string(struct lp_buf *b, const char *s, uint32_t *ret_ref)
{
	size_t n = strlen(s);
	uint8_t l[2] = { (uint8_t)n, (uint8_t)(n >> 8) };
	int r;

	if (n > LP_TOC_MAX_PATH || b->len > UINT32_MAX - 1)
		return -EFBIG;
	*ret_ref = (uint32_t)b->len;
	r = lp_buf_append(b, l, 2);
	if (r == 0)
		r = lp_buf_append(b, s, n);
	return r;
}

int lp_index_writer_add_file(struct lp_index_writer *w,
			     const struct lp_index_file *f)
{
	uint8_t rec[LP_INDEX_FILE_SIZE] = { 0 };
	uint32_t name_ref, link_ref = LP_INDEX_NONE, x_ref = LP_INDEX_NONE;
	uint32_t k;
	int r;

	r = put_string(&w->strings, f->path, &name_ref);
	if (r == 0 && f->link && f->link[0])
		r = put_string(&w->strings, f->link, &link_ref);
	if (r == 0 && f->nr_xattrs) {
		uint8_t n[2] = { (uint8_t)f->nr_xattrs,
				 (uint8_t)(f->nr_xattrs >> 8) };

		x_ref = (uint32_t)w->strings.len;
		r = lp_buf_append(&w->strings, n, 2);
		for (k = 0; r == 0 && k < f->nr_xattrs; k++) {
			const struct lp_index_xattr *x = &f->xattrs[k];
			uint32_t ref;
			uint8_t vl[4];

			r = put_string(&w->strings, x->name, &ref);
			lp_put_le32(vl, x->len);
			if (r == 0)
				r = lp_buf_append(&w->strings, vl, 4);
			if (r == 0)
				r = lp_buf_append(&w->strings, x->value,
						  x->len);
		}
	}
	if (r < 0)
		return r;
	lp_put_le64(rec + F_HDR_OFF, f->hdr_off);
	lp_put_le64(rec + F_DATA_OFF, f->data_off);
	lp_put_le64(rec + F_SIZE, f->size);
	lp_put_le64(rec + F_MTIME, (uint64_t)f->mtime);
	lp_put_le32(rec + F_MODE, f->mode);
	lp_put_le32(rec + F_UID, f->uid);
	lp_put_le32(rec + F_GID, f->gid);
	lp_put_le32(rec + F_DEVMAJ, f->dev_major);
	lp_put_le32(rec + F_DEVMIN, f->dev_minor);
	lp_put_le32(rec + F_NAME, name_ref);
	lp_put_le32(rec + F_LINK, link_ref);
	lp_put_le32(rec + F_XATTRS, x_ref);
	rec[F_TYPE] = (uint8_t)f->type;
	r = lp_buf_append(&w->files, rec, sizeof(rec));
	if (r == 0)
		w->nr_files++;
	return r;
}

int lp_index_writer_finish(struct lp_index_writer *w, uint64_t blob_size,
			   const struct lp_digest *blob_digest, uint64_t usize,
			   struct lp_buf *out, struct lp_err *err)
{
	uint8_t h[LP_INDEX_HEADER_SIZE] = { 0 };
	struct lp_index *check = NULL;
	size_t start = out->len;
	int r;

	memcpy(h + H_MAGIC, LP_INDEX_MAGIC, 8);
	lp_put_le32(h + H_VERSION, LP_INDEX_VERSION);
	lp_put_le64(h + H_BLOB_SIZE, blob_size);
	lp_put_le64(h + H_USIZE, usize);
	memcpy(h + H_BLOB_DIGEST, blob_digest->b, LP_SHA256_LEN);
	lp_put_le32(h + H_SPAN_SIZE, w->span_size);
	lp_put_le32(h + H_NR_CP, (uint32_t)w->nr_cps);
	lp_put_le32(h + H_NR_FILES, (uint32_t)w->nr_files);
	lp_put_le32(h + H_STRINGS, (uint32_t)w->strings.len);
	lp_put_le64(h + H_WINDOWS, w->windows.len);
	if (w->grain_size) {
		lp_put_le32(h + H_FLAGS, LP_INDEX_FLAG_GRAINS);
		lp_put_le32(h + H_GRAIN_SIZE, w->grain_size);
		lp_put_le32(h + H_NR_GRAINS, (uint32_t)w->nr_grains);
	}
	r = lp_buf_append(out, h, sizeof(h));
	if (r == 0)
		r = lp_buf_append(out, w->cps.data, w->cps.len);
	if (r == 0)
		r = lp_buf_append(out, w->files.data, w->files.len);
	if (r == 0)
		r = lp_buf_append(out, w->strings.data, w->strings.len);
	if (r == 0)
		r = lp_buf_append(out, w->windows.data, w->windows.len);
	if (r == 0)
		r = lp_buf_append(out, w->grains.data, w->grains.len);
	if (r < 0)
		return lp_err_set(err, r, "gzip index over %llu bytes",
				  (unsigned long long)LP_INDEX_MAX_SIZE);
	r = lp_index_parse(out->data + start, out->len - start, &check, err);
	lp_index_free(check);
	return r;
}
