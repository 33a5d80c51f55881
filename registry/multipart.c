// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP range replies: the Content-Range header ("bytes A-B/TOTAL") and
 * multipart/byteranges bodies (RFC 7233 appendix A), whose parts each carry
 * their own Content-Range. Parts are located by the lengths their headers
 * state, never by searching the payload for the boundary, so payload bytes
 * that happen to look like a boundary cannot confuse the parser.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "reg_int.h"

/* decimal digits into *v; returns the count of digits, 0 on none/overflow */
static size_t parse_u64(const char *s, size_t len, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (x > (UINT64_MAX - 9) / 10)
			return 0;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (i > 20)
		return 0;
	*v = x;
	return i;
}

int lp_reg_content_range_parse(const char *s, size_t len, uint64_t *ret_start,
			       uint64_t *ret_end, uint64_t *ret_total)
{
	uint64_t a, b, t = UINT64_MAX;
	size_t i = 0, n;

	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (len - i < 6 || strncasecmp(s + i, "bytes ", 6))
		return -EPROTO;
	i += 6;
	while (i < len && s[i] == ' ')
		i++;
	n = parse_u64(s + i, len - i, &a);
	if (!n)
		return -EPROTO;
	i += n;
	if (i >= len || s[i++] != '-')
		return -EPROTO;
	n = parse_u64(s + i, len - i, &b);
	if (!n)
		return -EPROTO;
	i += n;
	if (i >= len || s[i++] != '/')
		return -EPROTO;
	if (i < len && s[i] == '*') {
		i++;
	} else {
		n = parse_u64(s + i, len - i, &t);
		if (!n)
			return -EPROTO;
		i += n;
	}
	while (i < len &&
	       (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	if (i != len || b < a || (t != UINT64_MAX && b >= t))
		return -EPROTO;
	*ret_start = a;
	*ret_end = b;
	*ret_total = t;
	return 0;
}

int lp_reg_multipart_boundary(const char *ct, char *out, size_t size)
{
	const char *p;
	size_t n = 0;

	if (strncasecmp(ct, "multipart/byteranges", 20))
		return -EPROTO;
	p = strcasestr(ct + 20, "boundary=");
	if (!p)
		return -EPROTO;
	p += 9;
	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			if (n + 1 >= size)
				return -EFBIG;
			out[n++] = *p++;
		}
		if (*p != '"')
			return -EPROTO;
	} else {
		while (*p && *p != ';' && *p != ' ' && *p != '\t' &&
		       *p != '\r' && *p != '\n') {
			if (n + 1 >= size)
				return -EFBIG;
			out[n++] = *p++;
		}
	}
	if (!n || n > LP_REG_BOUNDARY_MAX)
		return -EPROTO;
	out[n] = '\0';
	return 0;
}

/* the end of the line at @p (its terminator excluded), and the next line */
static const char *line_end(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	if (!nl)
		return NULL;
	*next = nl + 1;
	if (nl > p && nl[-1] == '\r')
		nl--;
	return nl;
}

int lp_reg_multipart_parse(const void *body, size_t len, const char *boundary,
			   lp_reg_part_fn fn, void *ctx)
{
	const char *p = body, *end = (const char *)body + len;
	size_t blen = strlen(boundary);
	unsigned int parts = 0;
	int r = -EPROTO;

	if (!blen || blen > LP_REG_BOUNDARY_MAX)
		goto out;
	/* preamble: skip to the first delimiter line */
	for (;;) {
		const char *next, *le = line_end(p, end, &next);

		if (!le)
			goto out;
		if ((size_t)(le - p) >= blen + 2 && p[0] == '-' &&
		    p[1] == '-' && !memcmp(p + 2, boundary, blen))
			break;
		p = next;
	}
	for (;;) {
		const char *next, *le = line_end(p, end, &next);
		uint64_t a = 0, b = 0, t = 0, plen;
		bool have_range = false;

		/* p is at "--boundary" or "--boundary--" */
		if (!le || (size_t)(le - p) < blen + 2 || p[0] != '-' ||
		    p[1] != '-' || memcmp(p + 2, boundary, blen))
			goto out;
		if ((size_t)(le - p) >= blen + 4 &&
		    !memcmp(p + 2 + blen, "--", 2))
			break; /* close delimiter; epilogue ignored */
		if (parts >= LP_REG_MULTI_MAX * 2) {
			r = -EFBIG;
			goto out;
		}
		p = next;
		/* part headers, up to an empty line */
		for (;;) {
			le = line_end(p, end, &next);
			if (!le)
				goto out;
			if (le == p) {
				p = next;
				break;
			}
			if ((size_t)(le - p) > 14 &&
			    !strncasecmp(p, "Content-Range:", 14)) {
				if (have_range ||
				    lp_reg_content_range_parse(
					    p + 14, (size_t)(le - p - 14), &a,
					    &b, &t) < 0)
					goto out;
				have_range = true;
			}
			p = next;
		}
		if (!have_range)
			goto out;
		plen = b - a + 1;
		if (plen > (uint64_t)(end - p))
			goto out;
		r = fn(ctx, a, plen, t, p, (size_t)plen);
		if (r < 0)
			goto out;
		r = -EPROTO;
		p += plen;
		parts++;
		/* CRLF (or LF) before the next delimiter */
		if (p < end && *p == '\r')
			p++;
		if (p >= end || *p != '\n')
			goto out;
		p++;
	}
	r = (int)parts;
out:
	return r;
}
