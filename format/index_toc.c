// SPDX-License-Identifier: Apache-2.0
/*
 * A gzip index seen as a TOC (docs/format.md, "gzip index"), so that the
 * FUSE filesystem can mount an unconverted layer through the index with
 * the tree, inode and chunk code it has for eStargz: every file table entry
 * becomes a TOC entry (the last of a path the tar holds several times, as
 * extraction leaves it), and a regular file's bytes become one chunk per
 * span its data overlaps. A chunk's blob offset is its span's first
 * compressed byte and its inner offset is where the file's piece starts in
 * the span's output; the span (and with it the checkpoint to inflate from)
 * is found again from that offset by lp_index_span_at(). Span starts must
 * be strictly increasing for that to be unambiguous: an index where two
 * spans start at one byte is refused. So is one with a hardlink whose
 * target path the tar holds again after the link (check_hardlink()).
 *
 * The TOC goes through the one TOC parser (lp_toc_parse()), with all its
 * checks, from JSON this file writes with the one TOC writer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"
#include "lp_index.h"
#include "lp_toc.h"

static int toc_type(char t, enum lp_toc_type *ret)
{
	static const struct {
		char flag;
		enum lp_toc_type type;
	} map[] = {
		{ '0', LP_TOC_REG },	 { '1', LP_TOC_HARDLINK },
		{ '2', LP_TOC_SYMLINK }, { '3', LP_TOC_CHAR },
		{ '4', LP_TOC_BLOCK },	 { '5', LP_TOC_DIR },
		{ '6', LP_TOC_FIFO },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].flag == t) {
			*ret = map[i].type;
			return 0;
		}
	}
	return -EBADMSG;
}

/* the span starts strictly increase (so a chunk's offset names its span) */
static int check_span_starts(const struct lp_index *ix, struct lp_err *err)
{
	uint64_t prev = 0, start, end;
	size_t i;

	for (i = 0; i < lp_index_nr_checkpoints(ix); i++) {
		lp_index_span_range(ix, i, &start, &end);
		if (i && start <= prev)
			return lp_err_set(err, -EBADMSG,
					  "gzip index: span #%zu starts at "
					  "blob offset %llu, not after span "
					  "#%zu",
					  i, (unsigned long long)start, i - 1);
		prev = start;
	}
	return 0;
}

/*
 * A hardlink links the entry its target path names at that point of the
 * tar (GNU tar extracts it so), but the TOC keeps one entry per path, the
 * last, and resolves links by path: a hardlink whose target the tar holds
 * again after the link (or only after it) would serve the later file's
 * bytes. Such an index is refused (the eStargz TOC refuses a name twice),
 * and so is one with a hardlink to a hardlink.
 */
static int check_hardlink(const struct lp_index *ix, size_t i,
			  struct lp_err *err)
{
	const struct lp_index_file *f = lp_index_file(ix, i);
	int t;

	if (f->type != '1')
		return 0;
	t = lp_index_lookup(ix, f->link);
	/* a link to a link (writers link every name of an inode to its
	 * first, a regular file): refused, so that a check of the link and
	 * of the inode it resolves to is a check of every record between */
	if (t >= 0 && (size_t)t < i &&
	    lp_index_file(ix, (size_t)t)->type == '1')
		return lp_err_set(err, -EBADMSG,
				  "gzip index: hardlink %s to %s, itself a "
				  "hardlink: not mountable through the index",
				  f->path, f->link);
	if (t >= 0 && (size_t)t < i)
		return 0;
	return lp_err_set(err, -EBADMSG,
			  "gzip index: hardlink %s to %s: the tar holds %s "
			  "%s the link (GNU tar would link the earlier one): "
			  "not mountable through the index",
			  f->path, f->link, f->link,
			  t < 0 ? "nowhere" : "again after");
}

/* file @f's records: the entry, then one chunk record per span after the
 * first */
static int add_file(struct lp_toc_writer *w, const struct lp_index *ix,
		    const struct lp_index_file *f, struct lp_err *err)
{
	struct lp_toc_record rec = { 0 };
	struct lp_toc_xattr *xs = NULL;
	uint64_t at, end;
	uint32_t k;
	size_t i;
	int r;

	rec.name = f->path[0] ? f->path : "./";
	r = toc_type(f->type, &rec.type);
	if (r < 0) {
		r = lp_err_set(err, r, "gzip index: %s: tar type '%c'", f->path,
			       f->type);
		goto out;
	}
	rec.mtime_sec = f->mtime;
	rec.has_modtime = true;
	rec.link_name = f->link;
	rec.mode = f->mode;
	rec.uid = f->uid;
	rec.gid = f->gid;
	rec.dev_major = f->dev_major;
	rec.dev_minor = f->dev_minor;
	if (f->nr_xattrs) {
		xs = calloc(f->nr_xattrs, sizeof(*xs));
		if (!xs) {
			r = -ENOMEM;
			goto out;
		}
		for (k = 0; k < f->nr_xattrs; k++) {
			xs[k].name = f->xattrs[k].name;
			xs[k].value = f->xattrs[k].value;
			xs[k].len = f->xattrs[k].len;
		}
		rec.xattrs = xs;
		rec.nr_xattrs = f->nr_xattrs;
	}
	if (rec.type != LP_TOC_REG || f->size == 0) {
		rec.size = rec.type == LP_TOC_REG ? f->size : 0;
		r = lp_toc_writer_add(w, &rec);
		goto out;
	}
	rec.size = f->size;
	at = f->data_off;
	end = f->data_off + f->size;
	for (i = lp_index_span_of(ix, at); r == 0 && at < end; i++) {
		uint64_t s_end = lp_min_u64(lp_index_span_out_end(ix, i), end),
			 start, blob_end;

		lp_index_span_range(ix, i, &start, &blob_end);
		if (at - lp_index_checkpoint(ix, i)->out >
			    LP_CHUNK_MAX_INNER_OFFSET ||
		    s_end - at > LP_CHUNK_MAX_SIZE) {
			r = lp_err_set(err, -EFBIG,
				       "gzip index: %s: span #%zu is over "
				       "the chunk bounds",
				       f->path, i);
			goto out;
		}
		rec.offset = start;
		rec.inner_offset = at - lp_index_checkpoint(ix, i)->out;
		rec.chunk_offset = at - f->data_off;
		/* the last chunk runs to the end of the file */
		rec.chunk_size = s_end == end ? 0 : s_end - at;
		r = lp_toc_writer_add(w, &rec);
		/* chunk records carry only the chunk fields */
		memset(&rec, 0, sizeof(rec));
		rec.name = f->path;
		rec.type = LP_TOC_CHUNK;
		at = s_end;
	}
out:
	free(xs);
	return r;
}

int lp_index_toc(const struct lp_index *ix, struct lp_toc **ret_toc,
		 struct lp_err *err)
{
	struct lp_toc_writer *w = NULL;
	struct lp_buf json;
	size_t i;
	int r;

	lp_buf_init(&json, LP_TOC_MAX_JSON);
	r = check_span_starts(ix, err);
	if (r < 0)
		goto out;
	r = lp_toc_writer_new(LP_TOC_MAX_JSON, &w);
	for (i = 0; r == 0 && i < lp_index_nr_files(ix); i++) {
		const struct lp_index_file *f = lp_index_file(ix, i);

		/* a path the tar holds again later: extraction keeps that */
		if (lp_index_lookup(ix, f->path) != (int)i)
			continue;
		r = check_hardlink(ix, i, err);
		if (r == 0)
			r = add_file(w, ix, f, err);
	}
	if (r == 0)
		r = lp_toc_writer_finish(w, &json);
	if (r < 0) {
		if (err && !err->msg[0])
			lp_err_set(err, r, "gzip index: its TOC %s",
				   r == -EFBIG ? "is over LP_TOC_MAX_JSON" :
						 "cannot be written");
		goto out;
	}
	r = lp_toc_parse(json.data, json.len, lp_index_blob_size(ix), ret_toc,
			 err);
out:
	lp_toc_writer_free(w);
	lp_buf_release(&json);
	return r;
}

int lp_index_span_at(const struct lp_index *ix, uint64_t blob_off)
{
	size_t lo = 0, hi = lp_index_nr_checkpoints(ix);
	uint64_t start, end;

	/* the last span starting at or before @blob_off */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		lp_index_span_range(ix, mid, &start, &end);
		if (start <= blob_off)
			lo = mid;
		else
			hi = mid;
	}
	lp_index_span_range(ix, lo, &start, &end);
	return start == blob_off ? (int)lo : -ENOENT;
}
