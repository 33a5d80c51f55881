// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of snapshot/ without containerd: containerd's filter syntax as
 * List receives it, the SQLite metadata store (constraints, labels, layer
 * facts, persistence across a reopen), and the snapshotter semantics of the
 * plain path (Prepare/View/Commit/Remove/Mounts/Update/Usage/List) with the
 * error codes containerd relies on.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../snapshot/snap_int.h"

static struct lp_snap_rec sample_rec(void)
{
	static struct lp_snap_label labels[] = {
		{ "containerd.io/snapshot.ref", "sha256:abc" },
		{ "x", "1" },
	};
	struct lp_snap_rec r = { 0 };

	r.key = "sha256:abc";
	r.parent = "sha256:parent";
	r.kind = LP_SNAP_KIND_COMMITTED;
	r.labels = labels;
	r.n_labels = 2;
	return r;
}

static void test_filter(void **state)
{
	struct lp_snap_rec r = sample_rec();

	/* what containerd's metadata store sends after ALREADY_EXISTS */
	assert_int_equal(
		lp_snap_filter_match("labels.\"containerd.io/snapshot.ref\"=="
				     "sha256:abc,parent==\"sha256:parent\"",
				     &r),
		1);
	assert_int_equal(
		lp_snap_filter_match("labels.\"containerd.io/snapshot.ref\"=="
				     "sha256:abc,parent==\"other\"",
				     &r),
		0);
	assert_int_equal(lp_snap_filter_match("", &r), 1);
	assert_int_equal(lp_snap_filter_match("labels.x", &r), 1);
	assert_int_equal(lp_snap_filter_match("labels.y", &r), 0);
	assert_int_equal(lp_snap_filter_match("kind==committed", &r), 1);
	assert_int_equal(lp_snap_filter_match("kind!=committed", &r), 0);
	assert_int_equal(lp_snap_filter_match("name~=/^sha256:a/", &r), 1);
	assert_int_equal(lp_snap_filter_match("name~=\"b.$\"", &r), 1);
	assert_int_equal(lp_snap_filter_match("name~=\"^z\"", &r), 0);
	assert_int_equal(lp_snap_filter_match("labels.", &r), -EINVAL);
	assert_int_equal(lp_snap_filter_match("name==\"open", &r), -EINVAL);
	assert_int_equal(lp_snap_filter_match("name=x", &r), -EINVAL);
	assert_int_equal(lp_snap_filter_match("name~=\"(\"", &r), -EINVAL);
}

struct env {
	char dir[64];
	char db[128];
	struct lp_snap_config c;
	struct lp_snap_meta *meta;
	struct lp_snap_metrics *metrics;
	struct lp_snap_svc *svc;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	strcpy(e->dir, "/tmp/lp-test-snapshot.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->db, sizeof(e->db), "%s/metadata.db", e->dir);
	assert_int_equal(lp_snap_config_init(&e->c), 0);
	assert_int_equal(lp_snap_config_set_str(&e->c.root, e->dir), 0);
	assert_int_equal(lp_snap_meta_open(e->db, &e->meta, NULL), 0);
	assert_int_equal(lp_snap_metrics_new(&e->metrics), 0);
	/* no layer pool: the plain path never needs one */
	assert_int_equal(
		lp_snap_svc_new(&e->c, e->meta, NULL, e->metrics, &e->svc), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	lp_snap_svc_free(e->svc);
	lp_snap_meta_free(e->meta);
	lp_snap_metrics_free(e->metrics);
	lp_snap_config_release(&e->c);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

static void test_meta(void **state)
{
	struct env *e = *state;
	struct lp_snap_label l[] = { { "a", "1" } };
	struct lp_snap_rec r = { 0 }, got = { 0 };
	struct lp_snap_layer_facts f = { 0 }, fg = { 0 };

	r.key = "k1";
	r.parent = "";
	r.kind = LP_SNAP_KIND_ACTIVE;
	r.labels = l;
	r.n_labels = 1;
	assert_int_equal(lp_snap_meta_insert(e->meta, &r), 0);
	assert_true(r.id > 0);
	assert_int_equal(lp_snap_meta_insert(e->meta, &r), -EEXIST);
	assert_int_equal(lp_snap_meta_get(e->meta, "nope", &got), -ENOENT);

	snprintf(f.digest, sizeof(f.digest), "sha256:%064d", 1);
	snprintf(f.toc_digest, sizeof(f.toc_digest), "sha256:%064d", 2);
	f.ref = "127.0.0.1:5000/a:b";
	f.size = 12345;
	assert_int_equal(lp_snap_meta_layer_put(e->meta, &f), 0);

	/* everything survives closing and reopening the database */
	lp_snap_meta_free(e->meta);
	assert_int_equal(lp_snap_meta_open(e->db, &e->meta, NULL), 0);
	lp_snap_svc_free(e->svc);
	assert_int_equal(
		lp_snap_svc_new(&e->c, e->meta, NULL, e->metrics, &e->svc), 0);
	assert_int_equal(lp_snap_meta_get(e->meta, "k1", &got), 0);
	assert_int_equal(got.kind, LP_SNAP_KIND_ACTIVE);
	assert_int_equal(got.n_labels, 1);
	assert_string_equal(lp_snap_rec_label(&got, "a"), "1");
	assert_int_equal(lp_snap_meta_layer_get(e->meta, f.digest, &fg), 0);
	assert_string_equal(fg.ref, f.ref);
	assert_int_equal(fg.size, 12345);
	assert_string_equal(fg.toc_digest, f.toc_digest);
	free(fg.ref);
	assert_int_equal(lp_snap_meta_delete(e->meta, got.id), 0);
	assert_int_equal(lp_snap_meta_has_id(e->meta, got.id), 0);
	lp_snap_rec_clear(&got);
}

static const char *opt(const struct lp_snap_mount *m, const char *prefix)
{
	size_t i;

	for (i = 0; i < m->n_options; i++)
		if (!strncmp(m->options[i], prefix, strlen(prefix)))
			return m->options[i];
	return NULL;
}

static int count_cb(void *opaque, const struct lp_snap_rec *r)
{
	(*(int *)opaque)++;
	return 0;
}

static void test_semantics(void **state)
{
	struct env *e = *state;
	struct lp_snap_kv labels[] = { { "l", "v" } };
	struct lp_snap_kv upd[] = { { "m", "w" } };
	const char *paths[] = { "labels.m", "labels.l" };
	const char *bad_paths[] = { "parent" };
	const char *filters[] = { "kind==committed" };
	struct lp_snap_mount m = { 0 };
	struct lp_snap_rec r = { 0 };
	struct lp_err err = { 0 };
	int64_t size, inodes;
	int n = 0;

	/* a base layer: rw bind of an empty directory */
	assert_int_equal(lp_snap_svc_prepare(e->svc, "x1", "", labels, 1, false,
					     &m, &err),
			 0);
	assert_string_equal(m.type, "bind");
	assert_non_null(opt(&m, "rw"));
	lp_snap_mount_clear(&m);
	assert_int_equal(
		lp_snap_svc_prepare(e->svc, "x1", "", NULL, 0, false, &m, &err),
		-EEXIST);
	assert_int_equal(lp_snap_svc_prepare(e->svc, "x2", "nope", NULL, 0,
					     false, &m, &err),
			 -ENOENT);
	assert_int_equal(lp_snap_svc_prepare(e->svc, "x2", "x1", NULL, 0, false,
					     &m, &err),
			 -EINVAL); /* parent not committed */
	assert_int_equal(lp_snap_svc_commit(e->svc, "L1", "x1", NULL, 0, &err),
			 0);
	assert_int_equal(lp_snap_svc_commit(e->svc, "L1b", "x1", NULL, 0, &err),
			 -ENOENT);
	assert_int_equal(lp_snap_svc_stat(e->svc, "L1", &r, &err), 0);
	assert_int_equal(r.kind, LP_SNAP_KIND_COMMITTED);
	assert_null(lp_snap_rec_label(&r, "l")); /* not inherited */
	assert_int_equal(r.n_labels, 0);
	lp_snap_rec_clear(&r);
	assert_int_equal(lp_snap_svc_mounts(e->svc, "L1", &m, &err), -EBUSY);

	/* one parent: a view is a ro bind, a container an overlay */
	assert_int_equal(
		lp_snap_svc_prepare(e->svc, "v", "L1", NULL, 0, true, &m, &err),
		0);
	assert_string_equal(m.type, "bind");
	assert_non_null(opt(&m, "ro"));
	assert_non_null(strstr(m.source, "/fs"));
	lp_snap_mount_clear(&m);
	assert_int_equal(lp_snap_svc_prepare(e->svc, "c", "L1", NULL, 0, false,
					     &m, &err),
			 0);
	assert_string_equal(m.type, "overlay");
	assert_non_null(opt(&m, "upperdir="));
	assert_non_null(opt(&m, "workdir="));
	assert_non_null(opt(&m, "lowerdir="));
	lp_snap_mount_clear(&m);
	assert_int_equal(lp_snap_svc_mounts(e->svc, "c", &m, &err), 0);
	lp_snap_mount_clear(&m);

	/* a parent with children cannot go */
	assert_int_equal(lp_snap_svc_remove(e->svc, "L1", &err), -EBUSY);
	assert_int_equal(lp_snap_svc_usage(e->svc, "c", &size, &inodes, &err),
			 0);

	/* Update: labels only, by mask */
	assert_int_equal(
		lp_snap_svc_update(e->svc, "L1", upd, 1, paths, 2, &r, &err),
		0);
	assert_null(lp_snap_rec_label(&r, "l")); /* deleted */
	assert_string_equal(lp_snap_rec_label(&r, "m"), "w");
	lp_snap_rec_clear(&r);
	assert_int_equal(lp_snap_svc_update(e->svc, "L1", upd, 1, bad_paths, 1,
					    &r, &err),
			 -EINVAL);

	assert_int_equal(
		lp_snap_svc_list(e->svc, filters, 1, count_cb, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(lp_snap_svc_remove(e->svc, "c", &err), 0);
	assert_int_equal(lp_snap_svc_remove(e->svc, "v", &err), 0);
	assert_int_equal(lp_snap_svc_remove(e->svc, "L1", &err), 0);
	assert_int_equal(lp_snap_svc_remove(e->svc, "L1", &err), -ENOENT);
	n = 0;
	assert_int_equal(lp_snap_svc_list(e->svc, NULL, 0, count_cb, &n, &err),
			 0);
	assert_int_equal(n, 0);
}

/*
 * Commit as containerd's metastore does it (and its conformance suite,
 * tests/conformance, checks): the committed snapshot is created, and last
 * updated, at the commit; it carries the commit's labels and none of the
 * active snapshot's. Update moves only the updated time. A label with an
 * empty value is not stored (containerd's boltutil.WriteLabels).
 */
static void test_commit_times_and_labels(void **state)
{
	struct env *e = *state;
	struct lp_snap_kv active_labels[] = { { "l", "v" },
					      { "gc", "x" },
					      { "e", "" } };
	struct lp_snap_kv unset_l[] = { { "l", "" } };
	const char *path_l[] = { "labels.l" };
	struct lp_snap_kv commit_labels[] = { { "n", "1" } };
	const struct timespec ms = { 0, 1000000 };
	struct lp_snap_mount m = { 0 };
	struct lp_snap_rec a = { 0 }, r = { 0 }, u = { 0 };
	struct lp_err err = { 0 };
	int64_t before;

	assert_int_equal(lp_snap_svc_prepare(e->svc, "a", "", active_labels, 3,
					     false, &m, &err),
			 0);
	lp_snap_mount_clear(&m);
	assert_int_equal(lp_snap_svc_stat(e->svc, "a", &a, &err), 0);
	assert_int_equal(a.created_ns, a.updated_ns);
	assert_int_equal(a.n_labels, 2); /* an empty value is no label */
	assert_null(lp_snap_rec_label(&a, "e"));
	nanosleep(&ms, NULL);
	before = lp_snap_now_ns();
	assert_int_equal(
		lp_snap_svc_commit(e->svc, "C", "a", commit_labels, 1, &err),
		0);
	assert_int_equal(lp_snap_svc_stat(e->svc, "C", &r, &err), 0);
	assert_int_equal(r.kind, LP_SNAP_KIND_COMMITTED);
	assert_true(r.created_ns >= before);
	assert_true(r.created_ns > a.created_ns);
	assert_int_equal(r.created_ns, r.updated_ns);
	assert_int_equal(r.n_labels, 1);
	assert_string_equal(lp_snap_rec_label(&r, "n"), "1");
	assert_null(lp_snap_rec_label(&r, "l"));
	assert_null(lp_snap_rec_label(&r, "gc"));

	nanosleep(&ms, NULL);
	assert_int_equal(lp_snap_svc_update(e->svc, "C", active_labels, 2, NULL,
					    0, &u, &err),
			 0);
	assert_int_equal(u.created_ns, r.created_ns);
	assert_true(u.updated_ns > r.updated_ns);
	assert_int_equal(u.n_labels, 2);
	lp_snap_rec_clear(&u);
	assert_int_equal(lp_snap_svc_stat(e->svc, "C", &u, &err), 0);
	assert_int_equal(u.created_ns, r.created_ns); /* as stored */
	assert_true(u.updated_ns > r.updated_ns);
	assert_string_equal(lp_snap_rec_label(&u, "l"), "v");
	lp_snap_rec_clear(&u);
	/* "labels.l" with an empty value deletes l */
	assert_int_equal(lp_snap_svc_update(e->svc, "C", unset_l, 1, path_l, 1,
					    &u, &err),
			 0);
	assert_null(lp_snap_rec_label(&u, "l"));
	assert_string_equal(lp_snap_rec_label(&u, "gc"), "x");
	assert_int_equal(u.n_labels, 1);
	lp_snap_rec_clear(&u);
	lp_snap_rec_clear(&r);
	lp_snap_rec_clear(&a);
}

static void test_fallback_and_strict(void **state)
{
	struct env *e = *state;
	struct lp_snap_kv target[] = {
		{ LP_LABEL_TARGET_REF, "sha256:c1" },
	};
	struct lp_snap_kv no_toc[] = {
		{ LP_LABEL_TARGET_REF, "sha256:c2" },
		{ LP_LABEL_STARGZ_REF, "127.0.0.1:5000/a:b" },
		{ LP_LABEL_STARGZ_DIGEST, "sha256:d" },
	};
	struct lp_snap_mount m = { 0 };
	struct lp_err err = { 0 };
	struct lp_buf b;

	/* unpack without locating labels, without a TOC digest: plain */
	assert_int_equal(lp_snap_svc_prepare(e->svc, "ns/1/extract-1 sha256:c1",
					     "", target, 1, false, &m, &err),
			 0);
	lp_snap_mount_clear(&m);
	assert_int_equal(lp_snap_svc_prepare(e->svc, "ns/2/extract-2 sha256:c2",
					     "", no_toc, 3, false, &m, &err),
			 0);
	lp_snap_mount_clear(&m);
	/* ctr image pull: no labels at all, an unpack key */
	assert_int_equal(lp_snap_svc_prepare(e->svc, "ns/3/extract-3 sha256:c3",
					     "", NULL, 0, false, &m, &err),
			 0);
	lp_snap_mount_clear(&m);
	lp_buf_init(&b, 1 << 20);
	assert_int_equal(lp_snap_metrics_render(e->metrics, NULL, &b), 0);
	assert_non_null(strstr((char *)b.data, "lazypull_fallbacks_total{"
					       "reason=\"no_labels\"} 2"));
	assert_non_null(strstr((char *)b.data, "lazypull_fallbacks_total{"
					       "reason=\"no_toc_digest\"} 1"));
	lp_buf_release(&b);

	/* strict refuses the same layers (FAILED_PRECONDITION) */
	e->c.strict = true;
	assert_int_equal(lp_snap_svc_prepare(e->svc, "ns/4/extract-4 sha256:c4",
					     "", no_toc, 3, false, &m, &err),
			 -EPERM);
	assert_int_equal(lp_snap_grpc_code(-EPERM), 9);
	/* a container's rootfs is never refused */
	assert_int_equal(lp_snap_svc_prepare(e->svc, "ns/5/ctr", "", NULL, 0,
					     false, &m, &err),
			 0);
	lp_snap_mount_clear(&m);
}

static void test_grpc_codes(void **state)
{
	assert_int_equal(lp_snap_grpc_code(0), 0);
	assert_int_equal(lp_snap_grpc_code(-ENOENT), 5); /* NOT_FOUND */
	assert_int_equal(lp_snap_grpc_code(-EEXIST), 6); /* ALREADY_EXISTS */
	assert_int_equal(lp_snap_grpc_code(-EBUSY), 9); /* FAILED_PRECOND. */
	assert_int_equal(lp_snap_grpc_code(-EINVAL), 3); /* INVALID_ARG */
}

/* write @text to @dir/@name; its path into @path */
static void put_file(const char *dir, const char *name, const char *text,
		     char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* index_trusted_keys and index_window_rule: a key file must be an Ed25519
 * public key in PEM the daemon can read (else the config is refused,
 * naming it), an absolute path; the window rule is off by default */
static void test_config_index_trust(void **state)
{
	struct env *e = *state;
	struct lp_snap_config c;
	struct lp_err err = { 0 };
	char path[256], key[256], json[600];
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f;

	assert_non_null(pkey);
	snprintf(key, sizeof(key), "%s/index.pub", e->dir);
	f = fopen(key, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, pkey), 1);
	fclose(f);
	EVP_PKEY_free(pkey);
	assert_int_equal(lp_snap_config_init(&c), 0);
	assert_false(c.index_window_rule);
	assert_int_equal(c.n_index_trusted_keys, 0);
	snprintf(json, sizeof(json),
		 "{\"index_trusted_keys\": [\"%s\"], \"index_window_rule\": "
		 "true}",
		 key);
	put_file(e->dir, "t1.json", json, path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), 0);
	assert_true(c.index_window_rule);
	assert_int_equal(c.n_index_trusted_keys, 1);
	assert_string_equal(c.index_trusted_keys[0], key);
	lp_snap_config_release(&c);
	/* a missing file, a file that is no key, a relative path */
	assert_int_equal(lp_snap_config_init(&c), 0);
	put_file(e->dir, "t2.json",
		 "{\"index_trusted_keys\": [\"/nonexistent/k.pub\"]}", path,
		 sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "index_trusted_keys[0]"));
	lp_err_clear(&err);
	lp_snap_config_release(&c); /* a load adds to what is there */
	assert_int_equal(lp_snap_config_init(&c), 0);
	snprintf(json, sizeof(json), "{\"index_trusted_keys\": [\"%s\"]}",
		 path); /* the JSON file itself: not PEM */
	put_file(e->dir, "t3.json", json, path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Ed25519"));
	lp_err_clear(&err);
	put_file(e->dir, "t4.json", "{\"index_trusted_keys\": [\"k.pub\"]}",
		 path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "absolute"));
	lp_err_clear(&err);
	lp_snap_config_release(&c);
}

/* the config keys of the gzip index lookup, and the bounded file read */
static void test_config_index(void **state)
{
	struct env *e = *state;
	struct lp_snap_config c;
	struct lp_err err = { 0 };
	char path[256], link[300], many[4096];
	uint8_t *data = NULL;
	size_t len = 0, i, n;
	struct lp_buf b;

	assert_int_equal(lp_snap_config_init(&c), 0);
	assert_true(c.index_lookup); /* on by default */
	assert_int_equal(c.n_index_dirs, 0);
	put_file(e->dir, "c1.json",
		 "{\"index_dirs\": [\"/a\", \"/b\"], \"index_lookup\": false}",
		 path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), 0);
	assert_false(c.index_lookup);
	assert_int_equal(c.n_index_dirs, 2);
	assert_string_equal(c.index_dirs[0], "/a");
	assert_string_equal(c.index_dirs[1], "/b");
	assert_null(c.index_dirs[2]);
	/* wrong types, empty entries, too many entries: refused */
	put_file(e->dir, "c2.json", "{\"index_dirs\": \"/a\"}", path,
		 sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -EINVAL);
	lp_err_clear(&err);
	put_file(e->dir, "c3.json", "{\"index_dirs\": [\"\"]}", path,
		 sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -EINVAL);
	lp_err_clear(&err);
	/* relative: refused, like a relative root or address */
	put_file(e->dir, "c3r.json", "{\"index_dirs\": [\"rel/dir\"]}", path,
		 sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "index_dirs[0]"));
	assert_non_null(strstr(err.msg, "absolute"));
	lp_err_clear(&err);
	put_file(e->dir, "c4.json", "{\"index_lookup\": 1}", path,
		 sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -EINVAL);
	lp_err_clear(&err);
	n = (size_t)snprintf(many, sizeof(many), "{\"index_dirs\": [");
	for (i = 0; i < LP_SNAP_INDEX_DIRS_MAX; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"/d%zu\"",
				      i ? "," : "", i);
	snprintf(many + n, sizeof(many) - n, "]}");
	put_file(e->dir, "c5.json", many, path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "too many"));
	assert_true(c.n_index_dirs <= LP_SNAP_INDEX_DIRS_MAX);
	lp_snap_config_release(&c);
	lp_err_clear(&err);
	/* the bound exactly, on a fresh config: 16 taken, the 17th refused */
	assert_int_equal(LP_SNAP_INDEX_DIRS_MAX, 16);
	assert_int_equal(lp_snap_config_init(&c), 0);
	put_file(e->dir, "c6.json", many, path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), 0);
	assert_int_equal(c.n_index_dirs, LP_SNAP_INDEX_DIRS_MAX);
	assert_string_equal(c.index_dirs[LP_SNAP_INDEX_DIRS_MAX - 1], "/d15");
	assert_null(c.index_dirs[LP_SNAP_INDEX_DIRS_MAX]);
	assert_int_equal(lp_snap_config_add_index_dir(&c, "/d16"), -E2BIG);
	assert_int_equal(c.n_index_dirs, LP_SNAP_INDEX_DIRS_MAX);
	lp_snap_config_release(&c);
	assert_int_equal(lp_snap_config_init(&c), 0);
	n = (size_t)snprintf(many, sizeof(many), "{\"index_dirs\": [");
	for (i = 0; i <= LP_SNAP_INDEX_DIRS_MAX; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"/d%zu\"",
				      i ? "," : "", i);
	snprintf(many + n, sizeof(many) - n, "]}");
	put_file(e->dir, "c7.json", many, path, sizeof(path));
	assert_int_equal(lp_snap_config_load(&c, path, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "index_dirs[16]"));
	lp_err_clear(&err);
	lp_snap_config_release(&c);

	/* lp_snap_read_file(): bounded, regular files only, no symlinks */
	put_file(e->dir, "ix", "0123456789", path, sizeof(path));
	assert_int_equal(lp_snap_read_file(path, 10, &data, &len), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(data, "0123456789", 10);
	free(data);
	assert_int_equal(lp_snap_read_file(path, 9, &data, &len), -EFBIG);
	snprintf(link, sizeof(link), "%s/link", e->dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(lp_snap_read_file(link, 10, &data, &len), -ELOOP);
	assert_int_equal(lp_snap_read_file(e->dir, 10, &data, &len), -EINVAL);
	snprintf(link, sizeof(link), "%s/none", e->dir);
	assert_int_equal(lp_snap_read_file(link, 10, &data, &len), -ENOENT);

	/* the new reasons are counted and exposed */
	lp_snap_metrics_fallback(e->metrics, LP_FALLBACK_NO_INDEX);
	lp_snap_metrics_fallback(e->metrics, LP_FALLBACK_ZSTD_UNINDEXED);
	lp_snap_metrics_fallback(e->metrics, LP_FALLBACK_BAD_INDEX);
	lp_snap_metrics_fallback(e->metrics, LP_FALLBACK_BAD_INDEX);
	lp_snap_metrics_indexed(e->metrics);
	lp_buf_init(&b, 1 << 20);
	assert_int_equal(lp_snap_metrics_render(e->metrics, NULL, &b), 0);
	assert_non_null(strstr((char *)b.data, "lazypull_fallbacks_total{"
					       "reason=\"no_index\"} 1"));
	assert_non_null(strstr((char *)b.data, "lazypull_fallbacks_total{"
					       "reason=\"zstd_unindexed\"} 1"));
	assert_non_null(strstr((char *)b.data, "lazypull_fallbacks_total{"
					       "reason=\"bad_index\"} 2"));
	assert_non_null(
		strstr((char *)b.data, "lazypull_index_mounts_total 1"));
	lp_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_semantics, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_times_and_labels,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fallback_and_strict, setup,
						teardown),
		cmocka_unit_test(test_grpc_codes),
		cmocka_unit_test_setup_teardown(test_config_index_trust, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_index, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
