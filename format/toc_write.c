// SPDX-License-Identifier: Apache-2.0
/*
 * TOC JSON writer. Produces exactly what Go's json.MarshalIndent(toc, "",
 * "\t") produces for the reference's estargz.JTOC, so that a TOC we write
 * for the same layer has the same bytes (and so the same TOC digest): the
 * TOCEntry field order, omitempty on every field but name and type, xattr
 * names sorted with values in standard base64, and Go's string escaping
 * (HTML-safe: <, > and & as \u003c..., U+2028/2029 escaped, invalid UTF-8
 * replaced by U+FFFD).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp_base64.h"
#include "lp_toc.h"

struct lp_toc_writer {
	struct lp_buf out;
	size_t nr_records;
	bool finished;
};

static const char lp_hex[] = "0123456789abcdef";

int lp_toc_writer_new(size_t limit, struct lp_toc_writer **ret_w)
{
	struct lp_toc_writer *w = NULL;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w) {
		r = -ENOMEM;
		goto out;
	}
	lp_buf_init(&w->out, limit);
	r = lp_buf_printf(&w->out, "{\n\t\"version\": 1,\n\t\"entries\": [");
	if (r < 0)
		goto out;
	*ret_w = w;
	w = NULL;
out:
	lp_toc_writer_free(w);
	return r;
}

void lp_toc_writer_free(struct lp_toc_writer *w)
{
	if (!w)
		return;
	lp_buf_release(&w->out);
	free(w);
}

/* Decode one UTF-8 sequence as Go does; returns its length, 0 if invalid. */
static size_t lp_utf8_len(const uint8_t *s, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len, i;

	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	if (s[0] < 0xe0) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		len = 3;
		c = s[0] & 0x0f;
	} else {
		len = 4;
		c = s[0] & 0x07;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, past U+10FFFF */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	*cp = c;
	return len;
}

/* Append @s as a JSON string the way Go's encoding/json (1.19) does. */
static int lp_json_string(struct lp_buf *b, const char *str)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t n = strlen(str), i = 0, start = 0;
	int r;

	r = lp_buf_append(b, "\"", 1);
	while (r == 0 && i < n) {
		uint8_t c = s[i];
		char esc[8];
		size_t elen = 0, skip = 1;
		uint32_t cp;

		if (c < 0x80) {
			if (c >= 0x20 && c != '"' && c != '\\' && c != '<' &&
			    c != '>' && c != '&') {
				i++;
				continue;
			}
			esc[0] = '\\';
			if (c == '"' || c == '\\') {
				esc[1] = (char)c;
				elen = 2;
			} else if (c == '\n' || c == '\r' || c == '\t') {
				esc[1] = c == '\n' ? 'n' :
					 c == '\r' ? 'r' :
						     't';
				elen = 2;
			} else {
				memcpy(esc, "\\u00", 4);
				esc[4] = lp_hex[c >> 4];
				esc[5] = lp_hex[c & 0xf];
				elen = 6;
			}
		} else {
			size_t l = lp_utf8_len(s + i, n - i, &cp);

			if (l == 0) {
				memcpy(esc, "\\ufffd", 6);
				elen = 6;
			} else if (cp == 0x2028 || cp == 0x2029) {
				memcpy(esc,
				       cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
				elen = 6;
				skip = l;
			} else {
				i += l;
				continue;
			}
		}
		r = lp_buf_append(b, s + start, i - start);
		if (r == 0)
			r = lp_buf_append(b, esc, elen);
		i += skip;
		start = i;
	}
	if (r == 0)
		r = lp_buf_append(b, s + start, i - start);
	if (r == 0)
		r = lp_buf_append(b, "\"", 1);
	return r;
}

/*
 * The fields are appended piece by piece, not through lp_buf_printf():
 * a gzip index's TOC (python3: 8235 files) is written at every mount, and
 * vfprintf was a third of the time lp_index_toc() took (25-38 ms). The
 * bytes are the same as printf's.
 */
static int append_str(struct lp_buf *b, const char *s)
{
	return lp_buf_append(b, s, strlen(s));
}

/* ,\n\t\t\t"KEY": */
static int lp_json_key(struct lp_buf *b, const char *key)
{
	int r = lp_buf_append(b, ",\n\t\t\t\"", 6);

	if (r == 0)
		r = append_str(b, key);
	if (r == 0)
		r = lp_buf_append(b, "\": ", 3);
	return r;
}

/* @v in decimal, as %llu */
static int append_u64(struct lp_buf *b, uint64_t v)
{
	char d[20];
	size_t n = sizeof(d);

	do {
		d[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return lp_buf_append(b, d + n, sizeof(d) - n);
}

static int lp_json_u64(struct lp_buf *b, const char *key, uint64_t v)
{
	int r;

	if (!v)
		return 0;
	r = lp_json_key(b, key);
	if (r == 0)
		r = append_u64(b, v);
	return r;
}

static int lp_json_str_field(struct lp_buf *b, const char *key, const char *v)
{
	int r;

	if (!v || !*v)
		return 0;
	r = lp_json_key(b, key);
	if (r == 0)
		r = lp_json_string(b, v);
	return r;
}

static int lp_json_digest(struct lp_buf *b, const char *key,
			  const struct lp_digest *d)
{
	char s[LP_DIGEST_STR_LEN + 1];
	int r;

	if (!d)
		return 0;
	lp_digest_format(d, s);
	r = lp_json_key(b, key);
	if (r == 0)
		r = lp_buf_append(b, "\"", 1);
	if (r == 0)
		r = append_str(b, s);
	if (r == 0)
		r = lp_buf_append(b, "\"", 1);
	return r;
}

static void two_digits(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* time.Time.Round(time.Second).Format(time.RFC3339) in UTC */
static int lp_json_modtime(struct lp_buf *b, int64_t sec, uint32_t nsec)
{
	struct tm tm;
	time_t t;

	if (nsec >= 500000000u)
		sec++;
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	if (tm.tm_year + 1900 >= 0 && tm.tm_year + 1900 <= 9999) {
		char d[] = ",\n\t\t\t\"modtime\": \"0000-00-00T00:00:00Z\"";
		char *p = d + sizeof(",\n\t\t\t\"modtime\": \"") - 1;
		int y = tm.tm_year + 1900;

		p[0] = (char)('0' + y / 1000);
		p[1] = (char)('0' + y / 100 % 10);
		p[2] = (char)('0' + y / 10 % 10);
		p[3] = (char)('0' + y % 10);
		two_digits(p + 5, tm.tm_mon + 1);
		two_digits(p + 8, tm.tm_mday);
		two_digits(p + 11, tm.tm_hour);
		two_digits(p + 14, tm.tm_min);
		two_digits(p + 17, tm.tm_sec);
		return lp_buf_append(b, d, sizeof(d) - 1);
	}
	return lp_buf_printf(
		b, ",\n\t\t\t\"modtime\": \"%04d-%02d-%02dT%02d:%02d:%02dZ\"",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec);
}

static int json_base64(struct lp_buf *b, const uint8_t *v, size_t len)
{
	int r = lp_buf_append(b, "\"", 1);

	if (r == 0)
		r = lp_base64_encode_buf(b, v, len);
	if (r == 0)
		r = lp_buf_append(b, "\"", 1);
	return r;
}

static int lp_xattr_cmp(const void *a, const void *b)
{
	const struct lp_toc_xattr *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int lp_json_xattrs(struct lp_buf *b, const struct lp_toc_xattr *xa,
			  uint32_t n)
{
	const struct lp_toc_xattr **sorted = NULL;
	bool first = true;
	uint32_t i;
	int r;

	if (!n)
		return 0;
	sorted = calloc(n, sizeof(*sorted));
	if (!sorted) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		sorted[i] = &xa[i];
	qsort(sorted, n, sizeof(*sorted), lp_xattr_cmp);
	r = lp_buf_printf(b, ",\n\t\t\t\"xattrs\": {");
	for (i = 0; r == 0 && i < n; i++) {
		/* Go maps hold one value per key */
		if (i + 1 < n && !strcmp(sorted[i]->name, sorted[i + 1]->name))
			continue;
		r = lp_buf_printf(b, "%s\n\t\t\t\t", first ? "" : ",");
		first = false;
		if (r == 0)
			r = lp_json_string(b, sorted[i]->name);
		if (r == 0)
			r = lp_buf_append(b, ": ", 2);
		if (r == 0)
			r = json_base64(b, sorted[i]->value, sorted[i]->len);
	}
	if (r == 0)
		r = lp_buf_printf(b, "\n\t\t\t}");
out:
	free(sorted);
	return r;
}

int lp_toc_writer_add(struct lp_toc_writer *w, const struct lp_toc_record *rec)
{
	struct lp_buf *b = &w->out;
	size_t mark = b->len;
	int r;

	if (w->finished || !rec->name)
		return -EINVAL;
	r = append_str(b, w->nr_records ? ",\n\t\t{\n\t\t\t\"name\": " :
					  "\n\t\t{\n\t\t\t\"name\": ");
	if (r == 0)
		r = lp_json_string(b, rec->name);
	if (r == 0)
		r = lp_json_key(b, "type");
	if (r == 0)
		r = lp_buf_append(b, "\"", 1);
	if (r == 0)
		r = append_str(b, lp_toc_type_name(rec->type));
	if (r == 0)
		r = lp_buf_append(b, "\"", 1);
	if (r == 0)
		r = lp_json_u64(b, "size", rec->size);
	if (r == 0 && rec->has_modtime)
		r = lp_json_modtime(b, rec->mtime_sec, rec->mtime_nsec);
	if (r == 0)
		r = lp_json_str_field(b, "linkName", rec->link_name);
	if (r == 0)
		r = lp_json_u64(b, "mode", rec->mode);
	if (r == 0)
		r = lp_json_u64(b, "uid", rec->uid);
	if (r == 0)
		r = lp_json_u64(b, "gid", rec->gid);
	if (r == 0)
		r = lp_json_str_field(b, "userName", rec->user_name);
	if (r == 0)
		r = lp_json_str_field(b, "groupName", rec->group_name);
	if (r == 0)
		r = lp_json_u64(b, "offset", rec->offset);
	if (r == 0)
		r = lp_json_u64(b, "innerOffset", rec->inner_offset);
	if (r == 0)
		r = lp_json_u64(b, "devMajor", rec->dev_major);
	if (r == 0)
		r = lp_json_u64(b, "devMinor", rec->dev_minor);
	if (r == 0)
		r = lp_json_xattrs(b, rec->xattrs, rec->nr_xattrs);
	if (r == 0)
		r = lp_json_digest(b, "digest", rec->digest);
	if (r == 0)
		r = lp_json_u64(b, "chunkOffset", rec->chunk_offset);
	if (r == 0)
		r = lp_json_u64(b, "chunkSize", rec->chunk_size);
	if (r == 0)
		r = lp_json_digest(b, "chunkDigest", rec->chunk_digest);
	if (r == 0)
		r = lp_buf_append(b, "\n\t\t}", 4);
	if (r < 0) {
		/* leave the document as it was before this record */
		b->len = mark;
		if (b->data)
			b->data[mark] = 0;
		return r;
	}
	w->nr_records++;
	return 0;
}

int lp_toc_writer_finish(struct lp_toc_writer *w, struct lp_buf *out)
{
	int r;

	if (w->finished || out->len)
		return -EINVAL;
	if (w->nr_records)
		r = lp_buf_printf(&w->out, "\n\t]\n}");
	else
		r = lp_buf_printf(&w->out, "]\n}");
	if (r < 0)
		return r;
	w->finished = true;
	lp_buf_release(out);
	*out = w->out;
	lp_buf_init(&w->out, 0);
	return 0;
}

static int lp_toc_write_entry(struct lp_toc_writer *w, const struct lp_toc *toc,
			      uint32_t idx)
{
	const struct lp_toc_entry *e = lp_toc_entry(toc, idx);
	struct lp_toc_record rec = { 0 };
	char path[LP_TOC_MAX_PATH + 1];
	struct lp_digest fd, cd;
	uint32_t i;
	int r;

	r = lp_toc_entry_path(toc, idx, path, sizeof(path));
	if (r < 0)
		return r;
	rec.name = path;
	rec.type = (enum lp_toc_type)e->type;
	if (idx == 0)
		rec.name = "./";
	rec.has_modtime = e->flags & LP_TOC_HAS_MODTIME;
	lp_toc_entry_mtime(toc, e, &rec.mtime_sec, &rec.mtime_nsec);
	rec.link_name = lp_toc_entry_link_name(toc, e);
	rec.mode = e->mode;
	rec.uid = lp_toc_entry_uid(toc, e);
	rec.gid = lp_toc_entry_gid(toc, e);
	rec.user_name = lp_toc_entry_user_name(toc, e);
	rec.group_name = lp_toc_entry_group_name(toc, e);
	lp_toc_entry_dev(toc, e, &rec.dev_major, &rec.dev_minor);
	if (e->type != LP_TOC_HARDLINK)
		rec.xattrs = lp_toc_entry_xattrs(toc, e, &rec.nr_xattrs);
	if (e->type != LP_TOC_REG)
		return lp_toc_writer_add(w, &rec);

	rec.size = e->size;
	r = lp_toc_entry_digest(toc, e, &fd);
	if (r < 0)
		return r;
	rec.digest = r ? &fd : NULL;
	if (!e->nr_chunks)
		return lp_toc_writer_add(w, &rec);
	for (i = 0, r = 0; r == 0 && i < e->nr_chunks; i++) {
		const struct lp_toc_chunk c =
			lp_toc_chunk(toc, e->first_chunk + i);

		rec.offset = c.offset;
		rec.inner_offset = c.inner_offset;
		rec.chunk_offset = c.chunk_offset;
		/* the last chunk runs to the end of the file */
		rec.chunk_size = i + 1 < e->nr_chunks ? c.chunk_size : 0;
		r = lp_toc_chunk_digest(toc, &c, &cd);
		if (r < 0)
			break;
		rec.chunk_digest = r ? &cd : NULL;
		r = lp_toc_writer_add(w, &rec);
		/* chunk records carry only the chunk fields */
		memset(&rec, 0, sizeof(rec));
		rec.name = path;
		rec.type = LP_TOC_CHUNK;
	}
	return r;
}

int lp_toc_write_json(const struct lp_toc *toc, struct lp_buf *out)
{
	struct lp_toc_writer *w = NULL;
	uint32_t i, n = lp_toc_nr_entries(toc);
	int r;

	r = lp_toc_writer_new(LP_TOC_MAX_JSON, &w);
	for (i = 0; r == 0 && i < n; i++) {
		if (lp_toc_entry(toc, i)->flags & LP_TOC_IMPLIED)
			continue;
		r = lp_toc_write_entry(w, toc, i);
	}
	if (r == 0)
		r = lp_toc_writer_finish(w, out);
	lp_toc_writer_free(w);
	return r;
}
