// SPDX-License-Identifier: Apache-2.0
/*
 * Serving a file of an unconverted gzip layer through its index, safely:
 * the file table says where a path's bytes are, but the table comes from
 * the network. Before serving a file, its tar header blocks are inflated
 * from the verified spans and parsed with the converter's one tar reader;
 * they must describe the same path, type, size, link target, mode and
 * owners and end exactly where the table says the data begins. A table that
 * points a path at another file's bytes is refused here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "convert_int.h"
#include "lp_indexer.h"

struct mem_src {
	const uint8_t *p;
	size_t len;
	bool done;
};

static ssize_t mem_read(void *ctx, const void **buf)
{
	struct mem_src *m = ctx;

	if (m->done)
		return 0;
	m->done = true;
	*buf = m->p;
	return (ssize_t)m->len;
}

static bool same_xattrs(const struct lp_cv_entry *e,
			const struct lp_index_file *f)
{
	uint32_t k;

	if (e->nr_xattrs != f->nr_xattrs)
		return false;
	for (k = 0; k < e->nr_xattrs; k++)
		if (strcmp(e->xattrs[k].name, f->xattrs[k].name) ||
		    e->xattrs[k].len != f->xattrs[k].len ||
		    memcmp(e->xattrs[k].value, f->xattrs[k].value,
			   e->xattrs[k].len))
			return false;
	return true;
}

int lp_index_check_header(const struct lp_index *ix, size_t i,
			  const uint8_t *hdr, size_t len, struct lp_err *err)
{
	const struct lp_index_file *f = lp_index_file(ix, i);
	struct mem_src m = { hdr, len, false };
	struct lp_cv_reader *rd = NULL;
	struct lp_cv_entry e = { 0 };
	struct lp_err terr = { 0 };
	char *name = NULL, *link = NULL;
	uint64_t h = 0, d = 0;
	const char *why = NULL;
	int r;

	r = lp_cv_reader_new_cb(mem_read, &m, &rd, &terr);
	if (r == 0)
		r = lp_cv_reader_next(rd, &e, &terr);
	if (r <= 0) {
		r = lp_err_set(err, -EBADMSG,
			       "gzip index: %s: no tar header at offset %llu "
			       "in the layer (%s)",
			       f->path, (unsigned long long)f->hdr_off,
			       r == 0 ? "end of archive" : terr.msg);
		goto out;
	}
	if (lp_cv_reader_offsets(rd, &h, &d) < 0 || h != 0 || d != len) {
		why = "its header blocks do not end where the index says its "
		      "data begins";
		goto bad;
	}
	name = lp_cv_clean_name(e.name);
	link = e.typeflag == '1' ? lp_cv_clean_name(e.link_name) :
				   strdup(e.link_name);
	if (!name || !link) {
		r = -ENOMEM;
		goto out;
	}
	if (strcmp(name[0] ? name : ".", f->path)) {
		why = "the header names another path";
		goto bad;
	}
	if (e.typeflag != f->type)
		why = "type differs";
	else if ((uint64_t)e.size != f->size)
		why = "size differs";
	else if (strcmp(link, f->link))
		why = "link target differs";
	else if ((uint32_t)e.mode != f->mode || (uint64_t)e.uid != f->uid ||
		 (uint64_t)e.gid != f->gid)
		why = "mode or owner differs";
	else if (e.mtime != f->mtime || (uint64_t)e.dev_major != f->dev_major ||
		 (uint64_t)e.dev_minor != f->dev_minor)
		why = "mtime or device numbers differ";
	else if (!same_xattrs(&e, f))
		why = "xattrs differ";
	if (why)
		goto bad;
	r = 0;
	goto out;
bad:
	r = lp_err_set(err, -EBADMSG,
		       "gzip index: file table entry #%zu \"%s\" does not "
		       "match the tar header at offset %llu in the layer "
		       "(\"%s\"): %s",
		       i, f->path, (unsigned long long)f->hdr_off,
		       name ? name : (e.name ? e.name : "?"), why);
out:
	free(name);
	free(link);
	lp_cv_entry_clear(&e);
	lp_cv_reader_free(rd);
	return r;
}

int lp_index_read_file(const struct lp_index *ix, struct lp_blob *blob,
		       size_t i, void *buf, size_t len, uint64_t off,
		       struct lp_index_stream_stats *stats, struct lp_err *err)
{
	const struct lp_index_file *f = lp_index_file(ix, i);
	struct lp_index_stream *s = NULL;
	struct lp_index_stream_stats st;
	uint8_t *hdr = NULL;
	size_t hlen;
	int r;

	if (!f || f->type != '0')
		return lp_err_set(err, -EINVAL,
				  "gzip index: entry #%zu is not a regular "
				  "file",
				  i);
	if (off > f->size || len > f->size - off)
		return lp_err_set(err, -ERANGE,
				  "%s: read of %zu bytes at %llu past its "
				  "%llu bytes",
				  f->path, len, (unsigned long long)off,
				  (unsigned long long)f->size);
	hlen = (size_t)(f->data_off - f->hdr_off); /* <= LP_INDEX_MAX_HEADER */
	hdr = malloc(hlen);
	if (!hdr)
		return -ENOMEM;
	r = lp_index_stream_open(ix, blob, f->hdr_off, &s, err);
	if (r == 0)
		r = lp_index_stream_read(s, hdr, hlen, err);
	if (r == 0)
		r = lp_index_check_header(ix, i, hdr, hlen, err);
	if (r == 0)
		r = lp_index_stream_skip(s, off, err);
	if (r == 0 && len)
		r = lp_index_stream_read(s, buf, len, err);
	if (s && stats) {
		lp_index_stream_stats(s, &st);
		stats->bytes_fetched += st.bytes_fetched;
		stats->spans += st.spans;
		stats->bytes_inflated += st.bytes_inflated;
	}
	lp_index_stream_free(s);
	free(hdr);
	return r;
}
