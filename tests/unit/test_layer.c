// SPDX-License-Identifier: Apache-2.0
/*
 * Layer tests against the reference converter's vectors: open each one, check
 * the format and TOC digest, read and verify every chunk of every regular
 * file and reproduce the vector's .files listing byte for byte (hardlinks
 * under their own path with their target's content). Opening from a tail
 * of any length gives the same TOC with only the reads needed. Then faults: a flipped
 * byte in a chunk, a wrong wanted TOC digest, truncated blobs and a blob
 * whose reads fail. The digest policy: with a TOC rewritten (craft_toc.h),
 * a single-chunk file without chunkDigest is read by its file digest, and
 * refused when that lies or is missing; a file of several chunks without
 * chunkDigests is refused before any byte of it is read.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "slurp.h"

#include "toc_test_digest.h"
#include "craft_toc.h"
#include "lp_layer.h"
#include "layer_probe.h"
#include "toc_fault.h"

struct vec {
	const char *name;
	enum lp_layer_format format;
	bool prefetch;
};

static const struct vec vectors[] = {
	{ "v1-default", LP_FMT_ESTARGZ, false },
	{ "v1-chunk64k", LP_FMT_ESTARGZ, false },
	{ "v1-prio", LP_FMT_ESTARGZ, true },
	{ "v1-zstd", LP_FMT_ZSTD_CHUNKED, false },
};

static char *vec_path(const char *name, const char *ext)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s%s", LP_VECTORS_DIR, name, ext);
	return path;
}

static void want_digest(const char *name, struct lp_digest *d)
{
	size_t len;
	char *s = (char *)slurp(vec_path(name, ".toc-digest"), &len);

	while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	assert_int_equal(lp_digest_parse_n(s, len, d), 0);
	free(s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sha256 of a whole file, chunk by chunk, through lp_layer_read_chunk */
static int hash_file(struct lp_layer *l, struct lp_chunk_decoder *dec,
		     uint32_t ino, struct lp_digest *out)
{
	const struct lp_toc *toc = lp_layer_toc(l);
	const struct lp_toc_entry *e = lp_toc_entry(toc, ino);
	struct lp_sha256 *ctx = NULL;
	uint32_t k;
	int r = 0;

	assert_int_equal(lp_sha256_new(&ctx), 0);
	for (k = 0; k < e->nr_chunks; k++) {
		const struct lp_toc_chunk c =
			lp_toc_chunk(toc, e->first_chunk + k);
		struct lp_err err = { 0 };
		uint8_t *buf = malloc(c.chunk_size);

		assert_non_null(buf);
		assert_int_equal(c.entry, ino);
		assert_int_equal(lp_toc_find_chunk(toc, ino, c.chunk_offset),
				 e->first_chunk + k);
		r = lp_layer_read_chunk(l, dec, e->first_chunk + k, buf, &err);
		if (r < 0) {
			print_message("read_chunk: %s\n", lp_err_str(&err, r));
			free(buf);
			break;
		}
		lp_sha256_update(ctx, buf, c.chunk_size);
		free(buf);
	}
	lp_sha256_final(ctx, out);
	lp_sha256_free(ctx);
	return r;
}

static void check_vector(const struct vec *v)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	struct lp_err err = { 0 };
	struct lp_digest want;
	const struct lp_toc *toc;
	char **lines, *listing, *expect;
	size_t nlines = 0, i, len, expect_len, pos = 0;
	uint32_t n, k;
	int r;

	assert_int_equal(lp_blob_open_file(vec_path(v->name, ".esgz"), &blob),
			 0);
	want_digest(v->name, &want);
	r = lp_layer_open(blob, &want, &l, &err);
	if (r < 0)
		print_message("%s: %s\n", v->name, lp_err_str(&err, r));
	assert_int_equal(r, 0);
	lp_blob_unref(blob); /* the layer holds its own reference */
	assert_true(lp_digest_equal(lp_layer_toc_digest(l), &want));
	assert_int_equal(lp_layer_format(l), v->format);
	assert_ptr_equal(lp_layer_toc_json(l, &len) != NULL, true);
	assert_true(len > 0);
	toc = lp_layer_toc(l);
	assert_int_equal(lp_toc_entry(toc, 0)->type, LP_TOC_DIR);
	assert_string_equal(lp_toc_entry_name(toc, lp_toc_entry(toc, 0)), "");
	if (v->prefetch) {
		uint32_t lm = lp_toc_lookup_path(toc, LP_PREFETCH_LANDMARK);

		assert_int_not_equal(lm, LP_TOC_NO_INDEX);
		assert_int_equal(
			lp_toc_prefetch_end(toc),
			lp_toc_chunk(toc, lp_toc_entry(toc, lm)->first_chunk)
				.offset);
		assert_true(lp_toc_prefetch_end(toc) > 0);
	} else {
		assert_int_equal(lp_toc_prefetch_end(toc), 0);
	}

	assert_int_equal(
		lp_chunk_decoder_new(lp_format_compression(v->format), &dec),
		0);
	n = lp_toc_nr_entries(toc);
	lines = calloc(n, sizeof(*lines));
	assert_non_null(lines);
	for (k = 0; k < n; k++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, k);
		const struct lp_toc_entry *ino =
			lp_toc_entry(toc, lp_toc_entry_ino(toc, e));
		struct lp_digest d;
		char hex[LP_DIGEST_STR_LEN + 1], path[LP_TOC_MAX_PATH + 1];

		if (e->type != LP_TOC_REG && e->type != LP_TOC_HARDLINK)
			continue;
		assert_int_equal(ino->type, LP_TOC_REG);
		assert_true(lp_toc_entry_path(toc, k, path, sizeof(path)) > 0);
		assert_int_equal(lp_toc_lookup_path(toc, path), k);
		assert_int_equal(
			hash_file(l, dec, lp_toc_entry_ino(toc, e), &d), 0);
		if (ino->flags & LP_TOC_HAS_DIGEST)
			assert_true(lp_digest_equal(&d, edig(toc, ino)));
		lp_digest_format(&d, hex);
		lines[nlines] = malloc(strlen(path) + sizeof(hex) + 2);
		assert_non_null(lines[nlines]);
		sprintf(lines[nlines], "%s %s\n", path, hex);
		nlines++;
	}
	qsort(lines, nlines, sizeof(*lines), cmp_str);
	listing = malloc(nlines * (LP_TOC_MAX_PATH + 80) + 1);
	assert_non_null(listing);
	for (i = 0; i < nlines; i++) {
		len = strlen(lines[i]);
		memcpy(listing + pos, lines[i], len);
		pos += len;
		free(lines[i]);
	}
	listing[pos] = '\0';
	expect = (char *)slurp(vec_path(v->name, ".files"), &expect_len);
	assert_string_equal(listing, expect);
	free(expect);
	free(listing);
	free(lines);
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
}

static void test_vectors(void **state)
{
	size_t i;

	for (i = 0; i < LP_ARRAY_SIZE(vectors); i++)
		check_vector(&vectors[i]);
}

static void test_inspect_facts(void **state)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_err err = { 0 };
	const struct lp_toc *toc;
	const struct lp_toc_entry *e, *h;
	const struct lp_toc_xattr *x;
	uint32_t i, big, nr, maj, min;

	assert_int_equal(
		lp_blob_open_file(vec_path("v1-default", ".esgz"), &blob), 0);
	assert_int_equal(lp_layer_open(blob, NULL, &l, &err), 0);
	assert_int_equal(lp_layer_footer(l)->footer_size,
			 LP_FOOTER_ESTARGZ_SIZE);
	assert_string_equal(lp_format_name(lp_layer_format(l)), "estargz");
	toc = lp_layer_toc(l);
	/* 9 MiB file in three 4 MiB chunks, the last "to the end" */
	big = lp_toc_lookup_path(toc, "./usr/lib/big.bin");
	e = lp_toc_entry(toc, big);
	assert_int_equal(e->nr_chunks, 3);
	assert_int_equal(lp_toc_chunk(toc, e->first_chunk + 2).chunk_size,
			 e->size - 2 * LP_DEFAULT_CHUNK_SIZE);
	/* hardlink shares the inode, nlink 2 on both names */
	h = lp_toc_entry(toc, lp_toc_lookup_path(toc, "usr/bin/tool-hardlink"));
	e = lp_toc_entry(toc, lp_toc_lookup_path(toc, "usr/bin/tool"));
	assert_int_equal(h->type, LP_TOC_HARDLINK);
	assert_ptr_equal(lp_toc_entry(toc, lp_toc_entry_ino(toc, h)), e);
	assert_int_equal(lp_toc_entry_nlink(toc, e), 2);
	assert_int_equal(e->mode, 04755); /* JSON 2541 */
	/* devices, fifo, xattrs */
	e = lp_toc_entry(toc, lp_toc_lookup_path(toc, "var/null-dev"));
	assert_int_equal(e->type, LP_TOC_CHAR);
	lp_toc_entry_dev(toc, e, &maj, &min);
	assert_int_equal(maj, 1);
	assert_int_equal(min, 3);
	e = lp_toc_entry(toc, lp_toc_lookup_path(toc, "var"));
	x = lp_toc_entry_xattrs(toc, e, &nr);
	assert_int_equal(nr, 1);
	assert_string_equal(x->name, "trusted.overlay.opaque");
	assert_int_equal(x->len, 1);
	assert_memory_equal(x->value, "y", 1);
	/* every chunk's compressed range ends at or before the TOC */
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(toc, i);

		assert_true(c.compressed_size > 0);
		assert_true(c.offset + c.compressed_size <=
			    lp_layer_footer(l)->toc_offset);
	}
	lp_layer_free(l);
	lp_blob_unref(blob);
}

static struct lp_blob *mem_blob(const uint8_t *data, size_t len)
{
	struct lp_blob *b = NULL;

	assert_int_equal(lp_blob_new_mem(data, len, "mem", &b), 0);
	return b;
}

static void test_corrupt_chunk(void **state)
{
	const char *names[] = { "v1-default", "v1-zstd" };
	size_t v;

	for (v = 0; v < LP_ARRAY_SIZE(names); v++) {
		size_t len;
		uint8_t *data = slurp(vec_path(names[v], ".esgz"), &len);
		struct lp_blob *blob = mem_blob(data, len), *bad;
		struct lp_layer *l = NULL, *lb = NULL;
		struct lp_chunk_decoder *dec = NULL;
		struct lp_err err = { 0 };
		struct lp_toc_chunk c;
		const struct lp_toc *toc;
		uint32_t ci;
		uint8_t *buf;

		assert_int_equal(lp_layer_open(blob, NULL, &l, &err), 0);
		toc = lp_layer_toc(l);
		ci = lp_toc_entry(toc, lp_toc_lookup_path(toc, "usr/bin/tool"))
			     ->first_chunk;
		c = lp_toc_chunk(toc, ci);
		/* flip a byte in the middle of the compressed chunk */
		data[c.offset + c.compressed_size / 2] ^= 0x40;
		bad = mem_blob(data, len);
		assert_int_equal(lp_layer_open(bad, NULL, &lb, &err), 0);
		assert_int_equal(
			lp_chunk_decoder_new(
				lp_format_compression(lp_layer_format(l)),
				&dec),
			0);
		buf = malloc(c.chunk_size);
		assert_int_equal(lp_layer_read_chunk(l, dec, ci, buf, &err), 0);
		lp_err_clear(&err);
		assert_int_equal(lp_layer_read_chunk(lb, dec, ci, buf, &err),
				 -EBADMSG);
		assert_non_null(strstr(err.msg, "usr/bin/tool"));
		free(buf);
		lp_chunk_decoder_free(dec);
		lp_layer_free(lb);
		lp_layer_free(l);
		lp_blob_unref(bad);
		lp_blob_unref(blob);
		free(data);
	}
}

static void test_wrong_toc_digest(void **state)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_err err = { 0 };
	struct lp_digest d;

	want_digest("v1-chunk64k", &d);
	d.b[5] ^= 1;
	assert_int_equal(
		lp_blob_open_file(vec_path("v1-default", ".esgz"), &blob), 0);
	assert_int_equal(lp_layer_open(blob, &d, &l, &err), -EBADMSG);
	assert_null(l);
	assert_non_null(strstr(err.msg, "TOC digest"));
	lp_blob_unref(blob);
}

static void test_truncated(void **state)
{
	const char *names[] = { "v1-default", "v1-zstd" };
	size_t v, cut;

	for (v = 0; v < LP_ARRAY_SIZE(names); v++) {
		size_t len;
		uint8_t *data = slurp(vec_path(names[v], ".esgz"), &len);
		size_t cuts[] = { 0,  1,  30,	47,	 48,
				  51, 52, 1000, len / 2, len - 1 };

		for (cut = 0; cut < LP_ARRAY_SIZE(cuts); cut++) {
			struct lp_blob *b = mem_blob(data, cuts[cut]);
			struct lp_layer *l = NULL;
			struct lp_err err = { 0 };
			int r = lp_layer_open(b, NULL, &l, &err);

			assert_true(r < 0);
			assert_null(l);
			assert_true(err.msg[0] != '\0');
			lp_blob_unref(b);
		}
		free(data);
	}
}

/* a blob that fails every read after the first @ok ones */
struct failing {
	struct lp_blob *inner;
	int ok;
};

static int failing_pread(void *ctx, void *buf, size_t len, uint64_t off,
			 struct lp_err *err)
{
	struct failing *f = ctx;

	if (f->ok-- <= 0)
		return -EIO;
	return lp_blob_pread(f->inner, buf, len, off, err);
}

static void failing_close(void *ctx)
{
	struct failing *f = ctx;

	lp_blob_unref(f->inner);
	free(f);
}

static const struct lp_blob_ops failing_ops = {
	.pread = failing_pread,
	.close = failing_close,
};

static void test_read_errors(void **state)
{
	int ok;

	for (ok = 0; ok < 3; ok++) {
		struct failing *f = calloc(1, sizeof(*f));
		struct lp_blob *b = NULL;
		struct lp_layer *l = NULL;
		struct lp_chunk_decoder *dec = NULL;
		struct lp_err err = { 0 };
		uint8_t buf[64];
		int r;

		assert_int_equal(
			lp_blob_open_file(vec_path("v1-default", ".esgz"),
					  &f->inner),
			0);
		f->ok = ok;
		assert_int_equal(lp_blob_new(&failing_ops, f,
					     lp_blob_size(f->inner), "failing",
					     &b),
				 0);
		r = lp_layer_open(b, NULL, &l, &err);
		if (ok < 2) {
			assert_int_equal(r, -EIO);
		} else {
			uint32_t lm;

			assert_int_equal(r, 0);
			assert_int_equal(
				lp_chunk_decoder_new(LP_COMP_GZIP, &dec), 0);
			lm = lp_toc_lookup_path(lp_layer_toc(l),
						LP_NO_PREFETCH_LANDMARK);
			r = lp_layer_read_chunk(
				l, dec,
				lp_toc_entry(lp_layer_toc(l), lm)->first_chunk,
				buf, &err);
			assert_int_equal(r, -EIO);
			assert_non_null(strstr(err.msg, "landmark"));
		}
		lp_chunk_decoder_free(dec);
		lp_layer_free(l);
		lp_blob_unref(b);
	}
}

/* a blob over @path that allows @ok reads (failing_ops) */
static struct lp_blob *failing_blob(const char *path, int ok)
{
	struct failing *f = calloc(1, sizeof(*f));
	struct lp_blob *b = NULL;

	assert_non_null(f);
	assert_int_equal(lp_blob_open_file(path, &f->inner), 0);
	f->ok = ok;
	assert_int_equal(lp_blob_new(&failing_ops, f, lp_blob_size(f->inner),
				     "failing", &b),
			 0);
	return b;
}

/*
 * Opening from a tail: the same TOC as lp_layer_open() whatever the tail's
 * length, with no read when the tail holds footer and TOC, one for the part
 * of the TOC before a shorter tail, and a footer read for a tail shorter
 * than a footer.
 */
static void test_open_tail(void **state)
{
	size_t vi, ti, len, toc_start;

	(void)state;
	for (vi = 0; vi < sizeof(vectors) / sizeof(vectors[0]); vi++) {
		const char *path = vec_path(vectors[vi].name, ".esgz");
		struct lp_blob *blob = NULL, *b;
		struct lp_layer *ref = NULL, *l;
		struct lp_err err = { 0 };
		uint8_t *data = slurp(path, &len);
		size_t tails[8], reads[8];
		int r;

		assert_int_equal(lp_blob_open_file(path, &blob), 0);
		assert_int_equal(lp_layer_open(blob, NULL, &ref, &err), 0);
		toc_start = (size_t)lp_layer_footer(ref)->toc_offset -
			    (vectors[vi].format == LP_FMT_ZSTD_CHUNKED ? 8 : 0);
		tails[0] = len; /* the whole blob */
		reads[0] = 0;
		tails[1] = len - toc_start; /* exactly TOC + footer */
		reads[1] = 0;
		tails[2] = len - toc_start - 1; /* one TOC byte short */
		reads[2] = 1;
		tails[3] = (len - toc_start) / 2;
		reads[3] = 1;
		tails[4] = LP_FOOTER_MAX_SIZE;
		reads[4] = 1;
		tails[5] = LP_FOOTER_MAX_SIZE - 1; /* footer read again */
		reads[5] = 2;
		tails[6] = 1;
		reads[6] = 2;
		tails[7] = 0; /* lp_layer_open() */
		reads[7] = 2;
		for (ti = 0; ti < 8; ti++) {
			/* one read fewer than needed must fail */
			if (reads[ti]) {
				b = failing_blob(path, (int)reads[ti] - 1);
				l = NULL;
				r = lp_layer_open_tail(
					b, data + len - tails[ti], tails[ti],
					NULL, &l, &err);
				assert_int_equal(r, -EIO);
				lp_blob_unref(b);
			}
			b = failing_blob(path, (int)reads[ti]);
			l = NULL;
			r = lp_layer_open_tail(
				b, data + len - tails[ti], tails[ti],
				lp_layer_toc_digest(ref), &l, &err);
			if (r < 0)
				print_message("%s tail %zu: %s\n",
					      vectors[vi].name, tails[ti],
					      lp_err_str(&err, r));
			assert_int_equal(r, 0);
			assert_int_equal(lp_toc_nr_entries(lp_layer_toc(l)),
					 lp_toc_nr_entries(lp_layer_toc(ref)));
			lp_layer_free(l);
			lp_blob_unref(b);
		}
		/* a tail longer than the blob is the caller's mistake */
		l = NULL;
		assert_int_equal(
			lp_layer_open_tail(blob, data, len + 1, NULL, &l, &err),
			-EINVAL);
		lp_layer_free(ref);
		lp_blob_unref(blob);
		free(data);
	}
}

static void test_wrong_decoder(void **state)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	struct lp_err err = { 0 };
	uint8_t buf[8];
	size_t len;

	assert_int_equal(lp_blob_open_file(vec_path("v1-zstd", ".esgz"), &blob),
			 0);
	assert_int_equal(lp_layer_open(blob, NULL, &l, &err), 0);
	assert_int_equal(lp_chunk_decoder_new(LP_COMP_GZIP, &dec), 0);
	assert_int_equal(lp_layer_read_chunk(l, dec, 0, buf, &err), -EINVAL);
	lp_err_clear(&err);
	assert_int_equal(lp_layer_read_chunk(l, dec, UINT32_MAX, buf, &err),
			 -EINVAL);
	lp_chunk_decoder_free(dec);
	/* the JSON can go; the parsed TOC stays */
	lp_layer_drop_toc_json(l);
	assert_null(lp_layer_toc_json(l, &len));
	assert_int_equal(len, 0);
	assert_non_null(lp_toc_entry(lp_layer_toc(l), 0));
	lp_layer_free(l);
	lp_layer_free(NULL);
	lp_blob_unref(blob);
}

/* counts reads into one blob range, then passes them on */
struct counted {
	struct lp_blob *inner;
	uint64_t lo, hi;
	int hits;
};

static int counted_pread(void *ctx, void *buf, size_t len, uint64_t off,
			 struct lp_err *err)
{
	struct counted *c = ctx;

	if (off < c->hi && off + len > c->lo)
		c->hits++;
	return lp_blob_pread(c->inner, buf, len, off, err);
}

static void counted_close(void *ctx)
{
	(void)ctx;
}

static const struct lp_blob_ops counted_ops = {
	.pread = counted_pread,
	.close = counted_close,
};

/* read every chunk of @path in @blob; the first error, its message in @err */
static int read_all_chunks(struct lp_blob *blob, const char *path,
			   struct lp_err *err)
{
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	const struct lp_toc_entry *e;
	const struct lp_toc *toc;
	uint8_t *buf = malloc(LP_CHUNK_MAX_SIZE);
	uint32_t i;
	int r = 0;

	assert_non_null(buf);
	assert_int_equal(lp_layer_open(blob, NULL, &l, err), 0);
	assert_int_equal(lp_chunk_decoder_new(LP_COMP_GZIP, &dec), 0);
	toc = lp_layer_toc(l);
	e = lp_toc_entry(toc, lp_toc_lookup_path(toc, path));
	assert_true(e->nr_chunks >= 1);
	for (i = 0; i < e->nr_chunks && r == 0; i++)
		r = lp_layer_read_chunk(l, dec, e->first_chunk + i, buf, err);
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
	free(buf);
	return r;
}

/* counts and hashes what lp_layer_read_file() hands out */
struct file_sink {
	struct lp_sha256 *sha;
	uint64_t bytes;
};

static int file_sink(void *opaque, const void *data, size_t len)
{
	struct file_sink *fs = opaque;

	lp_sha256_update(fs->sha, data, len);
	fs->bytes += len;
	return 0;
}

/*
 * read @path of @blob with the whole-file reader; *@ret_got gets the sha256
 * of the bytes the sink received, *@ret_digest the reader's own
 */
static int read_whole_file(struct lp_blob *blob, const char *path,
			   struct lp_digest *ret_got,
			   struct lp_digest *ret_digest, struct lp_err *err)
{
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	struct file_sink fs = { 0 };
	const struct lp_toc *toc;
	int r;

	assert_int_equal(lp_layer_open(blob, NULL, &l, err), 0);
	assert_int_equal(lp_chunk_decoder_new(LP_COMP_GZIP, &dec), 0);
	assert_int_equal(lp_sha256_new(&fs.sha), 0);
	toc = lp_layer_toc(l);
	r = lp_layer_read_file(l, dec, lp_toc_lookup_path(toc, path), file_sink,
			       &fs, ret_digest, err);
	lp_sha256_final(fs.sha, ret_got);
	if (r == 0)
		assert_int_equal(
			fs.bytes,
			lp_toc_entry(toc, lp_toc_lookup_path(toc, path))->size);
	lp_sha256_free(fs.sha);
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
	return r;
}

/*
 * The random-access reader (lp_layer_read_chunk, as the mount) and the
 * whole-file reader (lp_layer_read_file, as extract and verify) on files
 * whose TOC entries lost their chunkDigests: a single-chunk file is
 * verified by its file digest by both; a file of several chunks only by
 * the whole-file reader, over the whole file (legacy writers); a file
 * digest that lies, or none, fails both, naming the file.
 */
static void test_digest_policy(void **state)
{
	static const struct {
		const char *path;
		enum craft_mode mode;
		int want; /* lp_layer_read_chunk, chunk by chunk */
		const char *why;
		bool read; /* the chunk reader read the blob */
		int want_file; /* lp_layer_read_file */
		const char *why_file;
		int verdict; /* lp_chunk_digest of the first chunk */
	} cases[] = {
		{ "etc/conf.d/app.conf", CRAFT_HONEST, 0, NULL, true, 0, NULL,
		  0 },
		{ "etc/conf.d/app.conf", CRAFT_LIE, -EBADMSG,
		  "file digest mismatch", true, -EBADMSG,
		  "file digest mismatch", 0 },
		{ "etc/conf.d/app.conf", CRAFT_NONE, -EBADMSG,
		  "no chunkDigest and no file digest", false, -EBADMSG,
		  "no chunkDigest and no file digest", -EBADMSG },
		{ "usr/lib/big.bin", CRAFT_MULTI, -EBADMSG,
		  "no chunkDigest to verify against", false, 0, NULL,
		  LP_CHUNK_WHOLE_FILE },
		{ "usr/lib/big.bin", CRAFT_LIE, -EBADMSG,
		  "no chunkDigest to verify against", false, -EBADMSG,
		  "file digest mismatch", LP_CHUNK_WHOLE_FILE },
		{ "usr/lib/big.bin", CRAFT_NONE, -EBADMSG,
		  "no chunkDigest and no file digest", false, -EBADMSG,
		  "no chunkDigest and no file digest", -EBADMSG },
	};
	size_t len, i;
	uint8_t *data = slurp(vec_path("v1-default", ".esgz"), &len);
	struct lp_blob *orig = mem_blob(data, len);
	struct lp_layer *ol = NULL;
	struct lp_err oerr = { 0 };

	(void)state;
	assert_int_equal(lp_layer_open(orig, NULL, &ol, &oerr), 0);
	/* the second file is one of several chunks */
	assert_int_equal(lp_toc_entry(lp_layer_toc(ol),
				      lp_toc_lookup_path(lp_layer_toc(ol),
							 cases[0].path))
				 ->nr_chunks,
			 1);
	assert_true(lp_toc_entry(lp_layer_toc(ol),
				 lp_toc_lookup_path(lp_layer_toc(ol),
						    "usr/lib/big.bin"))
			    ->nr_chunks > 1);
	for (i = 0; i < LP_ARRAY_SIZE(cases); i++) {
		char dotted[256];
		struct lp_digest tocd, got, rd;
		struct lp_digest dg;
		const struct lp_digest *true_digest;
		struct lp_blob *mem = NULL, *blob = NULL;
		struct lp_layer *l = NULL;
		struct lp_err err = { 0 };
		struct counted cnt = { 0 };
		size_t clen = 0;
		uint8_t *craft;
		const struct lp_toc *toc;
		struct lp_toc_chunk c;
		uint32_t e;

		snprintf(dotted, sizeof(dotted), "./%s", cases[i].path);
		craft = craft_rewrite(data, len, dotted, cases[i].mode, &clen,
				      &tocd);
		assert_non_null(craft);
		mem = mem_blob(craft, clen);
		/* the rewritten TOC opens, against its own digest */
		assert_int_equal(lp_layer_open(mem, &tocd, &l, &err), 0);
		toc = lp_layer_toc(l);
		e = lp_toc_lookup_path(toc, cases[i].path);
		c = lp_toc_chunk(toc, lp_toc_entry(toc, e)->first_chunk);
		assert_null(cdig(toc, &c));
		assert_int_equal(lp_chunk_digest(toc, &c, &dg, NULL),
				 cases[i].verdict);
		if (cases[i].verdict == LP_CHUNK_WHOLE_FILE) {
			/* the file digest, and a chunk reader refuses */
			assert_true(lp_digest_equal(
				&dg, edig(toc, lp_toc_entry(toc, e))));
			assert_int_equal(lp_chunk_check(toc, &c, data, NULL),
					 -EBADMSG);
		}
		cnt.inner = mem;
		cnt.lo = c.offset;
		cnt.hi = c.offset + c.compressed_size;
		lp_layer_free(l);
		assert_int_equal(
			lp_blob_new(&counted_ops, &cnt, clen, "counted", &blob),
			0);
		assert_int_equal(read_all_chunks(blob, cases[i].path, &err),
				 cases[i].want);
		if (cases[i].why) {
			assert_non_null(strstr(err.msg, cases[i].path));
			assert_non_null(strstr(err.msg, cases[i].why));
		}
		/* nothing to verify against: not even read */
		if (!cases[i].read)
			assert_int_equal(cnt.hits, 0);
		else
			assert_true(cnt.hits > 0);
		/* the whole-file reader */
		memset(&err, 0, sizeof(err));
		cnt.hits = 0;
		assert_int_equal(
			read_whole_file(blob, cases[i].path, &got, &rd, &err),
			cases[i].want_file);
		true_digest =
			edig(lp_layer_toc(ol),
			     lp_toc_entry(lp_layer_toc(ol),
					  lp_toc_lookup_path(lp_layer_toc(ol),
							     cases[i].path)));
		if (cases[i].want_file == 0) {
			/* the file's true bytes, all of them, and their digest */
			assert_true(lp_digest_equal(&got, true_digest));
			assert_true(lp_digest_equal(&rd, true_digest));
		} else {
			assert_non_null(strstr(err.msg, cases[i].path));
			assert_non_null(strstr(err.msg, cases[i].why_file));
		}
		/* without a digest asked for: rule 3 still checks it */
		memset(&err, 0, sizeof(err));
		assert_int_equal(
			read_whole_file(blob, cases[i].path, &got, NULL, &err),
			cases[i].want_file);
		if (cases[i].want_file < 0)
			assert_non_null(strstr(err.msg, cases[i].why_file));
		if (cases[i].mode == CRAFT_NONE)
			assert_int_equal(cnt.hits, 0);
		else
			assert_true(cnt.hits > 0);
		lp_blob_unref(blob);
		lp_blob_unref(mem);
		free(craft);
	}
	lp_layer_free(ol);
	lp_blob_unref(orig);
	free(data);
}

/*
 * The whole-file reader over a spilled digest table that fails to read
 * (toc_fault.h: a disk error for the first reads, the table fine after):
 * a file of several chunks only its file digest vouches for (rule 3) fails
 * with -EIO before its sink got a byte, also without a digest asked for
 * (as `layer extract` reads), instead of being read unhashed once the
 * table reads again; with the table readable it reads back whole.
 */
static void test_read_file_spill_error(void **state)
{
	size_t len, clen = 0;
	uint8_t *data = slurp(vec_path("v1-default", ".esgz"), &len), *craft;
	char dir[] = "lp-test-layer-spill.XXXXXX";
	struct lp_chunk_decoder *dec = NULL;
	struct lp_blob *mem;
	struct lp_layer *l = NULL;
	struct lp_err err = { 0 };
	struct lp_digest tocd, got, rd;
	struct file_sink fs = { 0 };
	const struct lp_toc_entry *e;
	const struct lp_toc *toc;
	uint32_t ino;
	int pass;

	(void)state;
	/* a directory on the build's disk: a tmpfs would keep it in memory */
	assert_non_null(mkdtemp(dir));
	craft = craft_rewrite(data, len, "./usr/lib/big.bin", CRAFT_MULTI,
			      &clen, &tocd);
	assert_non_null(craft);
	mem = mem_blob(craft, clen);
	assert_int_equal(lp_layer_open(mem, &tocd, &l, &err), 0);
	toc = lp_layer_toc(l);
	assert_int_equal(
		lp_toc_spill_digests((struct lp_toc *)toc, dir, 0, &err), 1);
	assert_int_equal(rmdir(dir), 0);
	ino = lp_toc_lookup_path(toc, "usr/lib/big.bin");
	e = lp_toc_entry(toc, ino);
	assert_true(e->nr_chunks > 1);
	assert_int_equal(lp_chunk_decoder_new(LP_COMP_GZIP, &dec), 0);
	for (pass = 0; pass < 2; pass++) {
		/* every first-pass verdict fails, the reads after succeed */
		lp_toc_spill_fault(0, e->nr_chunks);
		memset(&err, 0, sizeof(err));
		assert_int_equal(lp_sha256_new(&fs.sha), 0);
		fs.bytes = 0;
		assert_int_equal(lp_layer_read_file(l, dec, ino, file_sink, &fs,
						    pass ? &rd : NULL, &err),
				 -EIO);
		assert_int_equal(fs.bytes, 0);
		assert_non_null(strstr(err.msg, "usr/lib/big.bin"));
		assert_non_null(strstr(err.msg, "digest table"));
		lp_sha256_final(fs.sha, &got);
		lp_sha256_free(fs.sha);
	}
	lp_toc_spill_fault(0, 0);
	/* the table readable: the whole file, against its file digest */
	assert_int_equal(lp_sha256_new(&fs.sha), 0);
	fs.bytes = 0;
	memset(&err, 0, sizeof(err));
	assert_int_equal(
		lp_layer_read_file(l, dec, ino, file_sink, &fs, &rd, &err), 0);
	assert_int_equal(fs.bytes, e->size);
	lp_sha256_final(fs.sha, &got);
	lp_sha256_free(fs.sha);
	assert_true(lp_digest_equal(&got, &rd));
	assert_true(lp_digest_equal(&got, edig(toc, e)));
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
	lp_blob_unref(mem);
	free(craft);
	free(data);
}

/*
 * The TOC member's shapes, and the digest and the parse done at once:
 * v1-default's TOC rewritten (same JSON, or another) into a member that
 * ends as writers end it (tar padding and end blocks: inflated in one go),
 * one with 128 KiB more after the JSON (inflated by zlib up to the JSON),
 * one over TOC_HASH_THREAD_MIN (inflated by igzip and hashed on a second
 * thread while it is parsed, lp_toc_parse_fed()); each opens with
 * the JSON's digest and the same TOC, by the path meant (layer_probe.h's
 * counters: inflated in one go or by zlib, hashed threaded or first). A TOC
 * that does not parse fails as a parse error when its digest is the wanted
 * one, as a digest error when it is not; a small TOC that is not the wanted
 * one is not parsed at all (hashed and compared first), a big one is
 * (parsed while it is hashed: the mismatch wins). A big member that ends
 * before its JSON fails with the inflate's error, not a parse's.
 */
static uint8_t *toc_member_blob_claim(const uint8_t *blob, size_t len,
				      const char *js, size_t js_len,
				      size_t extra, size_t claim,
				      size_t *ret_len)
{
	size_t pad = (js_len + CRAFT_TAR_BLOCK - 1) / CRAFT_TAR_BLOCK *
		     CRAFT_TAR_BLOCK,
	       tar_len = CRAFT_TAR_BLOCK + pad + 2 * CRAFT_TAR_BLOCK + extra,
	       gz_len = 0, toc_off;
	struct lp_blob *b = mem_blob(blob, len);
	struct lp_layer *l = NULL;
	struct lp_err err = { 0 };
	uint8_t *tar = calloc(1, tar_len), *gz, *out;

	assert_int_equal(lp_layer_open(b, NULL, &l, &err), 0);
	toc_off = (size_t)lp_layer_footer(l)->toc_offset;
	lp_layer_free(l);
	lp_blob_unref(b);
	assert_non_null(tar);
	craft_tar_header(tar, claim);
	memcpy(tar + CRAFT_TAR_BLOCK, js, js_len);
	gz = craft_gzip(tar, tar_len, &gz_len);
	assert_non_null(gz);
	out = malloc(toc_off + gz_len + LP_FOOTER_ESTARGZ_SIZE);
	assert_non_null(out);
	memcpy(out, blob, toc_off);
	memcpy(out + toc_off, gz, gz_len);
	memcpy(out + toc_off + gz_len, blob + len - LP_FOOTER_ESTARGZ_SIZE,
	       LP_FOOTER_ESTARGZ_SIZE);
	*ret_len = toc_off + gz_len + LP_FOOTER_ESTARGZ_SIZE;
	free(gz);
	free(tar);
	return out;
}

/* toc_member_blob() whose tar header states the JSON's true size */
static uint8_t *toc_member_blob(const uint8_t *blob, size_t len, const char *js,
				size_t js_len, size_t extra, size_t *ret_len)
{
	return toc_member_blob_claim(blob, len, js, js_len, extra, js_len,
				     ret_len);
}

/* how far each of lp_layer_probe's counters moved since *@before */
struct probe_delta {
	unsigned int whole, zlib, fed, threaded, first, parsed;
};

static void probe_take(struct probe_delta *before)
{
	before->whole = atomic_load(&lp_layer_probe.inflated_whole);
	before->zlib = atomic_load(&lp_layer_probe.inflated_zlib);
	before->fed = atomic_load(&lp_layer_probe.inflated_fed);
	before->threaded = atomic_load(&lp_layer_probe.hashed_threaded);
	before->first = atomic_load(&lp_layer_probe.hashed_first);
	before->parsed = atomic_load(&lp_layer_probe.parsed);
}

/*
 * the path one lp_layer_open() since @before took, as the case wants (a
 * gzip TOC hashed on a second thread is inflated there, beside the parse)
 */
static void probe_check(const struct probe_delta *before, bool whole,
			bool threaded, bool parsed)
{
	struct probe_delta now;

	probe_take(&now);
	assert_int_equal(now.whole - before->whole, whole);
	assert_int_equal(now.zlib - before->zlib, !whole && !threaded);
	assert_int_equal(now.fed - before->fed, threaded);
	assert_int_equal(now.threaded - before->threaded, threaded);
	assert_int_equal(now.first - before->first, !threaded);
	assert_int_equal(now.parsed - before->parsed, parsed);
}

static void test_toc_member_shapes(void **state)
{
	struct {
		size_t spaces; /* after the JSON's last byte */
		size_t extra; /* member bytes after the tar end blocks */
	} cases[] = {
		{ 0, 0 },
		{ 0, 128 * 1024 },
		{ 3 * 1024 * 1024, 0 },
		{ 3 * 1024 * 1024, 128 * 1024 },
	};
	size_t len = 0, js_len, nlen = 0, i;
	uint8_t *orig = slurp(vec_path("v1-default", ".esgz"), &len), *nb;
	struct lp_blob *b = mem_blob(orig, len);
	struct lp_layer *l = NULL, *ol = NULL;
	struct lp_err err = { 0 };
	struct lp_digest want, other;
	struct probe_delta pd;
	const char *ojs;
	uint32_t x;
	char *js;

	(void)state;
	assert_int_equal(lp_layer_open(b, NULL, &ol, &err), 0);
	ojs = lp_layer_toc_json(ol, &js_len);
	assert_true(js_len < LP_MIB); /* hashed before the parse */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* from 1 MiB of JSON: inflated (igzip) and hashed on a
		 * second thread while it is parsed; below, in one go unless
		 * more than 64 KiB follow the JSON */
		const bool whole = cases[i].extra == 0 && cases[i].spaces == 0,
			   threaded = cases[i].spaces > 0;

		js = malloc(js_len + cases[i].spaces);
		assert_non_null(js);
		memcpy(js, ojs, js_len);
		memset(js + js_len, ' ', cases[i].spaces);
		nb = toc_member_blob(orig, len, js, js_len + cases[i].spaces,
				     cases[i].extra, &nlen);
		lp_sha256(js, js_len + cases[i].spaces, &want);
		lp_blob_unref(b);
		b = mem_blob(nb, nlen);
		memset(&err, 0, sizeof(err));
		probe_take(&pd);
		assert_int_equal(lp_layer_open(b, &want, &l, &err), 0);
		probe_check(&pd, whole, threaded, true);
		assert_true(lp_digest_equal(lp_layer_toc_digest(l), &want));
		assert_int_equal(lp_toc_nr_entries(lp_layer_toc(l)),
				 lp_toc_nr_entries(lp_layer_toc(ol)));
		assert_int_equal(lp_toc_nr_chunks(lp_layer_toc(l)),
				 lp_toc_nr_chunks(lp_layer_toc(ol)));
		lp_layer_free(l);
		l = NULL;
		/* the same bytes, another digest wanted */
		other = want;
		other.b[0] ^= 1;
		probe_take(&pd);
		assert_int_equal(lp_layer_open(b, &other, &l, &err), -EBADMSG);
		/* a small TOC that is not the wanted one is never parsed */
		probe_check(&pd, whole, threaded, threaded);
		assert_null(l);
		assert_non_null(strstr(err.msg, "TOC digest"));
		/* JSON that does not parse: the parse's error, or the digest's */
		js[js_len - 1] = ','; /* the closing brace */
		lp_blob_unref(b);
		free(nb);
		nb = toc_member_blob(orig, len, js, js_len + cases[i].spaces,
				     cases[i].extra, &nlen);
		lp_sha256(js, js_len + cases[i].spaces, &want);
		b = mem_blob(nb, nlen);
		memset(&err, 0, sizeof(err));
		probe_take(&pd);
		assert_int_equal(lp_layer_open(b, &want, &l, &err), -EINVAL);
		probe_check(&pd, whole, threaded, true);
		assert_null(l);
		assert_null(strstr(err.msg, "TOC digest"));
		memset(&err, 0, sizeof(err));
		probe_take(&pd);
		assert_int_equal(lp_layer_open(b, &other, &l, &err), -EBADMSG);
		probe_check(&pd, whole, threaded, threaded);
		assert_non_null(strstr(err.msg, "TOC digest"));
		free(js);
		free(nb);
	}
	/* a big member that ends 1 MiB before the JSON its tar header
	   states: the parse waits for bytes that never come, and the open
	   fails with the inflate's error */
	js = malloc(js_len + 3 * LP_MIB);
	assert_non_null(js);
	/* whitespace that does not compress to under 1/1032 of it */
	for (i = 0, x = 1; i < 3 * LP_MIB; i++) {
		x = x * 1103515245u + 12345u;
		js[i] = " \t\n\r"[(x >> 16) & 3];
	}
	memcpy(js + 3 * LP_MIB, ojs, js_len);
	nb = toc_member_blob_claim(orig, len, js, js_len + 2 * LP_MIB, 0,
				   js_len + 3 * LP_MIB, &nlen);
	lp_blob_unref(b);
	b = mem_blob(nb, nlen);
	memset(&err, 0, sizeof(err));
	probe_take(&pd);
	assert_int_equal(lp_layer_open(b, NULL, &l, &err), -EBADMSG);
	probe_check(&pd, false, true, true);
	assert_null(l);
	assert_non_null(strstr(err.msg, "TOC gzip member"));
	free(nb);
	/* the whole JSON, its member's deflate stream garbled in the middle:
	   an inflate error or a digest that is not the wanted one */
	nb = toc_member_blob(orig, len, js, js_len + 3 * LP_MIB, 0, &nlen);
	lp_sha256(js, js_len + 3 * LP_MIB, &want);
	memset(nb + nlen - LP_FOOTER_ESTARGZ_SIZE - 200 * 1024, 0xa5, 64);
	lp_blob_unref(b);
	b = mem_blob(nb, nlen);
	memset(&err, 0, sizeof(err));
	assert_int_equal(lp_layer_open(b, &want, &l, &err), -EBADMSG);
	assert_null(l);
	free(js);
	free(nb);
	lp_layer_free(ol);
	lp_blob_unref(b);
	free(orig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_inspect_facts),
		cmocka_unit_test(test_corrupt_chunk),
		cmocka_unit_test(test_wrong_toc_digest),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_wrong_decoder),
		cmocka_unit_test(test_open_tail),
		cmocka_unit_test(test_digest_policy),
		cmocka_unit_test(test_read_file_spill_error),
		cmocka_unit_test(test_toc_member_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
