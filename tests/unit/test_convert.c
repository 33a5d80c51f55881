// SPDX-License-Identifier: Apache-2.0
/*
 * Converter tests. Against the reference converter's vectors: converting
 * v1.tar.gz gives the same uncompressed tar stream as the reference up to the
 * TOC entry, the same TOC JSON except member offsets (our deflate is not Go's,
 * so compressed sizes differ), and for zstd:chunked (no TOC in the stream)
 * the very same DiffID; every file reads back through lp_layer_open() with
 * the vector's .files digests. Then: output identical for 1 and 4 threads;
 * pipes as input; every tar feature a layer carries (PAX and GNU long names,
 * hardlinks, devices, fifos, xattrs, sparse files) read back; the >8 GiB
 * header encodings; corrupt inputs fail naming the entry and leave no file
 * behind; prioritised-file lists.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "slurp.h"

#include "convert_int.h"
#include "lp_buf.h"
#include "lp_convert.h"
#include "lp_layer.h"

static char tmpdir[] = "/tmp/lp-test-convert.XXXXXX";

static char *path_in(const char *dir, const char *name)
{
	static char buf[4][4096];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* Decompress a whole blob (gzip members or zstd frames; the footer and
 * skippable frames decode to nothing). */
static uint8_t *unpack(const uint8_t *blob, size_t len, bool zstd,
		       size_t *ret_len)
{
	size_t cap = 64 << 20, out = 0;
	uint8_t *buf = malloc(cap);

	assert_non_null(buf);
	if (zstd) {
		ZSTD_DStream *ds = ZSTD_createDStream();
		ZSTD_inBuffer in = { blob, len, 0 };

		while (in.pos < in.size) {
			ZSTD_outBuffer o = { buf + out, cap - out, 0 };
			size_t r = ZSTD_decompressStream(ds, &o, &in);

			assert_false(ZSTD_isError(r));
			out += o.pos;
			assert_true(out < cap);
		}
		ZSTD_freeDStream(ds);
	} else {
		z_stream z = { 0 };

		assert_int_equal(inflateInit2(&z, 31), Z_OK);
		z.next_in = (uint8_t *)blob;
		z.avail_in = (uInt)len;
		while (z.avail_in) {
			int r;

			z.next_out = buf + out;
			z.avail_out = (uInt)(cap - out);
			r = inflate(&z, Z_NO_FLUSH);
			out = cap - z.avail_out;
			assert_true(r == Z_OK || r == Z_STREAM_END);
			if (r == Z_STREAM_END)
				assert_int_equal(inflateReset(&z), Z_OK);
		}
		inflateEnd(&z);
	}
	*ret_len = out;
	return buf;
}

/* Offset of the TOC tar entry's header in an uncompressed stream. */
static size_t toc_entry_pos(const uint8_t *tar, size_t len)
{
	size_t off;

	for (off = 0; off + 512 <= len; off += 512)
		if (!memcmp(tar + off, LP_TOC_NAME, sizeof(LP_TOC_NAME)))
			return off;
	fail_msg("no TOC entry");
	return 0;
}

/* JSON with every "offset": N replaced by "offset": 0 */
static char *strip_offsets(const char *json, size_t len)
{
	char *out = malloc(len + 1), *o = out;
	const char *p = json, *end = json + len;
	static const char key[] = "\"offset\": ";

	assert_non_null(out);
	while (p < end) {
		if ((size_t)(end - p) > sizeof(key) &&
		    !memcmp(p, key, sizeof(key) - 1)) {
			memcpy(o, key, sizeof(key) - 1);
			o += sizeof(key) - 1;
			p += sizeof(key) - 1;
			*o++ = '0';
			while (p < end && *p >= '0' && *p <= '9')
				p++;
			continue;
		}
		*o++ = *p++;
	}
	*o = 0;
	return out;
}

static struct lp_layer *open_layer(const char *path)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *layer = NULL;
	struct lp_err err = { 0 };

	assert_int_equal(lp_blob_open_file(path, &blob), 0);
	if (lp_layer_open(blob, NULL, &layer, &err))
		fail_msg("%s: %s", path, err.msg);
	lp_blob_unref(blob);
	return layer;
}

/* sha256 of a regular file's content, read chunk by chunk. */
static void file_digest(struct lp_layer *layer, uint32_t ino,
			struct lp_digest *out)
{
	const struct lp_toc *toc = lp_layer_toc(layer);
	const struct lp_toc_entry *e = lp_toc_entry(toc, ino);
	struct lp_chunk_decoder *dec = NULL;
	struct lp_sha256 *sha = NULL;
	struct lp_err err = { 0 };
	uint32_t i;

	assert_int_equal(lp_sha256_new(&sha), 0);
	assert_int_equal(
		lp_chunk_decoder_new(
			lp_format_compression(lp_layer_format(layer)), &dec),
		0);
	for (i = 0; i < e->nr_chunks; i++) {
		const struct lp_toc_chunk c =
			lp_toc_chunk(toc, e->first_chunk + i);
		uint8_t *buf = malloc(c.chunk_size);

		assert_non_null(buf);
		if (lp_layer_read_chunk(layer, dec, e->first_chunk + i, buf,
					&err))
			fail_msg("%s: %s", lp_toc_entry_name(toc, e), err.msg);
		lp_sha256_update(sha, buf, c.chunk_size);
		free(buf);
	}
	lp_sha256_final(sha, out);
	lp_sha256_free(sha);
	lp_chunk_decoder_free(dec);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every regular file of @layer (hardlinks resolved), hashed from its chunks,
 * listed as "path sha256:hex" and sorted bytewise, equals the vector's
 * NAME.files list byte for byte.
 */
static void check_files(struct lp_layer *layer, const char *vec)
{
	const struct lp_toc *toc = lp_layer_toc(layer);
	uint32_t i, n = 0, nr = lp_toc_nr_entries(toc);
	char digest[LP_DIGEST_STR_LEN + 1];
	char **lines = calloc(nr, sizeof(*lines));
	struct lp_buf got;
	char *list;
	size_t len;

	assert_non_null(lines);
	list = (char *)slurp(path_in(LP_VECTORS_DIR, vec), &len);
	for (i = 0; i < nr; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		char path[LP_TOC_MAX_PATH + 1];
		struct lp_digest d;

		if (lp_toc_entry(toc, lp_toc_entry_ino(toc, e))->type !=
		    LP_TOC_REG)
			continue;
		assert_true(lp_toc_entry_path(toc, i, path, sizeof(path)) >= 0);
		file_digest(layer, lp_toc_entry_ino(toc, e), &d);
		lp_digest_format(&d, digest);
		assert_true(asprintf(&lines[n], "%s %s\n", path, digest) > 0);
		n++;
	}
	qsort(lines, n, sizeof(*lines), cmp_str);
	lp_buf_init(&got, 64 * LP_MIB);
	for (i = 0; i < n; i++) {
		assert_int_equal(
			lp_buf_append(&got, lines[i], strlen(lines[i])), 0);
		free(lines[i]);
	}
	if (got.len != len || memcmp(got.data, list, len))
		fail_msg("file listing differs from %s:\n%s", vec,
			 (char *)got.data);
	lp_buf_release(&got);
	free(lines);
	free(list);
}

static int convert_file(const char *in, const char *out,
			const struct lp_convert_opts *o,
			struct lp_convert_result *res, struct lp_err *err)
{
	int fd = open(in, O_RDONLY), r;

	assert_true(fd >= 0);
	r = lp_convert_layer(fd, out, o, res, err);
	close(fd);
	return r;
}

/*
 * Convert v1.tar.gz with @o and compare with vector @vec: same stream up to
 * the TOC entry, same TOC modulo offsets, results consistent with the file,
 * every file's content equal to the vector's .files listing. The vectors are
 * required: a missing one fails the test rather than skipping a check.
 */
static void compare_with_vector(const struct lp_convert_opts *o,
				const char *vec)
{
	struct lp_convert_result res;
	struct lp_err err = { 0 };
	struct lp_layer *ours, *ref;
	char out[4096], name[256], want[LP_DIGEST_STR_LEN + 2];
	uint8_t *blob, *rblob, *tar, *rtar;
	size_t blen, rblen, tlen, rtlen, jl, rjl;
	const void *json, *rjson;
	char *a, *b;
	struct lp_digest d;
	bool zstd = o->format == LP_FMT_ZSTD_CHUNKED;

	snprintf(out, sizeof(out), "%s/out.esgz", tmpdir);
	if (convert_file(path_in(LP_VECTORS_DIR, "v1.tar.gz"), out, o, &res,
			 &err))
		fail_msg("convert: %s", err.msg);
	blob = slurp(out, &blen);
	assert_int_equal(res.size, blen);
	lp_sha256(blob, blen, &d);
	assert_true(lp_digest_equal(&d, &res.blob_digest));
	tar = unpack(blob, blen, zstd, &tlen);
	assert_int_equal(res.uncompressed_size, tlen);
	lp_sha256(tar, tlen, &d);
	assert_true(lp_digest_equal(&d, &res.diff_id));

	ours = open_layer(out);
	assert_true(
		lp_digest_equal(lp_layer_toc_digest(ours), &res.toc_digest));
	json = lp_layer_toc_json(ours, &jl);
	if (zstd) {
		const struct lp_footer *f = lp_layer_footer(ours);

		assert_int_equal(f->toc_offset, res.toc_offset);
		assert_int_equal(f->toc_size, res.toc_compressed_size);
		assert_int_equal(res.toc_uncompressed_size, jl);
		lp_sha256(blob + res.toc_offset, res.toc_compressed_size, &d);
		assert_true(lp_digest_equal(&d, &res.manifest_checksum));
		/* no TOC in the stream: the DiffID is the reference's */
		snprintf(name, sizeof(name), "%s.diff-id", vec);
		a = (char *)slurp(path_in(LP_VECTORS_DIR, name), &rjl);
		lp_digest_format(&res.diff_id, want);
		assert_memory_equal(a, want, LP_DIGEST_STR_LEN);
		free(a);
	}
	snprintf(name, sizeof(name), "%s.files", vec);
	check_files(ours, name);

	snprintf(name, sizeof(name), "%s.esgz", vec);
	{
		rblob = slurp(path_in(LP_VECTORS_DIR, name), &rblen);
		rtar = unpack(rblob, rblen, zstd, &rtlen);
		assert_int_equal(tlen, rtlen);
		if (zstd) {
			assert_memory_equal(tar, rtar, tlen);
		} else {
			size_t pos = toc_entry_pos(rtar, rtlen);

			assert_int_equal(toc_entry_pos(tar, tlen), pos);
			assert_memory_equal(tar, rtar, pos);
		}
		ref = open_layer(path_in(LP_VECTORS_DIR, name));
		rjson = lp_layer_toc_json(ref, &rjl);
		a = strip_offsets(json, jl);
		b = strip_offsets(rjson, rjl);
		assert_string_equal(a, b);
		free(a);
		free(b);
		lp_layer_free(ref);
		free(rblob);
		free(rtar);
	}
	lp_layer_free(ours);
	free(blob);
	free(tar);
	unlink(out);
}

static void test_vector_default(void **state)
{
	struct lp_convert_opts o;

	lp_convert_opts_init(&o);
	o.threads = 2;
	compare_with_vector(&o, "v1-default");
}

static void test_vector_chunk64k(void **state)
{
	struct lp_convert_opts o;

	lp_convert_opts_init(&o);
	o.chunk_size = 64 * 1024;
	compare_with_vector(&o, "v1-chunk64k");
}

static void test_vector_zstd(void **state)
{
	struct lp_convert_opts o;

	lp_convert_opts_init(&o);
	o.format = LP_FMT_ZSTD_CHUNKED;
	compare_with_vector(&o, "v1-zstd");
}

static void test_vector_prio(void **state)
{
	static const char list[] =
		"# prioritised files\n"
		"\n"
		"./usr/bin/tool\n"
		"{\"path\":\"./etc/conf.d/app.conf\",\"atime\":12}\n"
		"/not/in/the/layer\n";
	struct lp_convert_opts o;
	char **paths = NULL;
	struct lp_err err = { 0 };
	int n;

	spit(path_in(tmpdir, "prio.txt"), list, sizeof(list) - 1);
	n = lp_prio_list_load(path_in(tmpdir, "prio.txt"), &paths, &err);
	assert_int_equal(n, 3);
	assert_string_equal(paths[0], "./usr/bin/tool");
	assert_string_equal(paths[1], "./etc/conf.d/app.conf");
	assert_null(paths[3]);
	lp_convert_opts_init(&o);
	o.prioritized = (const char *const *)paths;
	o.nr_prioritized = 2; /* the vector was made without the missing one */
	compare_with_vector(&o, "v1-prio");
	/* a path not in the layer is skipped, not an error */
	o.nr_prioritized = 3;
	compare_with_vector(&o, "v1-prio");
	lp_prio_list_free(paths);
}

static void test_prio_list_errors(void **state)
{
	static const char bad[] = "ok\n{\"nopath\": 1}\n";
	char **paths = NULL;
	struct lp_err err = { 0 };

	spit(path_in(tmpdir, "bad.txt"), bad, sizeof(bad) - 1);
	assert_int_equal(
		lp_prio_list_load(path_in(tmpdir, "bad.txt"), &paths, &err),
		-EINVAL);
	assert_non_null(strstr(err.msg, ":2:"));
	assert_int_equal(
		lp_prio_list_load(path_in(tmpdir, "none"), &paths, NULL),
		-ENOENT);
	spit(path_in(tmpdir, "empty.txt"), "", 0);
	assert_int_equal(
		lp_prio_list_load(path_in(tmpdir, "empty.txt"), &paths, NULL),
		0);
	assert_null(paths[0]);
	lp_prio_list_free(paths);
	lp_prio_list_free(NULL);
}

static void test_threads_deterministic(void **state)
{
	struct lp_convert_opts o;
	struct lp_convert_result r1, r4;
	uint8_t *a, *b;
	size_t la, lb;
	unsigned f;

	for (f = 0; f < 2; f++) {
		lp_convert_opts_init(&o);
		o.format = f ? LP_FMT_ZSTD_CHUNKED : LP_FMT_ESTARGZ;
		o.chunk_size = 64 * 1024;
		o.threads = 1;
		assert_int_equal(
			convert_file(path_in(LP_VECTORS_DIR, "v1.tar.gz"),
				     path_in(tmpdir, "t1"), &o, &r1, NULL),
			0);
		o.threads = 4;
		assert_int_equal(
			convert_file(path_in(LP_VECTORS_DIR, "v1.tar.gz"),
				     path_in(tmpdir, "t4"), &o, &r4, NULL),
			0);
		a = slurp(path_in(tmpdir, "t1"), &la);
		b = slurp(path_in(tmpdir, "t4"), &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(a, b, la);
		assert_memory_equal(&r1, &r4, sizeof(r1));
		free(a);
		free(b);
	}
	unlink(path_in(tmpdir, "t1"));
	unlink(path_in(tmpdir, "t4"));
}

struct feeder {
	int fd;
	const uint8_t *data;
	size_t len;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;

	while (off < f->len) {
		ssize_t n = write(f->fd, f->data + off,
				  f->len - off < 4096 ? f->len - off : 4096);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(f->fd);
	return NULL;
}

static int convert_mem(const void *data, size_t len, const char *out,
		       const struct lp_convert_opts *o,
		       struct lp_convert_result *res, struct lp_err *err)
{
	struct feeder f = { .data = data, .len = len };
	pthread_t t;
	int p[2], r;

	assert_int_equal(pipe(p), 0);
	f.fd = p[1];
	assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
	r = lp_convert_layer(p[0], out, o, res, err);
	/* let the feeder finish even when the converter stopped early */
	close(p[0]);
	pthread_join(t, NULL);
	return r;
}

static void test_pipe_input(void **state)
{
	struct lp_convert_opts o;
	struct lp_convert_result r1, r2;
	uint8_t *in;
	size_t len;

	lp_convert_opts_init(&o);
	in = slurp(path_in(LP_VECTORS_DIR, "v1.tar.gz"), &len);
	assert_int_equal(
		convert_mem(in, len, path_in(tmpdir, "p1"), &o, &r1, NULL), 0);
	assert_int_equal(convert_file(path_in(LP_VECTORS_DIR, "v1.tar.gz"),
				      path_in(tmpdir, "p2"), &o, &r2, NULL),
			 0);
	assert_memory_equal(&r1, &r2, sizeof(r1));
	free(in);
	unlink(path_in(tmpdir, "p1"));
	unlink(path_in(tmpdir, "p2"));
}

/* Only our own output directory's expected files exist. */
static void assert_no_leftovers(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strstr(de->d_name, ".txt"))
			continue;
		fail_msg("left behind: %s", de->d_name);
	}
	closedir(d);
}

static void test_corrupt_input(void **state)
{
	static const char *const prio[] = { "./usr/bin/tool" };
	struct lp_convert_opts o;
	struct lp_err err = { 0 };
	uint8_t *in, *tar;
	size_t len, tlen;
	char out[4096];
	unsigned i;

	snprintf(out, sizeof(out), "%s/bad.esgz", tmpdir);
	in = slurp(path_in(LP_VECTORS_DIR, "v1.tar.gz"), &len);
	lp_convert_opts_init(&o);
	for (i = 0; i < 2; i++) {
		/* truncated gzip, in stream and in spool (prioritised) mode */
		o.prioritized = i ? prio : NULL;
		o.nr_prioritized = i;
		lp_err_clear(&err);
		assert_true(convert_mem(in, len / 2, out, &o, NULL, &err) < 0);
		assert_true(err.msg[0]);
		assert_no_leftovers();
	}
	o.nr_prioritized = 0;
	/* not a tar at all */
	lp_err_clear(&err);
	assert_int_equal(convert_mem("hello, world\n", 13, out, &o, NULL, &err),
			 -EINVAL);
	assert_no_leftovers();
	/* a tar whose payload is cut off: the error names the entry */
	tar = unpack(in, len, false, &tlen);
	lp_err_clear(&err);
	assert_true(convert_mem(tar, 200000, out, &o, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "usr/"));
	assert_no_leftovers();
	/* a bad header checksum in the middle */
	tar[512 * 3 + 148] ^= 1;
	lp_err_clear(&err);
	assert_true(convert_mem(tar, tlen, out, &o, NULL, &err) < 0);
	assert_no_leftovers();
	/* bad options */
	o.chunk_size = 1;
	assert_int_equal(convert_mem(in, len, out, &o, NULL, NULL), -EINVAL);
	assert_no_leftovers();
	free(tar);
	free(in);
}

/* ---- tar features, from a tar written here with libarchive ---- */

struct wbuf {
	uint8_t *data;
	size_t len, cap;
};

static la_ssize_t wb_write(struct archive *a, void *ctx, const void *buf,
			   size_t n)
{
	struct wbuf *w = ctx;

	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->data = realloc(w->data, w->cap);
		assert_non_null(w->data);
	}
	memcpy(w->data + w->len, buf, n);
	w->len += n;
	return (la_ssize_t)n;
}

static void add(struct archive *a, const char *name, mode_t type, mode_t perm,
		const char *link, const char *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_mtime(e, 1600000000, 0);
	archive_entry_set_uid(e, 1000);
	archive_entry_set_uname(e, "user");
	if (type == AE_IFLNK)
		archive_entry_set_symlink(e, link);
	if (type == AE_IFCHR || type == AE_IFBLK) {
		archive_entry_set_rdevmajor(e, 8);
		archive_entry_set_rdevminor(e, 1);
	}
	if (type == AE_IFREG && link) {
		archive_entry_set_hardlink(e, link);
		archive_entry_set_size(e, 0);
	} else if (type == AE_IFREG) {
		archive_entry_set_size(e, (la_int64_t)len);
	}
	if (!strcmp(name, "dir/xattrs")) {
		archive_entry_xattr_add_entry(e, "user.b", "2", 1);
		archive_entry_xattr_add_entry(e, "trusted.overlay.opaque", "y",
					      1);
		archive_entry_xattr_add_entry(e, "user.bin", "\0\1\2", 3);
	}
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	if (type == AE_IFREG && !link && len)
		assert_int_equal(archive_write_data(a, data, len),
				 (la_ssize_t)len);
	archive_entry_free(e);
}

static uint8_t *make_tar(bool gnu, size_t *ret_len)
{
	struct archive *a = archive_write_new();
	struct wbuf w = { 0 };
	char longname[300], longlink[300], *big;
	size_t i;

	if (gnu)
		archive_write_set_format_gnutar(a);
	else
		archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_in_last_block(a, 1);
	assert_int_equal(archive_write_open(a, &w, NULL, wb_write, NULL),
			 ARCHIVE_OK);
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "dir/", 4);
	longname[250] = 0;
	memset(longlink, 'l', sizeof(longlink));
	longlink[200] = 0;
	big = malloc(300000);
	assert_non_null(big);
	for (i = 0; i < 300000; i++)
		big[i] = (char)(i * 7 + i / 1000);
	add(a, "dir/", AE_IFDIR, 0755, NULL, NULL, 0);
	add(a, "dir/file", AE_IFREG, 04755, NULL, "hello\n", 6);
	add(a, "dir/big", AE_IFREG, 0644, NULL, big, 300000);
	add(a, "dir/hard", AE_IFREG, 0644, "dir/file", NULL, 0);
	add(a, "dir/sym", AE_IFLNK, 0777, "file", NULL, 0);
	add(a, "dir/longlink", AE_IFLNK, 0777, longlink, NULL, 0);
	add(a, longname, AE_IFREG, 0600, NULL, "long\n", 5);
	add(a, "dir/chr", AE_IFCHR, 0600, NULL, NULL, 0);
	add(a, "dir/blk", AE_IFBLK, 0600, NULL, NULL, 0);
	add(a, "dir/fifo", AE_IFIFO, 0600, NULL, NULL, 0);
	add(a, "dir/.wh.gone", AE_IFREG, 0600, NULL, NULL, 0);
	if (!gnu)
		add(a, "dir/xattrs", AE_IFREG, 0600, NULL, "x", 1);
	free(big);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret_len = w.len;
	return w.data;
}

static uint32_t lookup(const struct lp_toc *toc, const char *path)
{
	uint32_t i = lp_toc_lookup_path(toc, path);

	if (i == LP_TOC_NO_INDEX)
		fail_msg("%s missing", path);
	return i;
}

static void test_tar_features(void **state)
{
	unsigned gnu;

	for (gnu = 0; gnu < 2; gnu++) {
		struct lp_convert_opts o;
		struct lp_convert_result res;
		struct lp_err err = { 0 };
		const struct lp_toc *toc;
		const struct lp_toc_entry *e;
		struct lp_layer *layer;
		struct lp_digest d, want;
		uint32_t maj, min;
		uint8_t *tar;
		size_t len;
		char longname[300];

		tar = make_tar(gnu, &len);
		lp_convert_opts_init(&o);
		o.chunk_size = 64 * 1024;
		if (convert_mem(tar, len, path_in(tmpdir, "f.esgz"), &o, &res,
				&err))
			fail_msg("%s", err.msg);
		layer = open_layer(path_in(tmpdir, "f.esgz"));
		toc = lp_layer_toc(layer);

		e = lp_toc_entry(toc, lookup(toc, "dir/file"));
		assert_int_equal(e->type, LP_TOC_REG);
		assert_int_equal(e->mode & 07777, 04755);
		assert_int_equal(lp_toc_entry_uid(toc, e), 1000);
		assert_string_equal(lp_toc_entry_user_name(toc, e), "user");
		file_digest(layer, lookup(toc, "dir/file"), &d);
		lp_sha256("hello\n", 6, &want);
		assert_true(lp_digest_equal(&d, &want));

		e = lp_toc_entry(toc, lookup(toc, "dir/big"));
		assert_int_equal(e->size, 300000);
		assert_int_equal(e->nr_chunks, 5);

		e = lp_toc_entry(toc, lookup(toc, "dir/hard"));
		assert_int_equal(e->type, LP_TOC_HARDLINK);
		assert_int_equal(lp_toc_entry_ino(toc, e),
				 lookup(toc, "dir/file"));
		e = lp_toc_entry(toc, lookup(toc, "dir/sym"));
		assert_int_equal(e->type, LP_TOC_SYMLINK);
		assert_string_equal(lp_toc_entry_link_name(toc, e), "file");
		e = lp_toc_entry(toc, lookup(toc, "dir/longlink"));
		assert_int_equal(strlen(lp_toc_entry_link_name(toc, e)), 200);
		memset(longname, 'n', sizeof(longname));
		memcpy(longname, "dir/", 4);
		longname[250] = 0;
		file_digest(layer, lookup(toc, longname), &d);
		lp_sha256("long\n", 5, &want);
		assert_true(lp_digest_equal(&d, &want));
		e = lp_toc_entry(toc, lookup(toc, "dir/chr"));
		assert_int_equal(e->type, LP_TOC_CHAR);
		lp_toc_entry_dev(toc, e, &maj, &min);
		assert_int_equal(maj, 8);
		assert_int_equal(min, 1);
		e = lp_toc_entry(toc, lookup(toc, "dir/blk"));
		assert_int_equal(e->type, LP_TOC_BLOCK);
		e = lp_toc_entry(toc, lookup(toc, "dir/fifo"));
		assert_int_equal(e->type, LP_TOC_FIFO);
		e = lp_toc_entry(toc, lookup(toc, "dir/.wh.gone"));
		assert_int_equal(e->type, LP_TOC_REG);
		if (!gnu) {
			const struct lp_toc_xattr *x;

			e = lp_toc_entry(toc, lookup(toc, "dir/xattrs"));
			uint32_t nr;

			x = lp_toc_entry_xattrs(toc, e, &nr);
			assert_int_equal(nr, 3);
			/* written sorted by name */
			assert_string_equal(x[0].name,
					    "trusted.overlay.opaque");
			assert_string_equal(x[2].name, "user.bin");
			assert_int_equal(x[2].len, 3);
			assert_memory_equal(x[2].value, "\0\1\2", 3);
		}
		lp_layer_free(layer);
		free(tar);
		unlink(path_in(tmpdir, "f.esgz"));
	}
}

/* Sparse files (GNU tar -S, pax and gnu formats) read back expanded. */
static void test_sparse(void **state)
{
	static const char *const names[] = { "sparse-pax.tar",
					     "sparse-gnu.tar" };
	const size_t size = 3 << 20;
	uint8_t *full = calloc(1, size);
	unsigned i;

	assert_non_null(full);
	memcpy(full + (1 << 20), "aaaa", 4);
	for (i = 0; i < 2; i++) {
		struct lp_convert_opts o;
		struct lp_err err = { 0 };
		struct lp_layer *layer;
		struct lp_digest d, want;
		char in[4096];

		snprintf(in, sizeof(in), "%s/tests/fuzz/corpus/tar/%s",
			 LP_SOURCE_DIR, names[i]);
		lp_convert_opts_init(&o);
		o.level = 1;
		if (convert_file(in, path_in(tmpdir, "s.esgz"), &o, NULL, &err))
			fail_msg("%s", err.msg);
		layer = open_layer(path_in(tmpdir, "s.esgz"));
		file_digest(layer, lookup(lp_layer_toc(layer), "sparsefile"),
			    &d);
		lp_sha256(full, size, &want);
		assert_true(lp_digest_equal(&d, &want));
		lp_layer_free(layer);
		/* the output bound applies to the expanded size */
		o.max_uncompressed = 1 << 20;
		assert_int_equal(convert_file(in, path_in(tmpdir, "s.esgz"), &o,
					      NULL, &err),
				 -EFBIG);
	}
	free(full);
	unlink(path_in(tmpdir, "s.esgz"));
	assert_no_leftovers();
}

/* Headers of files over 8 GiB, without 8 GiB of data. */
static void test_big_headers(void **state)
{
	struct lp_cv_entry e = { 0 };
	struct lp_buf out;
	const int64_t size = (int64_t)9 << 30;

	lp_buf_init(&out, 1 << 20);
	e.name = (char *)"big";
	e.link_name = e.uname = e.gname = (char *)"";
	e.typeflag = '0';
	e.size = size;
	e.format = LP_CV_FMT_PAX;
	assert_int_equal(lp_cv_tar_header(&e, &out, NULL), 0);
	/* a PAX header carrying the size, then the ustar block (size 0) */
	assert_int_equal(out.len, 3 * 512);
	assert_non_null(memmem(out.data + 512, 512, "size=9663676416\n", 16));
	assert_memory_equal(out.data + 1024 + 124, "00000000000", 11);

	lp_buf_reset(&out);
	e.format = LP_CV_FMT_GNU;
	assert_int_equal(lp_cv_tar_header(&e, &out, NULL), 0);
	/* GNU: base-256 size field */
	assert_int_equal(out.len, 512);
	assert_int_equal(out.data[124], 0x80);
	assert_int_equal(out.data[124 + 11], 0);
	assert_int_equal(out.data[124 + 7], 2);
	assert_memory_equal(out.data + 257, "ustar  \0", 8);
	lp_buf_release(&out);
}

static int setup(void **state)
{
	/* the feeder thread writes into pipes the converter may close */
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	const char *const names[] = { "prio.txt", "bad.txt", "empty.txt" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path_in(tmpdir, names[i]));
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_default),
		cmocka_unit_test(test_vector_chunk64k),
		cmocka_unit_test(test_vector_zstd),
		cmocka_unit_test(test_vector_prio),
		cmocka_unit_test(test_prio_list_errors),
		cmocka_unit_test(test_threads_deterministic),
		cmocka_unit_test(test_pipe_input),
		cmocka_unit_test(test_corrupt_input),
		cmocka_unit_test(test_tar_features),
		cmocka_unit_test(test_sparse),
		cmocka_unit_test(test_big_headers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
