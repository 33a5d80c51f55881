// SPDX-License-Identifier: Apache-2.0
/*
 * One TOC entry's JSON into the builder: path normalisation, typed field
 * getters with their bounds, RFC 3339 times, xattrs (base64), owners, the
 * chunk fields, and the entry itself (toc_parse_entry). Part of the TOC
 * parser (toc_parse.c says how the files divide the work).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_base64.h"
#include "lp_buf.h"
#include "toc_int.h"

/*
 * Normalise @len bytes of TOC name into b->path: drop "." and empty
 * components (so "./", leading and trailing "/" go), reject "..", NUL and
 * the path bounds. The root is "".
 */
static int normalise(struct builder *b, const char *in, size_t len,
		     size_t *ret_len)
{
	size_t i = 0, out = 0, depth = 0;
	int r = 0;

	if (memchr(in, '\0', len)) {
		r = toc_ent_err(b, -EINVAL, "name contains a NUL byte");
		goto out;
	}
	while (i < len) {
		size_t start = i, clen;

		while (i < len && in[i] != '/')
			i++;
		clen = i - start;
		i++; /* the '/' */
		if (clen == 0 || (clen == 1 && in[start] == '.'))
			continue;
		if (clen == 2 && in[start] == '.' && in[start + 1] == '.') {
			r = toc_ent_err(b, -EINVAL,
					"path has a \"..\" component");
			goto out;
		}
		if (clen > LP_TOC_MAX_NAME) {
			r = toc_ent_err(b, -EFBIG,
					"path component of %zu bytes "
					"exceeds LP_TOC_MAX_NAME",
					clen);
			goto out;
		}
		if (++depth > LP_TOC_MAX_DEPTH) {
			r = toc_ent_err(b, -EFBIG,
					"path deeper than "
					"LP_TOC_MAX_DEPTH");
			goto out;
		}
		if (out + (out ? 1 : 0) + clen > LP_TOC_MAX_PATH) {
			r = toc_ent_err(b, -EFBIG,
					"path exceeds LP_TOC_MAX_PATH");
			goto out;
		}
		if (out)
			b->path[out++] = '/';
		memcpy(b->path + out, in + start, clen);
		out += clen;
	}
	b->path[out] = '\0';
	*ret_len = out;
out:
	return r;
}

/* JSON field helpers: absent fields read as zero / "" */

static int get_u64(struct builder *b, json_object *o, const char *key,
		   uint64_t *ret)
{
	json_object *v;
	int64_t x;
	int r = 0;

	*ret = 0;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		goto out;
	if (!json_object_is_type(v, json_type_int)) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" is not an integer", key);
		goto out;
	}
	x = json_object_get_int64(v);
	if (x < 0) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" is negative", key);
		goto out;
	}
	*ret = (uint64_t)x;
out:
	return r;
}

static int get_u32(struct builder *b, json_object *o, const char *key,
		   uint32_t *ret)
{
	uint64_t v;
	int r = get_u64(b, o, key, &v);

	if (r == 0 && v > UINT32_MAX)
		r = toc_ent_err(b, -EINVAL, "\"%s\" out of range", key);
	*ret = (uint32_t)v;
	return r;
}

static int get_str(struct builder *b, json_object *o, const char *key,
		   const char **ret, size_t *ret_len)
{
	json_object *v;
	int r = 0;

	*ret = "";
	*ret_len = 0;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		goto out;
	if (!json_object_is_type(v, json_type_string)) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" is not a string", key);
		goto out;
	}
	*ret = json_object_get_string(v);
	*ret_len = (size_t)json_object_get_string_len(v);
out:
	return r;
}

static int get_digest(struct builder *b, json_object *o, const char *key,
		      struct lp_digest *d, bool *ret_has)
{
	const char *s;
	size_t len;
	int r = get_str(b, o, key, &s, &len);

	*ret_has = false;
	if (r < 0 || len == 0)
		goto out;
	if (lp_digest_parse_n(s, len, d) < 0) {
		r = toc_ent_err(b, -EINVAL, "bad %s \"%.80s\"", key, s);
		goto out;
	}
	*ret_has = true;
out:
	return r;
}

static bool read_digits(const char **p, int n, int *ret)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

/* days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm) */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/*
 * RFC 3339 as Go's time.RFC3339 reads it:
 * YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM).
 */
static bool parse_rfc3339(const char *s, size_t len, int64_t *ret_sec,
			  uint32_t *ret_nsec)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30,
				     31, 31, 30, 31, 30, 31 };
	const char *p = s, *end = s + len;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, digits = 0;
	uint32_t nsec = 0;

	if (len < 20 || !read_digits(&p, 4, &y) || *p++ != '-' ||
	    !read_digits(&p, 2, &mo) || *p++ != '-' ||
	    !read_digits(&p, 2, &d) || *p++ != 'T' || !read_digits(&p, 2, &h) ||
	    *p++ != ':' || !read_digits(&p, 2, &mi) || *p++ != ':' ||
	    !read_digits(&p, 2, &sec))
		return false;
	if (p < end && *p == '.') {
		for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits < 9)
				nsec = nsec * 10 + (uint32_t)(*p - '0');
		}
		if (!digits)
			return false;
		for (; digits < 9; digits++)
			nsec *= 10;
	}
	if (p < end && *p == 'Z') {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		sign = *p++ == '+' ? 1 : -1;
		if (end - p != 5 || !read_digits(&p, 2, &oh) || *p++ != ':' ||
		    !read_digits(&p, 2, &om) || oh > 23 || om > 59)
			return false;
	} else {
		return false;
	}
	if (p != end || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
	    sec > 59)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return false;
	*ret_sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
		   sec - sign * (oh * 3600 + om * 60);
	*ret_nsec = nsec;
	return true;
}

static int parse_xattrs(struct builder *b, json_object *o, struct bent *e)
{
	json_object *x;
	uint8_t *tmp = NULL;
	int r = 0;

	if (!json_object_object_get_ex(o, "xattrs", &x) || !x)
		goto out;
	if (!json_object_is_type(x, json_type_object)) {
		r = toc_ent_err(b, -EINVAL, "\"xattrs\" is not an object");
		goto out;
	}
	if (json_object_object_length(x) > LP_TOC_MAX_XATTRS) {
		r = toc_ent_err(b, -EFBIG,
				"more than LP_TOC_MAX_XATTRS xattrs");
		goto out;
	}
	e->first_xattr = b->nr_xattrs;
	json_object_object_foreach(x, key, val)
	{
		size_t klen = strlen(key), slen, vlen;
		struct xattr_tmp *xt;
		uint8_t *nt;
		const char *s;

		if (!json_object_is_type(val, json_type_string)) {
			r = toc_ent_err(b, -EINVAL,
					"xattr \"%.64s\" is not a "
					"string",
					key);
			goto out;
		}
		s = json_object_get_string(val);
		slen = (size_t)json_object_get_string_len(val);
		if (klen == 0 || klen > LP_TOC_MAX_NAME) {
			r = toc_ent_err(b, -EINVAL, "bad xattr name length %zu",
					klen);
			goto out;
		}
		if (slen / 4 * 3 > LP_TOC_MAX_XATTR_VALUE + 2) {
			r = toc_ent_err(b, -EFBIG,
					"xattr \"%.64s\" exceeds "
					"LP_TOC_MAX_XATTR_VALUE",
					key);
			goto out;
		}
		nt = realloc(tmp, slen / 4 * 3 + 1);
		if (!nt) {
			r = -ENOMEM;
			goto out;
		}
		tmp = nt;
		if (lp_base64_decode(s, slen, LP_BASE64_STRICT, tmp,
				     slen / 4 * 3 + 1, &vlen) < 0) {
			r = toc_ent_err(b, -EINVAL,
					"xattr \"%.64s\": bad base64", key);
			goto out;
		}
		if (vlen > LP_TOC_MAX_XATTR_VALUE) {
			r = toc_ent_err(b, -EFBIG,
					"xattr \"%.64s\" exceeds "
					"LP_TOC_MAX_XATTR_VALUE",
					key);
			goto out;
		}
		r = lp_grow_array((void **)&b->xattrs, &b->cap_xattrs,
				  (size_t)b->nr_xattrs + 1, sizeof(*b->xattrs));
		if (r < 0)
			goto out;
		xt = &b->xattrs[b->nr_xattrs];
		r = toc_pool_add(b, key, klen, &xt->name);
		if (r < 0)
			goto out;
		r = toc_pool_add(b, tmp, vlen, &xt->value);
		if (r < 0)
			goto out;
		xt->len = (uint32_t)vlen;
		b->nr_xattrs++;
		e->nr_xattrs++;
	}
out:
	free(tmp);
	return r;
}

/* the chunk fields shared by "reg" (its first chunk) and "chunk" entries */
static int parse_chunk(struct builder *b, json_object *o, uint32_t ent)
{
	struct bchunk *c;
	int r;

	if (b->nr_chunks >= LP_TOC_MAX_ENTRIES) {
		r = toc_ent_err(b, -EFBIG,
				"more than LP_TOC_MAX_ENTRIES chunks");
		goto out;
	}
	r = lp_grow_array((void **)&b->chunks, &b->cap_chunks,
			  (size_t)b->nr_chunks + 1, sizeof(*b->chunks));
	if (r < 0)
		goto out;
	c = &b->chunks[b->nr_chunks];
	memset(c, 0, sizeof(*c));
	c->entry = ent;
	if ((r = get_u64(b, o, "offset", &c->offset)) < 0 ||
	    (r = get_u64(b, o, "innerOffset", &c->inner_offset)) < 0 ||
	    (r = get_u64(b, o, "chunkOffset", &c->chunk_offset)) < 0 ||
	    (r = get_u64(b, o, "chunkSize", &c->chunk_size)) < 0 ||
	    (r = get_digest(b, o, "chunkDigest", &c->digest, &c->has_digest)) <
		    0)
		goto out;
	if (c->offset >= b->payload_end) {
		r = toc_ent_err(b, -EINVAL,
				"offset %llu is outside the payload "
				"[0, %llu)",
				(unsigned long long)c->offset,
				(unsigned long long)b->payload_end);
		goto out;
	}
	if (c->inner_offset > LP_CHUNK_MAX_INNER_OFFSET) {
		r = toc_ent_err(b, -EFBIG,
				"innerOffset %llu exceeds "
				"LP_CHUNK_MAX_INNER_OFFSET",
				(unsigned long long)c->inner_offset);
		goto out;
	}
	b->nr_chunks++;
	b->ents[ent].nr_chunks++;
out:
	return r;
}

static int type_from_name(const char *s)
{
	int t;

	for (t = LP_TOC_DIR; t <= LP_TOC_CHUNK; t++) {
		if (strcmp(s, lp_toc_type_name(t)) == 0)
			return t;
	}
	return -1;
}

/* userName/groupName, carried forward per uid/gid as the reference does */
static int owner_name(struct builder *b, json_object *o, const char *key,
		      struct lp_hashmap *m, uint32_t id, uint32_t *ret_off)
{
	const char *s;
	size_t len;
	uint64_t prev;
	int r = get_str(b, o, key, &s, &len);

	if (r < 0)
		goto out;
	if (lp_hashmap_get(m, id, &prev) < 0)
		prev = 0; /* no name yet: the pool's "" */
	if (len == 0) {
		*ret_off = (uint32_t)prev;
		goto out;
	}
	if (len > USER_NAME_MAX || memchr(s, '\0', len)) {
		r = toc_ent_err(b, -EINVAL, "bad \"%s\"", key);
		goto out;
	}
	if (prev && strcmp(b->pool + prev, s) == 0) {
		*ret_off = (uint32_t)prev; /* the common case: no new string */
		goto out;
	}
	r = toc_pool_add(b, s, len, ret_off);
	if (r < 0)
		goto out;
	r = lp_hashmap_put(m, id, *ret_off);
out:
	return r;
}

static int parse_attrs(struct builder *b, json_object *o, uint32_t i)
{
	struct bent *e = &b->ents[i];
	const char *s;
	size_t len;
	uint64_t mode;
	int r;

	if ((r = get_u64(b, o, "mode", &mode)) < 0 ||
	    (r = get_u32(b, o, "uid", &e->uid)) < 0 ||
	    (r = get_u32(b, o, "gid", &e->gid)) < 0 ||
	    (r = get_u32(b, o, "devMajor", &e->dev_major)) < 0 ||
	    (r = get_u32(b, o, "devMinor", &e->dev_minor)) < 0)
		goto out;
	e->mode = (uint32_t)(mode & 07777);
	r = get_str(b, o, "modtime", &s, &len);
	if (r < 0)
		goto out;
	if (len) {
		if (!parse_rfc3339(s, len, &e->mtime_sec, &e->mtime_nsec)) {
			r = toc_ent_err(b, -EINVAL, "bad modtime \"%.40s\"", s);
			goto out;
		}
		e->flags |= LP_TOC_HAS_MODTIME;
	}
	r = owner_name(b, o, "userName", &b->umap, e->uid, &b->strs[i].user);
	if (r < 0)
		goto out;
	r = owner_name(b, o, "groupName", &b->gmap, e->gid, &b->strs[i].group);
	if (r < 0)
		goto out;
	r = parse_xattrs(b, o, e);
out:
	return r;
}

int toc_parse_entry(struct builder *b, json_object *o)
{
	const char *name, *type_s, *link;
	size_t name_len, type_len, link_len, plen;
	struct bent *e;
	uint32_t i;
	bool has;
	int type, r;

	b->cur_name = NULL;
	b->cur_len = 0;
	if (!json_object_is_type(o, json_type_object)) {
		r = toc_ent_err(b, -EINVAL, "not a JSON object");
		goto out;
	}
	if ((r = get_str(b, o, "name", &name, &name_len)) < 0)
		goto out;
	b->cur_name = name;
	b->cur_len = name_len;
	if ((r = get_str(b, o, "type", &type_s, &type_len)) < 0)
		goto out;
	type = type_from_name(type_s);
	if (type < 0 || strlen(type_s) != type_len) {
		r = toc_ent_err(b, -EINVAL, "unknown type \"%.32s\"", type_s);
		goto out;
	}
	r = normalise(b, name, name_len, &plen);
	if (r < 0)
		goto out;

	if (type == LP_TOC_CHUNK) {
		if (b->last_ent == LP_TOC_NO_INDEX ||
		    b->ents[b->last_ent].type != LP_TOC_REG) {
			r = toc_ent_err(b, -EINVAL,
					"chunk does not follow a "
					"regular file");
			goto out;
		}
		if (!toc_path_is(b, b->last_ent, b->path, plen)) {
			r = toc_ent_err(b, -EINVAL,
					"chunk of a file other than "
					"the regular file before it");
			goto out;
		}
		r = parse_chunk(b, o, b->last_ent);
		goto out;
	}

	if (plen == 0) {
		if (type != LP_TOC_DIR || b->root_named) {
			r = toc_ent_err(b, -EINVAL,
					type != LP_TOC_DIR ?
						"root is not a directory" :
						"duplicate root directory");
			goto out;
		}
		b->root_named = true;
		i = 0;
		b->ents[0].flags &= (uint16_t)~LP_TOC_IMPLIED;
	} else {
		if (toc_hash_lookup(b, b->path, plen) != LP_TOC_NO_INDEX) {
			r = toc_ent_err(b, -EINVAL, "duplicate name");
			goto out;
		}
		r = toc_add_entry(b, plen, (enum lp_toc_type)type, &i);
		if (r < 0)
			goto out;
		r = toc_hash_insert(b, i);
		if (r < 0)
			goto out;
	}
	b->last_ent = i;
	r = parse_attrs(b, o, i);
	if (r < 0)
		goto out;
	e = &b->ents[i];

	if ((r = get_str(b, o, "linkName", &link, &link_len)) < 0)
		goto out;
	if (type == LP_TOC_SYMLINK) {
		if (link_len == 0 || link_len > LP_TOC_MAX_PATH ||
		    memchr(link, '\0', link_len)) {
			r = toc_ent_err(b, -EINVAL, "bad symlink target");
			goto out;
		}
		r = toc_pool_add(b, link, link_len, &b->strs[i].link);
	} else if (type == LP_TOC_HARDLINK) {
		size_t tlen;
		char saved[LP_TOC_MAX_PATH + 1];

		memcpy(saved, b->path, plen + 1);
		r = normalise(b, link, link_len, &tlen);
		if (r == 0)
			r = toc_pool_add(b, b->path, tlen, &b->strs[i].link);
		memcpy(b->path, saved, plen + 1);
	}
	if (r < 0)
		goto out;

	if (type == LP_TOC_REG) {
		r = get_u64(b, o, "size", &e->size);
		if (r < 0)
			goto out;
		if (e->size > LP_FILE_MAX_SIZE) {
			r = toc_ent_err(b, -EFBIG,
					"size %llu exceeds "
					"LP_FILE_MAX_SIZE",
					(unsigned long long)e->size);
			goto out;
		}
		r = get_digest(b, o, "digest", &e->digest, &has);
		if (r < 0)
			goto out;
		if (has)
			e->flags |= LP_TOC_HAS_DIGEST;
		if (e->size) {
			r = parse_chunk(b, o, i);
			if (r < 0)
				goto out;
			e = &b->ents[i];
			e->offset = b->chunks[e->first_chunk].offset;
		}
		if (plen == strlen(LP_PREFETCH_LANDMARK) &&
		    memcmp(b->path, LP_PREFETCH_LANDMARK, plen) == 0)
			b->prefetch_end = e->offset;
	}
out:
	return r;
}
