// SPDX-License-Identifier: Apache-2.0
/*
 * gzip index tests on the vectors' source layer (v1.tar.gz, made by the
 * reference tooling) and on a multi-member re-compression of it: every
 * regular file read through the index by pieces in a random order matches
 * the vectors' .files digests; random ranges of the uncompressed stream
 * read through the index equal zlib's whole decompression; the index
 * serialises back to the bytes it was parsed from. Then lies: a span
 * digest, a window, a checkpoint's uncompressed offset, a file table path,
 * counts over the bounds, a truncated index, a blob of another size: each
 * refused with -EBADMSG or -EFBIG, never served. The random-access span
 * decoder (lp_index_span_decode()): every span whole and random pieces of
 * it equal the tar; a flipped compressed byte, a span short by its shared
 * byte, a lying span digest are refused before inflating; a piece past the
 * span's end is -ERANGE. The index as a TOC (lp_index_toc()): one entry
 * per path, and every regular file's chunks, each decoded from its span
 * alone, rebuild the file's bytes in the tar. Lies at the checkpoint a
 * read starts at (a window, a bit offset, a member start that is none): the
 * read starts at the last proven checkpoint instead and refuses the lie on
 * its way. A cold read deep in a layer proves every checkpoint it passes,
 * a warm one then fetches one span; threads share one index. Grain
 * digests (lp_index_grain()): every one against the sha256 of the blob's
 * bytes, for one member and many, serialised back as parsed; an index
 * built without them is the one built with them less their bytes; hostile
 * grain headers and sections refused. The span inflater (streamed spans):
 * every span fed in pieces of 1, 3, 4096, 65536 bytes and whole, one
 * member and many, inflates to the tar's bytes and ends where its
 * checkpoints say; half a span does not end; an unproven checkpoint of an
 * untrusted index is refused.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "slurp.h"

#include "lp_index.h"
#include "lp_indexer.h"
#include "lp_toc.h"

#define SPAN (64 * 1024)

/* the whole gzip stream (members concatenated) inflated */
static uint8_t *gunzip(const uint8_t *in, size_t len, size_t *ret_len)
{
	size_t cap = len * 4 + 65536, out = 0;
	uint8_t *buf = malloc(cap);
	z_stream z = { 0 };
	int zr;

	assert_non_null(buf);
	assert_int_equal(inflateInit2(&z, 31), Z_OK);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	for (;;) {
		if (cap - out < 65536) {
			uint8_t *p = realloc(buf, cap * 2);

			assert_non_null(p);
			buf = p;
			cap *= 2;
		}
		z.next_out = buf + out;
		z.avail_out = (uInt)(cap - out);
		zr = inflate(&z, Z_NO_FLUSH);
		out = cap - z.avail_out;
		if (zr == Z_STREAM_END) {
			if (!z.avail_in)
				break;
			assert_int_equal(inflateReset(&z), Z_OK);
			continue;
		}
		assert_int_equal(zr, Z_OK);
	}
	inflateEnd(&z);
	*ret_len = out;
	return buf;
}

/* @len bytes of @data gzip'ed as members of @step input bytes each */
static uint8_t *gzip_members(const uint8_t *data, size_t len, size_t step,
			     size_t *ret_len)
{
	size_t cap = len + len / 8 + 65536 * (len / step + 2), out = 0, i;
	uint8_t *buf = malloc(cap);

	assert_non_null(buf);
	for (i = 0; i < len; i += step) {
		z_stream z = { 0 };
		size_t n = len - i < step ? len - i : step;

		assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8,
					      Z_DEFAULT_STRATEGY),
				 Z_OK);
		z.next_in = (uint8_t *)data + i;
		z.avail_in = (uInt)n;
		z.next_out = buf + out;
		z.avail_out = (uInt)(cap - out);
		assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
		out = cap - z.avail_out;
		deflateEnd(&z);
	}
	*ret_len = out;
	return buf;
}

struct fixture {
	uint8_t *gz, *tar, *idx;
	size_t gz_len, tar_len, idx_len;
	struct lp_index *ix;
	struct lp_blob *blob;
};

static void build_grains(struct fixture *f, uint8_t *gz, size_t len,
			 uint32_t grain_size)
{
	struct lp_index_build_result res;
	struct lp_err err = { 0 };
	struct lp_buf out;
	int fd = memfd_create("layer", 0), r;

	f->gz = gz;
	f->gz_len = len;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, gz, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	r = lp_index_build(fd, SPAN, grain_size, NULL, &out, &res, &err);
	if (r < 0)
		fail_msg("build: %s", lp_err_str(&err, r));
	close(fd);
	f->idx = lp_buf_steal(&out, &f->idx_len);
	assert_int_equal(lp_index_parse(f->idx, f->idx_len, &f->ix, &err), 0);
	assert_true(lp_index_nr_checkpoints(f->ix) > 20);
	assert_int_equal(res.blob_size, len);
	f->tar = gunzip(gz, len, &f->tar_len);
	assert_int_equal(lp_index_uncompressed_size(f->ix), f->tar_len);
	assert_int_equal(lp_blob_new_mem(gz, len, "layer", &f->blob), 0);
}

static void build(struct fixture *f, uint8_t *gz, size_t len)
{
	build_grains(f, gz, len, LP_INDEX_GRAIN_DEFAULT);
}

static void release(struct fixture *f)
{
	lp_blob_unref(f->blob);
	lp_index_free(f->ix);
	free(f->gz);
	free(f->tar);
	free(f->idx);
	memset(f, 0, sizeof(*f));
}

/* prove every checkpoint of @ix (a stream to the layer's last byte) */
static void prove_all(struct fixture *f, struct lp_index *ix)
{
	struct lp_index_stream *s = NULL;
	struct lp_err err = { 0 };
	uint8_t b;
	int r;

	r = lp_index_stream_open(ix, f->blob, f->tar_len - 1, &s, &err);
	if (r == 0)
		r = lp_index_stream_read(s, &b, 1, &err);
	if (r < 0)
		fail_msg("proving: %s", lp_err_str(&err, r));
	lp_index_stream_free(s);
}

static void build_vector(struct fixture *f)
{
	size_t len;
	uint8_t *gz = slurp(LP_VECTORS_DIR "/v1.tar.gz", &len);

	assert_true(len > 0);
	build(f, gz, len);
}

/* random ranges of the tar through the index equal zlib's inflation */
static void check_ranges(struct fixture *f, unsigned int seed)
{
	uint8_t *buf = malloc(300 * 1024);
	int i;

	assert_non_null(buf);
	srand(seed);
	for (i = 0; i < 60; i++) {
		uint64_t off = (uint64_t)rand() % f->tar_len;
		size_t len = (size_t)rand() % (300 * 1024);
		struct lp_index_stream *s = NULL;
		struct lp_err err = { 0 };
		int r;

		if (len > f->tar_len - off)
			len = f->tar_len - off;
		r = lp_index_stream_open(f->ix, f->blob, off, &s, &err);
		if (r == 0)
			r = lp_index_stream_read(s, buf, len, &err);
		if (r < 0)
			fail_msg("range %llu+%zu: %s", (unsigned long long)off,
				 len, lp_err_str(&err, r));
		assert_memory_equal(buf, f->tar + off, len);
		lp_index_stream_free(s);
	}
	free(buf);
}

static void test_ranges(void **state)
{
	struct fixture f = { 0 };
	struct lp_buf again;

	build_vector(&f);
	check_ranges(&f, 1);
	/* the root directory "./" is an entry, found as "." and "/" */
	assert_true(lp_index_lookup(f.ix, ".") >= 0);
	assert_int_equal(lp_index_lookup(f.ix, "/"),
			 lp_index_lookup(f.ix, "."));
	assert_int_equal(
		lp_index_file(f.ix, (size_t)lp_index_lookup(f.ix, "."))->type,
		'5');
	assert_int_equal(lp_index_lookup(f.ix, "./etc/"),
			 lp_index_lookup(f.ix, "etc"));
	lp_buf_init(&again, LP_INDEX_MAX_SIZE);
	assert_int_equal(lp_index_serialise(f.ix, &again), 0);
	assert_int_equal(again.len, f.idx_len);
	assert_memory_equal(again.data, f.idx, f.idx_len);
	lp_buf_release(&again);
	release(&f);
}

static void test_multi_member(void **state)
{
	struct fixture f = { 0 }, m = { 0 };
	size_t len;
	uint8_t *gz;

	build_vector(&f);
	gz = gzip_members(f.tar, f.tar_len, 300 * 1024 + 17, &len);
	build(&m, gz, len);
	check_ranges(&m, 2);
	release(&m);
	release(&f);
}

/* every regular file, by pieces in a random order, against .files */
static void test_files(void **state)
{
	struct fixture f = { 0 };
	char line[8192];
	FILE *list = fopen(LP_VECTORS_DIR "/v1-default.files", "r");
	size_t checked = 0;

	assert_non_null(list);
	build_vector(&f);
	srand(3);
	while (fgets(line, sizeof(line), list)) {
		char *sp = strrchr(line, ' '), ds[LP_DIGEST_STR_LEN + 1];
		const struct lp_index_file *e;
		struct lp_digest d;
		struct lp_err err = { 0 };
		uint8_t *buf;
		size_t piece, k, n;
		int i, r;

		assert_non_null(sp);
		*sp = '\0';
		sp[1 + LP_DIGEST_STR_LEN] = '\0';
		i = lp_index_lookup(f.ix, line);
		if (i < 0)
			continue; /* the landmark: added by the converter */
		e = lp_index_file(f.ix, (size_t)i);
		if (e->type == '1')
			i = lp_index_lookup(f.ix, e->link);
		assert_true(i >= 0);
		e = lp_index_file(f.ix, (size_t)i);
		buf = malloc(e->size + 1);
		assert_non_null(buf);
		piece = (size_t)(e->size / 3 + 1);
		n = (size_t)(e->size + piece - 1) / piece;
		for (k = 0; k < n; k++) {
			size_t p = (k * 7 + (size_t)rand()) % n;
			size_t len =
				(size_t)lp_min_u64(piece, e->size - p * piece);

			r = lp_index_read_file(f.ix, f.blob, (size_t)i,
					       buf + p * piece, len, p * piece,
					       NULL, &err);
			if (r < 0)
				fail_msg("%s: %s", line, lp_err_str(&err, r));
		}
		/* pieces picked at random may miss one: read it all once */
		r = lp_index_read_file(f.ix, f.blob, (size_t)i, buf, e->size, 0,
				       NULL, &err);
		assert_int_equal(r, 0);
		lp_sha256(buf, e->size, &d);
		lp_digest_format(&d, ds);
		if (strcmp(ds, sp + 1))
			fail_msg("%s: %s, .files says %s", line, ds, sp + 1);
		free(buf);
		checked++;
	}
	fclose(list);
	assert_true(checked >= 200);
	release(&f);
}

/* a copy of the fixture's index with @fn applied, parsed */
static int parse_forged(struct fixture *f, void (*fn)(uint8_t *, size_t),
			struct lp_index **ret)
{
	uint8_t *b = malloc(f->idx_len);
	int r;

	assert_non_null(b);
	memcpy(b, f->idx, f->idx_len);
	fn(b, f->idx_len);
	r = lp_index_parse(b, f->idx_len, ret, NULL);
	free(b);
	return r;
}

#define CP(b, i) ((b) + LP_INDEX_HEADER_SIZE + (size_t)(i)*LP_INDEX_CP_SIZE)

static void lie_span(uint8_t *b, size_t len)
{
	CP(b, 10)[40] ^= 1;
}

static void lie_out(uint8_t *b, size_t len)
{
	lp_put_le64(CP(b, 10) + 8, lp_get_le64(CP(b, 10) + 8) + 1);
}

/* checkpoint 10's window: its first compressed byte pair replaced by a
 * valid stream of the same length is hard; swap with checkpoint 11's */
static void lie_window(uint8_t *b, size_t len)
{
	uint8_t tmp[12];

	memcpy(tmp, CP(b, 10) + 16, 12);
	memcpy(CP(b, 10) + 16, CP(b, 11) + 16, 12);
	memcpy(CP(b, 11) + 16, tmp, 12);
}

static void huge_cps(uint8_t *b, size_t len)
{
	lp_put_le32(b + 68, LP_INDEX_MAX_CHECKPOINTS + 1);
}

static void huge_files(uint8_t *b, size_t len)
{
	lp_put_le32(b + 72, UINT32_MAX);
}

static void bad_version(uint8_t *b, size_t len)
{
	b[8] = 2;
}

/* the path of one regular file's record pointed at another's string */
static void lie_path(uint8_t *b, size_t len)
{
	uint32_t ncp = lp_get_le32(b + 68), nf = lp_get_le32(b + 72), i;
	uint8_t *files = CP(b, ncp), *first = NULL;

	for (i = 0; i < nf; i++) {
		uint8_t *rec = files + (size_t)i * LP_INDEX_FILE_SIZE;

		if (rec[64] != '0' || lp_get_le64(rec + 16) == 0)
			continue;
		if (!first) {
			first = rec;
		} else {
			/* a later file named as the first: the lookup of the
			 * first's path finds this record */
			memcpy(rec + 52, first + 52, 4);
			return;
		}
	}
}

static void test_lies(void **state)
{
	struct fixture f = { 0 };
	struct lp_index *ix = NULL;
	struct lp_index_stream *s = NULL;
	struct lp_blob *other = NULL;
	struct lp_err err = { 0 };
	uint8_t *buf;
	uint64_t at;
	int r, i;

	build_vector(&f);
	buf = malloc(4 * SPAN);
	assert_non_null(buf);

	/* a span digest: the read that fetches the span fails */
	assert_int_equal(parse_forged(&f, lie_span, &ix), 0);
	at = lp_index_checkpoint(ix, 10)->out;
	assert_int_equal(lp_index_stream_open(ix, f.blob, at, &s, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "digest mismatch"));
	lp_index_free(ix);

	/* an uncompressed offset: the span before it does not end there */
	memset(&err, 0, sizeof(err));
	assert_int_equal(parse_forged(&f, lie_out, &ix), 0);
	at = lp_index_checkpoint(ix, 9)->out;
	r = lp_index_stream_open(ix, f.blob, at, &s, &err);
	if (r == 0)
		r = lp_index_stream_read(s, buf, 2 * SPAN, &err);
	assert_int_equal(r, -EBADMSG);
	lp_index_stream_free(s);
	s = NULL;
	lp_index_free(ix);

	/* a window: a read passing checkpoint 10 compares it */
	memset(&err, 0, sizeof(err));
	assert_int_equal(parse_forged(&f, lie_window, &ix), 0);
	at = lp_index_checkpoint(ix, 9)->out;
	r = lp_index_stream_open(ix, f.blob, at, &s, &err);
	if (r == 0)
		r = lp_index_stream_read(
			s, buf,
			(size_t)(lp_index_checkpoint(ix, 10)->out - at + 10),
			&err);
	assert_int_equal(r, -EBADMSG);
	assert_non_null(strstr(err.msg, "window"));
	lp_index_stream_free(s);
	s = NULL;
	lp_index_free(ix);

	/* a path: the header in the stream names another file */
	memset(&err, 0, sizeof(err));
	assert_int_equal(parse_forged(&f, lie_path, &ix), 0);
	for (i = 0; i < (int)lp_index_nr_files(ix); i++)
		if (lp_index_file(ix, (size_t)i)->type == '0' &&
		    lp_index_file(ix, (size_t)i)->size)
			break;
	r = lp_index_lookup(ix, lp_index_file(ix, (size_t)i)->path);
	assert_true(r > i);
	assert_int_equal(lp_index_read_file(ix, f.blob, (size_t)r, buf, 1, 0,
					    NULL, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "names another path"));
	lp_index_free(ix);

	/* bounds and format */
	assert_int_equal(parse_forged(&f, huge_cps, &ix), -EFBIG);
	assert_int_equal(parse_forged(&f, huge_files, &ix), -EFBIG);
	assert_int_equal(parse_forged(&f, bad_version, &ix), -EOPNOTSUPP);
	assert_int_equal(lp_index_parse(f.idx, f.idx_len - 1, &ix, NULL),
			 -EBADMSG);
	assert_int_equal(lp_index_parse(f.idx, 50, &ix, NULL), -EBADMSG);

	/* a blob of another size */
	assert_int_equal(lp_blob_new_mem(f.gz, f.gz_len - 1, "short", &other),
			 0);
	assert_int_equal(lp_index_stream_open(f.ix, other, 0, &s, NULL),
			 -EBADMSG);
	lp_blob_unref(other);
	free(buf);
	release(&f);
}

/* span @i's compressed bytes, copied from the fixture's blob */
static uint8_t *span_bytes(struct fixture *f, const struct lp_index *ix,
			   size_t i, size_t *ret_len)
{
	uint64_t start, end;
	uint8_t *p;

	lp_index_span_range(ix, i, &start, &end);
	*ret_len = (size_t)(end - start);
	p = malloc(*ret_len + 1);
	assert_non_null(p);
	memcpy(p, f->gz + start, *ret_len);
	return p;
}

static uint64_t span_out_len(const struct lp_index *ix, size_t i)
{
	uint64_t end = i + 1 < lp_index_nr_checkpoints(ix) ?
			       lp_index_checkpoint(ix, i + 1)->out :
			       lp_index_uncompressed_size(ix);

	return end - lp_index_checkpoint(ix, i)->out;
}

/*
 * The window rule on an index nobody has proven: a piece of a span is
 * either the tar's bytes or -EAGAIN (it depends on the window), never other
 * bytes; most whole spans depend on their window.
 */
static void check_spans_unproven(struct fixture *f)
{
	size_t i, n = lp_index_nr_checkpoints(f->ix), served = 0, refused = 0,
		  whole = 0;

	for (i = 0; i < n; i++) {
		uint64_t out = lp_index_checkpoint(f->ix, i)->out;
		size_t olen = (size_t)span_out_len(f->ix, i), len, k;
		uint8_t *src = span_bytes(f, f->ix, i, &len);
		uint8_t *dst = malloc(olen + 1);
		struct lp_err err = { 0 };
		int r;

		assert_non_null(dst);
		assert_int_equal(lp_index_checkpoint_verified(f->ix, i),
				 i == 0);
		/* pieces of 4 KiB from the start of the span to its end */
		for (k = 0; k < olen; k += k < 16384 ? 4096 : 16384) {
			size_t piece = (size_t)lp_min_u64(4096, olen - k);

			memset(&err, 0, sizeof(err));
			r = lp_index_span_decode(f->ix, i, src, len, k, dst,
						 piece, &err);
			if (r == 0) {
				assert_memory_equal(dst, f->tar + out + k,
						    piece);
				served++;
				continue;
			}
			assert_int_equal(r, -EAGAIN);
			assert_true(i > 0);
			assert_non_null(
				strstr(err.msg, "depend on the window"));
			refused++;
		}
		/* the whole span: the tar's bytes, or refused */
		r = lp_index_span_decode(f->ix, i, src, len, 0, dst, olen,
					 NULL);
		if (r == 0)
			assert_memory_equal(dst, f->tar + out, olen);
		else
			assert_int_equal(r, -EAGAIN);
		whole += r == -EAGAIN;
		free(src);
		free(dst);
	}
	/* nothing proven by it */
	for (i = 1; i < n; i++)
		assert_false(lp_index_checkpoint_verified(f->ix, i));
	assert_true(served > 10);
	assert_true(refused > 10);
	/* most spans' bytes copy from their window somewhere */
	assert_true(whole > n / 2);
}

static void check_spans(struct fixture *f, unsigned int seed)
{
	size_t i, n = lp_index_nr_checkpoints(f->ix);

	check_spans_unproven(f);
	prove_all(f, f->ix);
	srand(seed);
	for (i = 0; i < n; i++) {
		uint64_t out = lp_index_checkpoint(f->ix, i)->out;
		size_t olen = (size_t)span_out_len(f->ix, i), len, skip, piece;
		uint8_t *src = span_bytes(f, f->ix, i, &len);
		uint8_t *dst = malloc(olen + 1);
		struct lp_err err = { 0 };
		int r;

		assert_non_null(dst);
		r = lp_index_span_decode(f->ix, i, src, len, 0, dst, olen,
					 &err);
		if (r < 0)
			fail_msg("span %zu: %s", i, lp_err_str(&err, r));
		assert_memory_equal(dst, f->tar + out, olen);
		skip = olen ? (size_t)rand() % olen : 0;
		piece = olen - skip ? (size_t)rand() % (olen - skip) + 1 : 0;
		assert_int_equal(lp_index_span_decode(f->ix, i, src, len, skip,
						      dst, piece, &err),
				 0);
		assert_memory_equal(dst, f->tar + out + skip, piece);
		/* a piece past the span's end */
		assert_int_equal(lp_index_span_decode(f->ix, i, src, len, skip,
						      dst, olen - skip + 1,
						      NULL),
				 -ERANGE);
		/* one byte short (the byte a span shares with the next) */
		memset(&err, 0, sizeof(err));
		assert_int_equal(lp_index_span_decode(f->ix, i, src, len - 1, 0,
						      dst, 1, &err),
				 -EBADMSG);
		/* a flipped compressed byte: refused before inflating */
		src[len / 2] ^= 0x40;
		memset(&err, 0, sizeof(err));
		assert_int_equal(lp_index_span_decode(f->ix, i, src, len, 0,
						      dst, olen, &err),
				 -EBADMSG);
		assert_non_null(strstr(err.msg, "digest mismatch"));
		free(src);
		free(dst);
	}
	assert_int_equal(
		lp_index_span_decode(f->ix, n, f->gz, 1, 0, f->tar, 1, NULL),
		-ERANGE);
}

static void test_span_decode(void **state)
{
	struct fixture f = { 0 }, m = { 0 };
	struct lp_index *ix = NULL;
	struct lp_err err = { 0 };
	uint8_t *src, dst[16];
	size_t len;

	build_vector(&f);
	check_spans(&f, 3);
	/* a lying span digest: refused however right the bytes are */
	assert_int_equal(parse_forged(&f, lie_span, &ix), 0);
	src = span_bytes(&f, ix, 10, &len);
	assert_int_equal(lp_index_span_decode(ix, 10, src, len, 0, dst,
					      sizeof(dst), &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "digest mismatch"));
	free(src);
	lp_index_free(ix);
	/* gzip members ending inside spans */
	src = gzip_members(f.tar, f.tar_len, 300 * 1024 + 17, &len);
	build(&m, src, len);
	check_spans(&m, 4);
	release(&m);
	release(&f);
}

/*
 * The span inflater (the mount's streamed spans) against the tar: every
 * span of @f's trusted index fed in pieces of @step bytes (the shared
 * byte, members ending inside spans and the last span's trailer
 * included) inflates to exactly its output, the tar's bytes, and ends
 * where its checkpoints say; an unproven checkpoint of an untrusted index
 * is refused.
 */
static void check_inflater(struct fixture *f, size_t step)
{
	struct lp_index_span_inflater *inf = NULL;
	struct lp_index *ix = NULL;
	struct lp_err err = { 0 };
	size_t i, k, len, done, cap;
	uint8_t *src, *out;

	assert_int_equal(lp_index_parse(f->idx, f->idx_len, &ix, &err), 0);
	if (lp_index_nr_checkpoints(ix) > 1)
		assert_int_equal(lp_index_span_inflater_new(ix, 1, &inf, &err),
				 -EAGAIN);
	lp_index_trust(ix);
	for (i = 0; i < lp_index_nr_checkpoints(ix); i++) {
		src = span_bytes(f, ix, i, &len);
		cap = (size_t)span_out_len(ix, i);
		out = malloc(cap + 1);
		assert_non_null(out);
		done = 0;
		assert_int_equal(lp_index_span_inflater_new(ix, i, &inf, &err),
				 0);
		for (k = 0; k < len; k += step)
			assert_int_equal(
				lp_index_span_inflater_feed(
					inf, src + k,
					k + step < len ? step : len - k, out,
					cap, &done, &err),
				0);
		assert_int_equal(
			lp_index_span_inflater_end(inf, done, cap, &err), 0);
		assert_memory_equal(
			out, f->tar + lp_index_checkpoint(ix, i)->out, cap);
		lp_index_span_inflater_free(inf);
		/* one byte short of the span: not its whole output */
		if (len > 1) {
			assert_int_equal(
				lp_index_span_inflater_new(ix, i, &inf, &err),
				0);
			done = 0;
			assert_int_equal(lp_index_span_inflater_feed(
						 inf, src, len / 2, out, cap,
						 &done, &err),
					 0);
			assert_true(done < cap);
			assert_int_equal(lp_index_span_inflater_end(inf, done,
								    cap, &err),
					 -EBADMSG);
			lp_index_span_inflater_free(inf);
		}
		free(out);
		free(src);
	}
	lp_index_free(ix);
}

static void test_span_inflater(void **state)
{
	struct fixture f = { 0 }, m = { 0 };
	uint8_t *src;
	size_t len;

	(void)state;
	build_vector(&f);
	check_inflater(&f, 1);
	check_inflater(&f, 4096);
	check_inflater(&f, SIZE_MAX / 2);
	/* gzip members ending inside spans */
	src = gzip_members(f.tar, f.tar_len, 300 * 1024 + 17, &len);
	build(&m, src, len);
	check_inflater(&m, 3);
	check_inflater(&m, 65536);
	release(&m);
	release(&f);
}

/* every regular file from its TOC chunks, each decoded from its span */
static void check_toc_pass(struct fixture *f, bool proven)
{
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	uint32_t e, k, files = 0, names = 0, reread = 0;
	size_t i;
	int r;

	r = lp_index_toc(f->ix, &toc, &err);
	if (r < 0)
		fail_msg("lp_index_toc: %s", lp_err_str(&err, r));
	for (i = 0; i < lp_index_nr_files(f->ix); i++)
		names +=
			lp_index_lookup(f->ix, lp_index_file(f->ix, i)->path) ==
			(int)i;
	/* the root is entry 0 whether or not the tar names it */
	assert_true(lp_toc_nr_entries(toc) >= names);
	for (e = 0; e < lp_toc_nr_entries(toc); e++) {
		const struct lp_toc_entry *te = lp_toc_entry(toc, e);
		char path[LP_TOC_MAX_PATH + 1];
		const struct lp_index_file *fi;
		uint64_t done = 0;
		int j;

		if (te->type != LP_TOC_REG)
			continue;
		assert_true(lp_toc_entry_path(toc, e, path, sizeof(path)) >= 0);
		j = lp_index_lookup(f->ix, path);
		assert_true(j >= 0);
		fi = lp_index_file(f->ix, (size_t)j);
		assert_int_equal(te->size, fi->size);
		for (k = 0; k < te->nr_chunks; k++) {
			const struct lp_toc_chunk c =
				lp_toc_chunk(toc, te->first_chunk + k);
			int sp = lp_index_span_at(f->ix, c.offset);
			uint8_t *src, *dst = malloc(c.chunk_size);
			size_t len;

			assert_true(sp >= 0);
			assert_int_equal(c.chunk_offset, done);
			src = span_bytes(f, f->ix, (size_t)sp, &len);
			assert_non_null(dst);
			r = lp_index_span_decode(f->ix, (size_t)sp, src, len,
						 c.inner_offset, dst,
						 c.chunk_size, &err);
			if (r == -EAGAIN && !proven) {
				/* from spans further back (the window rule) */
				struct lp_index_stream_stats st = { 0 };

				memset(&err, 0, sizeof(err));
				r = lp_index_read(
					f->ix, f->blob,
					lp_index_checkpoint(f->ix, (size_t)sp)
							->out +
						c.inner_offset,
					dst, c.chunk_size, src, len, false, &st,
					&err);
				assert_true(st.window_rereads == 1);
				reread++;
			}
			if (r < 0)
				fail_msg("%s: %s", path, lp_err_str(&err, r));
			assert_memory_equal(
				dst, f->tar + fi->data_off + c.chunk_offset,
				c.chunk_size);
			done += c.chunk_size;
			free(src);
			free(dst);
		}
		assert_int_equal(done, te->size);
		files++;
	}
	assert_true(files > 10);
	if (!proven)
		assert_true(reread > 0);
	assert_int_equal(lp_index_span_at(f->ix, 1), -ENOENT);
	lp_toc_free(toc);
}

/* unproven (the window rule, lp_index_read() where it refuses), then
 * every piece from its span alone once every checkpoint is proven */
static void check_toc(struct fixture *f)
{
	check_toc_pass(f, false);
	prove_all(f, f->ix);
	check_toc_pass(f, true);
}

static void test_toc(void **state)
{
	struct fixture f = { 0 }, m = { 0 };
	uint8_t *gz;
	size_t len;

	build_vector(&f);
	check_toc(&f);
	gz = gzip_members(f.tar, f.tar_len, 300 * 1024 + 17, &len);
	build(&m, gz, len);
	check_toc(&m);
	release(&m);
	release(&f);
}

/*
 * A copy of the fixture's index whose checkpoint @k has another window:
 * the real one with its last 4 KiB changed (xor 0x55), appended to the
 * windows section and pointed at; span digests and the file table are
 * untouched, so the index parses.
 */
static struct lp_index *forge_window(struct fixture *f, size_t k)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(f->ix, k);
	uint8_t win[LP_INDEX_WINDOW], z[LP_INDEX_WINDOW + 1024];
	uLongf wlen = sizeof(win), zlen = sizeof(z);
	struct lp_index *ix = NULL;
	uint64_t wsize = lp_get_le64(f->idx + 80);
	/* the windows section ends the index, or the grain digests do */
	size_t grains =
		(lp_get_le32(f->idx + 12) & LP_INDEX_FLAG_GRAINS) ?
			(size_t)lp_get_le32(f->idx + 92) * LP_SHA256_LEN :
			0;
	size_t wend = f->idx_len - grains, i, len;
	uint8_t *b;

	assert_int_equal(c->kind, LP_INDEX_CP_DEFLATE);
	assert_int_equal(uncompress(win, &wlen,
				    f->idx + wend - wsize + c->window_off,
				    c->window_len),
			 Z_OK);
	assert_int_equal(wlen, c->window_raw);
	for (i = wlen > 4096 ? wlen - 4096 : 0; i < wlen; i++)
		win[i] ^= 0x55;
	assert_int_equal(compress2(z, &zlen, win, wlen, 9), Z_OK);
	len = f->idx_len + zlen;
	b = malloc(len);
	assert_non_null(b);
	memcpy(b, f->idx, wend);
	memcpy(b + wend, z, zlen);
	memcpy(b + wend + zlen, f->idx + wend, grains);
	lp_put_le64(b + 80, wsize + zlen);
	lp_put_le32(CP(b, k) + 16, (uint32_t)wsize);
	lp_put_le32(CP(b, k) + 20, (uint32_t)zlen);
	assert_int_equal(lp_index_parse(b, len, &ix, NULL), 0);
	free(b);
	return ix;
}

/* the first regular file with data from @from whose header lies in span
 * @k, or -1 */
static int file_in_span(struct lp_index *ix, size_t k, size_t from)
{
	uint64_t lo = lp_index_checkpoint(ix, k)->out,
		 hi = k + 1 < lp_index_nr_checkpoints(ix) ?
			      lp_index_checkpoint(ix, k + 1)->out :
			      lp_index_uncompressed_size(ix);
	size_t i;

	for (i = from; i < lp_index_nr_files(ix); i++) {
		const struct lp_index_file *e = lp_index_file(ix, i);

		if (e->type == '0' && e->size && e->hdr_off >= lo &&
		    e->hdr_off < hi)
			return (int)i;
	}
	return -1;
}

/* a lying window at the checkpoint a read starts at (issue #14's rule: a
 * forged index must never make a read serve bytes the layer does not hold) */
static void test_start_window(void **state)
{
	struct fixture f = { 0 };
	struct lp_err err = { 0 };
	struct lp_index *ix;
	struct lp_index_stream *s = NULL;
	size_t k, tried = 0, files = 0, n;
	uint8_t *buf;
	int r, fi;

	build_vector(&f);
	n = lp_index_nr_checkpoints(f.ix);
	buf = malloc(2 * SPAN);
	assert_non_null(buf);
	/* every checkpoint with a file header in its span (the vector has 3
	 * past the first), and a few spread over the layer; from the end (the
	 * last span's bytes copy from its window, many files start there) */
	for (k = n - 1; k > 0; k--) {
		const struct lp_index_checkpoint *c;
		size_t len, nf = 0;

		if (lp_index_checkpoint(f.ix, k)->kind != LP_INDEX_CP_DEFLATE ||
		    (file_in_span(f.ix, k, 0) < 0 && k % (n / 4)))
			continue;
		ix = forge_window(&f, k);
		c = lp_index_checkpoint(ix, k);
		assert_false(lp_index_checkpoint_verified(ix, k));
		/* files whose header is in k's span (`lazypull index cat`) */
		for (fi = file_in_span(ix, k, 0); fi >= 0 && nf < 40;
		     fi = file_in_span(ix, k, (size_t)fi + 1), nf++) {
			const struct lp_index_file *e =
				lp_index_file(ix, (size_t)fi);
			size_t fl = (size_t)lp_min_u64(e->size, 2 * SPAN);

			memset(&err, 0, sizeof(err));
			r = lp_index_read_file(ix, f.blob, (size_t)fi, buf, fl,
					       0, NULL, &err);
			if (r == 0 && memcmp(buf, f.tar + e->data_off, fl))
				fail_msg("%s: a lying window at checkpoint "
					 "#%zu served other bytes",
					 e->path, k);
			assert_int_equal(r, -EBADMSG);
			assert_non_null(
				strstr(err.msg, "window is not the layer's"));
			files++;
		}
		/* the stream, started at k's offset */
		len = (size_t)lp_min_u64(f.tar_len - c->out, 2 * SPAN);
		memset(&err, 0, sizeof(err));
		r = lp_index_stream_open(ix, f.blob, c->out, &s, &err);
		if (r == 0)
			r = lp_index_stream_read(s, buf, len, &err);
		if (r == 0 && memcmp(buf, f.tar + c->out, len))
			fail_msg("checkpoint #%zu: a lying window served other "
				 "bytes than the layer's",
				 k);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(strstr(err.msg, "window is not the layer's"));
		assert_false(lp_index_checkpoint_verified(ix, k));
		lp_index_stream_free(s);
		s = NULL;
		lp_index_free(ix);
		tried++;
	}
	assert_true(tried >= 6);
	assert_true(files >= 3);
	free(buf);
	release(&f);
}

static size_t lie_k; /* the checkpoint the next lie_* changes */

static void lie_bits(uint8_t *b, size_t len)
{
	CP(b, lie_k)[24] = (uint8_t)((CP(b, lie_k)[24] + 1) % 8);
}

/* a deflate checkpoint said to be a gzip member start */
static void lie_member(uint8_t *b, size_t len)
{
	memset(CP(b, lie_k) + 16, 0, 12);
	CP(b, lie_k)[25] = LP_INDEX_CP_MEMBER;
}

/* the right window at a wrong bit offset, or a member start that is none:
 * the read starting there refuses it on its way from checkpoint 0 */
static void test_start_position(void **state)
{
	struct fixture f = { 0 };
	struct lp_err err = { 0 };
	struct lp_index *ix = NULL;
	struct lp_index_stream *s = NULL;
	uint8_t *buf;
	int r;

	build_vector(&f);
	buf = malloc(2 * SPAN);
	assert_non_null(buf);
	lie_k = lp_index_nr_checkpoints(f.ix) / 2;
	assert_int_equal(lp_index_checkpoint(f.ix, lie_k)->kind,
			 LP_INDEX_CP_DEFLATE);
	assert_int_equal(parse_forged(&f, lie_bits, &ix), 0);
	r = lp_index_stream_open(ix, f.blob,
				 lp_index_checkpoint(ix, lie_k)->out, &s, &err);
	if (r == 0)
		r = lp_index_stream_read(s, buf, 100, &err);
	assert_int_equal(r, -EBADMSG);
	assert_non_null(strstr(err.msg, "no deflate block boundary"));
	lp_index_stream_free(s);
	s = NULL;
	lp_index_free(ix);

	memset(&err, 0, sizeof(err));
	assert_int_equal(parse_forged(&f, lie_member, &ix), 0);
	r = lp_index_stream_open(ix, f.blob,
				 lp_index_checkpoint(ix, lie_k)->out, &s, &err);
	if (r == 0)
		r = lp_index_stream_read(s, buf, 100, &err);
	assert_int_equal(r, -EBADMSG);
	assert_non_null(strstr(err.msg, "no gzip member"));
	lp_index_stream_free(s);
	lp_index_free(ix);
	free(buf);
	release(&f);
}

/* a cold read at the end proves every checkpoint; a warm one is one span */
static void test_proven(void **state)
{
	struct fixture f = { 0 }, m = { 0 };
	struct lp_index_stream_stats st;
	struct lp_index_stream *s = NULL;
	struct lp_err err = { 0 };
	size_t n, k, members = 0;
	uint8_t buf[100];
	uint64_t off;
	size_t len;
	uint8_t *gz;

	build_vector(&f);
	n = lp_index_nr_checkpoints(f.ix);
	assert_true(lp_index_checkpoint_verified(f.ix, 0));
	for (k = 1; k < n; k++)
		assert_false(lp_index_checkpoint_verified(f.ix, k));
	off = lp_index_checkpoint(f.ix, n - 1)->out;
	assert_int_equal(lp_index_stream_open(f.ix, f.blob, off, &s, &err), 0);
	assert_int_equal(lp_index_stream_read(s, buf, 1, &err), 0);
	assert_int_equal(buf[0], f.tar[off]);
	lp_index_stream_stats(s, &st);
	lp_index_stream_free(s);
	/* every span fetched once, the layer inflated once at most */
	assert_int_equal(st.spans, n);
	assert_true(st.bytes_inflated <= f.tar_len);
	for (k = 0; k < n; k++)
		assert_true(lp_index_checkpoint_verified(f.ix, k));
	/* warm: one span */
	off = lp_index_checkpoint(f.ix, n / 2)->out + 10;
	assert_int_equal(lp_index_stream_open(f.ix, f.blob, off, &s, &err), 0);
	assert_int_equal(lp_index_stream_read(s, buf, sizeof(buf), &err), 0);
	assert_memory_equal(buf, f.tar + off, sizeof(buf));
	lp_index_stream_stats(s, &st);
	lp_index_stream_free(s);
	assert_int_equal(st.spans, 1);

	/* a multi-member layer: its member-start checkpoints are proven by
	 * passing them too */
	gz = gzip_members(f.tar, f.tar_len, 300 * 1024 + 17, &len);
	build(&m, gz, len);
	n = lp_index_nr_checkpoints(m.ix);
	off = lp_index_checkpoint(m.ix, n - 1)->out;
	assert_int_equal(lp_index_stream_open(m.ix, m.blob, off, &s, &err), 0);
	assert_int_equal(lp_index_stream_read(s, buf, 1, &err), 0);
	lp_index_stream_free(s);
	for (k = 0; k < n; k++) {
		assert_true(lp_index_checkpoint_verified(m.ix, k));
		members += lp_index_checkpoint(m.ix, k)->kind ==
			   LP_INDEX_CP_MEMBER;
	}
	assert_true(members > 3);
	release(&m);
	release(&f);
}

/*
 * lp_index_read() on a true index nobody has proven: random small ranges
 * are the tar's bytes, and a cold one deep in the layer fetches a few spans,
 * not the layer up to it (the cost the window rule is for).
 */
static void test_read(void **state)
{
	struct fixture f = { 0 };
	struct lp_index_stream_stats st = { 0 };
	struct lp_err err = { 0 };
	uint8_t buf[4096];
	size_t n, i;
	uint64_t fetched = 0;
	int r;

	build_vector(&f);
	n = lp_index_nr_checkpoints(f.ix);
	srand(11);
	for (i = 0; i < 40; i++) {
		uint64_t off = (uint64_t)rand() % f.tar_len;
		size_t len = (size_t)lp_min_u64((size_t)rand() % sizeof(buf),
						f.tar_len - off);
		struct lp_index_stream_stats one = { 0 };

		memset(&err, 0, sizeof(err));
		r = lp_index_read(f.ix, f.blob, off, buf, len, NULL, 0, false,
				  &one, &err);
		if (r < 0)
			fail_msg("%llu+%zu: %s", (unsigned long long)off, len,
				 lp_err_str(&err, r));
		assert_memory_equal(buf, f.tar + off, len);
		fetched += one.bytes_fetched;
		st.window_rereads += one.window_rereads;
	}
	assert_true(st.window_rereads > 0);
	/* on average far less than a stream from the start would fetch */
	assert_true(fetched / 40 < f.gz_len / 4);
	lp_index_free(f.ix);
	assert_int_equal(lp_index_parse(f.idx, f.idx_len, &f.ix, NULL), 0);
	/* proven only: a cold read in the last span streams the layer from
	 * its first byte (every span), proving every checkpoint */
	memset(&st, 0, sizeof(st));
	r = lp_index_read(f.ix, f.blob, f.tar_len - 100, buf, 100, NULL, 0,
			  true, &st, &err);
	assert_int_equal(r, 0);
	assert_memory_equal(buf, f.tar + f.tar_len - 100, 100);
	assert_int_equal(st.spans, n);
	for (i = 0; i < n; i++)
		assert_true(lp_index_checkpoint_verified(f.ix, i));
	/* past the end */
	assert_int_equal(lp_index_read(f.ix, f.blob, f.tar_len - 1, buf, 2,
				       NULL, 0, false, NULL, NULL),
			 -ERANGE);
	release(&f);
}

/*
 * A forged window at a checkpoint whose span's first bytes depend on it:
 * no read serves a wrong byte (the span decoder refuses with -EAGAIN, and
 * lp_index_read() serves the tar's bytes or -EBADMSG when its way back
 * passes the lying checkpoint), and the proving pass finds the lie.
 */
static void test_window_rule(void **state)
{
	struct fixture f = { 0 };
	struct lp_err err = { 0 };
	size_t n, k, tried = 0, eagain = 0, lies = 0, first_dep = 0;
	uint8_t *buf;
	int r;

	build_vector(&f);
	n = lp_index_nr_checkpoints(f.ix);
	buf = malloc(SPAN);
	assert_non_null(buf);
	for (k = 1; k < n && tried < 10; k += n / 12 + 1) {
		struct lp_index *ix;
		uint64_t out;
		size_t len, olen, off;
		uint8_t *src;

		if (lp_index_checkpoint(f.ix, k)->kind != LP_INDEX_CP_DEFLATE)
			continue;
		ix = forge_window(&f, k);
		out = lp_index_checkpoint(ix, k)->out;
		olen = (size_t)span_out_len(ix, k);
		src = span_bytes(&f, ix, k, &len);
		for (off = 0; off < olen; off += off < 8192 ? 1024 : 8192) {
			size_t piece = (size_t)lp_min_u64(512, olen - off);

			memset(&err, 0, sizeof(err));
			r = lp_index_span_decode(ix, k, src, len, off, buf,
						 piece, &err);
			if (r == 0 && memcmp(buf, f.tar + out + off, piece))
				fail_msg("checkpoint #%zu: a lying window "
					 "served other bytes at %zu",
					 k, off);
			if (r < 0)
				assert_int_equal(r, -EAGAIN);
			eagain += r == -EAGAIN;
			memset(&err, 0, sizeof(err));
			r = lp_index_read(ix, f.blob, out + off, buf, piece,
					  src, len, false, NULL, &err);
			if (r == 0 && memcmp(buf, f.tar + out + off, piece))
				fail_msg("checkpoint #%zu: lp_index_read "
					 "served other bytes at %zu",
					 k, off);
			if (r < 0) {
				assert_int_equal(r, -EBADMSG);
				assert_non_null(strstr(
					err.msg, "window is not the layer's"));
				lies++;
			}
			/* proven only: the stream passes k and refuses it */
			if (off >= 2048)
				continue;
			memset(&err, 0, sizeof(err));
			assert_int_equal(lp_index_read(ix, f.blob, out + off,
						       buf, piece, src, len,
						       true, NULL, &err),
					 -EBADMSG);
			assert_non_null(
				strstr(err.msg, "window is not the layer's"));
		}
		/* spans whose first bytes depend on the window */
		first_dep += lp_index_span_decode(ix, k, src, len, 0, buf, 256,
						  NULL) == -EAGAIN;
		memset(&err, 0, sizeof(err));
		r = lp_index_prove(ix, f.blob, lp_index_check_header, NULL,
				   NULL, NULL, &err);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(strstr(err.msg, "window is not the layer's"));
		assert_false(lp_index_checkpoint_verified(ix, k));
		free(src);
		lp_index_free(ix);
		tried++;
	}
	assert_true(tried >= 6);
	assert_true(eagain > 0);
	assert_true(first_dep > 0);
	assert_true(lies > 0);
	free(buf);
	release(&f);
}

/* a copy of the fixture's index without file record @j (all else kept):
 * a file table that leaves an archive member out */
static struct lp_index *drop_file(struct fixture *f, size_t j)
{
	uint32_t ncp = lp_get_le32(f->idx + 68), nf = lp_get_le32(f->idx + 72);
	size_t at = LP_INDEX_HEADER_SIZE + (size_t)ncp * LP_INDEX_CP_SIZE +
		    j * LP_INDEX_FILE_SIZE;
	struct lp_index *ix = NULL;
	uint8_t *b = malloc(f->idx_len);

	assert_non_null(b);
	memcpy(b, f->idx, at);
	memcpy(b + at, f->idx + at + LP_INDEX_FILE_SIZE,
	       f->idx_len - at - LP_INDEX_FILE_SIZE);
	lp_put_le32(b + 72, nf - 1);
	assert_int_equal(
		lp_index_parse(b, f->idx_len - LP_INDEX_FILE_SIZE, &ix, NULL),
		0);
	free(b);
	return ix;
}

static void blob_digest_lie(uint8_t *b, size_t len)
{
	b[32] ^= 1;
}

/* lp_index_prove() with @ix over the fixture's blob: -EBADMSG saying @why */
static void expect_lie(struct fixture *f, struct lp_index *ix, const char *why)
{
	struct lp_err err = { 0 };
	int r;

	r = lp_index_prove(ix, f->blob, lp_index_check_header, NULL, NULL, NULL,
			   &err);
	if (r != -EBADMSG || !strstr(err.msg, why))
		fail_msg("proving a lie (%s): %d %s", why, r, err.msg);
	lp_index_free(ix);
}

static bool stop_now(void *arg)
{
	return *(int *)arg > 0;
}

/*
 * The proving pass: a true index is proven whole (every checkpoint, one
 * pass over the blob); each lie is found: a span digest, a bit offset, a
 * member start that is none, a window, a path pointed at another file's
 * bytes, an entry left out of the file table, the blob digest.
 */
static void test_prove(void **state)
{
	struct fixture f = { 0 }, m = { 0 };
	struct lp_index_stream_stats st = { 0 };
	struct lp_err err = { 0 };
	struct lp_index *ix = NULL;
	size_t n, k, j;
	int r, stop = 1;
	uint8_t *gz;
	size_t len;

	build_vector(&f);
	n = lp_index_nr_checkpoints(f.ix);
	/* asked to stop: nothing proven, -ECANCELED */
	assert_int_equal(lp_index_prove(f.ix, f.blob, lp_index_check_header,
					stop_now, &stop, NULL, NULL),
			 -ECANCELED);
	r = lp_index_prove(f.ix, f.blob, lp_index_check_header, NULL, NULL, &st,
			   &err);
	if (r < 0)
		fail_msg("proving a true index: %s", lp_err_str(&err, r));
	for (k = 0; k < n; k++)
		assert_true(lp_index_checkpoint_verified(f.ix, k));
	/* the blob once (and the byte two spans share, where they do) */
	assert_true(st.bytes_fetched >= f.gz_len &&
		    st.bytes_fetched < f.gz_len + n);
	assert_int_equal(st.spans, n);
	assert_int_equal(st.bytes_inflated, f.tar_len);

	assert_int_equal(parse_forged(&f, lie_span, &ix), 0);
	expect_lie(&f, ix, "digest mismatch");
	lie_k = n / 2;
	assert_int_equal(parse_forged(&f, lie_bits, &ix), 0);
	expect_lie(&f, ix, "no deflate block boundary");
	assert_int_equal(parse_forged(&f, lie_member, &ix), 0);
	expect_lie(&f, ix, "no gzip member");
	assert_int_equal(parse_forged(&f, lie_window, &ix), 0);
	expect_lie(&f, ix, "window is not the layer's");
	assert_int_equal(parse_forged(&f, lie_path, &ix), 0);
	expect_lie(&f, ix, "does not match the tar header");
	assert_int_equal(parse_forged(&f, blob_digest_lie, &ix), 0);
	expect_lie(&f, ix, "its sha256 is not the digest");
	/* a regular file in the middle of the table left out */
	for (j = lp_index_nr_files(f.ix) / 2; j < lp_index_nr_files(f.ix); j++)
		if (lp_index_file(f.ix, j)->type == '0' &&
		    lp_index_file(f.ix, j)->size)
			break;
	assert_true(j < lp_index_nr_files(f.ix));
	expect_lie(&f, drop_file(&f, j), "leaves out");
	/* the last entry left out: its bytes are no end-of-archive */
	expect_lie(&f, drop_file(&f, lp_index_nr_files(f.ix) - 1),
		   "after the last entry");

	/* a multi-member layer */
	gz = gzip_members(f.tar, f.tar_len, 300 * 1024 + 17, &len);
	build(&m, gz, len);
	memset(&err, 0, sizeof(err));
	r = lp_index_prove(m.ix, m.blob, lp_index_check_header, NULL, NULL,
			   NULL, &err);
	if (r < 0)
		fail_msg("proving a multi-member layer: %s",
			 lp_err_str(&err, r));
	for (k = 0; k < lp_index_nr_checkpoints(m.ix); k++)
		assert_true(lp_index_checkpoint_verified(m.ix, k));
	release(&m);
	release(&f);
}

struct reader_arg {
	struct fixture *f;
	unsigned int seed;
	int bad;
};

static void *reader(void *arg)
{
	struct reader_arg *a = arg;
	uint8_t *buf = malloc(64 * 1024);
	int i;

	for (i = 0; buf && i < 40; i++) {
		uint64_t off = (uint64_t)rand_r(&a->seed) % a->f->tar_len;
		size_t len = (size_t)lp_min_u64((uint64_t)rand_r(&a->seed) %
							(64 * 1024),
						a->f->tar_len - off);
		struct lp_index_stream *s = NULL;
		int r = lp_index_stream_open(a->f->ix, a->f->blob, off, &s,
					     NULL);

		if (r == 0)
			r = lp_index_stream_read(s, buf, len, NULL);
		if (r < 0 || memcmp(buf, a->f->tar + off, len))
			a->bad++;
		lp_index_stream_free(s);
	}
	free(buf);
	return NULL;
}

/* one index read through from several threads at once */
static void test_threads(void **state)
{
	struct fixture f = { 0 };
	struct reader_arg a[4];
	pthread_t t[4];
	int i;

	build_vector(&f);
	for (i = 0; i < 4; i++) {
		a[i] = (struct reader_arg){ &f, (unsigned int)i + 7, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reader, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].bad, 0);
	}
	release(&f);
}

/* every grain digest of the fixture's index against the sha256 of the
 * blob's bytes, the spans taken from the checkpoints (not from
 * lp_index_span_range()); counts spans starting at a shared byte and spans
 * of several grains */
static void check_all_grains(struct fixture *f, uint32_t gs, size_t *ret_split,
			     size_t *ret_several)
{
	size_t i, g, n = lp_index_nr_checkpoints(f->ix);
	struct lp_digest d;

	assert_int_equal(lp_index_grain_size(f->ix), gs);
	*ret_split = *ret_several = 0;
	for (i = 0; i < n; i++) {
		const struct lp_index_checkpoint *c =
			lp_index_checkpoint(f->ix, i);
		uint64_t start = c->in - (c->bits ? 1 : 0);
		uint64_t end = i + 1 < n ?
				       lp_index_checkpoint(f->ix, i + 1)->in :
				       f->gz_len;
		size_t ng = lp_index_nr_grains(f->ix, i);

		assert_int_equal(ng, (end - start + gs - 1) / gs);
		for (g = 0; g < ng; g++) {
			uint64_t a = start + g * gs;
			uint64_t b = end - a > gs ? a + gs : end;

			lp_sha256(f->gz + a, (size_t)(b - a), &d);
			if (memcmp(d.b, lp_index_grain(f->ix, i, g)->b,
				   LP_SHA256_LEN))
				fail_msg("span #%zu grain #%zu of %u bytes: "
					 "digest wrong",
					 i, g, gs);
		}
		assert_null(lp_index_grain(f->ix, i, ng));
		*ret_split += c->bits != 0;
		*ret_several += ng > 1;
	}
	assert_int_equal(lp_index_nr_grains(f->ix, n), 0);
	assert_null(lp_index_grain(f->ix, n, 0));
}

/* the fixture's index serialises to the bytes it was parsed from, and
 * those parse again to the same grains */
static void check_grains_roundtrip(struct fixture *f)
{
	struct lp_index *again = NULL;
	struct lp_buf out;
	size_t i, g;

	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	assert_int_equal(lp_index_serialise(f->ix, &out), 0);
	assert_int_equal(out.len, f->idx_len);
	assert_memory_equal(out.data, f->idx, f->idx_len);
	assert_int_equal(lp_index_parse(out.data, out.len, &again, NULL), 0);
	assert_int_equal(lp_index_grain_size(again),
			 lp_index_grain_size(f->ix));
	for (i = 0; i < lp_index_nr_checkpoints(f->ix); i++) {
		assert_int_equal(lp_index_nr_grains(again, i),
				 lp_index_nr_grains(f->ix, i));
		for (g = 0; g < lp_index_nr_grains(f->ix, i); g++)
			assert_memory_equal(lp_index_grain(again, i, g)->b,
					    lp_index_grain(f->ix, i, g)->b,
					    LP_SHA256_LEN);
	}
	lp_index_free(again);
	lp_buf_release(&out);
}

static uint8_t *copy_of(const uint8_t *b, size_t len)
{
	uint8_t *p = malloc(len);

	assert_non_null(p);
	memcpy(p, b, len);
	return p;
}

static void test_grains(void **state)
{
	static const uint32_t sizes[] = { LP_INDEX_GRAIN_MIN,
					  LP_INDEX_GRAIN_DEFAULT,
					  LP_INDEX_GRAIN_MAX };
	struct fixture f = { 0 }, plain = { 0 };
	size_t len, split, several, i, n, nr = 0;
	uint8_t *gz = slurp(LP_VECTORS_DIR "/v1.tar.gz", &len), *tar;
	size_t tar_len;

	(void)state;
	assert_true(len > 0);
	/* one gzip member, grains of every size */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		build_grains(&f, copy_of(gz, len), len, sizes[i]);
		check_all_grains(&f, sizes[i], &split, &several);
		check_grains_roundtrip(&f);
		assert_true(split > 0); /* spans that start at a shared byte */
		if (sizes[i] == LP_INDEX_GRAIN_MIN)
			assert_true(several > 10);
		if (sizes[i] == LP_INDEX_GRAIN_MAX) {
			/* spans of 64 KiB out are far under 1 MiB in: one
			 * grain each, whose digest is the span digest */
			assert_int_equal(several, 0);
			for (n = 0; n < lp_index_nr_checkpoints(f.ix); n++)
				assert_memory_equal(
					lp_index_grain(f.ix, n, 0)->b,
					lp_index_checkpoint(f.ix, n)->span.b,
					LP_SHA256_LEN);
		}
		release(&f);
	}
	/* without grains: today's index, which is the one with grains less
	 * the header's flag, grain size and count, and the last section */
	build_grains(&f, copy_of(gz, len), len, LP_INDEX_GRAIN_MIN);
	build_grains(&plain, gz, len, 0);
	assert_int_equal(lp_index_grain_size(plain.ix), 0);
	assert_int_equal(lp_index_nr_grains(plain.ix, 0), 0);
	assert_null(lp_index_grain(plain.ix, 0, 0));
	for (n = 0; n < lp_index_nr_checkpoints(f.ix); n++)
		nr += lp_index_nr_grains(f.ix, n);
	assert_int_equal(lp_get_le32(f.idx + 12), LP_INDEX_FLAG_GRAINS);
	assert_int_equal(lp_get_le32(f.idx + 88), LP_INDEX_GRAIN_MIN);
	assert_int_equal(lp_get_le32(f.idx + 92), nr);
	assert_int_equal(f.idx_len, plain.idx_len + nr * LP_SHA256_LEN);
	assert_int_equal(lp_get_le32(plain.idx + 12), 0);
	assert_int_equal(lp_get_le64(plain.idx + 88), 0);
	assert_memory_equal(f.idx, plain.idx, 12);
	assert_memory_equal(f.idx + 16, plain.idx + 16, 88 - 16);
	assert_memory_equal(f.idx + LP_INDEX_HEADER_SIZE,
			    plain.idx + LP_INDEX_HEADER_SIZE,
			    plain.idx_len - LP_INDEX_HEADER_SIZE);
	check_grains_roundtrip(&plain);
	tar = gunzip(plain.gz, len, &tar_len);
	release(&plain); /* and gz */
	release(&f);
	/* many gzip members: spans that end at a member's end */
	gz = gzip_members(tar, tar_len, 100000, &n);
	build_grains(&f, gz, n, LP_INDEX_GRAIN_MIN);
	check_all_grains(&f, LP_INDEX_GRAIN_MIN, &split, &several);
	check_grains_roundtrip(&f);
	assert_true(several > 10);
	release(&f);
	free(tar);
}

/* @idx (@len bytes) resized to @new_len (zeros added), LE32 @v put at
 * header offset @off (SIZE_MAX: none), parsed: 0 or -errno; @want in the
 * error message when refused */
static int parse_grain_edit(const uint8_t *idx, size_t len, size_t new_len,
			    size_t off, uint32_t v, const char *want)
{
	uint8_t *b = calloc(1, new_len > len ? new_len : len);
	struct lp_index *ix = NULL;
	struct lp_err err = { 0 };
	int r;

	assert_non_null(b);
	memcpy(b, idx, len);
	if (off != SIZE_MAX)
		lp_put_le32(b + off, v);
	r = lp_index_parse(b, new_len, &ix, &err);
	if (r == 0)
		lp_index_free(ix);
	else if (!strstr(err.msg, want))
		fail_msg("refused with \"%s\", expected \"%s\"", err.msg, want);
	free(b);
	return r;
}

static void test_grain_lies(void **state)
{
	struct fixture f = { 0 }, plain = { 0 };
	size_t len, L, i;
	uint8_t *gz = slurp(LP_VECTORS_DIR "/v1.tar.gz", &len);
	uint32_t nr, most;

	(void)state;
	assert_true(len > 0);
	build_grains(&f, copy_of(gz, len), len, LP_INDEX_GRAIN_MIN);
	build_grains(&plain, gz, len, 0);
	L = f.idx_len;
	nr = lp_get_le32(f.idx + 92);
	most = (uint32_t)(len / LP_INDEX_GRAIN_MIN +
			  lp_index_nr_checkpoints(f.ix));
	assert_int_equal(parse_grain_edit(f.idx, L, L, SIZE_MAX, 0, ""), 0);
	/* flags other than bit 0, with grains and without */
	assert_int_equal(parse_grain_edit(f.idx, L, L, 12, 3, "flags 0x3"),
			 -EOPNOTSUPP);
	assert_int_equal(parse_grain_edit(plain.idx, plain.idx_len,
					  plain.idx_len, 12, 0x80000000,
					  "flags 0x80000000"),
			 -EOPNOTSUPP);
	/* grain sizes: not a power of two, under and over the bounds, 0 */
	assert_int_equal(
		parse_grain_edit(f.idx, L, L, 88, 3 * 4096, "grain size 12288"),
		-EBADMSG);
	assert_int_equal(
		parse_grain_edit(f.idx, L, L, 88, 2048, "grain size 2048"),
		-EBADMSG);
	assert_int_equal(parse_grain_edit(f.idx, L, L, 88, 2 * 1024 * 1024,
					  "grain size 2097152"),
			 -EBADMSG);
	assert_int_equal(parse_grain_edit(f.idx, L, L, 88, 0, "grain size 0"),
			 -EBADMSG);
	/* another valid size: the count is then more than the spans have */
	assert_int_equal(parse_grain_edit(f.idx, L, L, 88, 8192, "more than"),
			 -EBADMSG);
	/* the count one short or one over, the section to match */
	assert_int_equal(parse_grain_edit(f.idx, L, L - LP_SHA256_LEN, 92,
					  nr - 1, "grain digests, but its"),
			 -EBADMSG);
	assert_int_equal(parse_grain_edit(f.idx, L, L + LP_SHA256_LEN, 92,
					  nr + 1, "grain digests, but its"),
			 -EBADMSG);
	/* huge counts: refused before anything is sized by them */
	assert_int_equal(
		parse_grain_edit(f.idx, L, L, 92, UINT32_MAX, "more than"),
		-EBADMSG);
	assert_int_equal(
		parse_grain_edit(f.idx, L, L, 92, most + 1, "more than"),
		-EBADMSG);
	assert_int_equal(
		parse_grain_edit(f.idx, L, L, 92, most, "its header says"),
		-EBADMSG);
	/* the section truncated, or bytes after it */
	for (i = 1; i <= LP_SHA256_LEN; i += LP_SHA256_LEN - 1)
		assert_int_equal(parse_grain_edit(f.idx, L, L - i, SIZE_MAX, 0,
						  "its header says"),
				 -EBADMSG);
	assert_int_equal(parse_grain_edit(f.idx, L, L + 1, SIZE_MAX, 0,
					  "its header says"),
			 -EBADMSG);
	/* the flag off: its fields are reserved bytes, its section trailing
	 * bytes */
	assert_int_equal(parse_grain_edit(f.idx, L, L, 12, 0, "reserved"),
			 -EBADMSG);
	assert_int_equal(parse_grain_edit(plain.idx, plain.idx_len,
					  plain.idx_len, 92, 1, "reserved"),
			 -EBADMSG);
	/* the flag on an index without grains: a count of 0 is wrong */
	assert_int_equal(parse_grain_edit(plain.idx, plain.idx_len,
					  plain.idx_len, 12,
					  LP_INDEX_FLAG_GRAINS, "grain size 0"),
			 -EBADMSG);
	release(&plain);
	release(&f);
}

/* gzip'ed @len bytes of @data in a gzip member zlib writes itself (not the
 * code under test), malloc'ed */
static uint8_t *gzip_of(const void *data, size_t len, size_t *ret_len)
{
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);
	z_stream z;

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(
		deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY),
		Z_OK);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*ret_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/*
 * The gzip transport of an index (lp_index_transport_*): what encode gives
 * decodes to the same bytes under a bound that fits them; a member that
 * inflates past the bound is refused -EFBIG (a bomb: 64 MiB of zeros in
 * 64 KiB) with a message naming the bound; one cut short, one with bytes
 * after it, one corrupted and a plain index over the bound are refused.
 */
static void test_transport(void **state)
{
	struct lp_err err = { 0 };
	struct lp_buf wire;
	uint8_t *data, *out = NULL, *bomb, *zeros;
	size_t i, len = 3 * 1024 * 1024 + 17, out_len = 0, bomb_len;

	(void)state;
	assert_int_equal(lp_index_transport_of(LP_INDEX_MEDIA_TYPE),
			 LP_INDEX_TRANSPORT_PLAIN);
	assert_int_equal(lp_index_transport_of(LP_INDEX_MEDIA_TYPE_GZIP),
			 LP_INDEX_TRANSPORT_GZIP);
	assert_int_equal(lp_index_transport_of(LP_INDEX_MEDIA_TYPE "+zstd"),
			 -EOPNOTSUPP);
	assert_int_equal(lp_index_transport_of(NULL), -EOPNOTSUPP);
	/* half compressible, half not: like an index's table and windows */
	data = malloc(len);
	assert_non_null(data);
	for (i = 0; i < len; i++)
		data[i] = i < len / 2 ? (uint8_t)(i / 7) :
					(uint8_t)((i * 2654435761u) >> 13);
	lp_buf_init(&wire, 2 * len);
	assert_int_equal(lp_index_transport_encode(LP_INDEX_TRANSPORT_GZIP,
						   data, len, &wire),
			 0);
	assert_true(wire.len < len);
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP,
						   wire.data, wire.len, len,
						   &out, &out_len, &err),
			 0);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, data, len);
	free(out);
	/* one byte over the bound */
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP,
						   wire.data, wire.len, len - 1,
						   &out, &out_len, &err),
			 -EFBIG);
	assert_null(out);
	assert_non_null(strstr(err.msg, "more than the bound"));
	lp_err_clear(&err);
	/* two whole members (the second the same index again), and the
	 * index as a zlib stream (RFC 1950) instead of one gzip member */
	{
		uint8_t *two = malloc(2 * wire.len), *z;
		uLongf zlen = compressBound(len);

		assert_non_null(two);
		memcpy(two, wire.data, wire.len);
		memcpy(two + wire.len, wire.data, wire.len);
		assert_int_equal(
			lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP, two,
						  2 * wire.len, 2 * len, &out,
						  &out_len, &err),
			-EBADMSG);
		assert_null(out);
		lp_err_clear(&err);
		free(two);
		z = malloc(zlen);
		assert_non_null(z);
		assert_int_equal(compress2(z, &zlen, data, len, 6), Z_OK);
		assert_int_equal(lp_index_transport_decode(
					 LP_INDEX_TRANSPORT_GZIP, z, zlen, len,
					 &out, &out_len, &err),
				 -EBADMSG);
		assert_null(out);
		lp_err_clear(&err);
		free(z);
	}
	/* cut short, and one byte too many */
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP,
						   wire.data, wire.len - 1, len,
						   &out, &out_len, &err),
			 -EBADMSG);
	lp_err_clear(&err);
	assert_int_equal(lp_buf_append(&wire, "x", 1), 0);
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP,
						   wire.data, wire.len, len,
						   &out, &out_len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "after the gzip member"));
	lp_err_clear(&err);
	/* a corrupted byte in the deflate data (or the CRC catches it) */
	wire.data[wire.len / 2] ^= 0x55;
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP,
						   wire.data, wire.len - 1, len,
						   &out, &out_len, &err),
			 -EBADMSG);
	lp_err_clear(&err);
	/* plain: a copy, under the bound */
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_PLAIN,
						   data, len, len, &out,
						   &out_len, &err),
			 0);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, data, len);
	free(out);
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_PLAIN,
						   data, len, len - 1, &out,
						   &out_len, &err),
			 -EFBIG);
	lp_err_clear(&err);
	/* a bomb: 64 MiB of zeros, some 64 KiB gzip'ed, bound 1 MiB */
	zeros = calloc(1, 64 * 1024 * 1024);
	assert_non_null(zeros);
	bomb = gzip_of(zeros, 64 * 1024 * 1024, &bomb_len);
	free(zeros);
	assert_true(bomb_len < 128 * 1024);
	assert_int_equal(lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP,
						   bomb, bomb_len, 1024 * 1024,
						   &out, &out_len, &err),
			 -EFBIG);
	assert_null(out);
	assert_non_null(strstr(err.msg, "more than the bound 1048576"));
	free(bomb);
	lp_buf_release(&wire);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_multi_member),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_lies),
		cmocka_unit_test(test_span_decode),
		cmocka_unit_test(test_span_inflater),
		cmocka_unit_test(test_toc),
		cmocka_unit_test(test_start_window),
		cmocka_unit_test(test_start_position),
		cmocka_unit_test(test_proven),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_window_rule),
		cmocka_unit_test(test_prove),
		cmocka_unit_test(test_grains),
		cmocka_unit_test(test_grain_lies),
		cmocka_unit_test(test_transport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
