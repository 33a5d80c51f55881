// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of registry/endpoints.c: the host list a registry's requests
 * go to, made from a real certs.d directory in a temporary directory: the
 * order and URLs (path, override_path, ?ns= for hosts other than the
 * registry), header lines, the CA bundle (base + host CA files), errors for
 * unreadable CA and client files, the choice of the next host (capability,
 * down, skipped per blob, the last one never passed over) and the verdict
 * on an exchange's outcome.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lp_common.h"
#include "lp_hosts.h"
#include "lp_registry.h"
#include "reg_int.h"

struct fx {
	char dir[64];
};

static void put(const char *dir, const char *name, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char p[512];

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/lp-endpoints.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(p, sizeof(p), "%s/reg.test:5000", fx->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	put(p, "hosts.toml",
	    "server = \"https://reg.test:5000\"\n"
	    "[host.\"http://mirror.test:5001\"]\n"
	    "  capabilities = [\"pull\"]\n"
	    "  [host.\"http://mirror.test:5001\".header]\n"
	    "    x-a = [\"1\", \"2\"]\n"
	    "[host.\"https://cdn.test/v2/up\"]\n"
	    "  override_path = true\n"
	    "  ca = \"ca.crt\"\n"
	    "  client = [[\"c.crt\", \"c.key\"]]\n");
	put(p, "ca.crt", "HOST CA\n");
	put(p, "c.crt", "CERT\n");
	put(p, "c.key", "KEY\n");
	put(fx->dir, "base.pem", "BASE\n");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static struct reg_endpoints *make(struct fx *fx, const char *registry,
				  bool config, int want)
{
	struct reg_endpoints *eps = NULL;
	struct lp_reg_opts o;
	struct lp_err err = { 0 };
	char base[128];

	lp_reg_opts_init(&o);
	snprintf(base, sizeof(base), "%s/base.pem", fx->dir);
	assert_int_equal(reg_endpoints_new(config ? fx->dir : NULL, registry,
					   &o, base, &eps, &err),
			 want);
	if (want < 0)
		assert_true(err.msg[0] != '\0');
	return eps;
}

static void test_list(void **state)
{
	struct fx *fx = *state;
	struct reg_endpoints *eps = make(fx, "reg.test:5000", true, 0);
	struct lp_reg_ref ref, epref;
	char url[LP_REG_URL_MAX];

	assert_int_equal(lp_reg_ref_parse("reg.test:5000/app/x:v1", &ref), 0);
	assert_int_equal(eps->n, 3);
	/* file order, the server last */
	assert_string_equal(eps->v[0].host, "mirror.test:5001");
	assert_string_equal(eps->v[1].host, "cdn.test");
	assert_string_equal(eps->v[2].host, "reg.test:5000");
	assert_true(eps->v[0].mirror && eps->v[1].mirror);
	assert_false(eps->v[2].mirror);
	assert_int_equal(eps->v[0].caps, LP_HOST_CAP_PULL);
	/* URLs: /v2, override_path, ?ns= for a host other than the registry */
	assert_int_equal(
		reg_ep_url(&eps->v[0], &ref, "blobs/x", url, sizeof(url)), 0);
	assert_string_equal(
		url,
		"http://mirror.test:5001/v2/app/x/blobs/x?ns=reg.test:5000");
	assert_int_equal(
		reg_ep_url(&eps->v[1], &ref, "manifests/v1", url, sizeof(url)),
		0);
	assert_string_equal(
		url,
		"https://cdn.test/v2/up/app/x/manifests/v1?ns=reg.test:5000");
	assert_int_equal(
		reg_ep_url(&eps->v[2], &ref, "blobs/x", url, sizeof(url)), 0);
	assert_string_equal(url, "https://reg.test:5000/v2/app/x/blobs/x");
	assert_int_equal(reg_ep_url(&eps->v[2], &ref, "blobs/x", url, 20),
			 -ENAMETOOLONG);
	/* auth goes by the host spoken to */
	reg_ep_ref(&eps->v[0], &ref, &epref);
	assert_string_equal(epref.host, "mirror.test:5001");
	assert_string_equal(epref.repo, "app/x");
	/* headers, one line per value, in order */
	assert_non_null(eps->v[0].headers);
	assert_string_equal(eps->v[0].headers[0], "x-a: 1");
	assert_string_equal(eps->v[0].headers[1], "x-a: 2");
	assert_null(eps->v[0].headers[2]);
	/* CA bundle: the base, then the host's files */
	assert_null(eps->v[0].ca_blob);
	assert_non_null(eps->v[1].ca_blob);
	assert_int_equal(eps->v[1].ca_len, strlen("BASE\n\nHOST CA\n\n"));
	assert_memory_equal(eps->v[1].ca_blob, "BASE\n\nHOST CA\n\n",
			    eps->v[1].ca_len);
	/* what a failed TLS exchange says was offered */
	reg_ep_tls_desc(&eps->v[1], url, sizeof(url));
	assert_non_null(strstr(url, "; TLS to cdn.test: client certificate "));
	assert_non_null(
		strstr(url, "/c.crt, 1 CA file(s) besides the system's"));
	reg_ep_tls_desc(&eps->v[0], url, sizeof(url));
	assert_string_equal(url, "");
	reg_endpoints_free(eps);
}

static void test_no_config(void **state)
{
	struct fx *fx = *state;
	struct reg_endpoints *eps;
	struct lp_reg_ref ref;
	char url[LP_REG_URL_MAX];

	/* no directory: the registry itself, plain HTTP for loopback */
	eps = make(fx, "127.0.0.1:5000", false, 0);
	assert_int_equal(eps->n, 1);
	assert_false(eps->v[0].mirror);
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:5000/a:v", &ref), 0);
	assert_int_equal(
		reg_ep_url(&eps->v[0], &ref, "manifests/v", url, sizeof(url)),
		0);
	assert_string_equal(url, "http://127.0.0.1:5000/v2/a/manifests/v");
	reg_endpoints_free(eps);
	/* a directory without an entry for the registry: the same */
	eps = make(fx, "other.test", true, 0);
	assert_int_equal(eps->n, 1);
	assert_string_equal(eps->v[0].scheme, "https");
	assert_string_equal(eps->v[0].host, "other.test");
	assert_false(eps->v[0].mirror);
	reg_endpoints_free(eps);
}

static void test_bad_files(void **state)
{
	struct fx *fx = *state;
	char p[512];

	snprintf(p, sizeof(p), "%s/reg.test:5000/ca.crt", fx->dir);
	assert_int_equal(unlink(p), 0);
	make(fx, "reg.test:5000", true, -ENOENT);
	put(fx->dir, "reg.test:5000/ca.crt", "HOST CA\n");
	snprintf(p, sizeof(p), "%s/reg.test:5000/c.key", fx->dir);
	assert_int_equal(unlink(p), 0);
	make(fx, "reg.test:5000", true, -ENOENT);
	put(fx->dir, "reg.test:5000/c.key", "KEY\n");
	put(fx->dir, "reg.test:5000/hosts.toml", "server = 12\n");
	make(fx, "reg.test:5000", true, -EINVAL);
}

static void test_next(void **state)
{
	struct fx *fx = *state;
	struct reg_endpoints *eps = make(fx, "reg.test:5000", true, 0);
	long skip[LP_HOSTS_MAX] = { 0 };
	long now = (long)lp_mono_ms();

	/* resolve: the pull-only mirror is not a candidate */
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_RESOLVE, 0, NULL), 1);
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_PULL, 0, NULL), 0);
	assert_true(reg_ep_has_next(eps, LP_HOST_CAP_PULL, 0));
	assert_false(reg_ep_has_next(eps, LP_HOST_CAP_PULL, 2));
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_PULL, 3, NULL), eps->n);
	/* skipped for a blob */
	skip[0] = now + 10000;
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_PULL, 0, skip), 1);
	/* down for everyone */
	reg_ep_mark_down(&eps->v[1], NULL);
	assert_true(reg_ep_down(&eps->v[1]));
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_PULL, 0, skip), 2);
	/* the last is tried however it failed */
	reg_ep_mark_down(&eps->v[2], NULL);
	skip[2] = now + 10000;
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_PULL, 0, skip), 2);
	/* the down mark passes */
	atomic_store(&eps->v[1].down_until_ms, now - 1);
	assert_false(reg_ep_down(&eps->v[1]));
	assert_int_equal(reg_ep_next(eps, LP_HOST_CAP_PULL, 0, skip), 1);
	reg_endpoints_free(eps);
}

static enum reg_ep_verdict verdict_of(int r, long status)
{
	struct lp_reg_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	return reg_ep_verdict(r, &resp);
}

static void test_verdict(void **state)
{
	assert_int_equal(verdict_of(0, 200), REG_EP_USE);
	assert_int_equal(verdict_of(0, 206), REG_EP_USE);
	assert_int_equal(verdict_of(0, 307), REG_EP_USE);
	assert_int_equal(verdict_of(0, 400), REG_EP_USE); /* multi-range */
	assert_int_equal(verdict_of(0, 416), REG_EP_USE);
	assert_int_equal(verdict_of(0, 404), REG_EP_NEXT);
	assert_int_equal(verdict_of(0, 410), REG_EP_NEXT);
	assert_int_equal(verdict_of(0, 401), REG_EP_NEXT);
	assert_int_equal(verdict_of(0, 403), REG_EP_NEXT);
	assert_int_equal(verdict_of(0, 503), REG_EP_DOWN);
	assert_int_equal(verdict_of(0, 429), REG_EP_DOWN);
	assert_int_equal(verdict_of(-ECONNREFUSED, 0), REG_EP_DOWN);
	assert_int_equal(verdict_of(-ETIMEDOUT, 0), REG_EP_DOWN);
	assert_int_equal(verdict_of(-EIO, 0), REG_EP_DOWN);
	assert_int_equal(verdict_of(-EAGAIN, 429), REG_EP_DOWN);
	assert_int_equal(verdict_of(-EPROTO, 206), REG_EP_NEXT);
	assert_int_equal(verdict_of(-EBADMSG, 200), REG_EP_NEXT);
	assert_int_equal(verdict_of(-EACCES, 401), REG_EP_NEXT);
	/* ours: a limit, memory, a sink that refused on purpose */
	assert_int_equal(verdict_of(-EFBIG, 200), REG_EP_USE);
	assert_int_equal(verdict_of(-ENOMEM, 0), REG_EP_USE);
	assert_int_equal(verdict_of(-EOPNOTSUPP, 200), REG_EP_USE);
}

/* set @dir/@name's modification time to now + @secs */
static void set_mtime(const char *dir, const char *name, int secs)
{
	struct timespec t[2];
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec += secs;
	t[1] = t[0];
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
}

/* a look at @eps's files once they are older than the settle time */
static enum reg_eps_look look_settled(const struct reg_endpoints *eps,
				      const char *dir)
{
	uint64_t stamp;

	usleep((LP_REG_HOSTS_SETTLE_MS + 50) * 1000);
	return reg_endpoints_look(eps, dir, &stamp);
}

/* what each file change does to a look at a list's files */
static void test_look(void **state)
{
	struct fx *fx = *state;
	struct reg_endpoints *eps;
	uint64_t stamp;
	char p[512], text[600];

	eps = make(fx, "reg.test:5000", true, 0);
	assert_true(atomic_load(&eps->stamped));
	assert_int_equal(look_settled(eps, fx->dir), REG_EPS_SAME);
	assert_int_equal(reg_endpoints_look(eps, NULL, &stamp), REG_EPS_SAME);
	/* hosts.toml written again: changing at first (it may be half
	 * written), then changed */
	put(fx->dir, "reg.test:5000/hosts.toml",
	    "server = \"https://reg.test:5000\"\n");
	/* (its time put ahead: "just written" however loaded the machine) */
	set_mtime(fx->dir, "reg.test:5000/hosts.toml", 10);
	assert_int_equal(reg_endpoints_look(eps, fx->dir, &stamp),
			 REG_EPS_SETTLING);
	set_mtime(fx->dir, "reg.test:5000/hosts.toml", -10);
	assert_int_equal(look_settled(eps, fx->dir), REG_EPS_CHANGED);
	reg_endpoints_free(eps);
	/* a CA file the list names, outside every directory looked for,
	 * written again in place */
	put(fx->dir, "outside-ca.crt", "OUTSIDE CA\n");
	snprintf(text, sizeof(text),
		 "[host.\"https://cdn.test\"]\n  ca = \"%s/outside-ca.crt\"\n",
		 fx->dir);
	put(fx->dir, "reg.test:5000/hosts.toml", text);
	eps = make(fx, "reg.test:5000", true, 0);
	assert_int_equal(look_settled(eps, fx->dir), REG_EPS_SAME);
	put(fx->dir, "outside-ca.crt", "ANOTHER OUTSIDE CA\n");
	assert_int_equal(look_settled(eps, fx->dir), REG_EPS_CHANGED);
	reg_endpoints_free(eps);
	/* a registry without a directory, then one made for it */
	eps = make(fx, "other.test", true, 0);
	assert_int_equal(look_settled(eps, fx->dir), REG_EPS_SAME);
	snprintf(p, sizeof(p), "%s/other.test", fx->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	put(p, "hosts.toml", "server = \"https://other.test\"\n");
	assert_int_equal(look_settled(eps, fx->dir), REG_EPS_CHANGED);
	reg_endpoints_free(eps);
}

/* past the time a just written file may still be half written */
static void settle(void)
{
	usleep((LP_REG_HOSTS_SETTLE_MS + 50) * 1000);
}

/* the client's list for @ref_s, with a reference (reg_endpoints_put()) */
static const struct reg_endpoints *client_eps(struct lp_reg *reg,
					      const char *ref_s)
{
	const struct reg_endpoints *e = NULL;
	struct lp_reg_ref ref;
	struct lp_err err = { 0 };

	assert_int_equal(lp_reg_ref_parse(ref_s, &ref), 0);
	assert_int_equal(reg_endpoints(reg, &ref, &e, &err), 0);
	assert_non_null(e);
	return e;
}

/* which list the client has now for @ref_s (the cache keeps it) */
static const struct reg_endpoints *cur_eps(struct lp_reg *reg,
					   const char *ref_s)
{
	const struct reg_endpoints *e = client_eps(reg, ref_s);

	reg_endpoints_put(reg, e);
	return e;
}

/* hosts.toml of reg.test:5000 naming mirror m<@n>.test first; each
 * version a size of its own: a rewrite within one clock tick keeps the
 * times (docs/registry-config.md) */
static void put_mirror(const char *dir, int n)
{
	char text[128];

	snprintf(text, sizeof(text),
		 "server = \"https://reg.test:5000\"\n"
		 "[host.\"http://m%d.test\"]\n%.*s",
		 n, n % 40 + 1,
		 "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
		 "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
	put(dir, "reg.test:5000/hosts.toml", text);
	settle();
}

/* the first host of @e is mirror m<@n>.test */
static void assert_mirror(const struct reg_endpoints *e, int n)
{
	char host[32];

	snprintf(host, sizeof(host), "m%d.test", n);
	assert_int_equal(e->n, 2);
	assert_string_equal(e->v[0].host, host);
}

/* a client takes a changed hosts.toml for the requests that follow,
 * keeps what it had through a broken edit, frees a list nobody holds any
 * more, and holds a bounded number of lists at once */
static void test_client_reload(void **state)
{
	struct fx *fx = *state;
	const struct reg_endpoints *e1, *e2;
	const struct reg_endpoints *held[LP_REG_EPS_VERSIONS_MAX];
	struct lp_reg_opts o;
	struct lp_reg *reg = NULL;
	int i, n;

	lp_reg_opts_init(&o);
	assert_int_equal(o.hosts_recheck_ms, LP_REG_HOSTS_RECHECK_MS);
	o.registry_config_dir = fx->dir;
	o.hosts_recheck_ms = 0; /* look at every request */
	assert_int_equal(lp_reg_new(&o, &reg), 0);
	/* held, as a blob holds the list it began with */
	e1 = client_eps(reg, "reg.test:5000/a:v");
	assert_int_equal(e1->n, 3);
	assert_ptr_equal(cur_eps(reg, "reg.test:5000/a:v"), e1);
	put(fx->dir, "reg.test:5000/hosts.toml",
	    "server = \"https://reg.test:5000\"\n");
	/* just written: maybe half, not taken yet */
	set_mtime(fx->dir, "reg.test:5000/hosts.toml", 10);
	assert_ptr_equal(cur_eps(reg, "reg.test:5000/b:v"), e1);
	set_mtime(fx->dir, "reg.test:5000/hosts.toml", -10);
	settle();
	e2 = cur_eps(reg, "reg.test:5000/b:v");
	assert_ptr_not_equal(e2, e1);
	assert_int_equal(e2->n, 1);
	assert_string_equal(e2->v[0].host, "reg.test:5000");
	/* the first list is still there for the blob that holds it */
	assert_int_equal(e1->n, 3);
	assert_ptr_equal(cur_eps(reg, "reg.test:5000/a:v"), e2);
	/* a file beside it, the same hosts: the same list goes on */
	put(fx->dir, "reg.test:5000/.hosts.toml.swp", "x");
	settle();
	assert_ptr_equal(cur_eps(reg, "reg.test:5000/a:v"), e2);
	/* a broken edit: the hosts it had stay */
	put(fx->dir, "reg.test:5000/hosts.toml", "server = 12\n");
	settle();
	assert_ptr_equal(cur_eps(reg, "reg.test:5000/a:v"), e2);
	assert_ptr_equal(cur_eps(reg, "reg.test:5000/a:v"), e2);
	/* fixed: taken */
	put_mirror(fx->dir, 99);
	assert_mirror(cur_eps(reg, "reg.test:5000/a:v"), 99);
	/* lists nobody holds are freed: any number of changes apply (a list
	 * freed while held fails under ASan; references leaked would hold
	 * lists and stop the changes at the cap) */
	for (i = 0; i < 2 * LP_REG_EPS_VERSIONS_MAX; i++) {
		put_mirror(fx->dir, 100 + i);
		assert_mirror(cur_eps(reg, "reg.test:5000/a:v"), 100 + i);
	}
	/* held lists (open blobs) are bounded: e1, and the current one plus
	 * the older ones held here, LP_REG_EPS_VERSIONS_MAX in all */
	for (n = 0; n < LP_REG_EPS_VERSIONS_MAX; n++) {
		put_mirror(fx->dir, 200 + n);
		held[n] = client_eps(reg, "reg.test:5000/a:v");
		if (n < LP_REG_EPS_VERSIONS_MAX - 1)
			assert_mirror(held[n], 200 + n);
	}
	/* the last change found LP_REG_EPS_VERSIONS_MAX lists held: not
	 * applied; the one before it was */
	assert_mirror(held[LP_REG_EPS_VERSIONS_MAX - 2],
		      200 + LP_REG_EPS_VERSIONS_MAX - 2);
	assert_ptr_equal(held[LP_REG_EPS_VERSIONS_MAX - 1],
			 held[LP_REG_EPS_VERSIONS_MAX - 2]);
	/* a holder lets go: the change applies */
	reg_endpoints_put(reg, held[0]);
	assert_mirror(cur_eps(reg, "reg.test:5000/a:v"),
		      200 + LP_REG_EPS_VERSIONS_MAX - 1);
	/* another registry is not held back by it */
	assert_int_equal(cur_eps(reg, "other.test/a:v")->n, 1);
	for (n = 1; n < LP_REG_EPS_VERSIONS_MAX; n++)
		reg_endpoints_put(reg, held[n]);
	reg_endpoints_put(reg, e1);
	lp_reg_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_next, setup, teardown),
		cmocka_unit_test_setup_teardown(test_look, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_reload, setup,
						teardown),
		cmocka_unit_test(test_verdict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
