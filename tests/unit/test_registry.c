// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for registry/'s parsers: image references, WWW-Authenticate
 * challenges, Content-Range and multipart/byteranges bodies, manifests and
 * indexes with platform selection, docker config.json credentials, how
 * an HTTP status is classified (errno, retryable or not), what is learnt
 * about a host (caps.c), and the spool of a blob from a range-less host
 * (spool.c): readers served as bytes come in, waiting for one feeder rather
 * than fetching, resume from the spool's end, verification at the end,
 * a read never made of two feeds, the disk reserved when a spool is made
 * (on a tmpfs of the test's own, in a private mount namespace: root).
 * No network: the HTTP paths are covered by integration/test_registry.sh
 * and test_rangeless.sh; here the spool's feeder is a test function that
 * plays replies into the spool's sink.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lp_registry.h"
#include "reg_int.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_ref_table(void **state)
{
	static const struct {
		const char *in;
		const char *host, *repo, *tag;
		int has_digest;
	} ok[] = {
		{ "busybox", LP_REG_DOCKER_HUB, "library/busybox", "latest",
		  0 },
		{ "busybox:1.36", LP_REG_DOCKER_HUB, "library/busybox", "1.36",
		  0 },
		{ "docker.io/busybox", LP_REG_DOCKER_HUB, "library/busybox",
		  "latest", 0 },
		{ "index.docker.io/library/alpine:3", LP_REG_DOCKER_HUB,
		  "library/alpine", "3", 0 },
		{ "user/app", LP_REG_DOCKER_HUB, "user/app", "latest", 0 },
		{ "localhost/app", "localhost", "app", "latest", 0 },
		{ "localhost:5000/a/b/c:t_1.x-y", "localhost:5000", "a/b/c",
		  "t_1.x-y", 0 },
		{ "127.0.0.1:5000/app@sha256:" D64, "127.0.0.1:5000", "app", "",
		  1 },
		{ "127.0.0.1:5000/app:v1@sha256:" D64, "127.0.0.1:5000", "app",
		  "v1", 1 },
		{ "[::1]:5000/app:v1", "[::1]:5000", "app", "v1", 0 },
		{ "[fe80::1%25]/x", NULL, NULL, NULL, 0 }, /* bad: '%' */
		{ "ghcr.io/org/img-name__x.y:latest", "ghcr.io",
		  "org/img-name__x.y", "latest", 0 },
		{ "Registry/app", "Registry", "app", "latest", 0 },
		{ "a.b-c.d/x--y", "a.b-c.d", "x--y", "latest", 0 },
	};
	static const char *const bad[] = {
		"",
		"UPPER",
		"app:",
		":tag",
		"app@sha256:abc",
		"app@md5:" D64,
		"host:port/app",
		"host:99999999/app",
		"/app",
		"app//x",
		"app/",
		"-app",
		"app_",
		"a/.b",
		"[::1/app",
		"[]:5000/app",
		"app:-tag",
		"app:"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
		"host..x/app",
		"-host.x/app",
		"app@sha256:" D64 "0",
	};
	struct lp_reg_ref r;
	char buf[LP_REG_REF_MAX];
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = lp_reg_ref_parse(ok[i].in, &r);

		if (!ok[i].host) {
			assert_int_equal(rc, -EINVAL);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %d", ok[i].in, rc);
		assert_string_equal(r.host, ok[i].host);
		assert_string_equal(r.repo, ok[i].repo);
		assert_string_equal(r.tag, ok[i].tag);
		assert_int_equal(r.has_digest, ok[i].has_digest);
		assert_true(lp_reg_ref_format(&r, buf, sizeof(buf)) > 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (lp_reg_ref_parse(bad[i], &r) != -EINVAL)
			fail_msg("accepted bad reference \"%s\"", bad[i]);
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:5000/app:v1", &r), 0);
	assert_int_equal(lp_reg_ref_format(&r, buf, 5), -ENAMETOOLONG);
	assert_true(lp_reg_host_is_loopback("127.0.0.1:5000"));
	assert_true(lp_reg_host_is_loopback("[::1]:5000"));
	assert_true(lp_reg_host_is_loopback("localhost"));
	assert_false(lp_reg_host_is_loopback("10.0.0.1:5000"));
	assert_false(lp_reg_host_is_loopback("localhost.evil.com"));
}

static void test_www_auth(void **state)
{
	struct lp_reg_challenge ch;
	const char *h;

	h = "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), 0);
	assert_int_equal(ch.scheme, LP_REG_AUTH_BEARER);
	assert_string_equal(ch.realm, "https://auth.docker.io/token");
	assert_string_equal(ch.service, "registry.docker.io");
	assert_string_equal(ch.scope, "repository:library/busybox:pull");

	/* commas and escapes inside quotes, odd spacing, case */
	h = "bearer  realm = \"https://a/t?x=1,2\" , scope=\"repository:a/b:pull,push\", error=\"insufficient_scope\", extra=\"q\\\"uote\"";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), 0);
	assert_string_equal(ch.realm, "https://a/t?x=1,2");
	assert_string_equal(ch.scope, "repository:a/b:pull,push");
	assert_string_equal(ch.error, "insufficient_scope");
	assert_string_equal(ch.service, "");

	/* several challenges: Bearer preferred wherever it is */
	h = "Basic realm=\"reg\", Bearer realm=\"http://127.0.0.1/token\",service=s";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), 0);
	assert_int_equal(ch.scheme, LP_REG_AUTH_BEARER);
	assert_string_equal(ch.service, "s");
	h = "Basic realm=\"Registry Realm\"";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), 0);
	assert_int_equal(ch.scheme, LP_REG_AUTH_BASIC);
	assert_string_equal(ch.realm, "Registry Realm");
	h = "Negotiate abc==, Basic realm=x";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), 0);
	assert_int_equal(ch.scheme, LP_REG_AUTH_BASIC);

	/* rejected */
	h = "Bearer realm=\"unterminated";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), -EPROTO);
	h = "Bearer service=x"; /* no realm */
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), -EPROTO);
	h = "Negotiate";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), -EPROTO);
	assert_int_equal(lp_reg_www_auth_parse("", 0, &ch), -EPROTO);
	h = "Bearer realm=\"a\" junk";
	assert_int_equal(lp_reg_www_auth_parse(h, strlen(h), &ch), -EPROTO);
	{
		static char big[LP_REG_AUTH_FIELD_MAX + 64];

		snprintf(big, sizeof(big), "Bearer realm=\"%0*d\"",
			 LP_REG_AUTH_FIELD_MAX, 0);
		assert_int_equal(lp_reg_www_auth_parse(big, strlen(big), &ch),
				 -EFBIG);
	}
}

struct parts {
	uint64_t off[8], len[8];
	char data[8][32];
	int n;
};

static int collect(void *ctx, uint64_t off, uint64_t plen, uint64_t total,
		   const void *data, size_t len)
{
	struct parts *p = ctx;

	if (p->n >= 8 || len >= 32)
		return -EFBIG;
	p->off[p->n] = off;
	p->len[p->n] = plen;
	memcpy(p->data[p->n], data, len);
	p->data[p->n][len] = '\0';
	p->n++;
	return 0;
}

static void test_token_reply(void **state)
{
	struct lp_reg_token_reply t;
	int64_t e;
	const char *j;

	(void)state;
	j = "{\"token\":\"abc\",\"expires_in\":5,"
	    "\"issued_at\":\"2026-12-06T17:00:00Z\"}";
	assert_int_equal(lp_reg_token_reply_parse(j, strlen(j), &t), 0);
	assert_string_equal(t.token, "abc");
	assert_int_equal(t.expires_in_s, 5);
	assert_true(t.have_issued_at);
	assert_int_equal(t.issued_at, 1796576400);
	/* 2 s after issue: 3 s left; clocks that disagree: from now */
	assert_int_equal(lp_reg_token_lifetime_ms(&t, 1796576402500), 2500);
	assert_int_equal(lp_reg_token_lifetime_ms(&t, 1796576300000), 5000);
	assert_int_equal(lp_reg_token_lifetime_ms(&t, 1796576500000), 5000);
	j = "{\"access_token\":\"x\"}";
	assert_int_equal(lp_reg_token_reply_parse(j, strlen(j), &t), 0);
	assert_string_equal(t.token, "x");
	assert_false(t.have_issued_at);
	assert_int_equal(lp_reg_token_lifetime_ms(&t, 0),
			 LP_REG_TOKEN_DEFAULT_TTL_S * 1000);
	j = "{\"token\":\"x\",\"expires_in\":99999999}";
	assert_int_equal(lp_reg_token_reply_parse(j, strlen(j), &t), 0);
	assert_int_equal(t.expires_in_s, LP_REG_TOKEN_TTL_MAX);
	j = "{\"token\":\"a\\r\\nX: y\"}";
	assert_int_equal(lp_reg_token_reply_parse(j, strlen(j), &t), -EPROTO);
	j = "{\"token\":\"\"}";
	assert_int_equal(lp_reg_token_reply_parse(j, strlen(j), &t), -EPROTO);
	j = "[1]";
	assert_int_equal(lp_reg_token_reply_parse(j, strlen(j), &t), -EPROTO);
	assert_int_equal(
		lp_reg_rfc3339_parse("2026-12-06T18:00:00+01:00", 25, &e), 0);
	assert_int_equal(e, 1796576400);
	assert_int_equal(
		lp_reg_rfc3339_parse("2026-12-06T17:00:00.123456Z", 27, &e), 0);
	assert_int_equal(e, 1796576400);
	assert_int_equal(lp_reg_rfc3339_parse("2026-13-06T17:00:00Z", 20, &e),
			 -EPROTO);
	assert_int_equal(lp_reg_rfc3339_parse("2026-12-06T17:00:00", 19, &e),
			 -EPROTO);
	assert_int_equal(lp_reg_rfc3339_parse("2026-12-06T17:00:00.Z", 21, &e),
			 -EPROTO);
}

static void test_multipart(void **state)
{
	/* payloads that contain the boundary must not confuse the parser */
	static const char body[] = "preamble\r\n"
				   "--XYZ\r\n"
				   "Content-Type: application/octet-stream\r\n"
				   "Content-Range: bytes 0-4/100\r\n"
				   "\r\n"
				   "--XYZ\r\n"
				   "--XYZ\r\n"
				   "content-range: bytes 50-52/100\r\n"
				   "\r\n"
				   "abc\r\n"
				   "--XYZ--\r\n";
	static const char *const bad[] = {
		"--XYZ\r\nContent-Range: bytes 0-4/100\r\n\r\nabc\r\n--XYZ--\r\n", /* short */
		"--XYZ\r\n\r\nabcde\r\n--XYZ--\r\n", /* no Content-Range */
		"--XYZ\r\nContent-Range: bytes 5-4/100\r\n\r\n\r\n--XYZ--\r\n",
		"--XYZ\r\nContent-Range: bytes 0-4/100\r\n\r\nabcdeX--XYZ--\r\n",
		"--XYZ\r\nContent-Range: bytes 0-4/100\r\n\r\nabcde\r\n", /* no close */
		"no delimiter at all",
		"--XYZ\r\nContent-Range: bytes 0-99999999999999999999999/100\r\n\r\nabcde\r\n--XYZ--\r\n",
	};
	struct parts p;
	char b[LP_REG_BOUNDARY_MAX + 1];
	uint64_t a, e, t;
	size_t i;

	memset(&p, 0, sizeof(p));
	assert_int_equal(lp_reg_multipart_parse(body, sizeof(body) - 1, "XYZ",
						collect, &p),
			 2);
	assert_int_equal(p.off[0], 0);
	assert_string_equal(p.data[0], "--XYZ");
	assert_int_equal(p.off[1], 50);
	assert_int_equal(p.len[1], 3);
	assert_string_equal(p.data[1], "abc");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0, sizeof(p));
		if (lp_reg_multipart_parse(bad[i], strlen(bad[i]), "XYZ",
					   collect, &p) >= 0)
			fail_msg("accepted bad multipart #%zu", i);
	}
	assert_int_equal(lp_reg_multipart_boundary(
				 "multipart/byteranges; boundary=3d6b6a416f9b5",
				 b, sizeof(b)),
			 0);
	assert_string_equal(b, "3d6b6a416f9b5");
	assert_int_equal(lp_reg_multipart_boundary(
				 "multipart/byteranges; boundary=\"a b\"; x=y",
				 b, sizeof(b)),
			 0);
	assert_string_equal(b, "a b");
	assert_int_equal(lp_reg_multipart_boundary("text/plain; boundary=x", b,
						   sizeof(b)),
			 -EPROTO);
	assert_int_equal(
		lp_reg_multipart_boundary("multipart/byteranges", b, sizeof(b)),
		-EPROTO);

	assert_int_equal(
		lp_reg_content_range_parse("bytes 10-19/100", 15, &a, &e, &t),
		0);
	assert_true(a == 10 && e == 19 && t == 100);
	assert_int_equal(
		lp_reg_content_range_parse(" bytes 0-0/*\r\n", 14, &a, &e, &t),
		0);
	assert_true(t == UINT64_MAX);
	assert_int_equal(
		lp_reg_content_range_parse("bytes 10-100/100", 16, &a, &e, &t),
		-EPROTO);
	assert_int_equal(
		lp_reg_content_range_parse("bytes */100", 11, &a, &e, &t),
		-EPROTO);
	assert_int_equal(
		lp_reg_content_range_parse("bytes 1-2/3x", 12, &a, &e, &t),
		-EPROTO);
	assert_int_equal(
		lp_reg_content_range_parse("items 1-2/3", 11, &a, &e, &t),
		-EPROTO);
}

#define DESC(mt, hex, size)                                  \
	"{\"mediaType\":\"" mt "\",\"digest\":\"sha256:" hex \
	"\",\"size\":" #size

static void test_manifest(void **state)
{
	static const char man[] =
		"{\"schemaVersion\":2,\"mediaType\":\"" LP_REG_MT_DOCKER_MANIFEST
		"\","
		"\"config\":" DESC(
			"application/vnd.docker.container.image.v1+json", D64,
			100) "},"
			     "\"layers\":[" DESC(
				     "application/vnd.docker.image.rootfs.diff.tar.gzip",
				     D64,
				     5) "}," DESC("application/vnd.oci.image.layer.v1.tar+gzip",
						  D64,
						  7) ",\"annotations\":{\"containerd.io/snapshot/stargz/toc.digest\":\"sha256:" D64
						     "\",\"x\":\"y\"}}]}\n";
	static const char idx[] =
		"{\"schemaVersion\":2,\"manifests\":[" DESC(LP_REG_MT_OCI_MANIFEST, D64, 1) ",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}," DESC(LP_REG_MT_OCI_MANIFEST, D64, 2) ",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}}," DESC(
			LP_REG_MT_OCI_MANIFEST, D64,
			3) ",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}," DESC(LP_REG_MT_OCI_MANIFEST,
												D64,
												4) ",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	static const char *const bad[] = {
		"",
		"[]",
		"{}",
		"{\"schemaVersion\":2}",
		"{\"schemaVersion\":1,\"name\":\"x\"}",
		"{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}",
		"{\"schemaVersion\":2,\"config\":{},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":" DESC("a", D64,
							-1) "},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":" DESC("a", D64,
							1.5) "},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":" DESC("a", "00",
							1) "},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":" DESC("a", D64,
							1) "},\"layers\":{}}",
		"{\"schemaVersion\":2,\"config\":" DESC(
			"a", D64,
			1) ",\"annotations\":{\"k\":1}},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":" DESC(
			"a", D64, 1) "},\"layers\":[]} trailing",
		"{\"schemaVersion\":\"2\"}",
	};
	struct lp_reg_manifest *m = NULL;
	const struct lp_reg_desc *d;
	struct lp_digest want;
	size_t len, i;

	assert_int_equal(lp_reg_manifest_parse(man, sizeof(man) - 1, NULL, &m),
			 0);
	assert_false(lp_reg_manifest_is_index(m));
	assert_string_equal(lp_reg_manifest_media_type(m),
			    LP_REG_MT_DOCKER_MANIFEST);
	lp_sha256(man, sizeof(man) - 1, &want);
	assert_true(lp_digest_equal(lp_reg_manifest_digest(m), &want));
	assert_ptr_not_equal(lp_reg_manifest_raw(m, &len), NULL);
	assert_int_equal(len, sizeof(man) - 1);
	assert_int_equal(lp_reg_manifest_config(m)->size, 100);
	assert_int_equal(lp_reg_manifest_count(m), 2);
	d = lp_reg_manifest_layer(m, 1);
	assert_int_equal(d->size, 7);
	assert_string_equal(d->media_type,
			    "application/vnd.oci.image.layer.v1.tar+gzip");
	assert_int_equal(d->n_annotations, 2);
	assert_string_equal(
		lp_reg_desc_annotation(
			d, "containerd.io/snapshot/stargz/toc.digest"),
		"sha256:" D64);
	assert_null(lp_reg_desc_annotation(d, "nope"));
	assert_null(lp_reg_manifest_layer(m, 2));
	assert_int_equal(lp_reg_index_select(m, NULL, &d), -EINVAL);
	lp_reg_manifest_free(m);

	/* index without mediaType: detected by "manifests" */
	assert_int_equal(lp_reg_manifest_parse(idx, sizeof(idx) - 1, "", &m),
			 0);
	assert_true(lp_reg_manifest_is_index(m));
	assert_null(lp_reg_manifest_config(m));
	assert_int_equal(lp_reg_index_select(m, "linux/amd64", &d), 0);
	assert_int_equal(d->size, 4);
	assert_int_equal(lp_reg_index_select(m, "linux/arm64", &d), 0);
	assert_int_equal(d->size, 3);
	assert_int_equal(lp_reg_index_select(m, "linux/arm64/v8", &d), 0);
	assert_int_equal(d->size, 3);
	assert_int_equal(lp_reg_index_select(m, "linux/arm/v7", &d), 0);
	assert_int_equal(d->size, 2);
	assert_int_equal(lp_reg_index_select(m, "linux/arm/v6", &d), -ENOENT);
	assert_int_equal(lp_reg_index_select(m, "windows/amd64", &d), -ENOENT);
	assert_int_equal(lp_reg_index_select(m, "linux", &d), -EINVAL);
	assert_int_equal(lp_reg_index_select(m, "linux/", &d), -EINVAL);
	assert_int_equal(lp_reg_index_select(m, NULL, &d), 0); /* host */
	lp_reg_manifest_free(m);

	/* Content-Type decides when mediaType is absent */
	{
		static const char s[] =
			"{\"schemaVersion\":2,\"manifests\":[]}";

		assert_int_equal(lp_reg_manifest_parse(s, sizeof(s) - 1,
						       LP_REG_MT_DOCKER_LIST,
						       &m),
				 0);
		assert_string_equal(lp_reg_manifest_media_type(m),
				    LP_REG_MT_DOCKER_LIST);
		lp_reg_manifest_free(m);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = NULL;
		if (lp_reg_manifest_parse(bad[i], strlen(bad[i]), NULL, &m) >=
		    0)
			fail_msg("accepted bad manifest #%zu: %s", i, bad[i]);
		assert_null(m);
	}
	assert_int_equal(
		lp_reg_manifest_parse(man, LP_REG_MANIFEST_MAX + 1, NULL, &m),
		-EFBIG);
	lp_reg_manifest_free(NULL);
}

static void test_docker_config(void **state)
{
	/* "alice:s3cr:et" in base64 */
	static const char cfg[] =
		"{\"auths\":{"
		"\"https://index.docker.io/v1/\":{\"auth\":\"aHViOnB3\"},"
		"\"https://127.0.0.1:5000\":{\"auth\":\"YWxpY2U6czNjcjpldA==\"},"
		"\"reg.example\":{\"username\":\"u\",\"password\":\"p\"},"
		"\"bad.example\":{\"auth\":\"!!!\"}},"
		"\"credHelpers\":{\"gcr.io\":\"gcloud\"}}";
	static const char store[] = "{\"auths\":{},\"credsStore\":\"pass\"}";
	struct lp_reg_cred c;

	assert_int_equal(lp_reg_docker_config_lookup(cfg, sizeof(cfg) - 1,
						     "127.0.0.1:5000", &c),
			 1);
	assert_string_equal(c.user, "alice");
	assert_string_equal(c.secret, "s3cr:et");
	assert_string_equal(c.helper, "");
	assert_int_equal(lp_reg_docker_config_lookup(cfg, sizeof(cfg) - 1,
						     LP_REG_DOCKER_HUB, &c),
			 1);
	assert_string_equal(c.user, "hub");
	assert_string_equal(c.secret, "pw");
	assert_int_equal(lp_reg_docker_config_lookup(cfg, sizeof(cfg) - 1,
						     "reg.example", &c),
			 1);
	assert_string_equal(c.user, "u");
	assert_int_equal(
		lp_reg_docker_config_lookup(cfg, sizeof(cfg) - 1, "gcr.io", &c),
		1);
	assert_string_equal(c.helper, "gcloud");
	assert_int_equal(lp_reg_docker_config_lookup(cfg, sizeof(cfg) - 1,
						     "other.example", &c),
			 0);
	assert_int_equal(lp_reg_docker_config_lookup(cfg, sizeof(cfg) - 1,
						     "bad.example", &c),
			 -EPROTO);
	assert_int_equal(lp_reg_docker_config_lookup(store, sizeof(store) - 1,
						     "any.example", &c),
			 1);
	assert_string_equal(c.helper, "pass");
	assert_int_equal(lp_reg_docker_config_lookup("{", 1, "x", &c), -EPROTO);
	assert_int_equal(lp_reg_docker_config_lookup(
				 "{\"credsStore\":\"../x\"}", 21, "x", &c),
			 -EPROTO);

	assert_int_equal(
		lp_reg_helper_parse(
			"{\"ServerURL\":\"x\",\"Username\":\"u\",\"Secret\":\"s\"}",
			45, &c),
		1);
	assert_string_equal(c.secret, "s");
	assert_int_equal(
		lp_reg_helper_parse(
			"{\"Username\":\"<token>\",\"Secret\":\"s\"}", 35, &c),
		0);
	assert_int_equal(lp_reg_helper_parse("{\"Username\":\"u\"}", 16, &c),
			 -EPROTO);
}

static void test_opts_and_client(void **state)
{
	struct lp_reg_opts o;
	struct lp_reg *reg = NULL;
	struct lp_reg_ref ref;
	struct lp_reg_blob *rb = NULL;
	struct lp_blob *blob = NULL;
	struct lp_digest d;
	struct lp_err err;
	char buf[16];

	lp_reg_opts_init(&o);
	assert_true(o.loopback_plain_http);
	assert_true(o.max_attempts > 0);
	assert_int_equal(lp_reg_new(&o, &reg), 0);
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:1/x:y", &ref), 0);
	lp_sha256("", 0, &d);
	assert_int_equal(lp_reg_blob_open(reg, &ref, &d, 10, &rb), 0);
	/* range checks happen before any request */
	lp_err_clear(&err);
	assert_int_equal(lp_reg_blob_pread(rb, buf, 11, 0, &err), -ERANGE);
	{
		struct lp_reg_range g[2] = { { 5, 2, buf }, { 0, 2, buf + 2 } };

		assert_int_equal(lp_reg_blob_pread_multi(rb, g, 2, NULL),
				 -EINVAL);
	}
	assert_int_equal(lp_reg_blob_as_blob(rb, &blob), 0);
	lp_reg_blob_unref(rb);
	lp_reg_free(reg); /* the blob keeps the client alive */
	assert_int_equal(lp_blob_size(blob), 10);
	lp_blob_unref(blob);
	lp_reg_free(NULL);
	lp_reg_blob_unref(NULL);
}

/*
 * HTTP statuses classified where they arise: the blob is gone or refused
 * (404, 410, 403, 401 after authenticating) is permanent, an overloaded or
 * failing registry (429, 5xx but 501/505) is retryable; the status is kept.
 */
static void test_status_classes(void **state)
{
	static const struct {
		long status;
		int code;
		bool retryable;
	} cases[] = {
		{ 404, -ENOENT, false }, { 410, -ENOENT, false },
		{ 403, -EACCES, false }, { 401, -EACCES, false },
		{ 416, -ERANGE, false }, { 400, -EPROTO, false },
		{ 501, -EPROTO, false }, { 505, -EPROTO, false },
		{ 429, -EPROTO, true },	 { 500, -EPROTO, true },
		{ 502, -EPROTO, true },	 { 503, -EPROTO, true },
	};
	struct lp_reg_req req = { .url = "http://r/v2/a/blobs/x",
				  .what = "blob range" };
	static struct lp_reg_resp resp;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lp_err err = { 0 };
		char want[64];

		memset(&resp, 0, sizeof(resp));
		resp.status = cases[i].status;
		assert_int_equal(lp_reg_status_err(&req, &resp, &err),
				 cases[i].code);
		assert_int_equal(lp_err_retryable(&err, cases[i].code),
				 cases[i].retryable);
		assert_int_equal(err.http_status, cases[i].status);
		snprintf(want, sizeof(want), "HTTP %ld", cases[i].status);
		assert_non_null(strstr(err.msg, want));
	}
}

/* ---- the reply check every single-range reader makes ---- */

static struct lp_reg_resp reply(long status, int64_t clen, const char *cr,
				const char *type)
{
	struct lp_reg_resp r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	r.content_length = clen;
	snprintf(r.content_range, sizeof(r.content_range), "%s", cr);
	snprintf(r.content_type, sizeof(r.content_type), "%s", type);
	return r;
}

static void test_reply_check(void **state)
{
	struct lp_reg_resp r;
	uint64_t t = 7;

	(void)state;
	/* a 200: the whole blob, of the size known */
	r = reply(200, 1000, "", "");
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, &t), 200);
	assert_int_equal(t, 1000);
	r = reply(200, 999, "", "");
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, NULL), -EPROTO);
	r = reply(200, -1, "", ""); /* no Content-Length: the size known */
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, &t), 200);
	assert_int_equal(t, 1000);
	r = reply(200, 30, "", ""); /* a suffix, size unknown: the reply's */
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 64, 0, &t), 200);
	assert_int_equal(t, 30);
	/* a 206: exactly the bytes asked */
	r = reply(206, 20, "bytes 10-29/1000", "application/octet-stream");
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, &t), 206);
	assert_int_equal(t, 1000);
	assert_int_equal(reg_reply_check(&r, 11, 19, 1000, NULL), -EPROTO);
	assert_int_equal(reg_reply_check(&r, 10, 21, 1000, NULL), -EPROTO);
	assert_int_equal(reg_reply_check(&r, 10, 20, 1001, NULL), -EPROTO);
	r = reply(206, 20, "bytes 10-29/*", "");
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, &t), 206);
	assert_int_equal(t, 1000);
	r = reply(206, 20, "bytes 10-29/1000", "multipart/byteranges; b=x");
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, NULL), -EPROTO);
	r = reply(206, 20, "", "");
	assert_int_equal(reg_reply_check(&r, 10, 20, 1000, NULL), -EPROTO);
	/* a suffix: the last min(len, T) bytes, T stated when unknown */
	r = reply(206, 64, "bytes 936-999/1000", "");
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 64, 0, &t), 206);
	assert_int_equal(t, 1000);
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 64, 1000, &t),
			 206);
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 65, 0, NULL),
			 -EPROTO);
	r = reply(206, 30, "bytes 0-29/30", ""); /* a blob under the tail */
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 64, 0, &t), 206);
	assert_int_equal(t, 30);
	r = reply(206, 64, "bytes 936-999/*", "");
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 64, 0, NULL),
			 -EPROTO);
	assert_int_equal(reg_reply_check(&r, REG_RANGE_SUFFIX, 64, 1000, &t),
			 206);
	/* anything else */
	r = reply(204, 0, "", "");
	assert_int_equal(reg_reply_check(&r, 0, 1, 1000, NULL), -EPROTO);
}

/* ---- host capabilities ---- */

static void test_caps(void **state)
{
	struct reg_caps *c = NULL;

	(void)state;
	unsetenv("LAZYPULL_NO_SPOOL");
	assert_int_equal(reg_caps_new(&c), 0);
	/* nothing known: ask by ranges, several at once */
	assert_false(reg_caps_spool(c, "h:1"));
	assert_true(reg_caps_multi(c, "h:1"));
	reg_caps_note(c, "h:1", REG_SEEN_RANGE, 206);
	assert_false(reg_caps_spool(c, "h:1"));
	reg_caps_note(c, "h:1", REG_SEEN_WHOLE, 200);
	assert_true(reg_caps_spool(c, "h:1"));
	assert_false(reg_caps_multi(c, "h:1")); /* ranges ignored anyway */
	assert_false(reg_caps_spool(c, "h:2")); /* per host */
	/* the latest word wins: a cache that has the blob now answers 206 */
	reg_caps_note(c, "h:1", REG_SEEN_RANGE, 206);
	assert_false(reg_caps_spool(c, "h:1"));
	assert_true(reg_caps_multi(c, "h:1"));
	reg_caps_note(c, "h:1", REG_SEEN_MULTI_REFUSED, 501);
	assert_false(reg_caps_multi(c, "h:1"));
	reg_caps_note(c, "h:1", REG_SEEN_REDIRECT, 200);
	reg_caps_free(c);
	/* the test knob: never spool */
	setenv("LAZYPULL_NO_SPOOL", "1", 1);
	assert_int_equal(reg_caps_new(&c), 0);
	reg_caps_note(c, "h:1", REG_SEEN_WHOLE, 200);
	assert_false(reg_caps_spool(c, "h:1"));
	reg_caps_free(c);
	unsetenv("LAZYPULL_NO_SPOOL");
	reg_caps_free(NULL);
}

/* ---- the spool ---- */

#define SP_SIZE (1024 * 1024 + 17) /* bytes of the test blob */
#define SP_PIECE 65536 /* bytes per write of the test feeder */

/*
 * The test's feeder: each call plays one reply into the spool's sink. What
 * it plays is set per call; it writes piece after piece, each only once the
 * test has allowed it (gate), so that the test sees readers wait.
 */
struct feeder {
	uint8_t *blob; /* the right bytes */
	uint8_t *body; /* what the host sends: blob, or a bad copy */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int allowed; /* pieces it may write; protected by lock */
	unsigned int written; /* pieces written; protected by lock */
	unsigned int calls; /* protected by lock */
	char range[4][64]; /* the Range each call asked for */
	/* per call: 200 (whole body) or 206 (from the spool's end) */
	long status[4];
	uint64_t cut_at[4]; /* stop the body there, -EIO; 0: never */
	unsigned int bads; /* verdict hook calls; protected by lock */
};

static void feeder_init(struct feeder *f, bool bad)
{
	uint64_t i;

	memset(f, 0, sizeof(*f));
	f->blob = malloc(SP_SIZE);
	f->body = malloc(SP_SIZE);
	assert_non_null(f->blob);
	assert_non_null(f->body);
	for (i = 0; i < SP_SIZE; i++)
		f->blob[i] = (uint8_t)(i * 2654435761u >> 13);
	memcpy(f->body, f->blob, SP_SIZE);
	if (bad)
		f->body[SP_SIZE / 2] ^= 0xff;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
}

static void feeder_fini(struct feeder *f)
{
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f->blob);
	free(f->body);
}

static void feeder_allow(struct feeder *f, unsigned int n)
{
	pthread_mutex_lock(&f->lock);
	f->allowed = n;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* wait until the feeder has written @n pieces in all */
static void feeder_wait_written(struct feeder *f, unsigned int n)
{
	pthread_mutex_lock(&f->lock);
	while (f->written < n)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

/* play one reply (@status, from @from) through @sink */
static int feeder_play(struct feeder *f, struct lp_reg_sink *sink, long status,
		       uint64_t from, uint64_t cut)
{
	struct lp_reg_resp resp;
	uint64_t pos = status == 200 ? 0 : from;
	int r;

	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.content_length = (int64_t)(SP_SIZE - pos);
	snprintf(resp.content_range, sizeof(resp.content_range),
		 "bytes %llu-%llu/%llu", (unsigned long long)from,
		 (unsigned long long)SP_SIZE - 1, (unsigned long long)SP_SIZE);
	r = sink->begin(sink->ctx, &resp);
	while (r == 0 && pos < SP_SIZE) {
		size_t n = SP_SIZE - pos < SP_PIECE ? SP_SIZE - pos : SP_PIECE;

		if (cut && pos + n > cut)
			return -EIO; /* the connection broke */
		pthread_mutex_lock(&f->lock);
		while (f->written >= f->allowed)
			pthread_cond_wait(&f->cond, &f->lock);
		pthread_mutex_unlock(&f->lock);
		r = sink->write(sink->ctx, f->body + pos, n);
		pos += n;
		pthread_mutex_lock(&f->lock);
		f->written++;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
	}
	return r ? r : sink->finish(sink->ctx, &resp);
}

static int test_feed(void *ctx, struct reg_spool *sp, struct lp_err *err)
{
	struct feeder *f = ctx;
	struct lp_reg_sink sink;
	unsigned long long from = 0, to = 0;
	unsigned int call;
	char range[64];
	int r;

	pthread_mutex_lock(&f->lock);
	call = f->calls++;
	pthread_mutex_unlock(&f->lock);
	assert_true(call < 4);
	reg_spool_sink(sp, range, sizeof(range), &sink);
	memcpy(f->range[call], range, sizeof(range));
	assert_int_equal(sscanf(range, "Range: bytes=%llu-%llu", &from, &to),
			 2);
	assert_int_equal(to, SP_SIZE - 1);
	r = feeder_play(f, &sink, f->status[call] ? f->status[call] : 200, from,
			f->cut_at[call]);
	if (r < 0)
		lp_err_set_ex(err, r, LP_ERR_RETRYABLE, 0, "test feeder cut");
	return r;
}

struct reader {
	struct reg_spool *sp;
	uint64_t off;
	size_t len;
	uint8_t *buf;
	int r;
	struct lp_err err;
	bool done; /* protected by the feeder's lock */
	struct feeder *f;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	lp_err_clear(&rd->err);
	rd->r = reg_spool_read(rd->sp, rd->buf, rd->len, rd->off, NULL, NULL,
			       &rd->err);
	pthread_mutex_lock(&rd->f->lock);
	rd->done = true;
	pthread_mutex_unlock(&rd->f->lock);
	return NULL;
}

static bool reader_done(struct reader *rd)
{
	bool d;

	pthread_mutex_lock(&rd->f->lock);
	d = rd->done;
	pthread_mutex_unlock(&rd->f->lock);
	return d;
}

static void reader_start(struct reader *rd, pthread_t *t, struct feeder *f,
			 struct reg_spool *sp, uint64_t off, size_t len)
{
	memset(rd, 0, sizeof(*rd));
	rd->sp = sp;
	rd->off = off;
	rd->len = len;
	rd->f = f;
	rd->buf = malloc(len);
	assert_non_null(rd->buf);
	assert_int_equal(pthread_create(t, NULL, reader_main, rd), 0);
}

static struct reg_spool *spool_new(struct feeder *f, char *dir)
{
	struct reg_spool *sp = NULL;
	struct lp_digest d;

	assert_non_null(mkdtemp(dir));
	lp_sha256(f->blob, SP_SIZE, &d);
	assert_int_equal(
		reg_spool_new(dir, &d, SP_SIZE, test_feed, f, &sp, NULL), 0);
	assert_int_equal(rmdir(dir), 0); /* nothing visible: it is unlinked */
	return sp;
}

/*
 * Readers are served as the bytes come in: one at the front returns after
 * the first piece while one at the end waits; many readers, one request.
 */
static void test_spool_serves_as_bytes_come(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct reader front, end, mid;
	pthread_t tf, te, tm;
	struct feeder f;
	struct reg_spool *sp;
	uint8_t *all = malloc(SP_SIZE);

	(void)state;
	feeder_init(&f, false);
	sp = spool_new(&f, dir);
	reader_start(&end, &te, &f, sp, SP_SIZE - 100, 100);
	reader_start(&front, &tf, &f, sp, 100, 1000);
	reader_start(&mid, &tm, &f, sp, SP_SIZE / 2, 5000);
	feeder_allow(&f, 1);
	pthread_join(tf, NULL);
	assert_int_equal(front.r, 0);
	assert_memory_equal(front.buf, f.blob + 100, 1000);
	feeder_wait_written(&f, 1); /* and it waits for the gate */
	usleep(20000);
	assert_false(reader_done(&end)); /* its bytes are not in */
	assert_false(reader_done(&mid));
	feeder_allow(&f, 1000);
	pthread_join(tm, NULL);
	pthread_join(te, NULL);
	assert_int_equal(mid.r, 0);
	assert_memory_equal(mid.buf, f.blob + SP_SIZE / 2, 5000);
	assert_int_equal(end.r, 0);
	assert_memory_equal(end.buf, f.blob + SP_SIZE - 100, 100);
	assert_int_equal(f.calls, 1); /* three readers, one request */
	assert_string_equal(f.range[0], "Range: bytes=0-1048592");
	/* complete and verified: everything from the file, no request */
	assert_int_equal(reg_spool_read(sp, all, SP_SIZE, 0, NULL, NULL, NULL),
			 0);
	assert_memory_equal(all, f.blob, SP_SIZE);
	assert_int_equal(f.calls, 1);
	assert_false(reg_spool_claim(sp)); /* nothing left to feed */
	reg_spool_free(sp);
	rmdir(dir);
	free(front.buf);
	free(end.buf);
	free(mid.buf);
	free(all);
	feeder_fini(&f);
}

/*
 * A feeder cut off: the readers waiting get its error (retryable, as it
 * said); the next read starts a feeder that asks from the spool's end; a
 * host that answers that with the whole blob again is skipped up to there.
 */
static void test_spool_resume(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct reader end;
	pthread_t te;
	struct feeder f;
	struct reg_spool *sp;
	uint8_t buf[100];
	unsigned long long from = 0;
	int k;

	(void)state;
	for (k = 0; k < 2; k++) {
		feeder_init(&f, false);
		f.cut_at[0] = 5 * SP_PIECE + 10; /* 5 pieces in, then cut */
		f.status[1] = k == 0 ? 206 : 200;
		sp = spool_new(&f, dir);
		feeder_allow(&f, 1000);
		reader_start(&end, &te, &f, sp, SP_SIZE - 100, 100);
		pthread_join(te, NULL);
		assert_int_equal(end.r, -EIO);
		assert_true(lp_err_retryable(&end.err, -EIO));
		assert_int_equal(f.calls, 1);
		/* the bytes that are in are served without a request */
		assert_int_equal(reg_spool_read(sp, buf, 100, 3 * SP_PIECE,
						NULL, NULL, NULL),
				 0);
		assert_memory_equal(buf, f.blob + 3 * SP_PIECE, 100);
		assert_int_equal(f.calls, 1);
		/* the next read that needs more: a new feeder, resumed */
		assert_int_equal(reg_spool_read(sp, buf, 100, SP_SIZE - 100,
						NULL, NULL, NULL),
				 0);
		assert_memory_equal(buf, f.blob + SP_SIZE - 100, 100);
		assert_int_equal(f.calls, 2);
		assert_int_equal(
			sscanf(f.range[1], "Range: bytes=%llu-", &from), 1);
		assert_int_equal(from, 5 * SP_PIECE);
		reg_spool_free(sp);
		rmdir(dir);
		free(end.buf);
		feeder_fini(&f);
		memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
	}
}

/* the whole blob does not match its digest: every read fails, for good */
static void test_spool_mismatch(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct reader end;
	pthread_t te;
	struct feeder f;
	struct reg_spool *sp;
	uint8_t buf[100];
	struct lp_err err;

	(void)state;
	feeder_init(&f, true); /* one byte in the middle wrong */
	sp = spool_new(&f, dir);
	reader_start(&end, &te, &f, sp, SP_SIZE - 100, 100);
	feeder_allow(&f, 1000);
	pthread_join(te, NULL);
	assert_int_equal(end.r, -EBADMSG);
	assert_non_null(strstr(end.err.msg, "does not match its digest"));
	lp_err_clear(&err);
	assert_int_equal(reg_spool_read(sp, buf, 100, 0, NULL, NULL, &err),
			 -EBADMSG);
	assert_int_equal(f.calls, 1); /* not fetched again */
	assert_false(reg_spool_claim(sp));
	reg_spool_free(sp);
	rmdir(dir);
	free(end.buf);
	feeder_fini(&f);
}

/*
 * The owner's verdict hook says another host may serve the blob: the
 * spool is emptied and taken again from byte 0 (the "next host" sends the
 * right bytes); the reader waiting gets them, never the bad ones at the
 * end; a second mismatch is not asked about (it verified).
 */
static bool bad_again(void *ctx)
{
	struct feeder *f = ctx;
	bool again;

	pthread_mutex_lock(&f->lock);
	again = ++f->bads == 1;
	memcpy(f->body, f->blob, SP_SIZE); /* the next host's bytes */
	pthread_mutex_unlock(&f->lock);
	return again;
}

static void test_spool_mismatch_again(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct reader end;
	pthread_t te;
	struct feeder f;
	struct reg_spool *sp;
	uint8_t *all = malloc(SP_SIZE);

	(void)state;
	assert_non_null(all);
	feeder_init(&f, true); /* one byte in the middle wrong */
	sp = spool_new(&f, dir);
	reg_spool_on_bad(sp, bad_again);
	reader_start(&end, &te, &f, sp, SP_SIZE - 100, 100);
	feeder_allow(&f, 1000);
	pthread_join(te, NULL);
	assert_int_equal(end.r, 0);
	assert_memory_equal(end.buf, f.blob + SP_SIZE - 100, 100);
	assert_int_equal(f.calls, 2);
	assert_int_equal(f.bads, 1);
	assert_string_equal(f.range[1], "Range: bytes=0-1048592");
	assert_int_equal(reg_spool_read(sp, all, SP_SIZE, 0, NULL, NULL, NULL),
			 0);
	assert_memory_equal(all, f.blob, SP_SIZE);
	assert_int_equal(f.calls, 2);
	reg_spool_free(sp);
	rmdir(dir);
	free(end.buf);
	free(all);
	feeder_fini(&f);
}

/*
 * A reader that holds bytes of a feed that then fails verification: the
 * bad copy differs from the right one in the tail too (where the reader
 * is), so a buffer made of both feeds would show. A streamed reader told
 * some bytes final gets a retryable -EAGAIN (what it was told stays as it
 * was told, the bad host's word) and its next read the right bytes; a
 * reader that told nobody gets the right bytes, never a mix.
 */
struct told_reader {
	struct reader rd;
	size_t told; /* protected by the feeder's lock */
	int calls; /* progress calls; protected by the feeder's lock */
	bool monotonic; /* each report longer than the one before */
};

static int told_progress(void *arg, size_t done)
{
	struct told_reader *t = arg;

	pthread_mutex_lock(&t->rd.f->lock);
	if (done <= t->told)
		t->monotonic = false;
	t->told = done;
	t->calls++;
	pthread_cond_broadcast(&t->rd.f->cond);
	pthread_mutex_unlock(&t->rd.f->lock);
	return 0;
}

static void *told_main(void *arg)
{
	struct told_reader *t = arg;

	lp_err_clear(&t->rd.err);
	t->rd.r = reg_spool_read(t->rd.sp, t->rd.buf, t->rd.len, t->rd.off,
				 told_progress, t, &t->rd.err);
	pthread_mutex_lock(&t->rd.f->lock);
	t->rd.done = true;
	pthread_mutex_unlock(&t->rd.f->lock);
	return NULL;
}

static void test_spool_mismatch_mid_read(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct told_reader t;
	struct reader plain;
	struct feeder f;
	struct reg_spool *sp;
	struct lp_reg_sink sink;
	pthread_t tt, tp;
	char range[64];
	uint8_t *bad = malloc(SP_SIZE);
	uint8_t buf[100];

	(void)state;
	assert_non_null(bad);
	feeder_init(&f, true);
	f.body[SP_SIZE - 50] ^= 0x5a; /* in the readers' bytes as well */
	memcpy(bad, f.body, SP_SIZE);
	sp = spool_new(&f, dir);
	reg_spool_on_bad(sp, bad_again);
	feeder_allow(&f, 1000);
	/* the bad copy, fed by "a request under way" the test plays */
	assert_true(reg_spool_claim(sp));
	reg_spool_sink(sp, range, sizeof(range), &sink);
	memset(&t, 0, sizeof(t));
	t.monotonic = true;
	t.rd.sp = sp;
	t.rd.off = SP_SIZE - 100;
	t.rd.len = 100;
	t.rd.f = &f;
	t.rd.buf = malloc(100);
	assert_non_null(t.rd.buf);
	assert_int_equal(pthread_create(&tt, NULL, told_main, &t), 0);
	reader_start(&plain, &tp, &f, sp, SP_SIZE - 100, 100);
	assert_int_equal(feeder_play(&f, &sink, 200, 0, 0), 0);
	/* all but the last byte are in and told; the last waits for the
	 * verdict */
	pthread_mutex_lock(&f.lock);
	while (t.told < 99)
		pthread_cond_wait(&f.cond, &f.lock);
	pthread_mutex_unlock(&f.lock);
	usleep(50000); /* and the plain reader has its 99 bytes, likely */
	assert_false(reader_done(&t.rd));
	assert_false(reader_done(&plain));
	/* the verdict: a mismatch, taken again from "the next host" */
	assert_int_equal(reg_spool_release(sp, 0, NULL, NULL), 0);
	pthread_join(tt, NULL);
	pthread_join(tp, NULL);
	assert_int_equal(t.rd.r, -EAGAIN);
	assert_true(lp_err_retryable(&t.rd.err, -EAGAIN));
	assert_non_null(strstr(t.rd.err.msg, "read again"));
	assert_true(t.monotonic);
	assert_int_equal(t.told, 99);
	/* what it was told is what it was told: not rewritten */
	assert_memory_equal(t.rd.buf, bad + SP_SIZE - 100, 99);
	assert_int_equal(plain.r, 0);
	assert_memory_equal(plain.buf, f.blob + SP_SIZE - 100, 100);
	assert_int_equal(f.bads, 1);
	/* read again: the right bytes */
	assert_int_equal(
		reg_spool_read(sp, buf, 100, SP_SIZE - 100, NULL, NULL, NULL),
		0);
	assert_memory_equal(buf, f.blob + SP_SIZE - 100, 100);
	assert_int_equal(f.calls, 1); /* one feeder thread, the good feed */
	reg_spool_free(sp);
	rmdir(dir);
	free(t.rd.buf);
	free(plain.buf);
	free(bad);
	feeder_fini(&f);
}

/* the hook says no other host: the mismatch fails for good */
static bool bad_never(void *ctx)
{
	struct feeder *f = ctx;

	pthread_mutex_lock(&f->lock);
	f->bads++;
	pthread_mutex_unlock(&f->lock);
	return false;
}

static void test_spool_mismatch_no_other(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct reader end;
	pthread_t te;
	struct feeder f;
	struct reg_spool *sp;
	uint8_t buf[100];

	(void)state;
	feeder_init(&f, true);
	sp = spool_new(&f, dir);
	reg_spool_on_bad(sp, bad_never);
	reader_start(&end, &te, &f, sp, SP_SIZE - 100, 100);
	feeder_allow(&f, 1000);
	pthread_join(te, NULL);
	assert_int_equal(end.r, -EBADMSG);
	assert_int_equal(f.bads, 1);
	assert_int_equal(reg_spool_read(sp, buf, 100, 0, NULL, NULL, NULL),
			 -EBADMSG);
	assert_int_equal(f.calls, 1);
	reg_spool_free(sp);
	rmdir(dir);
	free(end.buf);
	feeder_fini(&f);
}

/*
 * A request already under way whose reply is the whole blob claims the
 * spool and feeds it itself: readers wait for it, the feeder thread is
 * never started; a 206 that does not start at the spool's end is refused.
 */
static void test_spool_claim(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct lp_reg_resp resp;
	struct lp_reg_sink sink;
	struct reader end;
	struct feeder f;
	struct reg_spool *sp;
	pthread_t te;
	char range[64];

	(void)state;
	feeder_init(&f, false);
	sp = spool_new(&f, dir);
	assert_true(reg_spool_claim(sp));
	assert_false(reg_spool_claim(sp)); /* one feeder */
	reg_spool_sink(sp, range, sizeof(range), &sink);
	memset(&resp, 0, sizeof(resp));
	resp.status = 206;
	snprintf(resp.content_range, sizeof(resp.content_range),
		 "bytes 10-%d/%d", SP_SIZE - 1, SP_SIZE);
	assert_int_equal(sink.begin(sink.ctx, &resp), -EPROTO);
	reader_start(&end, &te, &f, sp, SP_SIZE - 100, 100);
	feeder_allow(&f, 1000);
	assert_int_equal(feeder_play(&f, &sink, 200, 0, 0), 0);
	assert_int_equal(reg_spool_release(sp, 0, NULL, NULL), 0);
	pthread_join(te, NULL);
	assert_int_equal(end.r, 0);
	assert_memory_equal(end.buf, f.blob + SP_SIZE - 100, 100);
	assert_int_equal(f.calls, 0); /* no feeder thread */
	reg_spool_free(sp);
	rmdir(dir);
	free(end.buf);
	feeder_fini(&f);
}

/* where the file goes: the directory asked for, else $TMPDIR; bounds */
static void test_spool_new(void **state)
{
	char dir[] = "/tmp/lp-spool-test.XXXXXX";
	struct reg_spool *sp = NULL;
	struct lp_digest d;
	struct lp_err err;
	const char *old = getenv("TMPDIR");
	char *saved = old ? strdup(old) : NULL;

	(void)state;
	lp_sha256("", 0, &d);
	assert_non_null(mkdtemp(dir));
	setenv("TMPDIR", dir, 1);
	/* a cache directory not made yet: the temporary one */
	assert_int_equal(reg_spool_new("/nonexistent/lp-spool", &d, 10,
				       test_feed, NULL, &sp, NULL),
			 0);
	reg_spool_free(sp);
	sp = NULL;
	lp_err_clear(&err);
	assert_int_equal(reg_spool_new(dir, &d, LP_REG_SPOOL_MAX + 1, test_feed,
				       NULL, &sp, &err),
			 -EFBIG);
	assert_null(sp);
	assert_non_null(strstr(err.msg, "over the spool's bound"));
	assert_int_equal(rmdir(dir), 0); /* nothing left behind */
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	reg_spool_free(NULL);
}

/* set when a test skipped because LP_ALLOW_SKIP=1 let it (main exits 77) */
static bool skipped_on_request;

/* a component this test needs is missing (@msg names it): skip() when
 * LP_ALLOW_SKIP=1 asks for it, else fail; never a silent pass */
static void skip_or_fail(const char *msg)
{
	const char *allow = getenv("LP_ALLOW_SKIP");

	if (allow && !strcmp(allow, "1")) {
		print_message("SKIP (LP_ALLOW_SKIP=1): %s\n", msg);
		skipped_on_request = true;
		skip();
	}
	fail_msg("%s (a missing component fails the test; LP_ALLOW_SKIP=1 "
		 "makes it a skip)",
		 msg);
}

#define RESERVE_BLOB (2 * 1024 * 1024) /* bytes of each spooled blob */
/* the test disk: the slack, one blob and a little: room for one spool */
#define RESERVE_DISK_MIB (LP_REG_SPOOL_SLACK / (1024 * 1024) + 3)

/*
 * In a child, in a mount namespace of its own: two spools made one after
 * the other on a disk with room for one (plus the slack). The first
 * reserves its blob's bytes, so the second is refused; once the first is
 * freed, the second fits. Exit codes: 0 as expected, 77 no tmpfs could be
 * mounted, else the step that went wrong.
 */
static int reserve_child(void)
{
	char dir[] = "/tmp/lp-spool-reserve.XXXXXX";
	char opts[64];
	struct reg_spool *a = NULL, *b = NULL;
	struct lp_digest d;
	struct lp_err err;
	int r, code = 0;

	lp_sha256("x", 1, &d);
	if (!mkdtemp(dir))
		return 2;
	snprintf(opts, sizeof(opts), "size=%llum",
		 (unsigned long long)RESERVE_DISK_MIB);
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("lp-spool-test", dir, "tmpfs", 0, opts) < 0) {
		rmdir(dir);
		return 77;
	}
	setenv("TMPDIR", dir, 1); /* no other disk to fall back on */
	r = reg_spool_new(dir, &d, RESERVE_BLOB, test_feed, NULL, &a, NULL);
	if (r < 0) {
		code = 3;
		goto out;
	}
	lp_err_clear(&err);
	r = reg_spool_new(dir, &d, RESERVE_BLOB, test_feed, NULL, &b, &err);
	if (r != -ENOSPC || b || !strstr(err.msg, "do not fit")) {
		fprintf(stderr, "second spool: %d (%s)\n", r, err.msg);
		code = 4;
		goto out;
	}
	reg_spool_free(a);
	a = NULL;
	r = reg_spool_new(dir, &d, RESERVE_BLOB, test_feed, NULL, &b, NULL);
	if (r < 0)
		code = 5;
out:
	reg_spool_free(a);
	reg_spool_free(b);
	umount(dir);
	rmdir(dir);
	return code;
}

/* spools made at once cannot together eat the disk's slack */
static void test_spool_reserve(void **state)
{
	pid_t pid;
	int st = 0;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(reserve_child());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip_or_fail("a tmpfs in a private mount namespace (root)");
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_table),
		cmocka_unit_test(test_www_auth),
		cmocka_unit_test(test_token_reply),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_docker_config),
		cmocka_unit_test(test_opts_and_client),
		cmocka_unit_test(test_status_classes),
		cmocka_unit_test(test_reply_check),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_spool_new),
		cmocka_unit_test(test_spool_serves_as_bytes_come),
		cmocka_unit_test(test_spool_resume),
		cmocka_unit_test(test_spool_mismatch),
		cmocka_unit_test(test_spool_mismatch_again),
		cmocka_unit_test(test_spool_mismatch_no_other),
		cmocka_unit_test(test_spool_mismatch_mid_read),
		cmocka_unit_test(test_spool_claim),
		cmocka_unit_test(test_spool_reserve),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	return failed ? 1 : skipped_on_request ? 77 : 0;
}
