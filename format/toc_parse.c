// SPDX-License-Identifier: Apache-2.0
/*
 * TOC parsing: TOC JSON in, the compact immutable arrays of lp_toc.h out.
 *
 * json-c never holds the whole document. A small scanner walks the top-level
 * object and the "entries" array, finding the byte span of each value (and
 * rejecting nesting deeper than LP_TOC_MAX_JSON_NESTING before any parser
 * sees it); json-c then parses one entry at a time, we copy what we need into
 * flat arrays and a string pool, and the entry's json-c objects are freed at
 * once. No allocation per entry: entries, chunks and xattrs live in arrays
 * that grow by doubling and are shrunk to size at the end; strings and xattr
 * values live in one pool addressed by offset until the pool stops moving.
 *
 * After the last entry the builder resolves what needs the whole TOC: implied
 * parent directories, hardlink targets (one inode, nlink), directory children
 * sorted bytewise, chunk lists checked to tile each file exactly, and each
 * chunk's compressed size (distance to the next distinct member offset).
 * Every rejection names the JSON entry index and its name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lp_base64.h"
#include "lp_buf.h"
#include "lp_hashmap.h"
#include "lp_toc.h"

/* all strings and xattr values of one TOC; bounds the implied-dir copies */
#define POOL_MAX ((size_t)2 * LP_TOC_MAX_JSON)
#define USER_NAME_MAX 256
#define ERR_NAME_MAX 160 /* bytes of an entry name quoted in errors */
/* JSON containers around one entry: the top object and "entries" */
#define ENTRY_JSON_DEPTH 2

/* the daemon's memory per mounted entry (docs/benchmarks.md) */
_Static_assert(sizeof(struct lp_toc_entry) == 48, "lp_toc_entry grew");

/*
 * A chunk as kept (24 bytes): where its member is and what it is verified
 * against. Its place in the file is not stored: a single-chunk file's one
 * chunk (most chunks) covers [0, size) of its entry, and the chunks of a
 * file of several have their file offsets in toc->chunk_offs, from the
 * file's side record (toc_rare.first_off). lp_toc_chunk() puts them back
 * together.
 */
struct toc_chunk {
	uint64_t offset; /* blob offset of the compressed member */
	uint32_t compressed_size; /* < 4 GiB: compressed_sizes() */
	uint32_t inner_offset; /* <= LP_CHUNK_MAX_INNER_OFFSET */
	uint32_t entry; /* owning file entry */
	uint32_t digest_idx;
} __attribute__((packed, aligned(4)));
_Static_assert(sizeof(struct toc_chunk) == 24, "toc_chunk grew");

/* what few entries have: lp_toc_entry.rare_idx indexes these */
struct toc_rare {
	const char *link_name;
	uint32_t dev_major, dev_minor;
	uint32_t first_xattr, nr_xattrs;
	/* the file digest when it is not the first chunk's, or NO_INDEX */
	uint32_t digest_idx;
	/* a file of several chunks: their file offsets from chunk_offs[] */
	uint32_t first_off;
	uint32_t ino; /* a hardlink's target (any other entry: itself) */
	uint32_t nlink; /* names of the inode (not kept: 1) */
};

/* owners, deduplicated: lp_toc_entry.owner_idx indexes these */
struct toc_owner {
	const char *user, *group;
	uint32_t uid, gid;
};

struct lp_toc {
	struct lp_toc_entry *entries;
	struct toc_chunk *chunks;
	uint64_t *chunk_offs; /* chunk_offset of chunks of multi-chunk files */
	struct lp_toc_xattr *xattrs;
	struct lp_digest *digests; /* file and chunk digests, deduplicated */
	struct toc_rare *rare;
	struct toc_owner *owners;
	uint32_t *children;
	char *pool; /* names, link targets, owner names, xattrs */
	uint32_t nr_entries, nr_chunks, nr_xattrs, nr_children, nr_digests;
	uint32_t nr_rare, nr_owners, nr_chunk_offs;
	uint64_t prefetch_end;
};

/*
 * An entry and a chunk while parsing: every field at full width, strings as
 * pool offsets (struct ent_strs). finish() packs them into the compact
 * lp_toc_entry / lp_toc_chunk; the builder's arrays are then freed.
 */
struct bent {
	uint64_t size, offset;
	int64_t mtime_sec;
	uint32_t mtime_nsec, mode, uid, gid, dev_major, dev_minor;
	uint32_t ino, parent, nlink;
	uint32_t first_chunk, nr_chunks, first_xattr, nr_xattrs;
	uint32_t first_child, nr_children;
	uint16_t type, flags;
	struct lp_digest digest;
};

struct bchunk {
	uint64_t offset, compressed_size, inner_offset, chunk_offset;
	uint64_t chunk_size;
	uint32_t entry;
	bool has_digest;
	struct lp_digest digest;
};

/* pool offsets of an entry's strings while the pool may still move */
struct ent_strs {
	uint32_t path, name, link, user, group;
};

struct xattr_tmp {
	uint32_t name, value, len;
};

struct builder {
	struct lp_err *err;
	uint64_t payload_end;
	struct bent *ents;
	struct ent_strs *strs; /* parallel to ents */
	uint32_t nr_ents;
	size_t cap_ents, cap_strs;
	struct bchunk *chunks;
	uint32_t nr_chunks;
	size_t cap_chunks;
	struct xattr_tmp *xattrs;
	uint32_t nr_xattrs;
	size_t cap_xattrs;
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t *htab; /* entry index + 1, 0 = empty */
	size_t hcap, hused;
	struct lp_hashmap umap, gmap; /* uid/gid -> pool offset of its name */
	uint32_t last_ent; /* last non-chunk entry, for "chunk" */
	bool root_named;
	uint64_t prefetch_end;
	/* the JSON entry being parsed, for messages */
	uint32_t json_idx;
	const char *cur_name;
	size_t cur_len;
	char path[LP_TOC_MAX_PATH + 1];
};

static int ent_err(struct builder *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ent_err(struct builder *b, int code, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	int n = b->cur_len > ERR_NAME_MAX ? ERR_NAME_MAX : (int)b->cur_len;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return lp_err_set(b->err, code, "TOC entry %u \"%.*s\": %s",
			  b->json_idx, n, b->cur_name ? b->cur_name : "", why);
}

/* append @len bytes and a NUL to the pool; *ret_off is where they start */
static int pool_add(struct builder *b, const void *s, size_t len,
		    uint32_t *ret_off)
{
	size_t need = b->pool_len + len + 1;
	int r = 0;

	if (need > POOL_MAX) {
		r = ent_err(b, -EFBIG, "TOC strings exceed %zu bytes",
			    (size_t)POOL_MAX);
		goto out;
	}
	r = lp_grow_array((void **)&b->pool, &b->pool_cap, need, 1);
	if (r < 0)
		goto out;
	memcpy(b->pool + b->pool_len, s, len);
	b->pool[b->pool_len + len] = '\0';
	*ret_off = (uint32_t)b->pool_len;
	b->pool_len = need;
out:
	return r;
}

static bool path_is(const struct builder *b, uint32_t ent, const char *s,
		    size_t len)
{
	const char *p = b->pool + b->strs[ent].path;

	return strncmp(p, s, len) == 0 && p[len] == '\0';
}

/* slot of @s in the path hash: holds its entry, or is empty */
static size_t hash_slot(const struct builder *b, const char *s, size_t len)
{
	size_t mask = b->hcap - 1, i = lp_hash_bytes(s, len) & mask;

	while (b->htab[i] && !path_is(b, b->htab[i] - 1, s, len))
		i = (i + 1) & mask;
	return i;
}

static uint32_t hash_lookup(const struct builder *b, const char *s, size_t len)
{
	size_t i;

	if (!b->hcap)
		return LP_TOC_NO_INDEX;
	i = hash_slot(b, s, len);
	return b->htab[i] ? b->htab[i] - 1 : LP_TOC_NO_INDEX;
}

/* insert entry @ent (its path must not be in the table yet) */
static int hash_insert(struct builder *b, uint32_t ent)
{
	const char *p;
	int r = 0;

	if ((b->hused + 1) * 2 > b->hcap) {
		size_t ncap = b->hcap ? b->hcap * 2 : 1024, i;
		uint32_t *old = b->htab, *nt;
		size_t ocap = b->hcap;

		nt = calloc(ncap, sizeof(*nt));
		if (!nt) {
			r = -ENOMEM;
			goto out;
		}
		b->htab = nt;
		b->hcap = ncap;
		for (i = 0; i < ocap; i++) {
			if (old[i]) {
				p = b->pool + b->strs[old[i] - 1].path;
				nt[hash_slot(b, p, strlen(p))] = old[i];
			}
		}
		free(old);
	}
	p = b->pool + b->strs[ent].path;
	b->htab[hash_slot(b, p, strlen(p))] = ent + 1;
	b->hused++;
out:
	return r;
}

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
		r = ent_err(b, -EINVAL, "name contains a NUL byte");
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
			r = ent_err(b, -EINVAL, "path has a \"..\" component");
			goto out;
		}
		if (clen > LP_TOC_MAX_NAME) {
			r = ent_err(b, -EFBIG,
				    "path component of %zu bytes "
				    "exceeds LP_TOC_MAX_NAME",
				    clen);
			goto out;
		}
		if (++depth > LP_TOC_MAX_DEPTH) {
			r = ent_err(b, -EFBIG,
				    "path deeper than "
				    "LP_TOC_MAX_DEPTH");
			goto out;
		}
		if (out + (out ? 1 : 0) + clen > LP_TOC_MAX_PATH) {
			r = ent_err(b, -EFBIG, "path exceeds LP_TOC_MAX_PATH");
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
		r = ent_err(b, -EINVAL, "\"%s\" is not an integer", key);
		goto out;
	}
	x = json_object_get_int64(v);
	if (x < 0) {
		r = ent_err(b, -EINVAL, "\"%s\" is negative", key);
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
		r = ent_err(b, -EINVAL, "\"%s\" out of range", key);
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
		r = ent_err(b, -EINVAL, "\"%s\" is not a string", key);
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
		r = ent_err(b, -EINVAL, "bad %s \"%.80s\"", key, s);
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
		r = ent_err(b, -EINVAL, "\"xattrs\" is not an object");
		goto out;
	}
	if (json_object_object_length(x) > LP_TOC_MAX_XATTRS) {
		r = ent_err(b, -EFBIG, "more than LP_TOC_MAX_XATTRS xattrs");
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
			r = ent_err(b, -EINVAL,
				    "xattr \"%.64s\" is not a "
				    "string",
				    key);
			goto out;
		}
		s = json_object_get_string(val);
		slen = (size_t)json_object_get_string_len(val);
		if (klen == 0 || klen > LP_TOC_MAX_NAME) {
			r = ent_err(b, -EINVAL, "bad xattr name length %zu",
				    klen);
			goto out;
		}
		if (slen / 4 * 3 > LP_TOC_MAX_XATTR_VALUE + 2) {
			r = ent_err(b, -EFBIG,
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
			r = ent_err(b, -EINVAL, "xattr \"%.64s\": bad base64",
				    key);
			goto out;
		}
		if (vlen > LP_TOC_MAX_XATTR_VALUE) {
			r = ent_err(b, -EFBIG,
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
		r = pool_add(b, key, klen, &xt->name);
		if (r < 0)
			goto out;
		r = pool_add(b, tmp, vlen, &xt->value);
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
		r = ent_err(b, -EFBIG, "more than LP_TOC_MAX_ENTRIES chunks");
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
		r = ent_err(b, -EINVAL,
			    "offset %llu is outside the payload "
			    "[0, %llu)",
			    (unsigned long long)c->offset,
			    (unsigned long long)b->payload_end);
		goto out;
	}
	if (c->inner_offset > LP_CHUNK_MAX_INNER_OFFSET) {
		r = ent_err(b, -EFBIG,
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
		r = ent_err(b, -EINVAL, "bad \"%s\"", key);
		goto out;
	}
	if (prev && strcmp(b->pool + prev, s) == 0) {
		*ret_off = (uint32_t)prev; /* the common case: no new string */
		goto out;
	}
	r = pool_add(b, s, len, ret_off);
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
			r = ent_err(b, -EINVAL, "bad modtime \"%.40s\"", s);
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

/* a new entry for b->path (@len bytes), not yet in the hash */
static int add_entry(struct builder *b, size_t len, enum lp_toc_type type,
		     uint32_t *ret_idx)
{
	struct bent *e;
	uint32_t i = b->nr_ents;
	const char *slash;
	int r;

	if (i >= LP_TOC_MAX_ENTRIES) {
		r = ent_err(b, -EFBIG, "more than LP_TOC_MAX_ENTRIES entries");
		goto out;
	}
	r = lp_grow_array((void **)&b->ents, &b->cap_ents, (size_t)i + 1,
			  sizeof(*b->ents));
	if (r == 0)
		r = lp_grow_array((void **)&b->strs, &b->cap_strs,
				  (size_t)i + 1, sizeof(*b->strs));
	if (r < 0)
		goto out;
	memset(&b->strs[i], 0, sizeof(b->strs[i]));
	r = pool_add(b, b->path, len, &b->strs[i].path);
	if (r < 0)
		goto out;
	slash = strrchr(b->path, '/');
	b->strs[i].name =
		b->strs[i].path + (slash ? (uint32_t)(slash - b->path) + 1 : 0);
	e = &b->ents[i];
	memset(e, 0, sizeof(*e));
	e->type = (uint16_t)type;
	e->ino = i;
	e->nlink = type == LP_TOC_DIR ? 2 : 1;
	e->first_chunk = b->nr_chunks;
	e->first_xattr = b->nr_xattrs;
	b->nr_ents++;
	*ret_idx = i;
out:
	return r;
}

static int parse_entry(struct builder *b, json_object *o)
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
		r = ent_err(b, -EINVAL, "not a JSON object");
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
		r = ent_err(b, -EINVAL, "unknown type \"%.32s\"", type_s);
		goto out;
	}
	r = normalise(b, name, name_len, &plen);
	if (r < 0)
		goto out;

	if (type == LP_TOC_CHUNK) {
		if (b->last_ent == LP_TOC_NO_INDEX ||
		    b->ents[b->last_ent].type != LP_TOC_REG) {
			r = ent_err(b, -EINVAL,
				    "chunk does not follow a "
				    "regular file");
			goto out;
		}
		if (!path_is(b, b->last_ent, b->path, plen)) {
			r = ent_err(b, -EINVAL,
				    "chunk of a file other than "
				    "the regular file before it");
			goto out;
		}
		r = parse_chunk(b, o, b->last_ent);
		goto out;
	}

	if (plen == 0) {
		if (type != LP_TOC_DIR || b->root_named) {
			r = ent_err(b, -EINVAL,
				    type != LP_TOC_DIR ?
					    "root is not a directory" :
					    "duplicate root directory");
			goto out;
		}
		b->root_named = true;
		i = 0;
		b->ents[0].flags &= (uint16_t)~LP_TOC_IMPLIED;
	} else {
		if (hash_lookup(b, b->path, plen) != LP_TOC_NO_INDEX) {
			r = ent_err(b, -EINVAL, "duplicate name");
			goto out;
		}
		r = add_entry(b, plen, (enum lp_toc_type)type, &i);
		if (r < 0)
			goto out;
		r = hash_insert(b, i);
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
			r = ent_err(b, -EINVAL, "bad symlink target");
			goto out;
		}
		r = pool_add(b, link, link_len, &b->strs[i].link);
	} else if (type == LP_TOC_HARDLINK) {
		size_t tlen;
		char saved[LP_TOC_MAX_PATH + 1];

		memcpy(saved, b->path, plen + 1);
		r = normalise(b, link, link_len, &tlen);
		if (r == 0)
			r = pool_add(b, b->path, tlen, &b->strs[i].link);
		memcpy(b->path, saved, plen + 1);
	}
	if (r < 0)
		goto out;

	if (type == LP_TOC_REG) {
		r = get_u64(b, o, "size", &e->size);
		if (r < 0)
			goto out;
		if (e->size > LP_FILE_MAX_SIZE) {
			r = ent_err(b, -EFBIG,
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

/* --- whole-TOC resolution -------------------------------------------- */

static int add_implied(struct builder *b, size_t len, uint32_t *ret_idx)
{
	uint32_t i;
	int r = add_entry(b, len, LP_TOC_DIR, &i);

	if (r < 0)
		goto out;
	b->ents[i].mode = 0755;
	b->ents[i].flags = LP_TOC_IMPLIED;
	r = hash_insert(b, i);
	if (r < 0)
		goto out;
	*ret_idx = i;
out:
	return r;
}

/* parent of every entry, creating implied directories as needed */
static int resolve_parents(struct builder *b)
{
	uint32_t i, parent;
	int r = 0;

	for (i = 1; i < b->nr_ents; i++) {
		const char *p = b->pool + b->strs[i].path;
		const char *slash = strrchr(p, '/');

		b->json_idx = i;
		b->cur_name = NULL;
		b->cur_len = 0;
		if (!slash) {
			parent = 0;
		} else {
			size_t len = (size_t)(slash - p);

			parent = hash_lookup(b, p, len);
			if (parent == LP_TOC_NO_INDEX) {
				memcpy(b->path, p, len);
				b->path[len] = '\0';
				r = add_implied(b, len, &parent);
				if (r < 0)
					goto out;
			}
		}
		if (b->ents[parent].type != LP_TOC_DIR) {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC entry \"%.*s\": parent is not a "
				       "directory",
				       ERR_NAME_MAX, b->pool + b->strs[i].path);
			goto out;
		}
		b->ents[i].parent = parent;
		if (b->ents[i].type == LP_TOC_DIR)
			b->ents[parent].nlink++;
	}
out:
	return r;
}

static int resolve_hardlinks(struct builder *b)
{
	uint32_t i, t, steps;
	int r = 0;

	for (i = 1; i < b->nr_ents; i++) {
		if (b->ents[i].type != LP_TOC_HARDLINK)
			continue;
		t = i;
		for (steps = 0; b->ents[t].type == LP_TOC_HARDLINK; steps++) {
			const char *lp = b->pool + b->strs[t].link;

			if (steps > b->nr_ents) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC entry \"%.*s\": hardlink "
					       "cycle",
					       ERR_NAME_MAX,
					       b->pool + b->strs[i].path);
				goto out;
			}
			t = hash_lookup(b, lp, strlen(lp));
			if (t == LP_TOC_NO_INDEX)
				break;
		}
		if (t == LP_TOC_NO_INDEX || b->ents[t].type != LP_TOC_REG) {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC entry \"%.*s\": hardlink to a "
				       "missing or non-regular target \"%.*s\"",
				       ERR_NAME_MAX, b->pool + b->strs[i].path,
				       ERR_NAME_MAX, b->pool + b->strs[i].link);
			goto out;
		}
		b->ents[i].ino = t;
		b->ents[t].nlink++;
	}
	for (i = 1; i < b->nr_ents; i++) {
		if (b->ents[i].type == LP_TOC_HARDLINK)
			b->ents[i].nlink = b->ents[b->ents[i].ino].nlink;
	}
out:
	return r;
}

static int chunk_err(struct builder *b, uint32_t ent, const char *why,
		     uint64_t at)
{
	return lp_err_set(b->err, -EINVAL,
			  "TOC entry \"%.*s\": chunk at file offset %llu %s",
			  ERR_NAME_MAX, b->pool + b->strs[ent].path,
			  (unsigned long long)at, why);
}

/* each file's chunks must tile [0, size) exactly, in order */
static int check_chunks(struct builder *b)
{
	uint32_t i, k;
	int r = 0;

	for (i = 0; i < b->nr_ents; i++) {
		struct bent *e = &b->ents[i];
		uint64_t next = 0;

		if (e->type != LP_TOC_REG)
			continue;
		for (k = 0; k < e->nr_chunks; k++) {
			struct bchunk *c = &b->chunks[e->first_chunk + k];

			if (c->chunk_offset < next) {
				r = chunk_err(b, i, "overlaps the previous one",
					      c->chunk_offset);
				goto out;
			}
			if (c->chunk_offset > next) {
				r = chunk_err(b, i, "leaves a gap",
					      c->chunk_offset);
				goto out;
			}
			if (c->chunk_offset >= e->size) {
				r = chunk_err(b, i, "is past the file size",
					      c->chunk_offset);
				goto out;
			}
			/* 0 means "to the end" */
			if (c->chunk_size == 0)
				c->chunk_size = e->size - c->chunk_offset;
			if (c->chunk_size > e->size - c->chunk_offset) {
				r = chunk_err(b, i, "runs past the file size",
					      c->chunk_offset);
				goto out;
			}
			if (c->chunk_size > LP_CHUNK_MAX_SIZE) {
				r = lp_err_set(
					b->err, -EFBIG,
					"TOC entry \"%.*s\": chunk of "
					"%llu bytes exceeds "
					"LP_CHUNK_MAX_SIZE",
					ERR_NAME_MAX, b->pool + b->strs[i].path,
					(unsigned long long)c->chunk_size);
				goto out;
			}
			next = c->chunk_offset + c->chunk_size;
		}
		if (next != e->size) {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC entry \"%.*s\": chunks cover %llu "
				       "of %llu bytes",
				       ERR_NAME_MAX, b->pool + b->strs[i].path,
				       (unsigned long long)next,
				       (unsigned long long)e->size);
			goto out;
		}
	}
out:
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* compressed size: up to the next distinct member offset, or payload end */
static int compressed_sizes(struct builder *b)
{
	uint64_t *offs = NULL;
	size_t n = 0, i;
	int r = 0;

	if (!b->nr_chunks)
		goto out;
	offs = malloc(b->nr_chunks * sizeof(*offs));
	if (!offs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < b->nr_chunks; i++)
		offs[i] = b->chunks[i].offset;
	qsort(offs, b->nr_chunks, sizeof(*offs), cmp_u64);
	for (i = 0; i < b->nr_chunks; i++) {
		if (!n || offs[n - 1] != offs[i])
			offs[n++] = offs[i];
	}
	for (i = 0; i < b->nr_chunks; i++) {
		struct bchunk *c = &b->chunks[i];
		size_t lo = 0, hi = n;

		while (lo < hi) { /* first offset > c->offset */
			size_t mid = lo + (hi - lo) / 2;

			if (offs[mid] <= c->offset)
				lo = mid + 1;
			else
				hi = mid;
		}
		c->compressed_size =
			(lo < n ? offs[lo] : b->payload_end) - c->offset;
		if (c->compressed_size > UINT32_MAX) {
			r = lp_err_set(b->err, -EFBIG,
				       "TOC entry \"%.*s\": chunk at file "
				       "offset %llu spans %llu compressed "
				       "bytes (over 4 GiB)",
				       ERR_NAME_MAX,
				       b->pool + b->strs[c->entry].path,
				       (unsigned long long)c->chunk_offset,
				       (unsigned long long)c->compressed_size);
			goto out;
		}
	}
out:
	free(offs);
	return r;
}

static int cmp_child(const void *pa, const void *pb, void *ctx)
{
	const struct builder *b = ctx;
	uint32_t x = *(const uint32_t *)pa, y = *(const uint32_t *)pb;

	if (b->ents[x].parent != b->ents[y].parent)
		return b->ents[x].parent < b->ents[y].parent ? -1 : 1;
	return strcmp(b->pool + b->strs[x].name, b->pool + b->strs[y].name);
}

/* the final pool: what the TOC keeps of the builder's (no full paths) */
struct final_pool {
	char *p;
	size_t len;
	struct lp_hashmap moved; /* builder offset -> final offset */
};

/* copy @len bytes + NUL at builder offset @off; shared strings once */
static int pool_move(struct builder *b, struct final_pool *f, uint32_t off,
		     size_t len, bool shared, uint32_t *ret_off)
{
	uint64_t v;
	int r = 0;

	if (off == 0) { /* "" */
		*ret_off = 0;
		goto out;
	}
	if (shared && lp_hashmap_get(&f->moved, off, &v) == 0) {
		*ret_off = (uint32_t)v;
		goto out;
	}
	memcpy(f->p + f->len, b->pool + off, len + 1);
	*ret_off = (uint32_t)f->len;
	f->len += len + 1;
	if (shared)
		r = lp_hashmap_put(&f->moved, off, *ret_off);
out:
	return r;
}

static int pool_move_str(struct builder *b, struct final_pool *f, uint32_t off,
			 bool shared, uint32_t *ret_off)
{
	return pool_move(b, f, off, strlen(b->pool + off), shared, ret_off);
}

/* index of @d in toc->digests, appended unless it equals @same_as's */
static uint32_t digest_add(struct lp_toc *toc, const struct lp_digest *d,
			   uint32_t same_as)
{
	if (same_as != LP_TOC_NO_INDEX &&
	    lp_digest_equal(&toc->digests[same_as], d))
		return same_as;
	toc->digests[toc->nr_digests] = *d;
	return toc->nr_digests++;
}

/*
 * whether entry @i needs a side record: a link name, device numbers,
 * xattrs, several chunks, or a file digest that its first chunk's does not
 * stand for
 */
static bool needs_rare(const struct builder *b, uint32_t i)
{
	const struct bent *be = &b->ents[i];
	const struct bchunk *c;

	if (b->strs[i].link || be->dev_major || be->dev_minor ||
	    be->nr_xattrs || be->nr_chunks > 1 || be->nlink != 1)
		return true;
	if (!(be->flags & LP_TOC_HAS_DIGEST))
		return false;
	if (!be->nr_chunks)
		return true;
	c = &b->chunks[be->first_chunk];
	return !c->has_digest || !lp_digest_equal(&c->digest, &be->digest);
}

/*
 * Pack the builder's records into @toc: compact entries and chunks, names
 * instead of paths in a new pool, digests deduplicated (a single-chunk
 * file's chunk digest is its file digest).
 */
static int finish(struct builder *b, struct lp_toc *toc)
{
	struct final_pool f = { 0 };
	/* hash of uid, gid, user, group -> index (checked: a collision
	   only costs a duplicate record) */
	struct lp_hashmap owners = { 0 };
	uint32_t i, k, ndig = 0, nrare = 0, noffs = 0, o;
	char *pool;
	int r = 0;

	toc->nr_children = b->nr_ents - 1;
	toc->children = malloc((toc->nr_children + 1) * sizeof(uint32_t));
	toc->xattrs = calloc(b->nr_xattrs + 1, sizeof(*toc->xattrs));
	toc->entries = calloc(b->nr_ents, sizeof(*toc->entries));
	toc->chunks = calloc(b->nr_chunks + 1, sizeof(*toc->chunks));
	f.p = malloc(b->pool_len);
	if (!toc->children || !toc->xattrs || !toc->entries || !toc->chunks ||
	    !f.p) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 1; i < b->nr_ents; i++)
		toc->children[i - 1] = i;
	qsort_r(toc->children, toc->nr_children, sizeof(uint32_t), cmp_child,
		b);
	for (i = 0; i < toc->nr_children; i++) {
		struct bent *p = &b->ents[b->ents[toc->children[i]].parent];

		if (!p->nr_children)
			p->first_child = i;
		p->nr_children++;
	}

	/* every string is copied at most once: the new pool is no larger */
	f.p[0] = '\0';
	f.len = 1;
	/* st's builder offsets become final ones (the builder is done) */
	for (i = 0; i < b->nr_ents; i++) {
		struct ent_strs *st = &b->strs[i];
		struct lp_toc_entry *e = &toc->entries[i];

		if ((r = pool_move_str(b, &f, st->name, false, &o)) < 0)
			goto out;
		e->name_off = o;
		if ((r = pool_move_str(b, &f, st->link, false, &st->link)) <
			    0 ||
		    (r = pool_move_str(b, &f, st->user, true, &st->user)) < 0 ||
		    (r = pool_move_str(b, &f, st->group, true, &st->group)) < 0)
			goto out;
		if (needs_rare(b, i))
			nrare++;
		if (b->ents[i].nr_chunks > 1)
			noffs += b->ents[i].nr_chunks;
	}
	for (i = 0; i < b->nr_xattrs; i++) {
		const struct xattr_tmp *x = &b->xattrs[i];

		if ((r = pool_move_str(b, &f, x->name, false, &o)) < 0)
			goto out;
		toc->xattrs[i].name = (const char *)(uintptr_t)o;
		if ((r = pool_move(b, &f, x->value, x->len, false, &o)) < 0)
			goto out;
		toc->xattrs[i].value = (const uint8_t *)(uintptr_t)o;
		toc->xattrs[i].len = x->len;
	}
	pool = realloc(f.p, f.len);
	toc->pool = pool ? pool : f.p;
	f.p = NULL;
	/* offsets become pointers now that the pool stays put */
	for (i = 0; i < b->nr_xattrs; i++) {
		struct lp_toc_xattr *x = &toc->xattrs[i];

		x->name = toc->pool + (uintptr_t)x->name;
		x->value = (const uint8_t *)toc->pool + (uintptr_t)x->value;
	}
	toc->nr_xattrs = b->nr_xattrs;

	toc->rare = calloc(nrare + 1, sizeof(*toc->rare));
	toc->owners = calloc(b->nr_ents, sizeof(*toc->owners));
	toc->chunk_offs = malloc((noffs + 1) * sizeof(*toc->chunk_offs));
	if (!toc->rare || !toc->owners || !toc->chunk_offs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < b->nr_ents; i++) {
		const struct ent_strs *st = &b->strs[i];
		const struct bent *be = &b->ents[i];
		struct lp_toc_entry *e = &toc->entries[i];
		uint32_t k4[4] = { be->uid, be->gid, st->user, st->group };
		uint64_t key = lp_hash_bytes(k4, sizeof(k4)), v;
		struct toc_owner *ow;

		ow = lp_hashmap_get(&owners, key, &v) == 0 ? &toc->owners[v] :
							     NULL;
		if (ow && ow->uid == be->uid && ow->gid == be->gid &&
		    ow->user == toc->pool + st->user &&
		    ow->group == toc->pool + st->group) {
			e->owner_idx = (uint32_t)v;
		} else {
			e->owner_idx = toc->nr_owners++;
			ow = &toc->owners[e->owner_idx];
			ow->user = toc->pool + st->user;
			ow->group = toc->pool + st->group;
			ow->uid = be->uid;
			ow->gid = be->gid;
			r = lp_hashmap_put(&owners, key, e->owner_idx);
			if (r < 0)
				goto out;
		}
		e->rare_idx = LP_TOC_NO_INDEX;
		if (needs_rare(b, i)) {
			struct toc_rare *x = &toc->rare[toc->nr_rare];

			x->link_name = toc->pool + st->link;
			x->dev_major = be->dev_major;
			x->dev_minor = be->dev_minor;
			x->first_xattr = be->first_xattr;
			x->nr_xattrs = be->nr_xattrs;
			x->digest_idx = LP_TOC_NO_INDEX;
			x->first_off = LP_TOC_NO_INDEX;
			x->ino = be->ino;
			x->nlink = be->nlink;
			if (be->nr_chunks > 1) {
				x->first_off = toc->nr_chunk_offs;
				for (k = 0; k < be->nr_chunks; k++)
					toc->chunk_offs[toc->nr_chunk_offs++] =
						b->chunks[be->first_chunk + k]
							.chunk_offset;
			}
			e->rare_idx = toc->nr_rare++;
		}
	}
	if (toc->nr_owners < b->nr_ents) {
		struct toc_owner *ow =
			realloc(toc->owners, toc->nr_owners * sizeof(*ow));

		if (ow)
			toc->owners = ow;
	}

	for (i = 0; i < b->nr_ents; i++)
		ndig += (b->ents[i].flags & LP_TOC_HAS_DIGEST) != 0;
	for (i = 0; i < b->nr_chunks; i++)
		ndig += b->chunks[i].has_digest;
	toc->digests = malloc((ndig + 1) * sizeof(*toc->digests));
	if (!toc->digests) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < b->nr_ents; i++) {
		const struct bent *be = &b->ents[i];
		struct lp_toc_entry *e = &toc->entries[i];
		uint32_t last = LP_TOC_NO_INDEX;

		e->size = be->size;
		e->mtime_sec = be->mtime_sec;
		e->mtime_nsec = be->mtime_nsec;
		e->mode = (uint16_t)be->mode; /* & 07777 by parse_attrs() */
		e->parent = be->parent;
		if (be->type == LP_TOC_DIR) {
			e->first_child = be->first_child;
			e->nr_children = be->nr_children;
		} else if (be->type == LP_TOC_REG) {
			e->first_chunk = be->first_chunk;
			e->nr_chunks = be->nr_chunks;
		}
		e->type = (uint8_t)be->type;
		e->flags = (uint8_t)be->flags;
		if (be->flags & LP_TOC_HAS_DIGEST) {
			last = digest_add(toc, &be->digest, LP_TOC_NO_INDEX);
			/* else the first chunk's, the same digest */
			if (e->rare_idx != LP_TOC_NO_INDEX)
				toc->rare[e->rare_idx].digest_idx = last;
		}
		for (k = 0; k < be->nr_chunks; k++) {
			const struct bchunk *bc =
				&b->chunks[be->first_chunk + k];
			struct toc_chunk *c = &toc->chunks[be->first_chunk + k];

			c->offset = bc->offset;
			/* < 4 GiB by compressed_sizes() */
			c->compressed_size = (uint32_t)bc->compressed_size;
			/* bounded by check_chunks() and parse_chunk() */
			c->inner_offset = (uint32_t)bc->inner_offset;
			c->entry = bc->entry;
			c->digest_idx = LP_TOC_NO_INDEX;
			if (bc->has_digest)
				last = c->digest_idx =
					digest_add(toc, &bc->digest, last);
		}
	}
	if (toc->nr_digests < ndig) {
		struct lp_digest *d = realloc(
			toc->digests, (toc->nr_digests + 1) * sizeof(*d));

		if (d)
			toc->digests = d;
	}
	toc->nr_entries = b->nr_ents;
	toc->nr_chunks = b->nr_chunks;
	toc->prefetch_end = b->prefetch_end;
	/* what lp_toc_chunk() derives is what the TOC said */
	for (i = 0; i < b->nr_chunks; i++) {
		const struct bchunk *bc = &b->chunks[i];
		const struct lp_toc_entry *e;
		struct lp_toc_chunk c;

		e = bc->entry < b->nr_ents ? &toc->entries[bc->entry] : NULL;
		if (!e || e->type != LP_TOC_REG || i < e->first_chunk ||
		    i - e->first_chunk >= e->nr_chunks) {
			r = -EINVAL; /* not reached: the builder's invariant */
			goto out;
		}
		c = lp_toc_chunk(toc, i);
		if (c.chunk_offset != bc->chunk_offset ||
		    c.chunk_size != bc->chunk_size || c.entry != bc->entry) {
			r = -EINVAL; /* not reached: check_chunks() */
			goto out;
		}
	}
out:
	free(f.p);
	lp_hashmap_release(&f.moved);
	lp_hashmap_release(&owners);
	return r;
}

/* --- the JSON skeleton ----------------------------------------------- */

struct scan {
	const char *p;
	size_t len, pos;
};

static void skip_ws(struct scan *s)
{
	while (s->pos < s->len &&
	       (s->p[s->pos] == ' ' || s->p[s->pos] == '\t' ||
		s->p[s->pos] == '\n' || s->p[s->pos] == '\r'))
		s->pos++;
}

/* index just past the string starting at @i (a '"'), or 0 if unterminated */
static size_t skip_string(const struct scan *s, size_t i)
{
	for (i++; i < s->len; i++) {
		if (s->p[i] == '\\')
			i++;
		else if (s->p[i] == '"')
			return i + 1;
	}
	return 0;
}

/*
 * The end of the JSON value at s->pos, which sits inside @depth containers.
 * Only delimits (json-c validates the span); rejects nesting deeper than
 * LP_TOC_MAX_JSON_NESTING before anything parses it.
 */
static int scan_value(struct scan *s, unsigned int depth, size_t *ret_end,
		      struct lp_err *err)
{
	size_t i = s->pos, level = 0;
	int r = 0;

	if (i >= s->len)
		goto truncated;
	if (s->p[i] == '"') {
		i = skip_string(s, i);
		if (!i)
			goto truncated;
		*ret_end = i;
		goto out;
	}
	if (s->p[i] != '{' && s->p[i] != '[') {
		while (i < s->len && !strchr(",]} \t\r\n", s->p[i]))
			i++;
		*ret_end = i;
		goto out;
	}
	while (i < s->len) {
		char c = s->p[i];

		if (c == '"') {
			i = skip_string(s, i);
			if (!i)
				goto truncated;
			continue;
		}
		if (c == '{' || c == '[') {
			if (depth + ++level > LP_TOC_MAX_JSON_NESTING) {
				r = lp_err_set(err, -EINVAL,
					       "TOC JSON nested deeper than "
					       "%d at byte %zu",
					       LP_TOC_MAX_JSON_NESTING, i);
				goto out;
			}
		} else if (c == '}' || c == ']') {
			if (--level == 0) {
				*ret_end = i + 1;
				goto out;
			}
		}
		i++;
	}
truncated:
	r = lp_err_set(err, -EINVAL, "TOC JSON truncated at byte %zu", s->len);
out:
	return r;
}

/* parse the span [s->pos, end) with json-c; *ret_obj may be NULL (null) */
static int parse_span(struct json_tokener *tok, const struct scan *s,
		      size_t end, json_object **ret_obj, struct lp_err *err)
{
	json_object *o;
	enum json_tokener_error je;
	int r = 0;

	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, s->p + s->pos, (int)(end - s->pos));
	je = json_tokener_get_error(tok);
	if (!o && je == json_tokener_continue) {
		/* a bare number needs a delimiter to end */
		o = json_tokener_parse_ex(tok, " ", 1);
		je = json_tokener_get_error(tok);
	} else if (je == json_tokener_success &&
		   json_tokener_get_parse_end(tok) != end - s->pos) {
		json_object_put(o);
		o = NULL;
		je = json_tokener_error_parse_unexpected;
	}
	if (je != json_tokener_success) {
		json_object_put(o);
		r = lp_err_set(err, -EINVAL, "TOC JSON at byte %zu: %s", s->pos,
			       json_tokener_error_desc(je));
		goto out;
	}
	*ret_obj = o;
out:
	return r;
}

static int expect(struct scan *s, char c, struct lp_err *err)
{
	skip_ws(s);
	if (s->pos >= s->len || s->p[s->pos] != c)
		return lp_err_set(err, -EINVAL,
				  "TOC JSON: expected '%c' at byte %zu", c,
				  s->pos);
	s->pos++;
	return 0;
}

static int parse_entries(struct builder *b, struct scan *s,
			 struct json_tokener *tok)
{
	json_object *o = NULL;
	size_t end;
	int r;

	r = expect(s, '[', b->err);
	if (r < 0)
		goto out;
	skip_ws(s);
	if (s->pos < s->len && s->p[s->pos] == ']') {
		s->pos++;
		goto out;
	}
	for (;;) {
		skip_ws(s);
		r = scan_value(s, ENTRY_JSON_DEPTH, &end, b->err);
		if (r < 0)
			goto out;
		r = parse_span(tok, s, end, &o, b->err);
		if (r < 0)
			goto out;
		r = parse_entry(b, o);
		json_object_put(o);
		o = NULL;
		if (r < 0)
			goto out;
		b->json_idx++;
		s->pos = end;
		skip_ws(s);
		if (s->pos < s->len && s->p[s->pos] == ',') {
			s->pos++;
			continue;
		}
		r = expect(s, ']', b->err);
		goto out;
	}
out:
	return r;
}

static bool key_is(const struct scan *s, size_t end, const char *key)
{
	size_t n = strlen(key);

	return end - s->pos == n + 2 && memcmp(s->p + s->pos + 1, key, n) == 0;
}

static int parse_top(struct builder *b, const char *json, size_t len)
{
	struct scan s = { json, len, 0 };
	struct json_tokener *tok = NULL;
	json_object *o = NULL;
	bool seen_entries = false;
	size_t end;
	int r;

	tok = json_tokener_new_ex(LP_TOC_MAX_JSON_NESTING - ENTRY_JSON_DEPTH);
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	r = expect(&s, '{', b->err);
	if (r < 0)
		goto out;
	skip_ws(&s);
	if (s.pos < s.len && s.p[s.pos] == '}') {
		s.pos++;
		goto tail;
	}
	for (;;) {
		bool is_entries, is_version;

		skip_ws(&s);
		if (s.pos >= s.len || s.p[s.pos] != '"') {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC JSON: expected a key at byte %zu",
				       s.pos);
			goto out;
		}
		r = scan_value(&s, 1, &end, b->err);
		if (r < 0)
			goto out;
		is_entries = key_is(&s, end, "entries");
		is_version = key_is(&s, end, "version");
		s.pos = end;
		r = expect(&s, ':', b->err);
		if (r < 0)
			goto out;
		skip_ws(&s);
		if (is_entries) {
			if (seen_entries) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC JSON: two \"entries\"");
				goto out;
			}
			seen_entries = true;
			r = parse_entries(b, &s, tok);
			if (r < 0)
				goto out;
		} else {
			/* validated, then ignored unless it is "version" */
			r = scan_value(&s, 1, &end, b->err);
			if (r < 0)
				goto out;
			r = parse_span(tok, &s, end, &o, b->err);
			if (r < 0)
				goto out;
			if (is_version &&
			    (!json_object_is_type(o, json_type_int) ||
			     json_object_get_int64(o) != 1)) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC JSON: unsupported version "
					       "%.20s",
					       json_object_to_json_string(o));
				goto out;
			}
			json_object_put(o);
			o = NULL;
			s.pos = end;
		}
		skip_ws(&s);
		if (s.pos < s.len && s.p[s.pos] == ',') {
			s.pos++;
			continue;
		}
		r = expect(&s, '}', b->err);
		if (r < 0)
			goto out;
		break;
	}
tail:
	skip_ws(&s);
	if (s.pos != s.len)
		r = lp_err_set(b->err, -EINVAL,
			       "TOC JSON: trailing bytes at %zu", s.pos);
out:
	json_object_put(o);
	if (tok)
		json_tokener_free(tok);
	return r;
}

static void builder_release(struct builder *b)
{
	free(b->ents);
	free(b->strs);
	free(b->chunks);
	free(b->xattrs);
	free(b->pool);
	free(b->htab);
	lp_hashmap_release(&b->umap);
	lp_hashmap_release(&b->gmap);
}

int lp_toc_parse(const void *json, size_t len, uint64_t payload_end,
		 struct lp_toc **ret_toc, struct lp_err *err)
{
	struct builder *b = NULL;
	struct lp_toc *toc = NULL;
	uint32_t root;
	int r = -ENOMEM;

	if (len > LP_TOC_MAX_JSON) {
		r = lp_err_set(err, -EFBIG,
			       "TOC JSON of %zu bytes exceeds "
			       "LP_TOC_MAX_JSON",
			       len);
		goto out;
	}
	b = calloc(1, sizeof(*b));
	toc = calloc(1, sizeof(*toc));
	if (!b || !toc)
		goto out;
	b->err = err;
	b->payload_end = payload_end;
	b->last_ent = LP_TOC_NO_INDEX;
	/* offset 0 of the pool is "", the root's path and every empty name */
	r = pool_add(b, "", 0, &root);
	if (r < 0)
		goto out;
	b->path[0] = '\0';
	r = add_entry(b, 0, LP_TOC_DIR, &root);
	if (r < 0)
		goto out;
	b->ents[root].mode = 0755;
	b->ents[root].flags = LP_TOC_IMPLIED;

	r = parse_top(b, json, len);
	if (r < 0)
		goto out;
	if ((r = resolve_parents(b)) < 0 || (r = resolve_hardlinks(b)) < 0 ||
	    (r = check_chunks(b)) < 0 || (r = compressed_sizes(b)) < 0 ||
	    (r = finish(b, toc)) < 0)
		goto out;
	*ret_toc = toc;
	toc = NULL;
out:
	if (b)
		builder_release(b);
	free(b);
	lp_toc_free(toc);
	return r;
}

void lp_toc_free(struct lp_toc *toc)
{
	if (!toc)
		return;
	free(toc->entries);
	free(toc->chunks);
	free(toc->chunk_offs);
	free(toc->xattrs);
	free(toc->digests);
	free(toc->children);
	free(toc->rare);
	free(toc->owners);
	free(toc->pool);
	free(toc);
}

uint32_t lp_toc_nr_entries(const struct lp_toc *toc)
{
	return toc->nr_entries;
}

uint32_t lp_toc_nr_chunks(const struct lp_toc *toc)
{
	return toc->nr_chunks;
}

const struct lp_toc_entry *lp_toc_entry(const struct lp_toc *toc, uint32_t i)
{
	return i < toc->nr_entries ? &toc->entries[i] : NULL;
}

struct lp_toc_chunk lp_toc_chunk(const struct lp_toc *toc, uint32_t i)
{
	struct lp_toc_chunk c = { .entry = LP_TOC_NO_INDEX,
				  .digest_idx = LP_TOC_NO_INDEX };
	const struct toc_chunk *tc;
	const struct lp_toc_entry *e;
	uint64_t end;
	uint32_t k;

	if (i >= toc->nr_chunks)
		return c;
	tc = &toc->chunks[i];
	e = &toc->entries[tc->entry]; /* a regular file owning i (finish()) */
	c.offset = tc->offset;
	c.compressed_size = tc->compressed_size;
	c.inner_offset = tc->inner_offset;
	c.entry = tc->entry;
	c.digest_idx = tc->digest_idx;
	end = e->size;
	if (e->nr_chunks > 1) {
		const uint64_t *offs =
			&toc->chunk_offs[toc->rare[e->rare_idx].first_off];

		k = i - e->first_chunk;
		c.chunk_offset = offs[k];
		if (k + 1 < e->nr_chunks)
			end = offs[k + 1];
	}
	/* <= LP_CHUNK_MAX_SIZE: check_chunks() */
	c.chunk_size = (uint32_t)(end - c.chunk_offset);
	return c;
}

const struct lp_toc_xattr *lp_toc_xattr(const struct lp_toc *toc, uint32_t i)
{
	return i < toc->nr_xattrs ? &toc->xattrs[i] : NULL;
}

uint32_t lp_toc_child(const struct lp_toc *toc, uint32_t i)
{
	return i < toc->nr_children ? toc->children[i] : LP_TOC_NO_INDEX;
}

int lp_toc_entry_path(const struct lp_toc *toc, uint32_t i, char *buf,
		      size_t size)
{
	size_t len = 0, pos, n;
	uint32_t cur;
	int r;

	if (i >= toc->nr_entries) {
		r = -ENOENT;
		goto fail;
	}
	/* the length first, then the components right to left */
	for (cur = i; cur; cur = toc->entries[cur].parent)
		len += strlen(toc->pool + toc->entries[cur].name_off) +
		       (len ? 1 : 0);
	if (len >= size) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	buf[len] = '\0';
	pos = len;
	for (cur = i; cur; cur = toc->entries[cur].parent) {
		n = strlen(toc->pool + toc->entries[cur].name_off);
		if (pos != len)
			buf[--pos] = '/';
		pos -= n;
		memcpy(buf + pos, toc->pool + toc->entries[cur].name_off, n);
	}
	return (int)len;
fail:
	if (size)
		buf[0] = '\0';
	return r;
}

const struct lp_digest *lp_toc_entry_digest(const struct lp_toc *toc,
					    const struct lp_toc_entry *e)
{
	uint32_t d = LP_TOC_NO_INDEX;

	if (!(e->flags & LP_TOC_HAS_DIGEST))
		return NULL;
	if (e->rare_idx < toc->nr_rare)
		d = toc->rare[e->rare_idx].digest_idx;
	if (d == LP_TOC_NO_INDEX && e->type == LP_TOC_REG && e->nr_chunks &&
	    e->first_chunk < toc->nr_chunks)
		d = toc->chunks[e->first_chunk].digest_idx;
	return d < toc->nr_digests ? &toc->digests[d] : NULL;
}

uint32_t lp_toc_entry_ino(const struct lp_toc *toc,
			  const struct lp_toc_entry *e)
{
	if (e->type == LP_TOC_HARDLINK && e->rare_idx < toc->nr_rare)
		return toc->rare[e->rare_idx].ino; /* always: needs_rare() */
	return (uint32_t)(e - toc->entries);
}

uint32_t lp_toc_entry_nlink(const struct lp_toc *toc,
			    const struct lp_toc_entry *e)
{
	return e->rare_idx < toc->nr_rare ? toc->rare[e->rare_idx].nlink : 1;
}

const char *lp_toc_entry_name(const struct lp_toc *toc,
			      const struct lp_toc_entry *e)
{
	return toc->pool + e->name_off;
}

const struct lp_digest *lp_toc_chunk_digest(const struct lp_toc *toc,
					    const struct lp_toc_chunk *c)
{
	return c->digest_idx < toc->nr_digests ? &toc->digests[c->digest_idx] :
						 NULL;
}

const char *lp_toc_entry_link_name(const struct lp_toc *toc,
				   const struct lp_toc_entry *e)
{
	return e->rare_idx < toc->nr_rare ? toc->rare[e->rare_idx].link_name :
					    "";
}

uint32_t lp_toc_entry_uid(const struct lp_toc *toc,
			  const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].uid :
					       0;
}

uint32_t lp_toc_entry_gid(const struct lp_toc *toc,
			  const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].gid :
					       0;
}

const char *lp_toc_entry_user_name(const struct lp_toc *toc,
				   const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].user :
					       "";
}

const char *lp_toc_entry_group_name(const struct lp_toc *toc,
				    const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].group :
					       "";
}

void lp_toc_entry_dev(const struct lp_toc *toc, const struct lp_toc_entry *e,
		      uint32_t *ret_major, uint32_t *ret_minor)
{
	bool r = e->rare_idx < toc->nr_rare;

	*ret_major = r ? toc->rare[e->rare_idx].dev_major : 0;
	*ret_minor = r ? toc->rare[e->rare_idx].dev_minor : 0;
}

const struct lp_toc_xattr *lp_toc_entry_xattrs(const struct lp_toc *toc,
					       const struct lp_toc_entry *e,
					       uint32_t *ret_nr)
{
	const struct toc_rare *x;

	*ret_nr = 0;
	if (e->rare_idx >= toc->nr_rare)
		return NULL;
	x = &toc->rare[e->rare_idx];
	if (!x->nr_xattrs)
		return NULL;
	*ret_nr = x->nr_xattrs;
	return &toc->xattrs[x->first_xattr];
}

static int cmp_name(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b), n = alen < blen ? alen : blen;
	int c = memcmp(a, b, n);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

uint32_t lp_toc_lookup(const struct lp_toc *toc, uint32_t dir, const char *name,
		       size_t len)
{
	const struct lp_toc_entry *d;
	uint32_t lo, hi;

	if (dir >= toc->nr_entries)
		return LP_TOC_NO_INDEX;
	d = &toc->entries[dir];
	if (d->type != LP_TOC_DIR)
		return LP_TOC_NO_INDEX;
	lo = d->first_child;
	hi = d->first_child + d->nr_children;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint32_t e = toc->children[mid];
		int c = cmp_name(name, len,
				 toc->pool + toc->entries[e].name_off);

		if (c == 0)
			return e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return LP_TOC_NO_INDEX;
}

uint32_t lp_toc_lookup_path(const struct lp_toc *toc, const char *path)
{
	uint32_t cur = 0;
	const char *p = path;

	while (*p && cur != LP_TOC_NO_INDEX) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* "", "." */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			cur = LP_TOC_NO_INDEX;
		} else {
			cur = lp_toc_lookup(toc, cur, p, len);
		}
		p += len;
		if (*p == '/')
			p++;
	}
	return cur;
}

uint32_t lp_toc_find_chunk(const struct lp_toc *toc, uint32_t ino, uint64_t off)
{
	const struct lp_toc_entry *e;
	const uint64_t *offs;
	uint32_t lo, hi;

	if (ino >= toc->nr_entries)
		return LP_TOC_NO_INDEX;
	e = &toc->entries[ino];
	if (e->type != LP_TOC_REG || off >= e->size || !e->nr_chunks)
		return LP_TOC_NO_INDEX;
	if (e->nr_chunks == 1)
		return e->first_chunk;
	offs = &toc->chunk_offs[toc->rare[e->rare_idx].first_off];
	lo = 0;
	hi = e->nr_chunks;
	while (hi - lo > 1) { /* last chunk with chunk_offset <= off */
		uint32_t mid = lo + (hi - lo) / 2;

		if (offs[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return e->first_chunk + lo;
}

uint64_t lp_toc_prefetch_end(const struct lp_toc *toc)
{
	return toc->prefetch_end;
}
