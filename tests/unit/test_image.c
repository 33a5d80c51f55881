// SPDX-License-Identifier: Apache-2.0
/*
 * image/ tests, on real files in a mktemp directory (no registry: the
 * registry side is tests/integration/test_convert_image.sh). Prioritised-file
 * lists (plain and JSON lines, every error); layout stores (spec parsing,
 * index.json written through a temporary file and rename with other tags
 * kept, blobs verified against their descriptors); lp_image_convert()
 * between OCI layouts: configs keep every member but rootfs.diff_ids (which
 * must be the digests of the uncompressed output), manifests carry the
 * eStargz / zstd:chunked annotations and keep the source's, platforms are
 * picked from an index or all converted, per-layer priorities reach the
 * right layer, and bad input fails without tagging anything.
 */
#include <archive.h>
#include <archive_entry.h>
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
#include <json-c/json.h>

#include "lp_digest.h"
#include "lp_image.h"
#include "store_int.h"

#define MT_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"

static char tmpdir[] = "/tmp/lp-test-image.XXXXXX";
static int seq; /* a fresh directory name per use */

static char *path_in(const char *dir, const char *name)
{
	static char buf[8][4096];
	static int i;

	char tmp[sizeof(buf[0])];

	/* @dir may be an earlier result: format into a copy first */
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, name);
	i = (i + 1) % 8;
	memcpy(buf[i], tmp, sizeof(tmp));
	return buf[i];
}

static const char *fresh_dir(const char *what)
{
	static char buf[8][512];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s-%d", tmpdir, what, ++seq);
	return buf[i];
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	if (ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static json_object *read_json(const char *path)
{
	char *s = slurp(path, NULL);
	json_object *o = json_tokener_parse(s);

	if (!o)
		fail_msg("%s: not JSON: %s", path, s);
	free(s);
	return o;
}

/* o[k1][k2]... as a borrowed object (fails the test when absent) */
static json_object *jget(json_object *o, const char *path)
{
	char buf[256], *tok, *save = NULL;
	json_object *v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok;
	     tok = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(v, json_type_array)) {
			v = json_object_array_get_idx(v, atoi(tok));
		} else if (!json_object_object_get_ex(v, tok, &v)) {
			v = NULL;
		}
		if (!v)
			fail_msg("no %s (at %s) in %s", path, tok,
				 json_object_to_json_string(o));
	}
	return v;
}

/* o[key] for a key that may hold dots (annotations) */
static json_object *jkey(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no %s in %s", key, json_object_to_json_string(o));
	return v;
}

static const char *jstr(json_object *o, const char *path)
{
	return json_object_get_string(jget(o, path));
}

static bool jhas(json_object *o, const char *key)
{
	return json_object_object_get_ex(o, key, NULL);
}

/* ---- building test layouts ---- */

struct file {
	const char *name;
	const char *data; /* NULL: a directory */
	size_t size; /* 0: strlen(data) */
};

/* a tar stream (plain or gzip'ed) of @files, in memory */
static uint8_t *make_tar(const struct file *files, size_t n, bool gz,
			 size_t *ret_len)
{
	struct archive *a = archive_write_new();
	size_t cap = 16 * 1024 * 1024, used = 0, i;
	uint8_t *buf = malloc(cap);

	assert_non_null(buf);
	assert_int_equal(archive_write_set_format_pax_restricted(a),
			 ARCHIVE_OK);
	if (gz)
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used),
			 ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t size = files[i].data ?
				      (files[i].size ? files[i].size :
						       strlen(files[i].data)) :
				      0;

		archive_entry_set_pathname(e, files[i].name);
		archive_entry_set_mtime(e, 1672531200, 0);
		if (files[i].data) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_size(e, (la_int64_t)size);
		} else {
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, 0755);
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (size)
			assert_int_equal(
				archive_write_data(a, files[i].data, size),
				(la_ssize_t)size);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret_len = used;
	return buf;
}

/* the whole decompressed stream of a layer blob (gzip members or zstd
   frames, skippable frames skipped), via libarchive's raw format */
static uint8_t *decompress(const void *blob, size_t len, size_t *ret_len)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	size_t cap = 1 << 20, used = 0;
	uint8_t *out = malloc(cap);
	la_ssize_t n;

	assert_non_null(out);
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	assert_int_equal(archive_read_open_memory(a, blob, len), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
	for (;;) {
		if (cap - used < 65536) {
			uint8_t *grown;

			cap *= 2;
			grown = realloc(out, cap);
			assert_non_null(grown);
			out = grown;
		}
		n = archive_read_data(a, out + used, cap - used);
		assert_true(n >= 0);
		if (n == 0)
			break;
		used += (size_t)n;
	}
	archive_read_free(a);
	*ret_len = used;
	return out;
}

/* whether the tar stream of a layer blob has an entry @name */
static bool layer_has(const void *blob, size_t len, const char *name)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	bool found = false;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, blob, len), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(e);

		if (!strncmp(p, "./", 2))
			p += 2;
		if (!strcmp(p, name))
			found = true;
	}
	archive_read_free(a);
	return found;
}

static void digest_str(const void *data, size_t len,
		       char out[LP_DIGEST_STR_LEN + 1])
{
	struct lp_digest d;

	lp_sha256(data, len, &d);
	lp_digest_format(&d, out);
}

/* write a blob into layout @dir (made by mkdirs); its descriptor JSON
   into @desc */
static void put_blob(const char *dir, const char *mt, const void *data,
		     size_t len, const char *extra, char *desc, size_t size)
{
	char ds[LP_DIGEST_STR_LEN + 1], p[4096];

	digest_str(data, len, ds);
	snprintf(p, sizeof(p), "%s/blobs/sha256/%s", dir, ds + 7);
	spit(p, data, len);
	snprintf(desc, size,
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu%s%s}",
		 mt, ds, len, extra ? "," : "", extra ? extra : "");
}

static void mkdirs(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/blobs/sha256'", dir);
	assert_int_equal(system(cmd), 0);
	spit(path_in(dir, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}",
	     30);
}

static const struct file files1[] = {
	{ "bin", NULL, 0 },
	{ "bin/tool", "#!/bin/sh\necho tool\n", 0 },
	{ "etc", NULL, 0 },
	{ "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0 },
};
static const struct file files2[] = {
	{ "etc", NULL, 0 },
	{ "etc/motd", "second layer\n", 0 },
	{ "srv", NULL, 0 },
	{ "srv/empty", "", 0 },
};

struct src_image {
	char layer_desc[2][1024];
	char layer_digest[2][LP_DIGEST_STR_LEN + 1];
	char diff_id[2][LP_DIGEST_STR_LEN + 1];
};

/*
 * A config with members a converter must keep (numbers beyond 32 bits,
 * floats, nested objects, unknown keys, history) and its diff_ids.
 * @rootfs NULL: the real rootfs member.
 */
static void make_config(char *out, size_t size, const char *arch,
			const char *variant, const struct src_image *si,
			const char *rootfs)
{
	char rf[512];

	snprintf(rf, sizeof(rf),
		 "{\"type\":\"layers\",\"diff_ids\":[\"%s\",\"%s\"]}",
		 si->diff_id[0], si->diff_id[1]);
	snprintf(out, size,
		 "{\"architecture\":\"%s\",\"os\":\"linux\"%s%s%s,"
		 "\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"/bin/sh\"],"
		 "\"Labels\":{\"big\":12345678901234,\"ratio\":0.5}},"
		 "\"x-custom\":{\"nested\":[1,\"two\",null,true]},"
		 "\"created\":\"2023-01-01T00:00:00Z\","
		 "\"history\":[{\"created_by\":\"a </etc>\"},"
		 "{\"created_by\":\"b\",\"empty_layer\":false}],"
		 "\"rootfs\":%s}",
		 arch, variant ? ",\"variant\":\"" : "", variant ? variant : "",
		 variant ? "\"" : "", rootfs ? rootfs : rf);
}

/* two layers (gzip'ed tar, plain tar with an annotation) into @dir */
static void make_layers(const char *dir, struct src_image *si)
{
	uint8_t *t1, *t2, *g1;
	size_t l1, l2, lg1;

	t1 = make_tar(files1, LP_ARRAY_SIZE(files1), false, &l1);
	g1 = make_tar(files1, LP_ARRAY_SIZE(files1), true, &lg1);
	t2 = make_tar(files2, LP_ARRAY_SIZE(files2), false, &l2);
	digest_str(t1, l1, si->diff_id[0]);
	digest_str(t2, l2, si->diff_id[1]);
	put_blob(dir, MT_LAYER_GZIP, g1, lg1, NULL, si->layer_desc[0],
		 sizeof(si->layer_desc[0]));
	put_blob(dir, MT_LAYER_TAR, t2, l2,
		 "\"annotations\":{\"org.example.layer\":\"second\"}",
		 si->layer_desc[1], sizeof(si->layer_desc[1]));
	digest_str(g1, lg1, si->layer_digest[0]);
	digest_str(t2, l2, si->layer_digest[1]);
	free(t1);
	free(t2);
	free(g1);
}

/* an image manifest for @config; its descriptor into @desc */
static void make_manifest(const char *dir, const struct src_image *si,
			  const char *config, const char *layer_mt0,
			  const char *platform, char *desc, size_t size)
{
	char cd[1024], m[8192], l0[1024];

	put_blob(dir, MT_CONFIG, config, strlen(config), NULL, cd, sizeof(cd));
	snprintf(l0, sizeof(l0), "%s", si->layer_desc[0]);
	if (layer_mt0) {
		/* the same blob under another media type */
		char *p = strstr(l0, MT_LAYER_GZIP);
		char rest[1024];

		assert_non_null(p);
		snprintf(rest, sizeof(rest), "%s", p + strlen(MT_LAYER_GZIP));
		snprintf(p, sizeof(l0) - (size_t)(p - l0), "%s%s", layer_mt0,
			 rest);
	}
	snprintf(m, sizeof(m),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,"
		 "\"layers\":[%s,%s],"
		 "\"annotations\":{\"org.opencontainers.image.title\":\"t\"}}",
		 LP_REG_MT_OCI_MANIFEST, cd, l0, si->layer_desc[1]);
	put_blob(dir, LP_REG_MT_OCI_MANIFEST, m, strlen(m), platform, desc,
		 size);
}

/* index.json of @n entries (each a descriptor JSON) */
static void write_index(const char *dir, const char *const *entries, size_t n)
{
	char buf[16384];
	size_t i, len;

	len = (size_t)snprintf(buf, sizeof(buf),
			       "{\"schemaVersion\":2,\"mediaType\":\"%s\","
			       "\"manifests\":[",
			       LP_REG_MT_OCI_INDEX);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
					i ? "," : "", entries[i]);
	len += (size_t)snprintf(buf + len, sizeof(buf) - len, "]}");
	spit(path_in(dir, "index.json"), buf, len);
}

/* a tagged entry: @desc with a ref.name annotation @tag */
static char *tagged(const char *desc, const char *tag)
{
	char *s = malloc(strlen(desc) + 256);
	size_t n = strlen(desc);

	assert_non_null(s);
	memcpy(s, desc, n - 1); /* without the closing brace */
	sprintf(s + n - 1, ",\"annotations\":{\"%s\":\"%s\"}}",
		LP_IMAGE_ANN_REF_NAME, tag);
	return s;
}

/* a layout with one amd64 image tagged "img" (and the sources' facts) */
static void make_simple_layout(const char *dir, struct src_image *si)
{
	char cfg[4096], md[1024];
	char *e;

	mkdirs(dir);
	make_layers(dir, si);
	make_config(cfg, sizeof(cfg), "amd64", NULL, si, NULL);
	make_manifest(dir, si, cfg, NULL, NULL, md, sizeof(md));
	e = tagged(md, "img");
	write_index(dir, (const char *const[]){ e }, 1);
	free(e);
}

/* the manifest a layout's tag names, parsed */
static json_object *tag_manifest(const char *dir, const char *tag)
{
	json_object *idx = read_json(path_in(dir, "index.json")), *ms, *m;
	char p[4096];
	size_t i;

	ms = jget(idx, "manifests");
	for (i = 0; i < json_object_array_length(ms); i++) {
		json_object *e = json_object_array_get_idx(ms, i), *a, *nm;

		if (json_object_object_get_ex(e, "annotations", &a) &&
		    json_object_object_get_ex(a, LP_IMAGE_ANN_REF_NAME, &nm) &&
		    !strcmp(json_object_get_string(nm), tag)) {
			snprintf(p, sizeof(p), "%s/blobs/sha256/%s", dir,
				 jstr(e, "digest") + 7);
			m = read_json(p);
			json_object_put(idx);
			return m;
		}
	}
	fail_msg("%s: no tag %s", dir, tag);
	return NULL;
}

static char *blob_of(const char *dir, const char *digest, size_t *ret_len)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/blobs/sha256/%s", dir, digest + 7);
	return slurp(p, ret_len);
}

static int convert(const char *src, const char *dst, enum lp_layer_format f,
		   const char *platform, bool all,
		   const struct lp_prio_list *prio, struct lp_image_result *res,
		   struct lp_err *err)
{
	struct lp_image_opts o;

	lp_image_opts_init(&o);
	o.src = src;
	o.dst = dst;
	o.convert.format = f;
	o.convert.threads = 1;
	o.platform = platform;
	o.all_platforms = all;
	o.prio = prio;
	o.tmpdir = tmpdir;
	lp_err_clear(err);
	return lp_image_convert(&o, res, err);
}

static char *spec(const char *dir, const char *tag)
{
	static char buf[4][4200];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "oci:%s%s%s", dir, tag ? ":" : "",
		 tag ? tag : "");
	return buf[i];
}

/* ---- prioritised files ---- */

static int load_prio(const char *text, struct lp_prio_list *l,
		     struct lp_err *err)
{
	const char *p = path_in(tmpdir, "prio.txt");

	spit(p, text, strlen(text));
	lp_err_clear(err);
	return lp_prio_load(p, l, err);
}

static void test_prio_load(void **state)
{
	struct lp_prio_list l = { 0 };
	struct lp_err err;
	struct lp_digest d;
	const char *dg = "sha256:"
			 "0123456789abcdef0123456789abcdef"
			 "0123456789abcdef0123456789abcdef";

	(void)state;
	assert_int_equal(lp_digest_parse(dg, &d), 0);
	char *text = NULL;
	assert_true(asprintf(&text,
			     "# comment\n"
			     "\n"
			     "bin/sh\r\n"
			     "   \t\n"
			     "  # indented comment\n"
			     "etc/a file with spaces\n"
			     "{\"path\":\"usr/lib/x.so\"}\n"
			     "{\"path\":\"lib/y\",\"layer_digest\":\"%s\"}\n"
			     "{\"path\":\"lib/z\",\"layerIndex\":3}\n"
			     "  {\"path\":\"w\",\"layerDigest\":\"%s\","
			     "\"layer_index\":0,\"other\":[1]}\n"
			     "last-without-newline",
			     dg, dg) > 0);
	assert_int_equal(load_prio(text, &l, &err), 7);
	free(text);
	assert_int_equal(l.n, 7);
	assert_string_equal(l.items[0].path, "bin/sh");
	assert_false(l.items[0].has_digest);
	assert_int_equal(l.items[0].layer_index, -1);
	assert_string_equal(l.items[1].path, "etc/a file with spaces");
	assert_string_equal(l.items[2].path, "usr/lib/x.so");
	assert_false(l.items[2].has_digest);
	assert_int_equal(l.items[2].layer_index, -1);
	assert_string_equal(l.items[3].path, "lib/y");
	assert_true(l.items[3].has_digest);
	assert_true(lp_digest_equal(&l.items[3].layer_digest, &d));
	assert_int_equal(l.items[3].layer_index, -1);
	assert_string_equal(l.items[4].path, "lib/z");
	assert_false(l.items[4].has_digest);
	assert_int_equal(l.items[4].layer_index, 3);
	assert_string_equal(l.items[5].path, "w");
	assert_true(l.items[5].has_digest);
	assert_int_equal(l.items[5].layer_index, 0);
	assert_string_equal(l.items[6].path, "last-without-newline");
	lp_prio_release(&l);
	assert_int_equal(l.n, 0);
	assert_null(l.items);
	lp_prio_release(&l); /* twice is fine */
	lp_prio_release(NULL);

	/* empty and comment-only lists */
	assert_int_equal(load_prio("", &l, &err), 0);
	lp_prio_release(&l);
	assert_int_equal(load_prio("# nothing\n\n", &l, &err), 0);
	lp_prio_release(&l);
}

static void test_prio_errors(void **state)
{
	static const char *const bad[] = {
		"{\"path\":\"a\"",
		"{\"nopath\":\"a\"}",
		"{\"path\":\"\"}",
		"{\"path\":7}",
		"{\"path\":\"a\",\"layer_digest\":\"sha256:abc\"}",
		"{\"path\":\"a\",\"layer_digest\":\"md5:0123\"}",
		"{\"path\":\"a\",\"layer_digest\":12}",
		"{\"path\":\"a\",\"layer_index\":-1}",
		"{\"path\":\"a\",\"layer_index\":\"1\"}",
		"{\"path\":\"a\",\"layer_index\":1.5}",
		"{\"path\":\"a\",\"layer_index\":99999999999}",
		"{\"path\":\"a\",\"layerIndex\":1024}",
		"{not json}",
	};
	struct lp_prio_list l = { 0 };
	struct lp_err err;
	char text[512], *big;
	size_t i;

	(void)state;
	for (i = 0; i < LP_ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof(text), "ok/one\n# c\n%s\nok/two\n",
			 bad[i]);
		assert_int_equal(load_prio(text, &l, &err), -EINVAL);
		if (!strstr(err.msg, "prio.txt:3:"))
			fail_msg("'%s': no line number in '%s'", bad[i],
				 err.msg);
		assert_int_equal(l.n, 0);
	}
	/* a line over the bound */
	big = malloc(LP_PRIO_MAX_LINE + 16);
	assert_non_null(big);
	memset(big, 'a', LP_PRIO_MAX_LINE + 8);
	big[LP_PRIO_MAX_LINE + 8] = '\0';
	assert_int_equal(load_prio(big, &l, &err), -EFBIG);
	assert_non_null(strstr(err.msg, ":1:"));
	free(big);
	/* no such file; a directory */
	lp_err_clear(&err);
	assert_int_equal(lp_prio_load(path_in(tmpdir, "missing"), &l, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "missing"));
	lp_err_clear(&err);
	assert_true(lp_prio_load(tmpdir, &l, &err) < 0);
	assert_int_equal(l.n, 0);
}

/* ---- layout stores ---- */

static void test_store_spec(void **state)
{
	struct lp_img_store *st = NULL;
	struct lp_err err;

	(void)state;
	assert_int_equal(
		lp_img_store_open("oci:/x/y:tag", NULL, false, &st, &err), 0);
	assert_true(lp_img_store_is_layout(st));
	assert_null(lp_img_store_ref(st));
	assert_string_equal(lp_img_store_name(st), "oci:/x/y:tag");
	lp_img_store_free(st);
	/* a ':' followed by a '/' belongs to the directory */
	assert_int_equal(lp_img_store_open("oci:/x:y/z", NULL, true, &st, &err),
			 0);
	lp_img_store_free(st);
	assert_int_equal(lp_img_store_open("oci:rel", NULL, true, &st, &err),
			 0);
	lp_img_store_free(st);
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_open("oci:", NULL, false, &st, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "oci:DIR[:TAG]"));
	assert_int_equal(lp_img_store_open("oci:dir:", NULL, false, &st, &err),
			 -EINVAL);
	assert_int_equal(lp_img_store_open("oci::tag", NULL, false, &st, &err),
			 -EINVAL);
	/* registry references: a destination needs a tag */
	assert_int_equal(lp_img_store_open("127.0.0.1:5000/r/a:t", NULL, true,
					   &st, &err),
			 0);
	assert_false(lp_img_store_is_layout(st));
	assert_non_null(lp_img_store_ref(st));
	lp_img_store_free(st);
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_open("127.0.0.1:5000/r/a@sha256:"
					   "0123456789abcdef0123456789abcdef"
					   "0123456789abcdef0123456789abcdef",
					   NULL, true, &st, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "needs a tag"));
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_open("Not A Ref", NULL, false, &st, &err),
			 -EINVAL);
	lp_img_store_free(NULL);
}

static size_t count_tmp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".tmp."))
			n++;
	closedir(d);
	return n;
}

static void put_tag(const char *dir, const char *tag, const char *body,
		    struct lp_digest *ret)
{
	struct lp_img_store *st = NULL;
	struct lp_err err;

	lp_err_clear(&err);
	assert_int_equal(
		lp_img_store_open(spec(dir, tag), NULL, true, &st, &err), 0);
	if (lp_img_store_put_tag(st, LP_REG_MT_OCI_MANIFEST, body, strlen(body),
				 ret, &err) < 0)
		fail_msg("put_tag %s: %s", tag, err.msg);
	lp_img_store_free(st);
}

static void test_layout_tags(void **state)
{
	const char *dir = fresh_dir("tags");
	static const char m1[] =
		"{\"schemaVersion\":2,\"mediaType\":"
		"\"application/vnd.oci.image.manifest.v1+json\","
		"\"config\":{\"mediaType\":\"" MT_CONFIG "\",\"digest\":"
		"\"sha256:0000000000000000000000000000000000000000000000000000"
		"000000000000\",\"size\":2},\"layers\":[]}";
	static const char m2[] =
		"{\"schemaVersion\":2,\"mediaType\":"
		"\"application/vnd.oci.image.manifest.v1+json\","
		"\"config\":{\"mediaType\":\"" MT_CONFIG "\",\"digest\":"
		"\"sha256:1111111111111111111111111111111111111111111111111111"
		"111111111111\",\"size\":2},\"layers\":[]}";
	struct lp_img_store *st = NULL;
	struct lp_reg_manifest *m = NULL;
	struct lp_digest d1, d2, d3;
	json_object *idx, *ms;
	struct lp_err err;
	char ds[LP_DIGEST_STR_LEN + 1], *body;
	size_t len;
	struct stat sb;

	(void)state;
	/* a new layout: oci-layout, blobs, index.json with the tag */
	put_tag(dir, "one", m1, &d1);
	assert_int_equal(stat(path_in(dir, "oci-layout"), &sb), 0);
	body = slurp(path_in(dir, "oci-layout"), NULL);
	assert_string_equal(body, "{\"imageLayoutVersion\":\"1.0.0\"}");
	free(body);
	lp_digest_format(&d1, ds);
	body = blob_of(dir, ds, &len);
	assert_int_equal(len, strlen(m1));
	assert_memory_equal(body, m1, len);
	free(body);
	idx = read_json(path_in(dir, "index.json"));
	assert_int_equal(json_object_get_int(jget(idx, "schemaVersion")), 2);
	assert_string_equal(jstr(idx, "mediaType"), LP_REG_MT_OCI_INDEX);
	ms = jget(idx, "manifests");
	assert_int_equal(json_object_array_length(ms), 1);
	assert_string_equal(jstr(idx, "manifests.0.digest"), ds);
	assert_int_equal(json_object_get_int64(jget(idx, "manifests.0.size")),
			 (int64_t)strlen(m1));
	assert_string_equal(jstr(idx, "manifests.0.mediaType"),
			    LP_REG_MT_OCI_MANIFEST);
	assert_string_equal(json_object_get_string(
				    jkey(jget(idx, "manifests.0.annotations"),
					 LP_IMAGE_ANN_REF_NAME)),
			    "one");
	json_object_put(idx);

	/* a second tag keeps the first; retagging replaces only its own */
	put_tag(dir, "two", m2, &d2);
	put_tag(dir, "one", m2, &d3);
	assert_true(lp_digest_equal(&d2, &d3));
	idx = read_json(path_in(dir, "index.json"));
	ms = jget(idx, "manifests");
	assert_int_equal(json_object_array_length(ms), 2);
	json_object_put(idx);
	assert_int_equal(count_tmp_files(dir), 0);
	assert_int_equal(count_tmp_files(path_in(dir, "blobs/sha256")), 0);

	/* reading back by tag */
	assert_int_equal(
		lp_img_store_open(spec(dir, "two"), NULL, false, &st, &err), 0);
	assert_int_equal(lp_img_store_get_top(st, &m, &err), 0);
	assert_false(lp_reg_manifest_is_index(m));
	lp_reg_manifest_free(m);
	lp_img_store_free(st);
	/* no such tag; no tag given with two images */
	lp_err_clear(&err);
	assert_int_equal(
		lp_img_store_open(spec(dir, "three"), NULL, false, &st, &err),
		0);
	assert_int_equal(lp_img_store_get_top(st, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no image tagged 'three'"));
	lp_img_store_free(st);
	lp_err_clear(&err);
	assert_int_equal(
		lp_img_store_open(spec(dir, NULL), NULL, false, &st, &err), 0);
	assert_int_equal(lp_img_store_get_top(st, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "several images"));
	lp_img_store_free(st);

	/* an existing index.json that is not an index: left alone */
	spit(path_in(dir, "index.json"), "{\"manifests\":{}}", 16);
	assert_int_equal(
		lp_img_store_open(spec(dir, "x"), NULL, true, &st, &err), 0);
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_put_tag(st, LP_REG_MT_OCI_MANIFEST, m1,
					      strlen(m1), NULL, &err),
			 -EPROTO);
	lp_img_store_free(st);
	body = slurp(path_in(dir, "index.json"), NULL);
	assert_string_equal(body, "{\"manifests\":{}}");
	free(body);
	assert_int_equal(count_tmp_files(dir), 0);

	/* not a layout at all */
	assert_int_equal(lp_img_store_open(spec(fresh_dir("none"), "x"), NULL,
					   false, &st, &err),
			 0);
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_get_top(st, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no index.json"));
	lp_img_store_free(st);
}

static void test_layout_blobs(void **state)
{
	const char *dir = fresh_dir("blobs");
	struct lp_img_store *st = NULL;
	struct lp_reg_desc d = { .media_type = MT_CONFIG };
	struct lp_blob *b = NULL;
	struct lp_err err;
	char ds[LP_DIGEST_STR_LEN + 1], *data = NULL, *p;
	size_t len;

	(void)state;
	assert_int_equal(
		lp_img_store_open(spec(dir, "t"), NULL, true, &st, &err), 0);
	assert_int_equal(
		lp_img_store_put_mem(st, "{\"a\":1}", 7, &d.digest, &err), 0);
	d.size = 7;
	assert_int_equal(lp_img_store_get_small(st, &d, 100, &data, &len, &err),
			 0);
	assert_int_equal(len, 7);
	assert_string_equal(data, "{\"a\":1}");
	free(data);
	/* over the caller's bound */
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_get_small(st, &d, 6, &data, &len, &err),
			 -EFBIG);
	/* a descriptor with the wrong size */
	d.size = 8;
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_get_small(st, &d, 100, &data, &len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "size"));
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_open_blob(st, &d, &b, &err), -EBADMSG);
	d.size = 7;
	assert_int_equal(lp_img_store_open_blob(st, &d, &b, &err), 0);
	assert_int_equal(lp_blob_size(b), 7);
	lp_blob_unref(b);
	/* the file changed under its name */
	lp_digest_format(&d.digest, ds);
	p = path_in(dir, "blobs/sha256");
	spit(path_in(p, ds + 7), "{\"a\":2}", 7);
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_get_small(st, &d, 100, &data, &len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "digest does not match"));
	/* a missing blob */
	d.digest.b[0] ^= 1;
	lp_err_clear(&err);
	assert_int_equal(lp_img_store_get_small(st, &d, 100, &data, &len, &err),
			 -ENOENT);
	lp_img_store_free(st);
}

/* ---- conversion between layouts ---- */

/* the converted image @tag in @dir against its source: layers, annotations,
   config (everything kept but diff_ids, which match the output) */
static void check_converted(const char *dir, const char *tag,
			    const char *src_config, enum lp_layer_format f)
{
	json_object *m = tag_manifest(dir, tag), *cfg, *src, *ann, *ls;
	bool zstd = f == LP_FMT_ZSTD_CHUNKED;
	char ds[LP_DIGEST_STR_LEN + 1], *blob, *cs;
	uint8_t *raw;
	size_t i, len, rlen;

	assert_string_equal(jstr(m, "mediaType"), LP_REG_MT_OCI_MANIFEST);
	assert_int_equal(json_object_get_int(jget(m, "schemaVersion")), 2);
	assert_string_equal(jstr(m, "config.mediaType"), MT_CONFIG);
	assert_string_equal(
		json_object_get_string(jkey(jget(m, "annotations"),
					    "org.opencontainers.image.title")),
		"t");
	cs = blob_of(dir, jstr(m, "config.digest"), &len);
	assert_int_equal(len, json_object_get_int64(jget(m, "config.size")));
	cfg = json_tokener_parse(cs);
	assert_non_null(cfg);
	ls = jget(m, "layers");
	assert_int_equal(json_object_array_length(ls), 2);
	for (i = 0; i < 2; i++) {
		json_object *l = json_object_array_get_idx(ls, i);
		const char *toc, *usize;

		assert_string_equal(jstr(l, "mediaType"),
				    zstd ? MT_LAYER_ZSTD : MT_LAYER_GZIP);
		blob = blob_of(dir, jstr(l, "digest"), &len);
		assert_int_equal(len, json_object_get_int64(jget(l, "size")));
		digest_str(blob, len, ds);
		assert_string_equal(ds, jstr(l, "digest"));
		ann = jget(l, "annotations");
		toc = json_object_get_string(
			jkey(ann, LP_IMAGE_ANN_TOC_DIGEST));
		usize = json_object_get_string(
			jkey(ann, LP_IMAGE_ANN_UNCOMPRESSED_SIZE));
		assert_int_equal(strncmp(toc, "sha256:", 7), 0);
		assert_int_equal(strlen(toc), LP_DIGEST_STR_LEN);
		raw = decompress(blob, len, &rlen);
		assert_int_equal(strtoull(usize, NULL, 10), rlen);
		/* rootfs.diff_ids[i]: the digest of the uncompressed layer */
		digest_str(raw, rlen, ds);
		assert_string_equal(
			json_object_get_string(json_object_array_get_idx(
				jget(cfg, "rootfs.diff_ids"), i)),
			ds);
		if (zstd) {
			const char *pos = json_object_get_string(
				jkey(ann, LP_IMAGE_ANN_ZSTD_POSITION));
			unsigned long long off, clen, ulen, type;

			assert_int_equal(
				strncmp(json_object_get_string(jkey(
						ann,
						LP_IMAGE_ANN_ZSTD_CHECKSUM)),
					"sha256:", 7),
				0);
			assert_int_equal(sscanf(pos, "%llu:%llu:%llu:%llu",
						&off, &clen, &ulen, &type),
					 4);
			assert_int_equal(type, 1);
			assert_true(off + clen < len);
		} else {
			assert_false(jhas(ann, LP_IMAGE_ANN_ZSTD_CHECKSUM));
			assert_true(layer_has(blob, len, "stargz.index.json"));
		}
		/* the source layer's own annotation is kept */
		if (i == 1)
			assert_string_equal(json_object_get_string(jkey(
						    ann, "org.example.layer")),
					    "second");
		else
			assert_false(jhas(ann, "org.example.layer"));
		free(raw);
		free(blob);
	}
	/* everything else in the config is as it was */
	src = json_tokener_parse(src_config);
	assert_non_null(src);
	json_object_object_del(jget(src, "rootfs"), "diff_ids");
	json_object_object_del(jget(cfg, "rootfs"), "diff_ids");
	if (!json_object_equal(src, cfg))
		fail_msg("config changed: %s -> %s",
			 json_object_to_json_string(src),
			 json_object_to_json_string(cfg));
	/* 64-bit numbers survive as numbers, not rounded doubles */
	assert_non_null(strstr(cs, "12345678901234"));
	json_object_put(src);
	json_object_put(cfg);
	json_object_put(m);
	free(cs);
}

static void test_convert_layouts(void **state)
{
	const char *src = fresh_dir("src"), *out = fresh_dir("out");
	struct lp_image_result res;
	struct src_image si;
	json_object *idx;
	struct lp_err err;
	char cfg[4096];
	int r;

	(void)state;
	make_simple_layout(src, &si);
	make_config(cfg, sizeof(cfg), "amd64", NULL, &si, NULL);

	r = convert(spec(src, "img"), spec(out, "esgz"), LP_FMT_ESTARGZ,
		    "linux/amd64", false, NULL, &res, &err);
	if (r < 0)
		fail_msg("convert: %s", err.msg);
	assert_int_equal(res.n_platforms, 1);
	assert_int_equal(res.n_layers, 2);
	assert_int_equal(res.n_converted, 2);
	assert_int_equal(res.n_reused, 0);
	assert_string_equal(res.media_type, LP_REG_MT_OCI_MANIFEST);
	assert_true(res.bytes_after > 0 && res.bytes_uncompressed > 0);
	check_converted(out, "esgz", cfg, LP_FMT_ESTARGZ);

	/* into the same layout under another tag: both stay */
	r = convert(spec(src, "img"), spec(out, "zstd"), LP_FMT_ZSTD_CHUNKED,
		    NULL, false, NULL, &res, &err);
	if (r < 0)
		fail_msg("convert zstd: %s", err.msg);
	check_converted(out, "zstd", cfg, LP_FMT_ZSTD_CHUNKED);
	check_converted(out, "esgz", cfg, LP_FMT_ESTARGZ);
	idx = read_json(path_in(out, "index.json"));
	assert_int_equal(json_object_array_length(jget(idx, "manifests")), 2);
	json_object_put(idx);
	assert_int_equal(count_tmp_files(out), 0);

	/* converting the eStargz output again reuses both layers */
	r = convert(spec(out, "esgz"), spec(out, "again"), LP_FMT_ESTARGZ, NULL,
		    false, NULL, &res, &err);
	if (r < 0)
		fail_msg("reconvert: %s", err.msg);
	assert_int_equal(res.n_reused, 2);
	assert_int_equal(res.n_converted, 0);
	check_converted(out, "again", cfg, LP_FMT_ESTARGZ);
}

/* an index of amd64 and arm64/v8 images of the same layers */
static void make_index_layout(const char *dir, struct src_image *si)
{
	char cfg[4096], m1[1024], m2[1024], att[1024];

	mkdirs(dir);
	make_layers(dir, si);
	make_config(cfg, sizeof(cfg), "amd64", NULL, si, NULL);
	make_manifest(dir, si, cfg, NULL,
		      "\"platform\":{\"os\":\"linux\",\"architecture\":"
		      "\"amd64\"}",
		      m1, sizeof(m1));
	make_config(cfg, sizeof(cfg), "arm64", "v8", si, NULL);
	make_manifest(dir, si, cfg, NULL,
		      "\"platform\":{\"os\":\"linux\",\"architecture\":"
		      "\"arm64\",\"variant\":\"v8\"}",
		      m2, sizeof(m2));
	/* an attestation-like entry, dropped by --all-platforms */
	make_manifest(dir, si, cfg, NULL,
		      "\"platform\":{\"os\":\"unknown\",\"architecture\":"
		      "\"unknown\"}",
		      att, sizeof(att));
	write_index(dir, (const char *const[]){ m1, m2, att }, 3);
}

static const char *config_arch(const char *dir, const char *tag)
{
	static char arch[64];
	json_object *m = tag_manifest(dir, tag), *c;
	char *cs = blob_of(dir, jstr(m, "config.digest"), NULL);

	c = json_tokener_parse(cs);
	snprintf(arch, sizeof(arch), "%s%s%s", jstr(c, "architecture"),
		 jhas(c, "variant") ? "/" : "",
		 jhas(c, "variant") ? jstr(c, "variant") : "");
	json_object_put(c);
	json_object_put(m);
	free(cs);
	return arch;
}

static void test_convert_platforms(void **state)
{
	const char *src = fresh_dir("multi"), *out = fresh_dir("mout"),
		   *one = fresh_dir("one");
	struct lp_image_result res;
	struct src_image si;
	struct lp_err err;
	json_object *idx, *top, *ms;
	char p[4096];
	int r;

	(void)state;
	make_index_layout(src, &si);
	/* the layout without a tag: index.json lists the platforms */
	r = convert(spec(src, NULL), spec(out, "arm"), LP_FMT_ESTARGZ,
		    "linux/arm64/v8", false, NULL, &res, &err);
	if (r < 0)
		fail_msg("--platform linux/arm64/v8: %s", err.msg);
	assert_string_equal(res.media_type, LP_REG_MT_OCI_MANIFEST);
	assert_string_equal(config_arch(out, "arm"), "arm64/v8");
	/* os/arch matches any variant */
	r = convert(spec(src, NULL), spec(out, "arm2"), LP_FMT_ESTARGZ,
		    "linux/arm64", false, NULL, &res, &err);
	if (r < 0)
		fail_msg("--platform linux/arm64: %s", err.msg);
	assert_string_equal(config_arch(out, "arm2"), "arm64/v8");
	r = convert(spec(src, NULL), spec(out, "amd"), LP_FMT_ESTARGZ,
		    "linux/amd64", false, NULL, &res, &err);
	assert_int_equal(r, 0);
	assert_string_equal(config_arch(out, "amd"), "amd64");
	/* a platform the index does not have: the message lists them */
	r = convert(spec(src, NULL), spec(out, "none"), LP_FMT_ESTARGZ,
		    "linux/s390x", false, NULL, &res, &err);
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(err.msg, "linux/amd64, linux/arm64/v8"));
	assert_null(strstr(err.msg, "unknown"));
	/* all platforms: an index of two, layers converted once */
	r = convert(spec(src, NULL), spec(out, "all"), LP_FMT_ESTARGZ, NULL,
		    true, NULL, &res, &err);
	if (r < 0)
		fail_msg("--all-platforms: %s", err.msg);
	assert_int_equal(res.n_platforms, 2);
	assert_int_equal(res.n_layers, 2);
	assert_string_equal(res.media_type, LP_REG_MT_OCI_INDEX);
	top = tag_manifest(out, "all");
	assert_string_equal(jstr(top, "mediaType"), LP_REG_MT_OCI_INDEX);
	ms = jget(top, "manifests");
	assert_int_equal(json_object_array_length(ms), 2);
	assert_string_equal(jstr(top, "manifests.0.platform.architecture"),
			    "amd64");
	assert_string_equal(jstr(top, "manifests.1.platform.architecture"),
			    "arm64");
	assert_string_equal(jstr(top, "manifests.1.platform.variant"), "v8");
	/* both images name the same converted layers */
	{
		json_object *a, *b;

		snprintf(p, sizeof(p), "%s/blobs/sha256/%s", out,
			 jstr(top, "manifests.0.digest") + 7);
		a = read_json(p);
		snprintf(p, sizeof(p), "%s/blobs/sha256/%s", out,
			 jstr(top, "manifests.1.digest") + 7);
		b = read_json(p);
		assert_string_equal(jstr(a, "layers.0.digest"),
				    jstr(b, "layers.0.digest"));
		assert_string_equal(jstr(a, "layers.1.digest"),
				    jstr(b, "layers.1.digest"));
		assert_string_not_equal(jstr(a, "config.digest"),
					jstr(b, "config.digest"));
		json_object_put(a);
		json_object_put(b);
	}
	json_object_put(top);
	idx = read_json(path_in(out, "index.json"));
	assert_int_equal(json_object_array_length(jget(idx, "manifests")), 4);
	json_object_put(idx);

	/* a single image and an explicit --platform of another arch */
	make_simple_layout(one, &si);
	r = convert(spec(one, "img"), spec(out, "wrong"), LP_FMT_ESTARGZ,
		    "linux/arm64", false, NULL, &res, &err);
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(err.msg, "linux/amd64, not linux/arm64"));
}

static void test_convert_prio(void **state)
{
	const char *src = fresh_dir("psrc"), *out = fresh_dir("pout");
	struct lp_prio_list l = { 0 };
	struct lp_image_result res;
	struct src_image si;
	struct lp_err err;
	json_object *m;
	char text[512], *blob;
	size_t len;
	int r;

	(void)state;
	make_simple_layout(src, &si);
	/* bin/tool in the layer named by its source digest; etc/motd in
	   layer 1 by index; a path no layer has */
	snprintf(text, sizeof(text),
		 "{\"path\":\"bin/tool\",\"layer_digest\":\"%s\"}\n"
		 "{\"path\":\"etc/motd\",\"layer_index\":1}\n"
		 "{\"path\":\"etc/passwd\",\"layer_index\":1}\n",
		 si.layer_digest[0]);
	assert_int_equal(load_prio(text, &l, &err), 3);
	r = convert(spec(src, "img"), spec(out, "p"), LP_FMT_ESTARGZ, NULL,
		    false, &l, &res, &err);
	if (r < 0)
		fail_msg("convert with priorities: %s", err.msg);
	m = tag_manifest(out, "p");
	blob = blob_of(out, jstr(m, "layers.0.digest"), &len);
	assert_true(layer_has(blob, len, ".prefetch.landmark"));
	free(blob);
	blob = blob_of(out, jstr(m, "layers.1.digest"), &len);
	assert_true(layer_has(blob, len, ".prefetch.landmark"));
	free(blob);
	json_object_put(m);
	lp_prio_release(&l);

	/* by diff-id, layer 1 only: layer 0 has nothing prioritised */
	snprintf(text, sizeof(text),
		 "{\"path\":\"etc/motd\",\"layer_digest\":\"%s\"}\n",
		 si.diff_id[1]);
	assert_int_equal(load_prio(text, &l, &err), 1);
	r = convert(spec(src, "img"), spec(out, "q"), LP_FMT_ESTARGZ, NULL,
		    false, &l, &res, &err);
	assert_int_equal(r, 0);
	m = tag_manifest(out, "q");
	blob = blob_of(out, jstr(m, "layers.0.digest"), &len);
	assert_true(layer_has(blob, len, ".no.prefetch.landmark"));
	assert_false(layer_has(blob, len, ".prefetch.landmark"));
	free(blob);
	blob = blob_of(out, jstr(m, "layers.1.digest"), &len);
	assert_true(layer_has(blob, len, ".prefetch.landmark"));
	free(blob);
	json_object_put(m);
	lp_prio_release(&l);
}

/* a conversion of a bad source fails with @code, @msg in the error, and
   writes no index.json */
static void expect_fail(const char *src, int code, const char *msg)
{
	const char *out = fresh_dir("bad");
	struct lp_image_result res;
	struct lp_err err;
	struct stat sb;
	int r;

	r = convert(spec(src, "img"), spec(out, "t"), LP_FMT_ESTARGZ, NULL,
		    false, NULL, &res, &err);
	if (r != code || !strstr(err.msg, msg))
		fail_msg("%s: got %d '%s', want %d '%s'", src, r, err.msg, code,
			 msg);
	assert_int_not_equal(stat(path_in(out, "index.json"), &sb), 0);
}

static void test_convert_bad_input(void **state)
{
	struct src_image si;
	char cfg[4096], md[1024], *e;
	const char *dir;
	uint8_t *t;
	size_t len;

	(void)state;
	/* config without rootfs.diff_ids */
	dir = fresh_dir("norootfs");
	mkdirs(dir);
	make_layers(dir, &si);
	make_config(cfg, sizeof(cfg), "amd64", NULL, &si, "{}");
	make_manifest(dir, &si, cfg, NULL, NULL, md, sizeof(md));
	e = tagged(md, "img");
	write_index(dir, (const char *const[]){ e }, 1);
	free(e);
	expect_fail(dir, -EINVAL, "no rootfs.diff_ids");

	/* one diff_id for two layers */
	dir = fresh_dir("fewids");
	mkdirs(dir);
	make_layers(dir, &si);
	snprintf(md, sizeof(md), "{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}",
		 si.diff_id[0]);
	make_config(cfg, sizeof(cfg), "amd64", NULL, &si, md);
	make_manifest(dir, &si, cfg, NULL, NULL, md, sizeof(md));
	e = tagged(md, "img");
	write_index(dir, (const char *const[]){ e }, 1);
	free(e);
	expect_fail(dir, -EINVAL, "lists 1 diff_ids for 2 layers");

	/* a diff_id that is not a digest */
	dir = fresh_dir("badid");
	mkdirs(dir);
	make_layers(dir, &si);
	snprintf(si.diff_id[1], sizeof(si.diff_id[1]), "sha256:nothex");
	make_config(cfg, sizeof(cfg), "amd64", NULL, &si, NULL);
	make_manifest(dir, &si, cfg, NULL, NULL, md, sizeof(md));
	e = tagged(md, "img");
	write_index(dir, (const char *const[]){ e }, 1);
	free(e);
	expect_fail(dir, -EINVAL, "diff_ids[1] is not a sha256 digest");

	/* a config that is not JSON */
	dir = fresh_dir("notjson");
	mkdirs(dir);
	make_layers(dir, &si);
	make_manifest(dir, &si, "{\"rootfs\":", NULL, NULL, md, sizeof(md));
	e = tagged(md, "img");
	write_index(dir, (const char *const[]){ e }, 1);
	free(e);
	expect_fail(dir, -EINVAL, "not an image config");

	/* a layer media type this cannot convert */
	dir = fresh_dir("badmt");
	mkdirs(dir);
	make_layers(dir, &si);
	make_config(cfg, sizeof(cfg), "amd64", NULL, &si, NULL);
	make_manifest(dir, &si, cfg, "application/vnd.in-toto+json", NULL, md,
		      sizeof(md));
	e = tagged(md, "img");
	write_index(dir, (const char *const[]){ e }, 1);
	free(e);
	expect_fail(dir, -EOPNOTSUPP, "application/vnd.in-toto+json");

	/* a layer blob changed after it was named */
	dir = fresh_dir("corrupt");
	make_simple_layout(dir, &si);
	t = (uint8_t *)blob_of(dir, si.layer_digest[1], &len);
	t[len / 3] ^= 0x55;
	spit(path_in(path_in(dir, "blobs/sha256"), si.layer_digest[1] + 7), t,
	     len);
	free(t);
	expect_fail(dir, -EBADMSG, si.layer_digest[1]);

	/* a tag the layout does not have */
	dir = fresh_dir("notag");
	make_simple_layout(dir, &si);
	{
		struct lp_image_result res;
		struct lp_err err;

		assert_int_equal(convert(spec(dir, "nope"), spec(dir, "t"),
					 LP_FMT_ESTARGZ, NULL, false, NULL,
					 &res, &err),
				 -ENOENT);
		assert_non_null(strstr(err.msg, "no image tagged 'nope'"));
	}
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prio_load),
		cmocka_unit_test(test_prio_errors),
		cmocka_unit_test(test_store_spec),
		cmocka_unit_test(test_layout_tags),
		cmocka_unit_test(test_layout_blobs),
		cmocka_unit_test(test_convert_layouts),
		cmocka_unit_test(test_convert_platforms),
		cmocka_unit_test(test_convert_prio),
		cmocka_unit_test(test_convert_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
