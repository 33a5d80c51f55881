// SPDX-License-Identifier: Apache-2.0
/*
 * Tar header encoding, byte-compatible with Go's archive/tar Writer (Go 1.19)
 * as the reference converter drives it: it reads each input header with
 * tar.Reader and writes it again with tar.Writer.WriteHeader(), so the
 * uncompressed eStargz stream (and its DiffID) is Go's re-encoding of the
 * input, not the input's bytes. This file reproduces that re-encoding: the
 * choice between USTAR, PAX and GNU (Header.allowedFormats), the PAX records
 * kept (sorted, "PaxHeaders.0/" names), GNU long names and base-256
 * numbers, and Go's quirks (toASCII in PAX headers, trailing-slash
 * truncation in name fields).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_int.h"

#define LP_TAR_BLOCK 512
#define LP_TAR_NAME 100
#define LP_TAR_PREFIX 155
#define LP_TAR_USER 32
#define LP_PAX_MAX_KEYS (LP_CV_MAX_XATTRS + 16)
#define LP_SCHILY_XATTR "SCHILY.xattr."

/* field offsets and sizes of a header block */
enum {
	F_NAME = 0,
	F_MODE = 100,
	F_UID = 108,
	F_GID = 116,
	F_SIZE = 124,
	F_MTIME = 136,
	F_CHKSUM = 148,
	F_TYPE = 156,
	F_LINK = 157,
	F_MAGIC = 257,
	F_VERSION = 263,
	F_UNAME = 265,
	F_GNAME = 297,
	F_DEVMAJ = 329,
	F_DEVMIN = 337,
	F_PREFIX = 345,
	F_ATIME = 345,
	F_CTIME = 357,
};

struct lp_pax_rec {
	char *key; /* owned */
	const uint8_t *val;
	size_t len;
	char *val_owned; /* when val was formatted here */
};

struct lp_pax {
	struct lp_pax_rec *recs;
	size_t n, cap;
};

static void lp_pax_free(struct lp_pax *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->recs[i].key);
		free(p->recs[i].val_owned);
	}
	free(p->recs);
	p->recs = NULL;
	p->n = p->cap = 0;
}

/* Set @key (a map: replaces an existing value). Takes ownership of @owned. */
static int lp_pax_set(struct lp_pax *p, const char *prefix, const char *key,
		      const void *val, size_t len, char *owned)
{
	struct lp_pax_rec *rec = NULL;
	size_t i, klen = strlen(prefix) + strlen(key) + 1;
	char *k = NULL;
	int r = 0;

	k = malloc(klen);
	if (!k) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(k, klen, "%s%s", prefix, key);
	for (i = 0; i < p->n; i++)
		if (!strcmp(p->recs[i].key, k))
			rec = &p->recs[i];
	if (rec) {
		free(k);
		k = NULL;
		free(rec->val_owned);
	} else {
		if (p->n >= LP_PAX_MAX_KEYS) {
			r = -EFBIG;
			goto out;
		}
		r = lp_grow_array((void **)&p->recs, &p->cap, p->n + 1,
				  sizeof(*p->recs));
		if (r < 0)
			goto out;
		rec = &p->recs[p->n++];
		rec->key = k;
		k = NULL;
	}
	rec->val = val;
	rec->len = len;
	rec->val_owned = owned;
	owned = NULL;
out:
	free(k);
	free(owned);
	return r;
}

static int lp_pax_set_str(struct lp_pax *p, const char *key, const char *s)
{
	return lp_pax_set(p, "", key, s, strlen(s), NULL);
}

/* a decimal integer, or a PAX time (Go's formatPAXTime) when @is_time */
static int lp_pax_set_num(struct lp_pax *p, const char *key, bool is_time,
			  int64_t a, uint32_t ns)
{
	char *s = NULL;
	int n;

	if (!is_time || ns == 0) {
		n = asprintf(&s, "%" PRId64, a);
	} else {
		/* Go's formatPAXTime: sign, then trailing zeros trimmed */
		int64_t sec = a;
		uint32_t nsec = ns;
		const char *sign = "";

		if (sec < 0) {
			sign = "-";
			sec = -(sec + 1);
			nsec = 1000000000u - nsec;
		}
		n = asprintf(&s, "%s%" PRId64 ".%09u", sign, sec, nsec);
		if (n > 0)
			while (s[n - 1] == '0')
				s[--n] = 0;
	}
	if (n < 0)
		return -ENOMEM;
	return lp_pax_set(p, "", key, s, strlen(s), s);
}

static int lp_pax_cmp(const void *a, const void *b)
{
	const struct lp_pax_rec *x = a, *y = b;

	return strcmp(x->key, y->key);
}

bool lp_cv_is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/*
 * Go's toASCII: keep the runes below 0x80. A byte < 0x80 is always a rune of
 * its own in Go's UTF-8 decoding, so this drops exactly the bytes >= 0x80.
 */
static char *lp_to_ascii(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++)
		if ((unsigned char)*s < 0x80)
			*o++ = *s;
	*o = 0;
	return out;
}

static bool lp_fits_octal(size_t n, int64_t x)
{
	return x >= 0 && (n >= 22 || x < (int64_t)1 << ((n - 1) * 3));
}

static bool lp_fits_base256(size_t n, int64_t x)
{
	unsigned bits = (unsigned)(n - 1) * 8;

	return n >= 9 || (x >= -((int64_t)1 << bits) && x < (int64_t)1 << bits);
}

/* Go's formatter.formatString */
static void lp_fmt_string(uint8_t *b, size_t n, const char *s)
{
	size_t len = strlen(s);

	memcpy(b, s, len < n ? len : n);
	if (len < n)
		b[len] = 0;
	if (len > n && b[n - 1] == '/') {
		size_t k = n;

		while (k > 0 && s[k - 1] == '/')
			k--;
		b[k] = 0;
	}
}

static void lp_fmt_octal(uint8_t *b, size_t n, int64_t x)
{
	char s[32];
	int len;

	if (!lp_fits_octal(n, x))
		x = 0;
	len = snprintf(s, sizeof(s), "%0*" PRIo64, (int)n - 1, (uint64_t)x);
	(void)len;
	lp_fmt_string(b, n, s);
}

static void lp_fmt_numeric(uint8_t *b, size_t n, int64_t x)
{
	size_t i;

	if (lp_fits_octal(n, x)) {
		lp_fmt_octal(b, n, x);
		return;
	}
	if (lp_fits_base256(n, x)) {
		for (i = n; i-- > 0;) {
			b[i] = (uint8_t)x;
			x >>= 8;
		}
		b[0] |= 0x80;
		return;
	}
	lp_fmt_octal(b, n, 0);
}

static void lp_set_format(uint8_t *blk, int format)
{
	unsigned chksum = 0;
	size_t i;

	if (format & LP_CV_FMT_GNU) {
		memcpy(blk + F_MAGIC, "ustar ", 6);
		memcpy(blk + F_VERSION, " \0", 2);
	} else {
		memcpy(blk + F_MAGIC, "ustar\0", 6);
		memcpy(blk + F_VERSION, "00", 2);
	}
	for (i = 0; i < LP_TAR_BLOCK; i++)
		chksum += (i >= F_CHKSUM && i < F_CHKSUM + 8) ? ' ' : blk[i];
	lp_fmt_octal(blk + F_CHKSUM, 7, chksum);
	blk[F_CHKSUM + 7] = ' ';
}

static int lp_pad(struct lp_buf *out, size_t len)
{
	static const uint8_t zero[LP_TAR_BLOCK];
	size_t pad = (LP_TAR_BLOCK - len % LP_TAR_BLOCK) % LP_TAR_BLOCK;

	return lp_buf_append(out, zero, pad);
}

/* Go's Writer.writeRawFile: a special file (PAX header, GNU long name). */
static int lp_raw_file(struct lp_buf *out, const char *name, const void *data,
		       size_t len, char flag, int format)
{
	uint8_t blk[LP_TAR_BLOCK] = { 0 };
	char *a = lp_to_ascii(name);
	size_t n;
	int r;

	if (!a)
		return -ENOMEM;
	n = strlen(a);
	if (n > LP_TAR_NAME)
		n = LP_TAR_NAME;
	while (n > 0 && a[n - 1] == '/')
		n--;
	a[n] = 0;
	blk[F_TYPE] = (uint8_t)flag;
	lp_fmt_string(blk + F_NAME, LP_TAR_NAME, a);
	lp_fmt_octal(blk + F_MODE, 8, 0);
	lp_fmt_octal(blk + F_UID, 8, 0);
	lp_fmt_octal(blk + F_GID, 8, 0);
	lp_fmt_octal(blk + F_SIZE, 12, (int64_t)len);
	lp_fmt_octal(blk + F_MTIME, 12, 0);
	lp_set_format(blk, format);
	free(a);
	r = lp_buf_append(out, blk, sizeof(blk));
	if (r == 0)
		r = lp_buf_append(out, data, len);
	if (r == 0)
		r = lp_pad(out, len);
	return r;
}

/* Go's splitUSTARPath */
static bool lp_split_ustar(const char *name, size_t *ret_i)
{
	size_t len = strlen(name), l = len, i, nlen;
	const char *slash;

	if (len <= LP_TAR_NAME || !lp_cv_is_ascii(name))
		return false;
	if (l > LP_TAR_PREFIX + 1)
		l = LP_TAR_PREFIX + 1;
	else if (name[l - 1] == '/')
		l--;
	slash = memrchr(name, '/', l);
	if (!slash)
		return false;
	i = (size_t)(slash - name);
	nlen = len - i - 1;
	if (i == 0 || nlen > LP_TAR_NAME || nlen == 0 || i > LP_TAR_PREFIX)
		return false;
	*ret_i = i;
	return true;
}

/* Go's path.Clean, in place (the result is never longer). */
static void lp_go_path_clean(char *p)
{
	bool rooted = p[0] == '/';
	size_t n = strlen(p), r = 0, w = 0, dotdot = 0;

	if (n == 0) {
		memcpy(p, ".", 2); /* the caller's buffer holds >= 2 bytes */
		return;
	}
	if (rooted) {
		w = r = dotdot = 1;
	}
	while (r < n) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && p[r + 1] == '.' &&
			   (r + 2 == n || p[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && p[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					p[w++] = '/';
				p[w++] = '.';
				p[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				p[w++] = '/';
			for (; r < n && p[r] != '/'; r++)
				p[w++] = p[r];
		}
	}
	if (w == 0)
		p[w++] = '.';
	p[w] = 0;
}

/* path.Join(dir, "PaxHeaders.0", file) with dir, file = path.Split(name) */
static char *lp_pax_header_name(const char *name)
{
	const char *slash = strrchr(name, '/');
	size_t dlen = slash ? (size_t)(slash - name) + 1 : 0;
	const char *file = name + dlen;
	size_t cap = strlen(name) + 32;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	snprintf(s, cap, "%.*s%sPaxHeaders.0%s%s", (int)dlen, name,
		 dlen ? "/" : "", *file ? "/" : "", file);
	lp_go_path_clean(s);
	return s;
}

/* Go's templateV7Plus */
static void lp_template(uint8_t *blk, const struct lp_cv_entry *e,
			const char *name, const char *link, const char *uname,
			const char *gname, int64_t mtime, bool numeric)
{
	void (*num)(uint8_t *, size_t, int64_t) =
		numeric ? lp_fmt_numeric : lp_fmt_octal;

	memset(blk, 0, LP_TAR_BLOCK);
	blk[F_TYPE] = (uint8_t)e->typeflag;
	lp_fmt_string(blk + F_NAME, LP_TAR_NAME, name);
	lp_fmt_string(blk + F_LINK, LP_TAR_NAME, link);
	num(blk + F_MODE, 8, e->mode);
	num(blk + F_UID, 8, e->uid);
	num(blk + F_GID, 8, e->gid);
	num(blk + F_SIZE, 12, e->size);
	num(blk + F_MTIME, 12, mtime);
	lp_fmt_string(blk + F_UNAME, LP_TAR_USER, uname);
	lp_fmt_string(blk + F_GNAME, LP_TAR_USER, gname);
	num(blk + F_DEVMAJ, 8, e->dev_major);
	num(blk + F_DEVMIN, 8, e->dev_minor);
}

struct lp_allowed {
	int formats;
	bool prefer_pax;
	bool bad; /* Go rejects the header outright */
	struct lp_pax pax;
};

static int lp_verify_string(struct lp_allowed *a, const char *s, size_t size,
			    const char *key)
{
	bool too_long = strlen(s) > size;
	bool long_gnu = !strcmp(key, "path") || !strcmp(key, "linkpath");
	size_t i;

	if (too_long && !long_gnu)
		a->formats &= ~LP_CV_FMT_GNU;
	if (!lp_cv_is_ascii(s) || too_long) {
		if (strcmp(key, "path") || !lp_split_ustar(s, &i))
			a->formats &= ~LP_CV_FMT_USTAR;
		return lp_pax_set_str(&a->pax, key, s);
	}
	return 0;
}

static int lp_verify_numeric(struct lp_allowed *a, int64_t n, size_t size,
			     const char *key)
{
	if (!lp_fits_base256(size, n))
		a->formats &= ~LP_CV_FMT_GNU;
	if (!lp_fits_octal(size, n)) {
		a->formats &= ~LP_CV_FMT_USTAR;
		if (!key)
			a->formats &= ~LP_CV_FMT_PAX;
		else
			return lp_pax_set_num(&a->pax, key, false, n, 0);
	}
	return 0;
}

static int lp_verify_time(struct lp_allowed *a, bool set, int64_t sec,
			  uint32_t nsec, const char *key)
{
	bool is_mtime = !strcmp(key, "mtime"), fits;

	if (!set)
		return 0;
	if (!lp_fits_base256(12, sec))
		a->formats &= ~LP_CV_FMT_GNU;
	fits = lp_fits_octal(12, sec);
	if (!is_mtime || !fits)
		a->formats &= ~LP_CV_FMT_USTAR;
	if (!is_mtime || !fits || nsec) {
		a->prefer_pax = true;
		return lp_pax_set_num(&a->pax, key, true, sec, nsec);
	}
	return 0;
}

static int lp_allowed_formats(const struct lp_cv_entry *e, int want, bool times,
			      int64_t mtime, uint32_t mtime_ns,
			      struct lp_allowed *a)
{
	uint32_t i;
	int r;

	a->formats = LP_CV_FMT_USTAR | LP_CV_FMT_PAX | LP_CV_FMT_GNU;
	r = lp_verify_string(a, e->name, LP_TAR_NAME, "path");
	if (r == 0)
		r = lp_verify_string(a, e->link_name, LP_TAR_NAME, "linkpath");
	if (r == 0)
		r = lp_verify_string(a, e->uname, LP_TAR_USER, "uname");
	if (r == 0)
		r = lp_verify_string(a, e->gname, LP_TAR_USER, "gname");
	if (r == 0)
		r = lp_verify_numeric(a, e->mode, 8, NULL);
	if (r == 0)
		r = lp_verify_numeric(a, e->uid, 8, "uid");
	if (r == 0)
		r = lp_verify_numeric(a, e->gid, 8, "gid");
	if (r == 0)
		r = lp_verify_numeric(a, e->size, 12, "size");
	if (r == 0)
		r = lp_verify_numeric(a, e->dev_major, 8, NULL);
	if (r == 0)
		r = lp_verify_numeric(a, e->dev_minor, 8, NULL);
	if (r == 0)
		r = lp_verify_time(a, true, mtime, mtime_ns, "mtime");
	if (r == 0)
		r = lp_verify_time(a, times && e->has_atime, e->atime,
				   e->atime_ns, "atime");
	if (r == 0)
		r = lp_verify_time(a, times && e->has_ctime, e->ctime,
				   e->ctime_ns, "ctime");
	if (r < 0)
		return r;
	switch (e->typeflag) {
	case '0':
	case '3':
	case '4':
	case '6':
		if (e->name[0] && e->name[strlen(e->name) - 1] == '/')
			a->bad = true;
		break;
	}
	if (e->nr_xattrs)
		a->formats &= LP_CV_FMT_PAX;
	for (i = 0; i < e->nr_xattrs; i++) {
		if (strchr(e->xattrs[i].name, '='))
			a->bad = true;
		r = lp_pax_set(&a->pax, LP_SCHILY_XATTR, e->xattrs[i].name,
			       e->xattrs[i].value, e->xattrs[i].len, NULL);
		if (r < 0)
			return r;
	}
	if (want != LP_CV_FMT_UNKNOWN) {
		if ((want & LP_CV_FMT_PAX) && !a->prefer_pax)
			want |= LP_CV_FMT_USTAR;
		a->formats &= want;
	}
	return 0;
}

static int lp_write_ustar(const struct lp_cv_entry *e, int64_t mtime,
			  struct lp_buf *out)
{
	uint8_t blk[LP_TAR_BLOCK];
	char *name = NULL, *prefix = NULL;
	size_t i;
	int r = -ENOMEM;

	if (lp_split_ustar(e->name, &i)) {
		prefix = strndup(e->name, i);
		name = strdup(e->name + i + 1);
	} else {
		prefix = strdup("");
		name = strdup(e->name);
	}
	if (!name || !prefix)
		goto out;
	lp_template(blk, e, name, e->link_name, e->uname, e->gname, mtime,
		    false);
	lp_fmt_string(blk + F_PREFIX, LP_TAR_PREFIX, prefix);
	lp_set_format(blk, LP_CV_FMT_USTAR);
	r = lp_buf_append(out, blk, sizeof(blk));
out:
	free(name);
	free(prefix);
	return r;
}

static int lp_write_pax(const struct lp_cv_entry *e, int64_t mtime,
			struct lp_pax *pax, struct lp_buf *out,
			struct lp_err *err)
{
	uint8_t blk[LP_TAR_BLOCK];
	struct lp_buf data;
	char *hname = NULL, *name = NULL, *link = NULL, *un = NULL, *gn = NULL;
	size_t i;
	int r = 0;

	lp_buf_init(&data, LP_CV_MAX_PAX_DATA);
	if (pax->n) {
		qsort(pax->recs, pax->n, sizeof(*pax->recs), lp_pax_cmp);
		for (i = 0; r == 0 && i < pax->n; i++) {
			const struct lp_pax_rec *p = &pax->recs[i];
			size_t size = strlen(p->key) + p->len + 3, digits;
			char num[24];

			digits =
				(size_t)snprintf(num, sizeof(num), "%zu", size);
			size += digits;
			if ((size_t)snprintf(num, sizeof(num), "%zu", size) !=
			    digits)
				size++;
			r = lp_buf_printf(&data, "%zu %s=", size, p->key);
			if (r == 0)
				r = lp_buf_append(&data, p->val, p->len);
			if (r == 0)
				r = lp_buf_append(&data, "\n", 1);
		}
		if (r == -EFBIG) {
			r = lp_err_set(err, -EFBIG,
				       "%s: PAX header over %llu bytes",
				       e->name,
				       (unsigned long long)LP_CV_MAX_PAX_DATA);
			goto out;
		}
		if (r < 0)
			goto out;
		hname = lp_pax_header_name(e->name);
		if (!hname) {
			r = -ENOMEM;
			goto out;
		}
		r = lp_raw_file(out, hname, data.data, data.len, 'x',
				LP_CV_FMT_PAX);
		if (r < 0)
			goto out;
	}
	name = lp_to_ascii(e->name);
	link = lp_to_ascii(e->link_name);
	un = lp_to_ascii(e->uname);
	gn = lp_to_ascii(e->gname);
	if (!name || !link || !un || !gn) {
		r = -ENOMEM;
		goto out;
	}
	lp_template(blk, e, name, link, un, gn, mtime, false);
	lp_set_format(blk, LP_CV_FMT_PAX);
	r = lp_buf_append(out, blk, sizeof(blk));
out:
	lp_buf_release(&data);
	free(hname);
	free(name);
	free(link);
	free(un);
	free(gn);
	return r;
}

static int lp_write_gnu(const struct lp_cv_entry *e, int64_t mtime, bool times,
			struct lp_buf *out)
{
	static const char longlink[] = "././@LongLink";
	uint8_t blk[LP_TAR_BLOCK];
	int r = 0;

	if (strlen(e->name) > LP_TAR_NAME)
		r = lp_raw_file(out, longlink, e->name, strlen(e->name) + 1,
				'L', LP_CV_FMT_GNU);
	if (r == 0 && strlen(e->link_name) > LP_TAR_NAME)
		r = lp_raw_file(out, longlink, e->link_name,
				strlen(e->link_name) + 1, 'K', LP_CV_FMT_GNU);
	if (r < 0)
		return r;
	lp_template(blk, e, e->name, e->link_name, e->uname, e->gname, mtime,
		    true);
	if (times && e->has_atime)
		lp_fmt_numeric(blk + F_ATIME, 12, e->atime);
	if (times && e->has_ctime)
		lp_fmt_numeric(blk + F_CTIME, 12, e->ctime);
	lp_set_format(blk, LP_CV_FMT_GNU);
	return lp_buf_append(out, blk, sizeof(blk));
}

int lp_cv_tar_header(const struct lp_cv_entry *e, struct lp_buf *out,
		     struct lp_err *err)
{
	struct lp_allowed a = { 0 };
	int want = e->format, r;
	bool times = true;
	int64_t mtime = e->mtime;
	uint32_t mtime_ns = e->mtime_ns;

again:
	if (want == LP_CV_FMT_UNKNOWN) {
		/* Go rounds ModTime and drops atime/ctime */
		if (mtime_ns >= 500000000u)
			mtime++;
		mtime_ns = 0;
		times = false;
	}
	r = lp_allowed_formats(e, want, times, mtime, mtime_ns, &a);
	if (r < 0)
		goto out;
	if (a.bad) {
		r = lp_err_set(err, -EINVAL,
			       "%s: header cannot be written as a tar header "
			       "(a name ending in '/' on a non-directory, or "
			       "'=' in an xattr name)",
			       e->name);
		goto out;
	}
	if (!a.formats && want != LP_CV_FMT_UNKNOWN) {
		/* Go would fail here; we re-encode in the best format */
		lp_pax_free(&a.pax);
		memset(&a, 0, sizeof(a));
		want = LP_CV_FMT_UNKNOWN;
		goto again;
	}
	if (a.formats & LP_CV_FMT_USTAR)
		r = lp_write_ustar(e, mtime, out);
	else if (a.formats & LP_CV_FMT_PAX)
		r = lp_write_pax(e, mtime, &a.pax, out, err);
	else if (a.formats & LP_CV_FMT_GNU)
		r = lp_write_gnu(e, mtime, times, out);
	else
		r = lp_err_set(err, -EINVAL, "%s: no tar format can encode it",
			       e->name);
out:
	lp_pax_free(&a.pax);
	return r;
}

int lp_cv_tar_simple_header(const char *name, uint64_t size, struct lp_buf *out)
{
	struct lp_cv_entry e = { 0 };

	e.name = (char *)name;
	e.link_name = e.uname = e.gname = (char *)"";
	e.typeflag = '0';
	e.size = (int64_t)size;
	return lp_cv_tar_header(&e, out, NULL);
}

char *lp_cv_clean_name(const char *name)
{
	size_t n = strlen(name) + 2;
	char *s = malloc(n), *t;

	if (!s)
		return NULL;
	snprintf(s, n, "/%s", name);
	lp_go_path_clean(s);
	t = strdup(s + 1);
	free(s);
	return t;
}

void lp_cv_entry_clear(struct lp_cv_entry *e)
{
	uint32_t i;

	if (!e)
		return;
	free(e->name);
	free(e->link_name);
	free(e->uname);
	free(e->gname);
	for (i = 0; i < e->nr_xattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	memset(e, 0, sizeof(*e));
}
