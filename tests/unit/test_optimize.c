// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of optimize/ without containers: the record writer (read back
 * by both users of the one reader, format/'s lp_prio_load and the layer
 * converter's lp_prio_list_load; awkward paths survive), the workload taken from an
 * image config (Entrypoint + Cmd, argv overriding, no command refused, PATH
 * default, WorkingDir), user resolution in a rootfs's /etc/passwd and
 * /etc/group, and the runc config.json (namespaces, mounts, process).
 */
#include <errno.h>
#include <limits.h>
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
#include <json-c/json.h>

#include "lp_convert.h"
#include "lp_image.h"
#include "lp_optimize.h"
#include "optimize_int.h"

static char tmpdir[] = "/tmp/lp-test-optimize.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_record_roundtrip(void **state)
{
	static const char *const paths[] = {
		"bin/busybox",
		"etc/a \"quoted\".conf",
		"usr/lib/back\\slash",
		"data/üñí/b.txt",
		"x/y/z",
	};
	struct lp_opt_record recs[5];
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	char path[PATH_MAX], **plain = NULL;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < 5; i++) {
		recs[i].path = paths[i];
		lp_sha256(paths[i], strlen(paths[i]), &recs[i].layer_digest);
		recs[i].layer_index = i * 3;
	}
	snprintf(path, sizeof(path), "%s/rec.jsonl", tmpdir);
	assert_int_equal(lp_opt_record_write(path, recs, 5, &err), 0);

	r = lp_prio_load(path, &l, &err);
	assert_int_equal(r, 5);
	for (i = 0; i < 5; i++) {
		assert_string_equal(l.items[i].path, paths[i]);
		assert_true(l.items[i].has_digest);
		assert_true(lp_digest_equal(&l.items[i].layer_digest,
					    &recs[i].layer_digest));
		assert_int_equal(l.items[i].layer_index, (long)i * 3);
	}
	lp_prio_release(&l);

	r = lp_prio_list_load(path, &plain, &err);
	assert_int_equal(r, 5);
	for (i = 0; i < 5; i++)
		assert_string_equal(plain[i], paths[i]);
	lp_prio_list_free(plain);

	/* an empty record is a valid, empty list */
	assert_int_equal(lp_opt_record_write(path, recs, 0, &err), 0);
	assert_int_equal(lp_prio_load(path, &l, &err), 0);
	lp_prio_release(&l);
	/* no file where the directory is missing; nothing left behind */
	snprintf(path, sizeof(path), "%s/nodir/rec.jsonl", tmpdir);
	assert_int_equal(lp_opt_record_write(path, recs, 5, &err), -ENOENT);
	assert_int_equal(lp_opt_record_write("", recs, 5, NULL), -EINVAL);
}

static void test_workload_config(void **state)
{
	const char *cfg = "{\"config\":{\"Entrypoint\":[\"/bin/app\"],"
			  "\"Cmd\":[\"--flag\",\"x\"],\"Env\":[\"A=1\"],"
			  "\"WorkingDir\":\"/srv\",\"User\":\"1000\"},"
			  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	const char *const argv[] = { "sh", "-c", "true", NULL };
	struct opt_workload w;
	struct lp_err err = { 0 };

	(void)state;
	assert_int_equal(opt_workload_from_config(cfg, NULL, &w, &err), 0);
	assert_string_equal(w.args[0], "/bin/app");
	assert_string_equal(w.args[1], "--flag");
	assert_string_equal(w.args[2], "x");
	assert_null(w.args[3]);
	assert_string_equal(w.env[0], "A=1");
	assert_true(!strncmp(w.env[1], "PATH=", 5)); /* added */
	assert_null(w.env[2]);
	assert_string_equal(w.cwd, "/srv");
	assert_string_equal(w.user, "1000");
	opt_workload_release(&w);

	/* argv replaces Entrypoint and Cmd */
	assert_int_equal(opt_workload_from_config(cfg, argv, &w, &err), 0);
	assert_string_equal(w.args[0], "sh");
	assert_null(w.args[3]);
	opt_workload_release(&w);

	/* no command, no argv */
	assert_int_equal(opt_workload_from_config("{\"config\":{\"Env\":[]}}",
						  NULL, &w, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "no command"));
	lp_err_clear(&err);
	assert_int_equal(opt_workload_from_config("{}", NULL, &w, &err),
			 -EINVAL);
	lp_err_clear(&err);
	assert_int_equal(opt_workload_from_config("not json", argv, &w, &err),
			 -EINVAL);
	lp_err_clear(&err);
	assert_int_equal(opt_workload_from_config("{\"config\":{\"Cmd\":[1]}}",
						  NULL, &w, &err),
			 -EINVAL);
	/* a relative or absent WorkingDir is / */
	assert_int_equal(opt_workload_from_config("{\"config\":{\"Cmd\":"
						  "[\"a\"],\"WorkingDir\":"
						  "\"rel\"}}",
						  NULL, &w, &err),
			 0);
	assert_string_equal(w.cwd, "/");
	opt_workload_release(&w);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX];
	FILE *f;

	assert_true(snprintf(p, sizeof(p), "%s/%s", dir, name) <
		    (int)sizeof(p));
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void check_user(const char *rootfs, const char *user, int want_r,
		       uint32_t uid, uint32_t gid)
{
	struct opt_workload w = { 0 };
	struct lp_err err = { 0 };

	w.user = strdup(user);
	assert_int_equal(opt_workload_resolve_user(&w, rootfs, &err), want_r);
	if (want_r == 0) {
		assert_int_equal(w.uid, uid);
		assert_int_equal(w.gid, gid);
	}
	free(w.user);
}

static void test_user(void **state)
{
	char rootfs[PATH_MAX / 2], etc[PATH_MAX];

	(void)state;
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmpdir);
	snprintf(etc, sizeof(etc), "%s/etc", rootfs);
	assert_int_equal(mkdir(rootfs, 0755), 0);
	assert_int_equal(mkdir(etc, 0755), 0);
	write_file(etc, "passwd",
		   "root:x:0:0:root:/root:/bin/sh\n"
		   "app::1000:1001::/home/app:/bin/sh\n"
		   "broken:x:abc:1\n");
	write_file(etc, "group", "root:x:0:\nstaff:x:50:app\n");
	check_user(rootfs, "", 0, 0, 0);
	check_user(rootfs, "app", 0, 1000, 1001);
	check_user(rootfs, "1000", 0, 1000, 1001);
	check_user(rootfs, "4242", 0, 4242, 0);
	check_user(rootfs, "app:staff", 0, 1000, 50);
	check_user(rootfs, "app:77", 0, 1000, 77);
	check_user(rootfs, "5:6", 0, 5, 6);
	check_user(rootfs, "nobody", -EINVAL, 0, 0);
	check_user(rootfs, "broken", -EINVAL, 0, 0);
	check_user(rootfs, "app:nogroup", -EINVAL, 0, 0);
}

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, k, &v));
	return v;
}

static bool has_ns(json_object *spec, const char *type)
{
	json_object *ns = get(get(spec, "linux"), "namespaces");
	size_t i;

	for (i = 0; i < json_object_array_length(ns); i++)
		if (!strcmp(json_object_get_string(get(
				    json_object_array_get_idx(ns, i), "type")),
			    type))
			return true;
	return false;
}

static void test_bundle(void **state)
{
	const char *cfg = "{\"config\":{\"Cmd\":[\"sh\",\"-c\",\"cat /x\"],"
			  "\"Env\":[\"PATH=/bin\"]}}";
	struct opt_workload w;
	struct lp_err err = { 0 };
	json_object *spec, *p, *mounts;
	char path[PATH_MAX];
	int net;

	(void)state;
	assert_int_equal(opt_workload_from_config(cfg, NULL, &w, &err), 0);
	w.uid = 1000;
	w.gid = 50;
	for (net = 0; net < 2; net++) {
		assert_int_equal(
			opt_bundle_write(tmpdir, "/some/rootfs", &w, net, &err),
			0);
		snprintf(path, sizeof(path), "%s/config.json", tmpdir);
		spec = json_object_from_file(path);
		assert_non_null(spec);
		assert_string_equal(
			json_object_get_string(get(get(spec, "root"), "path")),
			"/some/rootfs");
		p = get(spec, "process");
		assert_false(json_object_get_boolean(get(p, "terminal")));
		assert_string_equal(
			json_object_get_string(
				json_object_array_get_idx(get(p, "args"), 2)),
			"cat /x");
		assert_int_equal(
			json_object_get_int(get(get(p, "user"), "uid")), 1000);
		assert_int_equal(
			json_object_get_int(get(get(p, "user"), "gid")), 50);
		assert_string_equal(json_object_get_string(get(p, "cwd")), "/");
		assert_true(has_ns(spec, "pid") && has_ns(spec, "mount") &&
			    has_ns(spec, "ipc") && has_ns(spec, "uts"));
		assert_int_equal(has_ns(spec, "network"), !net);
		mounts = get(spec, "mounts");
		assert_true(json_object_array_length(mounts) >= 6);
		json_object_put(spec);
	}
	opt_workload_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_workload_config),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_bundle),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
