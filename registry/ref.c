// SPDX-License-Identifier: Apache-2.0
/*
 * Image references: "[host[:port]/]repo[:tag][@sha256:HEX]" parsed by the
 * rules of the distribution/reference grammar, with Docker Hub's defaults
 * (registry-1.docker.io, "library/" for official images, tag "latest").
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lp_registry.h"
#include "reg_int.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool path_component_ok(const char *s, size_t len)
{
	size_t i = 0;

	if (!len || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	while (i < len) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < len && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < len && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i >= len || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

static bool repo_ok(const char *s, size_t len)
{
	size_t start = 0, i;

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (!path_component_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

static bool port_ok(const char *s, size_t len)
{
	size_t i;

	if (!len || len > 5)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* hostname labels or an IPv4 literal, then an optional ":port" */
static bool host_ok(const char *s, size_t len)
{
	const char *colon;
	size_t i, hlen, lab = 0;

	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close || close == s + 1)
			return false;
		for (i = 1; s + i < close; i++)
			if (!(is_alnum(s[i]) || s[i] == ':' || s[i] == '.'))
				return false;
		hlen = (size_t)(close - s) + 1;
		if (hlen == len)
			return true;
		return s[hlen] == ':' && port_ok(s + hlen + 1, len - hlen - 1);
	}
	colon = memchr(s, ':', len);
	hlen = colon ? (size_t)(colon - s) : len;
	if (colon && !port_ok(colon + 1, len - hlen - 1))
		return false;
	if (!hlen)
		return false;
	for (i = 0; i <= hlen; i++) {
		if (i == hlen || s[i] == '.') {
			if (!lab || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!is_alnum(s[i]) && !(s[i] == '-' && lab))
			return false;
		lab++;
	}
	return true;
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static bool tag_ok(const char *s, size_t len)
{
	size_t i;

	if (!len || len >= LP_REG_TAG_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (i = 0; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' &&
		    s[i] != '-')
			return false;
	return true;
}

int lp_reg_ref_parse(const char *s, struct lp_reg_ref *ret_ref)
{
	struct lp_reg_ref ref;
	const char *at, *name, *slash, *colon, *end;
	size_t len, hlen;
	int r = -EINVAL;

	memset(&ref, 0, sizeof(ref));
	len = strnlen(s, LP_REG_REF_MAX);
	if (!len || len >= LP_REG_REF_MAX)
		goto out;
	end = s + len;
	at = memchr(s, '@', len);
	if (at) {
		if (lp_digest_parse_n(at + 1, (size_t)(end - at - 1),
				      &ref.digest) < 0)
			goto out;
		ref.has_digest = true;
		end = at;
	}
	/* host: the first component when it looks like one */
	name = s;
	slash = memchr(s, '/', (size_t)(end - s));
	if (slash) {
		bool is_host = false;
		const char *p;

		hlen = (size_t)(slash - s);
		for (p = s; p < slash; p++)
			if (*p == '.' || *p == ':' || *p == '[' ||
			    (*p >= 'A' && *p <= 'Z'))
				is_host = true;
		if (hlen == 9 && !memcmp(s, "localhost", 9))
			is_host = true;
		if (is_host) {
			if (!host_ok(s, hlen) || hlen >= LP_REG_HOST_MAX)
				goto out;
			memcpy(ref.host, s, hlen);
			name = slash + 1;
		}
	}
	if (!ref.host[0] || !strcmp(ref.host, "docker.io") ||
	    !strcmp(ref.host, "index.docker.io"))
		snprintf(ref.host, sizeof(ref.host), "%s", LP_REG_DOCKER_HUB);
	/* tag: after the last ':' that follows the last '/' */
	slash = memrchr(name, '/', (size_t)(end - name));
	colon = memrchr(slash ? slash : name, ':',
			(size_t)(end - (slash ? slash : name)));
	if (colon) {
		if (!tag_ok(colon + 1, (size_t)(end - colon - 1)))
			goto out;
		memcpy(ref.tag, colon + 1, (size_t)(end - colon - 1));
		end = colon;
	}
	len = (size_t)(end - name);
	if (!repo_ok(name, len))
		goto out;
	if (!strcmp(ref.host, LP_REG_DOCKER_HUB) && !memchr(name, '/', len)) {
		if (len + 8 >= LP_REG_REPO_MAX)
			goto out;
		memcpy(ref.repo, "library/", 8);
		memcpy(ref.repo + 8, name, len);
	} else {
		if (len >= LP_REG_REPO_MAX)
			goto out;
		memcpy(ref.repo, name, len);
	}
	if (!ref.tag[0] && !ref.has_digest)
		memcpy(ref.tag, "latest", 7);
	*ret_ref = ref;
	r = 0;
out:
	return r;
}

int lp_reg_ref_format(const struct lp_reg_ref *ref, char *out, size_t size)
{
	char d[LP_DIGEST_STR_LEN + 1] = "";
	int n;

	if (ref->has_digest)
		lp_digest_format(&ref->digest, d);
	n = snprintf(out, size, "%s/%s%s%s%s%s", ref->host, ref->repo,
		     ref->tag[0] ? ":" : "", ref->tag,
		     ref->has_digest ? "@" : "", d);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

bool lp_reg_host_is_loopback(const char *host)
{
	char h[LP_REG_HOST_MAX];
	char *colon;

	snprintf(h, sizeof(h), "%s", host);
	if (h[0] == '[')
		return !strncmp(h, "[::1]", 5);
	colon = strchr(h, ':');
	if (colon)
		*colon = '\0';
	return !strcmp(h, "localhost") || !strncmp(h, "127.", 4);
}
