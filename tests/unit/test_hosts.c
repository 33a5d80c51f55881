// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for registry/hosts_toml.c and registry/hosts.c: containerd's
 * hosts.toml as containerd's own tests and documentation write it, every
 * field and type, the order of hosts, relative paths, every rejected
 * construct with its line, every LP_HOSTS_* bound, and the resolution of a
 * registry against a real certs.d directory in a temporary directory
 * (port directories, _default, docker.io, Docker-style certificate files,
 * capabilities).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lp_buf.h"
#include "lp_common.h"
#include "lp_hosts.h"

#define CONF_DIR "/etc/containerd/certs.d/docker.io"

/* one host as one line, to compare whole hosts at once */
static void dump(const struct lp_host *h, struct lp_buf *b)
{
	size_t i, j;

	lp_buf_printf(b, "%s %s %s caps=%s%s%s", h->scheme ? h->scheme : "-",
		      h->host ? h->host : "-", h->path ? h->path : "-",
		      h->caps & LP_HOST_CAP_PULL ? "P" : "",
		      h->caps & LP_HOST_CAP_RESOLVE ? "R" : "",
		      h->caps & LP_HOST_CAP_PUSH ? "U" : "");
	for (i = 0; i < h->n_ca; i++)
		lp_buf_printf(b, " ca=%s", h->ca[i]);
	for (i = 0; i < h->n_clients; i++)
		lp_buf_printf(b, " client=%s|%s", h->clients[i].cert,
			      h->clients[i].key ? h->clients[i].key : "-");
	if (h->skip_verify)
		lp_buf_printf(b, " skip_verify");
	for (i = 0; i < h->n_headers; i++) {
		lp_buf_printf(b, " %s:", h->headers[i].name);
		for (j = 0; j < h->headers[i].n_values; j++)
			lp_buf_printf(b, "%s%s", j ? "," : "",
				      h->headers[i].values[j]);
	}
}

static void expect_hosts(const struct lp_hosts *hosts, const char *const *want,
			 size_t n)
{
	struct lp_buf b;
	size_t i;

	lp_buf_init(&b, 1 << 20);
	assert_int_equal(lp_hosts_count(hosts), n);
	for (i = 0; i < n; i++) {
		lp_buf_reset(&b);
		dump(lp_hosts_get(hosts, i), &b);
		assert_string_equal((const char *)b.data, want[i]);
	}
	assert_null(lp_hosts_get(hosts, n));
	lp_buf_release(&b);
}

static struct lp_hosts *parse_len(const char *text, size_t len)
{
	struct lp_hosts *hosts = NULL;
	struct lp_err err;
	int r;

	lp_err_clear(&err);
	r = lp_hosts_parse(text, len, CONF_DIR, CONF_DIR "/hosts.toml", &hosts,
			   &err);
	if (r)
		print_error("parse: %s\n", err.msg);
	assert_int_equal(r, 0);
	assert_non_null(hosts);
	return hosts;
}

static struct lp_hosts *parse(const char *text)
{
	return parse_len(text, strlen(text));
}

static void expect_parse(const char *text, const char *const *want, size_t n)
{
	struct lp_hosts *hosts = parse(text);

	expect_hosts(hosts, want, n);
	lp_hosts_free(hosts);
}

/* rejected with @code and a message holding @msg ("hosts.toml:LINE: ...") */
static void expect_error_len(const char *text, size_t len, int code,
			     const char *msg)
{
	struct lp_hosts *hosts = NULL;
	struct lp_err err;
	int r;

	lp_err_clear(&err);
	r = lp_hosts_parse(text, len, CONF_DIR, "hosts.toml", &hosts, &err);
	if (r != code || !strstr(err.msg, msg))
		print_error("input:\n%.200s\nwant %d \"%s\", got %d \"%s\"\n",
			    text, code, msg, r, err.msg);
	assert_int_equal(r, code);
	assert_non_null(strstr(err.msg, msg));
	assert_int_equal(err.code, code);
	assert_null(hosts);
}

static void expect_error(const char *text, int code, const char *msg)
{
	expect_error_len(text, strlen(text), code, msg);
}

/* ---- containerd's own examples -------------------------------------- */

/* TestParseHostFile of containerd 1.6 remotes/docker/config/hosts_test.go */
static void test_containerd_parse_host_file(void **state)
{
	static const char toml[] =
		"server = \"https://test-default.registry\"\n"
		"ca = \"/etc/path/default\"\n"
		"[header]\n"
		"  x-custom-1 = \"custom header\"\n"
		"\n"
		"[host.\"https://mirror.registry\"]\n"
		"  capabilities = [\"pull\"]\n"
		"  ca = \"/etc/certs/mirror.pem\"\n"
		"  skip_verify = false\n"
		"  [host.\"https://mirror.registry\".header]\n"
		"    x-custom-2 = [\"value1\", \"value2\"]\n"
		"\n"
		"[host.\"https://mirror-bak.registry/us\"]\n"
		"  capabilities = [\"pull\"]\n"
		"  skip_verify = true\n"
		"\n"
		"[host.\"http://mirror.registry\"]\n"
		"  capabilities = [\"pull\"]\n"
		"\n"
		"[host.\"https://test-1.registry\"]\n"
		"  capabilities = [\"pull\", \"resolve\", \"push\"]\n"
		"  ca = [\"/etc/certs/test-1-ca.pem\", "
		"\"/etc/certs/special.pem\"]\n"
		"  client = [[\"/etc/certs/client.cert\", "
		"\"/etc/certs/client.key\"],[\"/etc/certs/client.pem\", "
		"\"\"]]\n"
		"\n"
		"[host.\"https://test-2.registry\"]\n"
		"  client = \"/etc/certs/client.pem\"\n"
		"\n"
		"[host.\"https://test-3.registry\"]\n"
		"  client = [\"/etc/certs/client-1.pem\", "
		"\"/etc/certs/client-2.pem\"]\n"
		"\n"
		"[host.\"https://noncompliantmirror.registry/v2/"
		"namespaceprefix\"]\n"
		"  capabilities = [\"pull\"]\n"
		"  override_path = true\n"
		"\n"
		"[host.\"https://noprefixnoncompliant.registry\"]\n"
		"  override_path = true\n";
	static const char *const want[] = {
		"https mirror.registry /v2 caps=P ca=/etc/certs/mirror.pem "
		"x-custom-2:value1,value2",
		"https mirror-bak.registry /us/v2 caps=P skip_verify",
		"http mirror.registry /v2 caps=P",
		"https test-1.registry /v2 caps=PRU "
		"ca=/etc/certs/test-1-ca.pem ca=/etc/certs/special.pem "
		"client=/etc/certs/client.cert|/etc/certs/client.key "
		"client=/etc/certs/client.pem|-",
		"https test-2.registry /v2 caps=PRU "
		"client=/etc/certs/client.pem|-",
		"https test-3.registry /v2 caps=PRU "
		"client=/etc/certs/client-1.pem|- "
		"client=/etc/certs/client-2.pem|-",
		"https noncompliantmirror.registry /v2/namespaceprefix caps=P",
		"https noprefixnoncompliant.registry  caps=PRU",
		"https test-default.registry /v2 caps=PRU "
		"ca=/etc/path/default x-custom-1:custom header",
	};
	struct lp_hosts *hosts = parse(toml);

	(void)state;
	expect_hosts(hosts, want, LP_ARRAY_SIZE(want));
	assert_int_equal(lp_hosts_get(hosts, 0)->line, 6);
	assert_int_equal(lp_hosts_get(hosts, 8)->line, 1);
	lp_hosts_free(hosts);
}

/* the examples of containerd's docs/hosts.md */
static void test_containerd_docs(void **state)
{
	static const char simple[] =
		"server = \"https://docker.io\"\n"
		"\n"
		"[host.\"https://registry-1.docker.io\"]\n"
		"  capabilities = [\"pull\", \"resolve\"]\n";
	static const char *const want_simple[] = {
		"https registry-1.docker.io /v2 caps=PR",
		"https docker.io /v2 caps=PRU",
	};
	static const char mirror[] =
		"server = \"https://registry-1.docker.io\"    # Exclude this "
		"to not use upstream\n"
		"\n"
		"[host.\"https://public-mirror.example.com\"]\n"
		"  capabilities = [\"pull\"]                  # Requires less "
		"trust, won't resolve tag to digest from this host\n"
		"[host.\"https://docker-mirror.internal\"]\n"
		"  capabilities = [\"pull\", \"resolve\"]\n"
		"  ca = \"docker-mirror.crt\"                 # Or absolute "
		"path /etc/containerd/certs.d/docker.io/docker-mirror.crt\n";
	static const char *const want_mirror[] = {
		"https public-mirror.example.com /v2 caps=P",
		"https docker-mirror.internal /v2 caps=PR "
		"ca=" CONF_DIR "/docker-mirror.crt",
		"https registry-1.docker.io /v2 caps=PRU",
	};
	static const char deflt[] =
		"[host.\"https://registry.example.com\"]\n"
		"  capabilities = [\"pull\", \"resolve\"]\n";
	static const char *const want_deflt[] = {
		"https registry.example.com /v2 caps=PR",
		"- - - caps=PRU",
	};
	static const char only[] =
		"server = \"https://registry.example.com\"\n";
	static const char *const want_only[] = {
		"https registry.example.com /v2 caps=PRU",
	};
	static const char bypass[] =
		"server = \"https://registry-1.docker.io\"\n"
		"\n"
		"[host.\"http://192.168.31.250:5000\"]\n"
		"  capabilities = [\"pull\", \"resolve\", \"push\"]\n"
		"  skip_verify = true\n";
	static const char *const want_bypass[] = {
		"http 192.168.31.250:5000 /v2 caps=PRU skip_verify",
		"https registry-1.docker.io /v2 caps=PRU",
	};
	static const char headers[] =
		"[header]\n"
		"  x-custom-1 = \"custom header\"\n"
		"  x-custom-1-2 = \"another custom header\"\n"
		"  x-custom-3 = [\"custom header part a\",\"part b\"]\n";
	static const char *const want_headers[] = {
		"- - - caps=PRU x-custom-1:custom header "
		"x-custom-1-2:another custom header "
		"x-custom-3:custom header part a,part b",
	};
	/* "recursion is not supported": in TOML these are two hosts */
	static const char nested[] =
		"[host.\"http://mirror.registry\"]\n"
		"  capabilities = [\"pull\"]\n"
		"  [host.\"http://double-mirror.registry\"]\n"
		"    capabilities = [\"pull\"]\n";
	static const char *const want_nested[] = {
		"http mirror.registry /v2 caps=P",
		"http double-mirror.registry /v2 caps=P",
		"- - - caps=PRU",
	};

	(void)state;
	expect_parse(simple, want_simple, LP_ARRAY_SIZE(want_simple));
	expect_parse(mirror, want_mirror, LP_ARRAY_SIZE(want_mirror));
	expect_parse(deflt, want_deflt, LP_ARRAY_SIZE(want_deflt));
	expect_parse(only, want_only, LP_ARRAY_SIZE(want_only));
	expect_parse(bypass, want_bypass, LP_ARRAY_SIZE(want_bypass));
	expect_parse(headers, want_headers, LP_ARRAY_SIZE(want_headers));
	expect_parse(nested, want_nested, LP_ARRAY_SIZE(want_nested));
}

/* ---- fields, types and TOML forms ----------------------------------- */

static void test_fields(void **state)
{
	static const char toml[] =
		"# top comment\n"
		"server = 'http://origin:5000/'   # literal string\n"
		"capabilities = [ ]\n" /* none listed: all, as containerd */
		"skip_verify = true\n"
		"client = [\"a.pem\", [\"b.cert\", \"b.key\"], "
		"[\"/abs/c.pem\", \"\"]]\n"
		"[host.'mirror.test']\n" /* no scheme: https */
		"capabilities = [\"PULL\", \"Resolve\"]\n"
		"ca = [\n"
		"  \"ca/one.pem\",   # comments inside arrays\n"
		"\n"
		"  './two.pem',\n" /* trailing comma */
		"]\n"
		"override_path = false\n"
		"skip_verify = false\n"
		"[host.\"https://[::1]:5443/a/./b/../mirror/\"]\n"
		"capabilities = [\"push\"]\n"
		"[host.\"https://m/v2/\"]\n" /* trailing slash: /v2 */
		"[host.\"https://m2/\"]\n"
		"override_path = true\n";
	static const char *const want[] = {
		"https mirror.test /v2 caps=PR ca=" CONF_DIR
		"/ca/one.pem ca=" CONF_DIR "/two.pem",
		"https [::1]:5443 /a/mirror/v2 caps=U",
		"https m /v2 caps=PRU",
		"https m2  caps=PRU",
		"http origin:5000 /v2 caps=PRU client=" CONF_DIR
		"/a.pem|- client=" CONF_DIR "/b.cert|" CONF_DIR
		"/b.key client=/abs/c.pem|- skip_verify",
	};

	(void)state;
	expect_parse(toml, want, LP_ARRAY_SIZE(want));
}

static void test_strings(void **state)
{
	static const char toml[] =
		"[header]\n"
		"esc = \"q\\\" b\\\\ t\\t u\\u00e9 U\\U0001F600 e\\u20ac\"\n"
		"lit = 'C:\\no\\escapes \"here\"'\n"
		"\"quoted-key\" = \"\"\n"
		"'lit-key' = [\"\"]\n"
		"utf8 = \"caf\xc3\xa9\"\n"
		"empty = []\n"
		"X-Crlf = \"a\"\r\n";
	static const char *const want[] = {
		"- - - caps=PRU esc:q\" b\\ t\t u\xc3\xa9 U\xf0\x9f\x98\x80 "
		"e\xe2\x82\xac lit:C:\\no\\escapes \"here\" quoted-key: "
		"lit-key: utf8:caf\xc3\xa9 empty: X-Crlf:a",
	};

	(void)state;
	expect_parse(toml, want, LP_ARRAY_SIZE(want));
}

/* keys and tables containerd does not know are ignored, as it does */
static void test_ignored(void **state)
{
	static const char toml[] =
		"dial_timeout = \"1s\"\n"
		"n = -12_345\n"
		"z = +0\n"
		"big = 9223372036854775807\n"
		"small = -9223372036854775808\n"
		"flags = [true, false, 1, [2, \"x\"]]\n"
		"[host.\"https://m\"]\n"
		"server = \"ignored: not a host key\"\n"
		"host = \"ignored too\"\n"
		"whatever = 1\n"
		"[host.\"https://m\".tls]\n"
		"a = 1\n"
		"[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
		"config_path = \"/x\"\n"
		"[host]\n"; /* the empty [host] k3s writes */
	static const char *const want[] = {
		"https m /v2 caps=PRU",
		"- - - caps=PRU",
	};

	(void)state;
	expect_parse(toml, want, LP_ARRAY_SIZE(want));
}

/* hosts keep the order of their first [host."URL"...] line */
static void test_order(void **state)
{
	static const char toml[] = "[host.\"https://b\".header]\n"
				   "x = \"1\"\n"
				   "[host.\"https://a\"]\n"
				   "[host.\"https://c\"]\n"
				   "server = \"ignored\"\n"
				   "[host.\"https://b\"]\n"
				   "capabilities = [\"pull\"]\n";
	static const char *const want[] = {
		"https b /v2 caps=P x:1",
		"https a /v2 caps=PRU",
		"https c /v2 caps=PRU",
		"- - - caps=PRU",
	};
	struct lp_hosts *hosts;

	(void)state;
	expect_parse(toml, want, LP_ARRAY_SIZE(want));
	/* the server comes last even when written after the hosts */
	hosts = parse("[host.\"https://m\"]\n[header]\nx = \"y\"\n");
	assert_string_equal(lp_hosts_get(hosts, 0)->host, "m");
	assert_int_equal(lp_hosts_get(hosts, 0)->n_headers, 0);
	assert_int_equal(lp_hosts_get(hosts, 1)->n_headers, 1);
	lp_hosts_free(hosts);
}

static void test_relative_paths(void **state)
{
	static const char toml[] =
		"ca = [\"a.crt\", \"./b.crt\", \"c/../d.crt\", "
		"\"../up.crt\", \"../../../../../../x\", "
		"\"/abs/./kept.crt\", \"e//f.crt\"]\n";
	static const char *const want[] = {
		"- - - caps=PRU ca=" CONF_DIR "/a.crt ca=" CONF_DIR
		"/b.crt ca=" CONF_DIR
		"/d.crt ca=/etc/containerd/certs.d/up.crt ca=/x "
		"ca=/abs/./kept.crt ca=" CONF_DIR "/e/f.crt",
	};
	struct lp_hosts *hosts = NULL;
	struct lp_err err;

	(void)state;
	expect_parse(toml, want, LP_ARRAY_SIZE(want));
	/* a relative directory stays relative (containerd: filepath.Join) */
	lp_err_clear(&err);
	assert_int_equal(lp_hosts_parse("ca = \"../a/./b.crt\"", 19,
					"certs.d/h", "f", &hosts, &err),
			 0);
	assert_string_equal(lp_hosts_get(hosts, 0)->ca[0], "certs.d/a/b.crt");
	lp_hosts_free(hosts);
	assert_int_equal(lp_hosts_parse("ca = \"../../../x\"", 17, "d", "f",
					&hosts, &err),
			 0);
	assert_string_equal(lp_hosts_get(hosts, 0)->ca[0], "../../x");
	lp_hosts_free(hosts);
}

/* ---- what is rejected, with its line -------------------------------- */

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		int code;
		const char *msg;
	} bad[] = {
		/* TOML outside the subset */
		{ "a = \"\"\"multi\nline\"\"\"\n", -EINVAL,
		  ":1: multi-line strings" },
		{ "\n\nx = '''lit'''\n", -EINVAL, ":3: multi-line strings" },
		{ "x = 1.5\n", -EINVAL, ":1: only strings, booleans" },
		{ "x = 1e3\n", -EINVAL, ":1: only strings" },
		{ "x = 0x1f\n", -EINVAL, ":1: only strings" },
		{ "x = 012\n", -EINVAL, ":1: only strings" },
		{ "x = 1__2\n", -EINVAL, ":1: only strings" },
		{ "x = 1_\n", -EINVAL, ":1: only strings" },
		{ "x = inf\n", -EINVAL, ":1: only strings" },
		{ "x = nan\n", -EINVAL, ":1: only strings" },
		{ "x = 1979-05-27\n", -EINVAL, ":1: only strings" },
		{ "x = 07:32:00\n", -EINVAL, ":1: only strings" },
		{ "x = 9223372036854775808\n", -EINVAL, ":1: integer out" },
		{ "x = -9223372036854775809\n", -EINVAL, ":1: integer out" },
		{ "x = { a = 1 }\n", -EINVAL, ":1: inline tables" },
		{ "[[host]]\n", -EINVAL, ":1: arrays of tables" },
		{ "a.b = 1\n", -EINVAL, ":1: dotted keys" },
		{ "x = truth\n", -EINVAL, ":1: invalid value" },
		{ "x = True\n", -EINVAL, ":1: expected a value" },
		{ "x = \n", -EINVAL, ":1: expected a value" },
		{ "x\n", -EINVAL, ":1: expected '='" },
		{ "= 1\n", -EINVAL, ":1: expected a key" },
		{ "x = 1 2\n", -EINVAL, ":1: unexpected '2'" },
		{ "x = \"a\" y = 2\n", -EINVAL, ":1: unexpected 'y'" },
		{ "x = \"open\n", -EINVAL, ":1: unterminated string" },
		{ "x = 'open\n", -EINVAL, ":1: unterminated string" },
		{ "x = \"\\x41\"\n", -EINVAL, ":1: invalid escape" },
		{ "x = \"\\u12\"\n", -EINVAL, ":1: \\u needs 4 hex" },
		{ "x = \"\\ud800\"\n", -EINVAL, ":1: escape is not a Unicode" },
		{ "x = \"\\U00110000\"\n", -EINVAL, ":1: escape is not" },
		{ "x = \"\\u0000\"\n", -EINVAL, ":1: NUL in a string" },
		{ "x = [1 2]\n", -EINVAL, ":1: expected ',' or ']'" },
		{ "x = [1,\n2\n", -EINVAL, ":3: expected ',' or ']'" },
		{ "x = [,]\n", -EINVAL, ":1: expected a value" },
		{ "[host\n", -EINVAL, ":1: expected '.' or ']'" },
		{ "[]\n", -EINVAL, ":1: expected a key" },
		{ "[a] x = 1\n", -EINVAL, ":1: unexpected 'x'" },
		{ "x = 1\nx = 2\n", -EINVAL, ":2: key \"x\" defined twice" },
		{ "[a]\n[a]\n", -EINVAL, ":2: table defined twice" },
		{ "[host.\"https://m\"]\nca = \"a\"\n[host.\"https://m\"]\n",
		  -EINVAL, ":3: table defined twice" },
		{ "a = 1\n[a.b]\n", -EINVAL, ":2: \"a\" is already a key" },
		{ "[a.b]\n[a]\nb = 1\n", -EINVAL,
		  ":3: \"b\" is already a table" },
		{ "x = \"a\"\r\r\n", -EINVAL, ":1: control character 0x0d" },
		{ "x = \"a\x01\"\n", -EINVAL, ":1: control character 0x01" },
		{ "\n# \x7f\n", -EINVAL, ":2: control character 0x7f" },
		{ "x = \"\xc3\x28\"\n", -EINVAL, ":1: not UTF-8" },
		{ "x = \"\xed\xa0\x80\"\n", -EINVAL, ":1: not UTF-8" },
		{ "x = \"\xc0\xaf\"\n", -EINVAL, ":1: not UTF-8" },
		{ "x = \"\xf0\x9f\x98\"\n", -EINVAL, ":1: not UTF-8" },
		/* values of the wrong type for what containerd knows */
		{ "server = 1\n", -EINVAL, ":1: server must be a string" },
		{ "\ncapabilities = \"pull\"\n", -EINVAL,
		  ":2: capabilities must be an array" },
		{ "capabilities = [\"pull\",\n 1]\n", -EINVAL,
		  ":2: capabilities must be an array" },
		{ "capabilities = [\"pull\", \"fetch\"]\n", -EINVAL,
		  ":1: unknown capability \"fetch\"" },
		{ "ca = true\n", -EINVAL, ":1: ca must be a path" },
		{ "ca = [\"a\", [\"b\"]]\n", -EINVAL, ":1: ca must be a path" },
		{ "ca = \"\"\n", -EINVAL, ":1: ca: empty path" },
		{ "client = 1\n", -EINVAL, ":1: client must be" },
		{ "client = [[\"a\", \"b\", \"c\"]]\n", -EINVAL,
		  ":1: client must be" },
		{ "client = [[\"a\"]]\n", -EINVAL, ":1: client must be" },
		{ "client = [[\"a\", 1]]\n", -EINVAL, ":1: client must be" },
		{ "client = [[\"\", \"k\"]]\n", -EINVAL, ":1: client: empty" },
		{ "skip_verify = \"yes\"\n", -EINVAL,
		  ":1: skip_verify must be true or false" },
		{ "[host.m]\noverride_path = 1\n", -EINVAL,
		  ":2: override_path must be" },
		{ "header = \"x\"\n", -EINVAL, ":1: header must be a table" },
		{ "host = [\"https://m\"]\n", -EINVAL,
		  ":1: host must be a table" },
		{ "[host]\nm = 1\n", -EINVAL, ":2: [host] holds only" },
		{ "[header.x]\n", -EINVAL, ":1: header values are strings" },
		{ "[header]\nx = 1\n", -EINVAL,
		  ":2: header x must be a string" },
		{ "[header]\nx = [\"a\", true]\n", -EINVAL,
		  ":2: header x must be a string" },
		{ "[header]\n\"a b\" = \"x\"\n", -EINVAL,
		  ":2: header \"a b\": not a valid header name" },
		{ "[header]\n\"\" = \"x\"\n", -EINVAL,
		  ":2: header \"\": not a" },
		{ "[header]\nx = \"a\\r\\nEvil: 1\"\n", -EINVAL,
		  ":2: header x: a control character" },
		{ "[host.\"https://m\"]\nproxy = \"http://p:3128\"\n",
		  -EOPNOTSUPP, ":2: proxy is not supported" },
		/* host URLs */
		{ "[host.\"\"]\n", -EINVAL, ":1: [host.\"\"]: no URL" },
		{ "\n[host.\"ftp://m\"]\n", -EINVAL,
		  ":2: \"ftp://m\": only http:// and https://" },
		{ "server = \"https://user@m\"\n", -EINVAL,
		  ":1: \"https://user@m\": not a host[:port]" },
		{ "server = \"https://m?x=1\"\n", -EINVAL,
		  ":1: \"https://m?x=1\"" },
		{ "server = \"https://m:0\"\n", -EINVAL, "not a host[:port]" },
		{ "server = \"https://m:65536\"\n", -EINVAL, "not a host" },
		{ "server = \"https://m:\"\n", -EINVAL, "not a host" },
		{ "server = \"https://\"\n", -EINVAL, "not a host" },
		{ "server = \"https://[zz]:1\"\n", -EINVAL, "not a host" },
		{ "server = \"https://[::1\"\n", -EINVAL, "not a host" },
		{ "server = \"https:///v2\"\n", -EINVAL, "not a host" },
		{ "server = \"https://m/a b\"\n", -EINVAL, "' ' in the path" },
		{ "server = \"https://m/a#f\"\n", -EINVAL, "'#' in the path" },
		{ "server = \"https://m/%41\"\n", -EINVAL, "'%' in the path" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < LP_ARRAY_SIZE(bad); i++)
		expect_error(bad[i].text, bad[i].code, bad[i].msg);
	/* a NUL byte is a control character, not the end of the text */
	expect_error_len("x = 1\n\0y = 2\n", 13, -EINVAL,
			 ":2: control character 0x00");
	/* the file name starts the message */
	expect_error("x = ", -EINVAL, "hosts.toml:1: expected a value");
}

/* ---- every bound ---------------------------------------------------- */

/* @head, then @n times @pre NUMBER @post, then @tail */
static char *repeat(const char *head, const char *pre, const char *post,
		    size_t n, const char *tail)
{
	struct lp_buf b;
	size_t i;

	lp_buf_init(&b, 16 << 20);
	lp_buf_printf(&b, "%s", head);
	for (i = 0; i < n; i++)
		lp_buf_printf(&b, "%s%zu%s", pre, i, post);
	lp_buf_printf(&b, "%s", tail);
	return (char *)lp_buf_steal(&b, NULL);
}

/* @make(n) parses at n == @max and fails with -EFBIG naming @bound at +1 */
static void expect_bound(char *(*make)(size_t n), size_t max, const char *bound)
{
	char *s = make(max);

	lp_hosts_free(parse(s));
	free(s);
	s = make(max + 1);
	expect_error(s, -EFBIG, bound);
	free(s);
}

static char *make_file(size_t n)
{
	char *s = malloc(n + 1);

	/* comment lines of 99 '#' and a newline; the text ends in one */
	for (size_t i = 0; i < n; i++)
		s[i] = (i % 100 == 99) ? '\n' : '#';
	s[n] = '\0';
	return s;
}

static char *make_line(size_t n)
{
	char *s = malloc(n + 8);

	memset(s, '#', n);
	memcpy(s + n, "\nx = 1\n", 8);
	return s;
}

static char *make_hosts(size_t n)
{
	/* the top level is one of the LP_HOSTS_MAX */
	return repeat("", "[host.\"https://m", "\"]\n", n - 1, "");
}

static char *make_headers(size_t n)
{
	return repeat("[host.m.header]\n", "h", " = \"v\"\n", n, "");
}

static char *make_array(size_t n)
{
	return repeat("ca = [", "\"c", "\",", n, "]\n");
}

static char *make_string(size_t n)
{
	char *s = malloc(n + 16);

	memcpy(s, "ca = \"", 6);
	memset(s + 6, 'a', n);
	strcpy(s + 6 + n, "\"\n");
	return s;
}

static char *make_key(size_t n)
{
	char *s = malloc(n + 16);

	memset(s, 'k', n);
	strcpy(s + n, " = 1\n");
	return s;
}

static char *make_quoted_key(size_t n)
{
	char *s = malloc(n + 16);

	s[0] = '"';
	memset(s + 1, 'k', n);
	strcpy(s + 1 + n, "\" = 1\n");
	return s;
}

static char *make_tables(size_t n)
{
	/* the top level is a table too */
	return repeat("", "[t", "]\n", n - 1, "");
}

static char *make_keys(size_t n)
{
	/* in several tables: the bound is per file */
	return repeat("", "[t", "]\na=1\nb=2\nc=3\nd=4\ne=5\nf=6\ng=7\nh=8\n",
		      n / 8, n % 8 ? "z = 9\n" : "");
}

static char *make_depth(size_t n)
{
	return repeat("[a", ".b", "", n - 1, "]\n");
}

static char *make_nest(size_t n)
{
	struct lp_buf b;
	size_t i;

	lp_buf_init(&b, 1 << 20);
	lp_buf_printf(&b, "x = ");
	for (i = 0; i < n; i++)
		lp_buf_printf(&b, "[");
	for (i = 0; i < n; i++)
		lp_buf_printf(&b, "]");
	lp_buf_printf(&b, "\n");
	return (char *)lp_buf_steal(&b, NULL);
}

static void test_bounds(void **state)
{
	(void)state;
	expect_bound(make_file, LP_HOSTS_FILE_MAX, "LP_HOSTS_FILE_MAX");
	expect_bound(make_line, LP_HOSTS_LINE_MAX,
		     ":1: line over "
		     "LP_HOSTS_LINE_MAX");
	expect_bound(make_hosts, LP_HOSTS_MAX, "LP_HOSTS_MAX");
	expect_bound(make_headers, LP_HOSTS_HEADERS_MAX,
		     "LP_HOSTS_HEADERS_MAX");
	expect_bound(make_array, LP_HOSTS_ARRAY_MAX, "LP_HOSTS_ARRAY_MAX");
	expect_bound(make_string, LP_HOSTS_STRING_MAX, "LP_HOSTS_STRING_MAX");
	expect_bound(make_key, LP_HOSTS_KEY_MAX, "LP_HOSTS_KEY_MAX");
	expect_bound(make_quoted_key, LP_HOSTS_KEY_MAX, "LP_HOSTS_KEY_MAX");
	expect_bound(make_tables, LP_HOSTS_TABLES_MAX, "LP_HOSTS_TABLES_MAX");
	expect_bound(make_keys, LP_HOSTS_KEYS_MAX, "LP_HOSTS_KEYS_MAX");
	expect_bound(make_depth, LP_HOSTS_DEPTH_MAX, "LP_HOSTS_DEPTH_MAX");
	expect_bound(make_nest, LP_HOSTS_NEST_MAX, "LP_HOSTS_NEST_MAX");
	/* a relative path joined to a long directory: LP_HOSTS_PATH_MAX */
	{
		char dir[LP_HOSTS_PATH_MAX];
		struct lp_hosts *hosts = NULL;
		struct lp_err err;

		memset(dir, 'd', sizeof(dir));
		dir[0] = '/';
		dir[LP_HOSTS_PATH_MAX - 1 - 6] = '\0'; /* "/c.pem" fits */
		assert_int_equal(lp_hosts_parse("ca = \"c.pem\"", 12, dir, "f",
						&hosts, &err),
				 0);
		assert_int_equal(strlen(lp_hosts_get(hosts, 0)->ca[0]),
				 LP_HOSTS_PATH_MAX - 1);
		lp_hosts_free(hosts);
		lp_err_clear(&err);
		assert_int_equal(lp_hosts_parse("ca = \"cc.pem\"", 13, dir, "f",
						&hosts, &err),
				 -ENAMETOOLONG);
		assert_non_null(strstr(err.msg, "f:1: ca: path over "
						"LP_HOSTS_PATH_MAX"));
	}
}

/* the fuzz corpus: bad_* files are rejected with a reason, others parse */
static void test_corpus(void **state)
{
	const char *dir = LP_SOURCE_DIR "/tests/fuzz/corpus/hosts_toml";
	struct dirent *de;
	size_t good = 0, bad = 0;
	DIR *d;

	(void)state;
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		struct lp_hosts *hosts = NULL;
		char path[512], text[LP_HOSTS_FILE_MAX];
		struct lp_err err;
		size_t len;
		FILE *f;
		int r;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		len = fread(text, 1, sizeof(text), f);
		fclose(f);
		lp_err_clear(&err);
		r = lp_hosts_parse(text, len, CONF_DIR, de->d_name, &hosts,
				   &err);
		if (!strncmp(de->d_name, "bad_", 4)) {
			if (r == 0)
				print_error("%s parsed\n", de->d_name);
			assert_true(r < 0);
			assert_non_null(strstr(err.msg, de->d_name));
			bad++;
		} else {
			if (r < 0)
				print_error("%s\n", err.msg);
			assert_int_equal(r, 0);
			good++;
		}
		lp_hosts_free(hosts);
	}
	closedir(d);
	assert_true(good >= 5 && bad >= 20);
}

/* ---- resolving against a certs.d directory -------------------------- */

struct tmp {
	char root[64];
};

static void put(const struct tmp *t, const char *rel, const char *text)
{
	char path[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	for (slash = strchr(path + strlen(t->root) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	if (!text) {
		assert_int_equal(mkdir(path, 0755), 0);
		return;
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/lp-test-hosts-XXXXXX");
	if (!mkdtemp(t->root)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static struct lp_hosts *resolve(const struct tmp *t, const char *registry,
				const struct lp_reg_opts *o, unsigned int need)
{
	struct lp_hosts *hosts = NULL;
	struct lp_err err;
	int r;

	lp_err_clear(&err);
	r = lp_hosts_resolve(t->root, registry, o, need, &hosts, &err);
	if (r)
		print_error("resolve %s: %s\n", registry, err.msg);
	assert_int_equal(r, 0);
	return hosts;
}

static void expect_resolve(const struct tmp *t, const char *registry,
			   const struct lp_reg_opts *o, unsigned int need,
			   const char *const *want, size_t n)
{
	struct lp_hosts *hosts = resolve(t, registry, o, need);

	expect_hosts(hosts, want, n);
	lp_hosts_free(hosts);
}

/* no configuration: the registry itself, as containerd's defaults */
static void test_resolve_defaults(void **state)
{
	static const char *const hub[] = {
		"https registry-1.docker.io /v2 caps=PRU"
	};
	static const char *const plain[] = {
		"https reg.test:5000 /v2 caps=PRU"
	};
	static const char *const local[] = {
		"http localhost:5000 /v2 caps=PRU skip_verify"
	};
	static const char *const local_tls[] = {
		"https 127.0.0.1:5000 /v2 caps=PRU"
	};
	static const char *const insecure[] = {
		"http reg.test:5000 /v2 caps=PRU"
	};
	static const char *const v6[] = {
		"http [::1]:5000 /v2 caps=PRU skip_verify"
	};
	static const char *const list[] = { "reg.test:5000", NULL };
	struct tmp *t = *state;
	struct lp_reg_opts o;

	expect_resolve(t, "docker.io", NULL, 0, hub, 1);
	expect_resolve(t, "registry-1.docker.io", NULL, LP_HOST_CAP_PULL, hub,
		       1);
	expect_resolve(t, "index.docker.io", NULL, 0, hub, 1);
	expect_resolve(t, "reg.test:5000", NULL, 0, plain, 1);
	expect_resolve(t, "localhost:5000", NULL, 0, local, 1);
	expect_resolve(t, "[::1]:5000", NULL, 0, v6, 1);
	lp_reg_opts_init(&o);
	o.loopback_plain_http = false;
	expect_resolve(t, "127.0.0.1:5000", &o, 0, local_tls, 1);
	o.insecure_hosts = list;
	expect_resolve(t, "reg.test:5000", &o, 0, insecure, 1);
	/* a config directory that does not exist is no configuration */
	{
		struct lp_hosts *hosts = NULL;

		assert_int_equal(lp_hosts_resolve("/nonexistent/certs.d",
						  "reg.test:5000", NULL, 0,
						  &hosts, NULL),
				 0);
		expect_hosts(hosts, plain, 1);
		lp_hosts_free(hosts);
	}
}

static void test_resolve_dirs(void **state)
{
	static const char *const port_dir[] = {
		"https from-port-dir /v2 caps=PRU"
	};
	static const char *const colon_dir[] = {
		"https from-colon-dir /v2 caps=PRU"
	};
	static const char *const deflt[] = {
		"https default-mirror /v2 caps=PR",
		"https other.test /v2 caps=PRU",
	};
	static const char *const deflt_port[] = {
		"https default-mirror /v2 caps=PR",
		"http localhost:7000 /v2 caps=PRU skip_verify",
	};
	static const char *const hub[] = {
		"https hub-mirror /v2 caps=P",
		NULL, /* with the temporary directory: below */
	};
	static const char *const exact[] = { "https exact-mirror /v2 caps=PRU",
					     "https exact.test /v2 caps=PRU" };
	struct tmp *t = *state;
	char want_hub_ca[256];
	const char *want_hub[2];

	put(t, "a.test_5000_/hosts.toml", "server = \"from-port-dir\"\n");
	put(t, "a.test:5000/hosts.toml", "server = \"from-colon-dir\"\n");
	put(t, "b.test:5000/hosts.toml", "server = \"from-colon-dir\"\n");
	put(t, "_default/hosts.toml",
	    "[host.\"https://default-mirror\"]\n"
	    "capabilities = [\"pull\", \"resolve\"]\n");
	put(t, "exact.test/hosts.toml", "[host.\"exact-mirror\"]\n");
	put(t, "docker.io/hosts.toml",
	    "ca = \"ca.pem\"\n"
	    "[host.\"https://hub-mirror\"]\n"
	    "capabilities = [\"pull\"]\n");
	/* HOST_PORT_ first, then HOST:PORT (containerd's hostPaths) */
	expect_resolve(t, "a.test:5000", NULL, 0, port_dir, 1);
	expect_resolve(t, "b.test:5000", NULL, 0, colon_dir, 1);
	/* _default when nothing matches, the registry itself still last */
	expect_resolve(t, "other.test", NULL, 0, deflt, 2);
	expect_resolve(t, "localhost:7000", NULL, 0, deflt_port, 2);
	expect_resolve(t, "exact.test", NULL, 0, exact, 2);
	/* docker.io's directory for every name of Docker Hub; the top
	 * level's ca goes with the default host */
	snprintf(
		want_hub_ca, sizeof(want_hub_ca),
		"https registry-1.docker.io /v2 caps=PRU ca=%s/docker.io/ca.pem",
		t->root);
	want_hub[0] = hub[0];
	want_hub[1] = want_hub_ca;
	expect_resolve(t, "registry-1.docker.io", NULL, 0, want_hub, 2);
	expect_resolve(t, "docker.io", NULL, 0, want_hub, 2);
}

static void test_resolve_caps(void **state)
{
	static const char *const pull[] = {
		"https pull-only /v2 caps=P",
		"https both /v2 caps=PR",
		"https origin /v2 caps=PRU",
	};
	static const char *const res[] = {
		"https both /v2 caps=PR",
		"https origin /v2 caps=PRU",
	};
	static const char *const push[] = { "https origin /v2 caps=PRU" };
	struct tmp *t = *state;
	struct lp_hosts *hosts = NULL;
	struct lp_err err;

	put(t, "caps.test/hosts.toml",
	    "server = \"https://origin\"\n"
	    "[host.\"https://pull-only\"]\n"
	    "capabilities = [\"pull\"]\n"
	    "[host.\"https://both\"]\n"
	    "capabilities = [\"pull\", \"resolve\"]\n");
	expect_resolve(t, "caps.test", NULL, LP_HOST_CAP_PULL, pull, 3);
	expect_resolve(t, "caps.test", NULL, 0, pull, 3);
	expect_resolve(t, "caps.test", NULL, LP_HOST_CAP_RESOLVE, res, 2);
	expect_resolve(t, "caps.test", NULL,
		       LP_HOST_CAP_PULL | LP_HOST_CAP_RESOLVE, res, 2);
	expect_resolve(t, "caps.test", NULL, LP_HOST_CAP_PUSH, push, 1);
	/* nothing left for what is asked */
	put(t, "nores.test/hosts.toml",
	    "server = \"https://o\"\n"
	    "capabilities = [\"pull\"]\n");
	lp_err_clear(&err);
	assert_int_equal(lp_hosts_resolve(t->root, "nores.test", NULL,
					  LP_HOST_CAP_RESOLVE, &hosts, &err),
			 -ENOENT);
	assert_null(hosts);
	assert_non_null(strstr(err.msg, "nores.test"));
	/* without a server the top level's capabilities do not apply */
	put(t, "noserver.test/hosts.toml", "capabilities = [\"pull\"]\n");
	hosts = resolve(t, "noserver.test", NULL, LP_HOST_CAP_RESOLVE);
	assert_int_equal(lp_hosts_get(hosts, 0)->caps, LP_HOST_CAP_ALL);
	lp_hosts_free(hosts);
}

/* no (or an empty) hosts.toml: Docker's *.crt, *.cert and *.key files */
static void test_resolve_cert_files(void **state)
{
	struct tmp *t = *state;
	struct lp_hosts *hosts;
	const struct lp_host *h;
	char p[256];

	put(t, "certs.test/b.crt", "x");
	put(t, "certs.test/a.crt", "x");
	put(t, "certs.test/client.cert", "x");
	put(t, "certs.test/client.key", "x");
	put(t, "certs.test/lone.cert", "x");
	put(t, "certs.test/notes.txt", "x");
	put(t, "certs.test/dir.crt", NULL);
	hosts = resolve(t, "certs.test", NULL, 0);
	assert_int_equal(lp_hosts_count(hosts), 1);
	h = lp_hosts_get(hosts, 0);
	assert_string_equal(h->host, "certs.test");
	assert_int_equal(h->n_ca, 2);
	snprintf(p, sizeof(p), "%s/certs.test/a.crt", t->root);
	assert_string_equal(h->ca[0], p);
	snprintf(p, sizeof(p), "%s/certs.test/b.crt", t->root);
	assert_string_equal(h->ca[1], p);
	assert_int_equal(h->n_clients, 2);
	snprintf(p, sizeof(p), "%s/certs.test/client.cert", t->root);
	assert_string_equal(h->clients[0].cert, p);
	snprintf(p, sizeof(p), "%s/certs.test/client.key", t->root);
	assert_string_equal(h->clients[0].key, p);
	snprintf(p, sizeof(p), "%s/certs.test/lone.cert", t->root);
	assert_string_equal(h->clients[1].cert, p);
	assert_null(h->clients[1].key);
	lp_hosts_free(hosts);
	/* an empty hosts.toml is no hosts.toml (containerd: len(b) == 0) */
	put(t, "empty.test/hosts.toml", "");
	put(t, "empty.test/x.crt", "x");
	hosts = resolve(t, "empty.test", NULL, 0);
	assert_int_equal(lp_hosts_get(hosts, 0)->n_ca, 1);
	lp_hosts_free(hosts);
}

static void test_resolve_errors(void **state)
{
	static const char *const bad_names[] = {
		"", ".", "..", "a/b", "../x", "a b", "a\nb",
	};
	struct tmp *t = *state;
	struct lp_hosts *hosts = NULL;
	struct lp_err err;
	char big[LP_REG_HOST_MAX + 1];
	char *s;
	size_t i;

	for (i = 0; i < LP_ARRAY_SIZE(bad_names); i++)
		assert_int_equal(lp_hosts_resolve(t->root, bad_names[i], NULL,
						  0, &hosts, NULL),
				 -EINVAL);
	assert_int_equal(lp_hosts_resolve(NULL, "r", NULL, 0, &hosts, NULL),
			 -EINVAL);
	assert_int_equal(lp_hosts_resolve("", "r", NULL, 0, &hosts, NULL),
			 -EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(lp_hosts_resolve(t->root, big, NULL, 0, &hosts, NULL),
			 -EINVAL);
	/* a parse error names the file and line: not silently skipped */
	put(t, "broken.test/hosts.toml",
	    "server = \"https://o\"\n"
	    "[host.\"https://m\"]\n"
	    "capabilities = [\"pull\", \"bad\"]\n");
	lp_err_clear(&err);
	assert_int_equal(
		lp_hosts_resolve(t->root, "broken.test", NULL, 0, &hosts, &err),
		-EINVAL);
	assert_non_null(strstr(err.msg, "/broken.test/hosts.toml:3: unknown "
					"capability \"bad\""));
	/* too big a file, before reading it */
	s = make_file(LP_HOSTS_FILE_MAX + 1);
	put(t, "huge.test/hosts.toml", s);
	free(s);
	lp_err_clear(&err);
	assert_int_equal(
		lp_hosts_resolve(t->root, "huge.test", NULL, 0, &hosts, &err),
		-EFBIG);
	assert_non_null(strstr(err.msg, "LP_HOSTS_FILE_MAX"));
	/* hosts.toml that is a directory */
	put(t, "dir.test/hosts.toml", NULL);
	assert_int_equal(
		lp_hosts_resolve(t->root, "dir.test", NULL, 0, &hosts, NULL),
		-EINVAL);
	/* a registry "directory" that is a file: containerd errors too */
	put(t, "file.test", "x");
	assert_int_equal(
		lp_hosts_resolve(t->root, "file.test", NULL, 0, &hosts, NULL),
		-ENOTDIR);
	/* too many certificate files */
	for (i = 0; i <= LP_HOSTS_CERT_FILES_MAX; i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "many.test/c%zu.crt", i);
		put(t, rel, "x");
	}
	lp_err_clear(&err);
	assert_int_equal(
		lp_hosts_resolve(t->root, "many.test", NULL, 0, &hosts, &err),
		-EFBIG);
	assert_non_null(strstr(err.msg, "LP_HOSTS_CERT_FILES_MAX"));
	assert_null(hosts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_containerd_parse_host_file),
		cmocka_unit_test(test_containerd_docs),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test_setup_teardown(test_resolve_defaults,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_resolve_dirs, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_resolve_caps, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_resolve_cert_files,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_resolve_errors, tmp_setup,
						tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
