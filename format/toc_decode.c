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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
		const char *slash = memchr(in + i, '/', len - i);
		size_t start = i, clen;

		i = slash ? (size_t)(slash - in) : len;
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

/* JSON field helpers: absent (or null) fields read as zero / "" */

static bool absent(const struct jval *v)
{
	return v->kind == J_NONE || v->kind == J_NULL;
}

static int get_u64(struct builder *b, const struct toc_fields *f,
		   enum toc_field k, uint64_t *ret)
{
	const struct jval *v = &f->v[k];
	const char *p, *end;
	bool neg = false;
	uint64_t x = 0;
	int r = 0;

	*ret = 0;
	if (absent(v))
		goto out;
	p = v->p;
	end = v->p + v->len;
	if (v->kind != J_INT) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" is not an integer",
				toc_field_key[k]);
		goto out;
	}
	if (*p == '-') {
		neg = true;
		p++;
	}
	if (end - p <= 18) { /* cannot overflow: no check per digit */
		for (; p < end; p++)
			x = x * 10 + (uint64_t)(*p - '0');
	}
	for (; p < end; p++) {
		/* as json-c read it: what does not fit an int64 is its
		   largest value, which every bound refuses */
		if (x > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10) {
			x = INT64_MAX;
			break;
		}
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (neg && x) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" is negative",
				toc_field_key[k]);
		goto out;
	}
	*ret = x;
out:
	return r;
}

static int get_u32(struct builder *b, const struct toc_fields *f,
		   enum toc_field k, uint32_t *ret)
{
	uint64_t v;
	int r = get_u64(b, f, k, &v);

	if (r == 0 && v > UINT32_MAX)
		r = toc_ent_err(b, -EINVAL, "\"%s\" out of range",
				toc_field_key[k]);
	*ret = (uint32_t)v;
	return r;
}

/*
 * string field @k: borrowed from the JSON (not NUL-terminated!) or, when it
 * holds escapes, decoded into the builder's buffer for @k
 */
static int get_str(struct builder *b, const struct toc_fields *f,
		   enum toc_field k, const char **ret, size_t *ret_len)
{
	const struct jval *v = &f->v[k];
	int r = 0;

	*ret = "";
	*ret_len = 0;
	if (absent(v))
		goto out;
	if (v->kind != J_STR) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" is not a string",
				toc_field_key[k]);
		goto out;
	}
	if (!v->esc) {
		*ret = v->p;
		*ret_len = v->len;
		goto out;
	}
	r = lp_grow_array((void **)&b->sbuf[k], &b->scap[k], v->len + 1, 1);
	if (r < 0)
		goto out;
	if (toc_json_unescape(v, b->sbuf[k], ret_len) < 0) {
		r = toc_ent_err(b, -EINVAL, "\"%s\" has a lone surrogate",
				toc_field_key[k]);
		goto out;
	}
	b->sbuf[k][*ret_len] = '\0';
	*ret = b->sbuf[k];
out:
	return r;
}

/* at most @max bytes of @len, for "%.*s" */
static int quote_len(size_t len, int max)
{
	return len > (size_t)max ? max : (int)len;
}

/*
 * lp_digest_parse_n() (the same strings accepted, the same digest), 32 hex
 * digits a step with SSE2: the digests are most of a TOC's bytes
 */
static int parse_digest(const char *s, size_t len, struct lp_digest *d)
{
#ifdef __SSE2__
	const __m128i zero = _mm_set1_epi8('0'), a = _mm_set1_epi8('a');
	const __m128i nine = _mm_set1_epi8(9), five = _mm_set1_epi8(5);
	const __m128i ten = _mm_set1_epi8(10), low = _mm_set1_epi16(0xff);
	__m128i half[2];
	unsigned int bad = 0;
	int k, j;

	if (len != LP_DIGEST_STR_LEN || memcmp(s, "sha256:", 7) != 0)
		return -EINVAL;
	s += 7;
	for (k = 0; k < 2; k++) {
		for (j = 0; j < 2; j++) {
			__m128i c = _mm_loadu_si128(
				(const __m128i *)(s + 32 * k + 16 * j));
			__m128i dg = _mm_sub_epi8(c, zero);
			__m128i lt = _mm_sub_epi8(c, a);
			/* unsigned c - '0' <= 9, c - 'a' <= 5 */
			__m128i isd =
				_mm_cmpeq_epi8(_mm_min_epu8(dg, nine), dg);
			__m128i isl =
				_mm_cmpeq_epi8(_mm_min_epu8(lt, five), lt);
			__m128i nib = _mm_or_si128(
				_mm_and_si128(isd, dg),
				_mm_andnot_si128(isd, _mm_add_epi8(lt, ten)));

			bad |= 0xffffu ^ (unsigned int)_mm_movemask_epi8(
						 _mm_or_si128(isd, isl));
			/* digit pairs: the first the high nibble */
			half[j] = _mm_or_si128(
				_mm_slli_epi16(_mm_and_si128(nib, low), 4),
				_mm_srli_epi16(nib, 8));
		}
		_mm_storeu_si128((__m128i *)(d->b + 16 * k),
				 _mm_packus_epi16(half[0], half[1]));
	}
	return bad ? -EINVAL : 0;
#else
	return lp_digest_parse_n(s, len, d);
#endif
}

static int get_digest(struct builder *b, const struct toc_fields *f,
		      enum toc_field k, struct lp_digest *d, bool *ret_has)
{
	const char *s;
	size_t len;
	int r = get_str(b, f, k, &s, &len);

	*ret_has = false;
	if (r < 0 || len == 0)
		goto out;
	if (parse_digest(s, len, d) < 0) {
		r = toc_ent_err(b, -EINVAL, "bad %s \"%.*s\"", toc_field_key[k],
				quote_len(len, 80), s);
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

/* an xattr name in the JSON is at most this long (escapes: 6 bytes each) */
#define XATTR_KEY_RAW_MAX (6 * LP_TOC_MAX_NAME)

struct xattr_walk {
	struct builder *b;
	struct bent *e;
	uint8_t *tmp; /* decoded value */
	size_t tmp_cap;
	bool said; /* the callback set the error */
};

static int add_xattr(void *ctx, const char *key, size_t klen,
		     const struct jval *val)
{
	struct xattr_walk *w = ctx;
	struct builder *b = w->b;
	const char *s = val->p;
	size_t slen = val->len, vlen;
	struct xattr_tmp *xt;
	int r = 0;

	w->said = true;
	if (w->e->nr_xattrs >= LP_TOC_MAX_XATTRS) {
		r = toc_ent_err(b, -EFBIG,
				"more than LP_TOC_MAX_XATTRS xattrs");
		goto out;
	}
	if (val->kind != J_STR) {
		r = toc_ent_err(b, -EINVAL, "xattr \"%.*s\" is not a string",
				quote_len(klen, 64), key);
		goto out;
	}
	if (klen == 0 || klen > LP_TOC_MAX_NAME || memchr(key, '\0', klen)) {
		r = toc_ent_err(b, -EINVAL, "bad xattr name length %zu", klen);
		goto out;
	}
	if (slen / 4 * 3 > LP_TOC_MAX_XATTR_VALUE + 2) {
		r = toc_ent_err(b, -EFBIG,
				"xattr \"%.*s\" exceeds "
				"LP_TOC_MAX_XATTR_VALUE",
				quote_len(klen, 64), key);
		goto out;
	}
	if (val->esc) {
		r = lp_grow_array((void **)&b->sbuf[F_XATTRS],
				  &b->scap[F_XATTRS], slen + 1, 1);
		if (r < 0)
			goto out;
		if (toc_json_unescape(val, b->sbuf[F_XATTRS], &slen) < 0) {
			r = toc_ent_err(b, -EINVAL,
					"xattr \"%.*s\": bad base64",
					quote_len(klen, 64), key);
			goto out;
		}
		s = b->sbuf[F_XATTRS];
	}
	r = lp_grow_array((void **)&w->tmp, &w->tmp_cap, slen / 4 * 3 + 1, 1);
	if (r < 0)
		goto out;
	if (lp_base64_decode(s, slen, LP_BASE64_STRICT, w->tmp,
			     slen / 4 * 3 + 1, &vlen) < 0) {
		r = toc_ent_err(b, -EINVAL, "xattr \"%.*s\": bad base64",
				quote_len(klen, 64), key);
		goto out;
	}
	if (vlen > LP_TOC_MAX_XATTR_VALUE) {
		r = toc_ent_err(b, -EFBIG,
				"xattr \"%.*s\" exceeds "
				"LP_TOC_MAX_XATTR_VALUE",
				quote_len(klen, 64), key);
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
	r = toc_pool_add(b, w->tmp, vlen, &xt->value);
	if (r < 0)
		goto out;
	xt->len = (uint32_t)vlen;
	b->nr_xattrs++;
	w->e->nr_xattrs++;
out:
	w->said = r < 0;
	return r;
}

static int cmp_xattr_name(const void *pa, const void *pb, void *ctx)
{
	const struct builder *b = ctx;
	const struct xattr_tmp *x = pa, *y = pb;

	return strcmp(b->pool + x->name, b->pool + y->name);
}

/* an xattr named twice (json-c kept the last; we refuse the entry) */
static int check_xattr_names(struct builder *b, const struct bent *e)
{
	struct xattr_tmp *sorted = NULL;
	uint32_t k;
	int r = 0;

	if (e->nr_xattrs < 2)
		goto out;
	sorted = malloc(e->nr_xattrs * sizeof(*sorted));
	if (!sorted) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(sorted, &b->xattrs[e->first_xattr],
	       e->nr_xattrs * sizeof(*sorted));
	qsort_r(sorted, e->nr_xattrs, sizeof(*sorted), cmp_xattr_name, b);
	for (k = 1; k < e->nr_xattrs; k++) {
		if (!strcmp(b->pool + sorted[k - 1].name,
			    b->pool + sorted[k].name)) {
			r = toc_ent_err(b, -EINVAL,
					"xattr \"%.64s\" given twice",
					b->pool + sorted[k].name);
			goto out;
		}
	}
out:
	free(sorted);
	return r;
}

static int parse_xattrs(struct builder *b, const struct toc_fields *f,
			struct bent *e)
{
	const struct jval *x = &f->v[F_XATTRS];
	struct xattr_walk w = { b, e, NULL, 0, false };
	char *key = NULL;
	int r = 0;

	if (absent(x))
		goto out;
	if (x->kind != J_OBJ) {
		r = toc_ent_err(b, -EINVAL, "\"xattrs\" is not an object");
		goto out;
	}
	key = malloc(XATTR_KEY_RAW_MAX);
	if (!key) {
		r = -ENOMEM;
		goto out;
	}
	e->first_xattr = b->nr_xattrs;
	r = toc_json_members(x, key, XATTR_KEY_RAW_MAX, add_xattr, &w);
	if (r < 0 && !w.said) /* a name too long or with a lone surrogate */
		r = toc_ent_err(b, r == -EFBIG ? -EINVAL : r, "bad xattr name");
	if (r == 0)
		r = check_xattr_names(b, e);
out:
	free(key);
	free(w.tmp);
	return r;
}

/* whether JSON strings @x and @y are the same bytes (no escapes) */
static bool same_str(const struct jval *x, const struct jval *y)
{
	return x->kind == J_STR && y->kind == J_STR && !x->esc && !y->esc &&
	       x->len == y->len && memcmp(x->p, y->p, x->len) == 0;
}

/* append @d to the digest array *@arr (*@nr of them); its index in *@ret */
static int dig_push(struct lp_digest **arr, size_t *cap, uint32_t *nr,
		    const struct lp_digest *d, uint32_t *ret)
{
	int r;

	r = lp_grow_array((void **)arr, cap, (size_t)*nr + 1, sizeof(**arr));
	if (r < 0)
		return r;
	(*arr)[*nr] = *d;
	*ret = (*nr)++;
	return 0;
}

/*
 * the chunk fields shared by "reg" (its first chunk) and "chunk" entries;
 * @fdig: the entry's "digest" as parsed, or NULL (a single-chunk file's
 * chunkDigest is mostly the same string: not parsed twice). Its
 * chunkDigest goes to b->digs only once the chunk is taken (chunk order).
 */
static int parse_chunk(struct builder *b, const struct toc_fields *f,
		       uint32_t ent, const struct lp_digest *fdig)
{
	struct lp_digest cd;
	bool has = false;
	struct bchunk *c;
	int r;

	if (b->nr_chunks >= TOC_MAX_ENTS(b)) {
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
	if ((r = get_u64(b, f, F_OFFSET, &c->offset)) < 0 ||
	    (r = get_u64(b, f, F_INNEROFFSET, &c->inner_offset)) < 0 ||
	    (r = get_u64(b, f, F_CHUNKOFFSET, &c->chunk_offset)) < 0 ||
	    (r = get_u64(b, f, F_CHUNKSIZE, &c->chunk_size)) < 0)
		goto out;
	c->dig = LP_TOC_NO_INDEX;
	if (fdig && same_str(&f->v[F_CHUNKDIGEST], &f->v[F_DIGEST])) {
		cd = *fdig;
		has = true;
	} else {
		r = get_digest(b, f, F_CHUNKDIGEST, &cd, &has);
		if (r < 0)
			goto out;
	}
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
	if (has) {
		r = dig_push(&b->digs, &b->cap_digs, &b->nr_digs, &cd, &c->dig);
		if (r < 0)
			goto out;
	}
	b->nr_chunks++;
	b->ents[ent].nr_chunks++;
out:
	return r;
}

static int type_from_name(const char *s, size_t len)
{
	int t;

	if (len == 3 && !memcmp(s, "reg", 3)) /* most entries */
		return LP_TOC_REG;
	for (t = LP_TOC_DIR; t <= LP_TOC_CHUNK; t++) {
		const char *n = lp_toc_type_name(t);

		if (strlen(n) == len && memcmp(s, n, len) == 0)
			return t;
	}
	return -1;
}

/* userName/groupName, carried forward per uid/gid as the reference does */
static int owner_name(struct builder *b, const struct toc_fields *f,
		      enum toc_field k, struct lp_hashmap *m, uint32_t id,
		      uint32_t *ret_off)
{
	const char *s;
	size_t len;
	uint64_t prev;
	bool had;
	int r = get_str(b, f, k, &s, &len);

	if (r < 0)
		goto out;
	if (len == 0) {
		/* no name: the last one given for this id, else "" (in a
		   split part: the first part's, toc_split_join()) */
		if (lp_hashmap_get(m, id, &prev) < 0)
			prev = b->frag ? TOC_OWNER_INHERIT : 0;
		*ret_off = (uint32_t)prev;
		goto out;
	}
	if (len > USER_NAME_MAX || memchr(s, '\0', len)) {
		r = toc_ent_err(b, -EINVAL, "bad \"%s\"", toc_field_key[k]);
		goto out;
	}
	had = lp_hashmap_get(m, id, &prev) == 0;
	if (had && prev && strncmp(b->pool + prev, s, len) == 0 &&
	    b->pool[prev + len] == 0) {
		*ret_off = (uint32_t)prev; /* the common case: no new string */
		goto out;
	}
	r = toc_pool_add(b, s, len, ret_off);
	if (r < 0)
		goto out;
	if (b->frag && !had) {
		/* the first part may have had this name for the id */
		r = lp_grow_array((void **)&b->owner_new, &b->cap_owner_new,
				  b->nr_owner_new + 1, sizeof(*b->owner_new));
		if (r < 0)
			goto out;
		b->owner_new[b->nr_owner_new][0] =
			(uint64_t)*ret_off << 1 | (m == &b->gmap);
		b->owner_new[b->nr_owner_new][1] = id;
		b->nr_owner_new++;
	}
	r = lp_hashmap_put(m, id, *ret_off);
out:
	return r;
}

static int parse_attrs(struct builder *b, const struct toc_fields *f,
		       uint32_t i)
{
	struct bent *e = &b->ents[i];
	const char *s;
	size_t len;
	uint64_t mode;
	int r;

	if ((r = get_u64(b, f, F_MODE, &mode)) < 0 ||
	    (r = get_u32(b, f, F_UID, &e->uid)) < 0 ||
	    (r = get_u32(b, f, F_GID, &e->gid)) < 0 ||
	    (r = get_u32(b, f, F_DEVMAJOR, &e->dev_major)) < 0 ||
	    (r = get_u32(b, f, F_DEVMINOR, &e->dev_minor)) < 0)
		goto out;
	e->mode = (uint32_t)(mode & 07777);
	r = get_str(b, f, F_MODTIME, &s, &len);
	if (r < 0)
		goto out;
	if (len) {
		if (!parse_rfc3339(s, len, &e->mtime_sec, &e->mtime_nsec)) {
			r = toc_ent_err(b, -EINVAL, "bad modtime \"%.*s\"",
					quote_len(len, 40), s);
			goto out;
		}
		e->flags |= LP_TOC_HAS_MODTIME;
	}
	r = owner_name(b, f, F_USERNAME, &b->umap, e->uid, &b->strs[i].user);
	if (r < 0)
		goto out;
	r = owner_name(b, f, F_GROUPNAME, &b->gmap, e->gid, &b->strs[i].group);
	if (r < 0)
		goto out;
	r = parse_xattrs(b, f, e);
out:
	return r;
}

/*
 * the parent of the entry at b->path (@plen bytes) when it is already
 * known, else LP_TOC_NO_INDEX (toc_resolve_parents() finds or implies it
 * after the last entry). A converter writes a directory's entries after
 * it, so the last entry's parent, or the last entry, is the usual answer.
 */
static uint32_t known_parent(struct builder *b, size_t plen)
{
	const char *slash = memrchr(b->path, '/', plen);
	size_t len;
	uint32_t cand[2] = { b->last_dir, b->nr_ents - 1 }, p;
	int k;

	if (!slash)
		return b->frag ? TOC_FRAG_ROOT : 0;
	len = (size_t)(slash - b->path);
	for (k = 0; k < 2; k++) {
		p = cand[k];
		if (p < b->nr_ents && b->ents[p].type == LP_TOC_DIR &&
		    toc_path_is(b, p, b->path, len))
			return p;
	}
	p = toc_hash_lookup(b, b->path, len, toc_path_hash(b, b->path, len));
	return p;
}

int toc_parse_entry(struct builder *b, const struct toc_fields *f)
{
	const char *name, *type_s, *link;
	size_t name_len, type_len, link_len, plen;
	struct lp_digest fd;
	struct bent *e;
	uint32_t i, parent = LP_TOC_NO_INDEX;
	bool has;
	int type, r;

	b->cur_name = NULL;
	b->cur_len = 0;
	if ((r = get_str(b, f, F_NAME, &name, &name_len)) < 0)
		goto out;
	b->cur_name = name;
	b->cur_len = name_len;
	if ((r = get_str(b, f, F_TYPE, &type_s, &type_len)) < 0)
		goto out;
	type = type_from_name(type_s, type_len);
	if (type < 0) {
		r = toc_ent_err(b, -EINVAL, "unknown type \"%.*s\"",
				quote_len(type_len, 32), type_s);
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
		r = parse_chunk(b, f, b->last_ent, NULL);
		goto out;
	}

	if (plen == 0 && b->frag) {
		/* the root is the first part's: parse this one serially */
		r = toc_ent_err(b, -EINVAL, "root entry in a split part");
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
		uint32_t h = toc_path_hash(b, b->path, plen);

		/* the path hash's slot is a cache miss in a big TOC: ask
		   for it now, probe it when the entry is decoded */
		if (b->hcap)
			__builtin_prefetch(&b->htab[h & (b->hcap - 1)]);
		parent = known_parent(b, plen);
		r = toc_add_entry(b, plen, (enum lp_toc_type)type, h, &i);
		if (r < 0)
			goto out;
		b->ents[i].parent = parent;
		if (parent != LP_TOC_NO_INDEX)
			b->last_dir = parent;
	}
	b->last_ent = i;
	r = parse_attrs(b, f, i);
	if (r < 0)
		goto out;
	e = &b->ents[i];

	if ((r = get_str(b, f, F_LINKNAME, &link, &link_len)) < 0)
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
		r = get_u64(b, f, F_SIZE, &e->size);
		if (r < 0)
			goto out;
		if (e->size > LP_FILE_MAX_SIZE) {
			r = toc_ent_err(b, -EFBIG,
					"size %llu exceeds "
					"LP_FILE_MAX_SIZE",
					(unsigned long long)e->size);
			goto out;
		}
		r = get_digest(b, f, F_DIGEST, &fd, &has);
		if (r < 0)
			goto out;
		if (has)
			e->flags |= LP_TOC_HAS_DIGEST;
		if (e->size) {
			r = parse_chunk(b, f, i, has ? &fd : NULL);
			if (r < 0)
				goto out;
			e = &b->ents[i];
			e->offset = b->chunks[e->first_chunk].offset;
		}
		/* mostly the first chunk's: kept once, in b->digs */
		if (has) {
			const struct bchunk *c =
				e->size ? &b->chunks[e->first_chunk] : NULL;

			e->fdig = TOC_FDIG_CHUNK;
			if (!c && lp_digest_equal(&fd, &toc_empty_digest))
				e->fdig = TOC_FDIG_EMPTY;
			else if (!c || c->dig == LP_TOC_NO_INDEX ||
				 !lp_digest_equal(&b->digs[c->dig], &fd)) {
				r = dig_push(&b->fdigs, &b->cap_fdigs,
					     &b->nr_fdigs, &fd, &e->fdig);
				if (r < 0)
					goto out;
			}
		}
		if (plen == strlen(LP_PREFETCH_LANDMARK) &&
		    memcmp(b->path, LP_PREFETCH_LANDMARK, plen) == 0) {
			b->prefetch_end = e->offset;
			b->landmark = true;
		}
	}
	if (plen == 0)
		goto out;
	if (toc_hash_lookup(b, b->path, plen, b->hashes[i]) !=
	    LP_TOC_NO_INDEX) {
		r = toc_ent_err(b, -EINVAL, "duplicate name");
		goto out;
	}
	r = toc_hash_insert(b, i);
out:
	return r;
}
