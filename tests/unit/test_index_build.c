// SPDX-License-Identifier: Apache-2.0
/*
 * The gzip index builder's checkpoints (lp_index_build()) against an
 * oracle that finds them the plain way: inflate stopping at every deflate
 * block boundary (Z_BLOCK everywhere), a checkpoint at the first boundary
 * (or gzip member start) at least span_size uncompressed bytes after the
 * last one. The builder stops at boundaries only near where one can be due
 * (converter/index_build.c); every checkpoint (blob offset, bit offset,
 * uncompressed offset, kind, window bytes, span digest) must be the
 * oracle's, on the vectors' tar recompressed with blocks far smaller and
 * far larger than the spacing, stored blocks, blocks forced to end exactly
 * at, one byte before and one byte after the point where a checkpoint falls
 * due (also with an empty block there, and at odd bit offsets), and members
 * of one byte less, exactly and one byte more than the spacing. Then the
 * gzip trailer and header checks the builder does itself or leaves to
 * zlib: a wrong CRC32, a wrong ISIZE, a wrong header CRC16 are refused
 * (and a right header CRC16 is not); with a verified digest the trailer is
 * not checked, as documented. Last, members whose headers and trailers
 * come in pieces of a few bytes, one per read() (a SOCK_SEQPACKET socket):
 * the same index as from a regular file, and a wrong CRC32 still refused.
 * On every layer the grain digests (GRAIN bytes, the smallest grain, so
 * spans hold many and split bytes fall inside and at the edge of grains)
 * are checked against the sha256 of the layer's bytes, grain by grain.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "slurp.h"

#include "lp_digest.h"
#include "lp_index.h"
#include "lp_indexer.h"

#define SPAN LP_INDEX_MIN_SPAN_SIZE
#define GRAIN LP_INDEX_GRAIN_MIN
#define FORCED_STEP (8 * 1024) /* forced block length in make_forced() */
#define MAX_PIECE (32 * 1024) /* one SOCK_SEQPACKET record in build_split() */
#define MAX_CUTS 4096

/* the gzip member at the start of @in (@len bytes) inflated into @out,
 * which holds it whole (@cap bytes): its length, and in *@ret_used the
 * input bytes the member took */
static size_t gunzip_first(const uint8_t *in, size_t len, uint8_t *out,
			   size_t cap, size_t *ret_used)
{
	z_stream z = { 0 };

	assert_int_equal(inflateInit2(&z, 31), Z_OK);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	*ret_used = len - z.avail_in;
	inflateEnd(&z);
	return cap - z.avail_out;
}

/* the vectors' layer, inflated: a real tar for the builder's tar reader */
static uint8_t *load_tar(size_t *ret_len)
{
	size_t gz_len, used, cap = 64 * 1024 * 1024;
	uint8_t *gz = slurp(LP_VECTORS_DIR "/v1.tar.gz", &gz_len);
	uint8_t *tar = malloc(cap);

	assert_true(gz_len > 0);
	assert_non_null(tar);
	*ret_len = gunzip_first(gz, gz_len, tar, cap, &used);
	free(gz);
	return tar;
}

/* a deflate stream into a growing buffer */
struct gz {
	z_stream z;
	uint8_t *buf;
	size_t cap, len;
};

static void gz_begin(struct gz *g, int level, int mem_level)
{
	memset(&g->z, 0, sizeof(g->z));
	assert_int_equal(deflateInit2(&g->z, level, Z_DEFLATED, 31, mem_level,
				      Z_DEFAULT_STRATEGY),
			 Z_OK);
}

/* feed @n bytes at @p and flush with @flush */
static void gz_feed(struct gz *g, const uint8_t *p, size_t n, int flush)
{
	int zr;

	g->z.next_in = (uint8_t *)p;
	g->z.avail_in = (uInt)n;
	do {
		if (g->cap - g->len < 65536) {
			uint8_t *q = realloc(g->buf, g->cap * 2 + 65536);

			assert_non_null(q);
			g->buf = q;
			g->cap = g->cap * 2 + 65536;
		}
		g->z.next_out = g->buf + g->len;
		g->z.avail_out = (uInt)(g->cap - g->len);
		zr = deflate(&g->z, flush);
		g->len = g->cap - g->z.avail_out;
		assert_true(zr == Z_OK || zr == Z_STREAM_END ||
			    zr == Z_BUF_ERROR);
	} while (g->z.avail_out == 0 || g->z.avail_in > 0);
	if (flush == Z_FINISH) {
		assert_int_equal(zr, Z_STREAM_END);
		deflateEnd(&g->z);
	}
}

/* @tar as one member at @level / @mem_level, its blocks deflate's own */
static uint8_t *make_plain(const uint8_t *tar, size_t len, int level,
			   int mem_level, size_t *ret_len)
{
	struct gz g = { 0 };

	gz_begin(&g, level, mem_level);
	gz_feed(&g, tar, len, Z_FINISH);
	*ret_len = g.len;
	return g.buf;
}

/* @tar as members of @step input bytes each */
static uint8_t *make_members(const uint8_t *tar, size_t len, size_t step,
			     size_t *ret_len)
{
	struct gz g = { 0 };
	size_t i;

	for (i = 0; i < len; i += step) {
		gz_begin(&g, 6, 8);
		gz_feed(&g, tar + i, len - i < step ? len - i : step, Z_FINISH);
	}
	*ret_len = g.len;
	return g.buf;
}

/*
 * @tar as one member whose every block is forced (Z_BLOCK: not byte
 * aligned) and short enough that deflate ends none itself (memLevel 9).
 * Span by span, with T the point where the next checkpoint falls due
 * (@span past the last one), the blocks end: exactly at T; at T - 1 and
 * T + 1; at T - 1 with an empty stored block there too (Z_SYNC_FLUSH) and
 * then at T + 3000; or every FORCED_STEP bytes only.
 */
static uint8_t *make_forced(const uint8_t *tar, size_t len, size_t span,
			    size_t *ret_len)
{
	struct gz g = { 0 };
	size_t pos = 0, last = 0, k = 0;

	gz_begin(&g, 6, 9);
	while (pos < len) {
		size_t t = last + span, cp = 0;

		while (pos + FORCED_STEP < t - 1 && pos + FORCED_STEP < len) {
			gz_feed(&g, tar + pos, FORCED_STEP, Z_BLOCK);
			pos += FORCED_STEP;
		}
		if (t + 3000 >= len)
			break;
		switch (k++ % 4) {
		case 0:
			gz_feed(&g, tar + pos, t - pos, Z_BLOCK);
			pos = cp = t;
			break;
		case 1:
			gz_feed(&g, tar + pos, t - 1 - pos, Z_BLOCK);
			gz_feed(&g, tar + t - 1, 2, Z_BLOCK);
			pos = cp = t + 1;
			break;
		case 2:
			gz_feed(&g, tar + pos, t - 1 - pos, Z_BLOCK);
			gz_feed(&g, NULL, 0, Z_SYNC_FLUSH);
			gz_feed(&g, tar + t - 1, 3001, Z_BLOCK);
			pos = cp = t + 3000;
			break;
		default:
			while (pos < t) {
				size_t n = len - pos < FORCED_STEP ?
						   len - pos :
						   FORCED_STEP;

				gz_feed(&g, tar + pos, n, Z_BLOCK);
				pos += n;
			}
			cp = pos;
			break;
		}
		last = cp;
	}
	gz_feed(&g, tar + pos, len - pos, Z_FINISH);
	*ret_len = g.len;
	return g.buf;
}

struct cp {
	uint64_t in, out;
	uint8_t bits, kind;
	uInt window_len;
	uint8_t window[LP_INDEX_WINDOW];
};

/*
 * The oracle: the checkpoints of @gz at @span, from inflate(Z_BLOCK) fed
 * in small pieces (the builder's pieces are larger). Returns their count.
 */
static size_t oracle(const uint8_t *gz, size_t len, uint64_t span,
		     struct cp **ret)
{
	size_t n = 1, cap = 16;
	struct cp *cps = calloc(cap, sizeof(*cps));
	uint8_t *out = malloc(16384);
	uint64_t totin = 0, totout = 0, last = 0;
	z_stream z = { 0 };
	bool in_member = true;

	assert_non_null(cps);
	assert_non_null(out);
	assert_int_equal(inflateInit2(&z, 31), Z_OK);
	cps[0].kind = LP_INDEX_CP_MEMBER;
	while (totin < len) {
		uInt in0, out0;
		int zr;
		bool add = false;
		uint8_t kind = LP_INDEX_CP_DEFLATE;

		if (!in_member) {
			assert_int_equal(inflateReset(&z), Z_OK);
			in_member = true;
			if (totout - last >= span && totout > last) {
				add = true;
				kind = LP_INDEX_CP_MEMBER;
			}
		} else {
			z.next_in = (uint8_t *)gz + totin;
			z.avail_in =
				(uInt)(len - totin < 4096 ? len - totin : 4096);
			z.next_out = out;
			z.avail_out = 16384;
			in0 = z.avail_in;
			out0 = z.avail_out;
			zr = inflate(&z, Z_BLOCK);
			assert_true(zr == Z_OK || zr == Z_STREAM_END);
			totin += in0 - z.avail_in;
			totout += out0 - z.avail_out;
			if (zr == Z_STREAM_END)
				in_member = false;
			else if ((z.data_type & 128) && !(z.data_type & 64) &&
				 totout - last >= span)
				add = true;
		}
		if (!add)
			continue;
		if (n == cap) {
			struct cp *q = realloc(cps, cap * 2 * sizeof(*cps));

			assert_non_null(q);
			cps = q;
			cap *= 2;
		}
		memset(&cps[n], 0, sizeof(cps[n]));
		if (kind == LP_INDEX_CP_DEFLATE) {
			assert_int_equal(
				inflateGetDictionary(&z, cps[n].window,
						     &cps[n].window_len),
				Z_OK);
			if (!cps[n].window_len)
				continue;
			cps[n].bits = (uint8_t)(z.data_type & 7);
		}
		cps[n].in = totin;
		cps[n].out = totout;
		cps[n].kind = kind;
		last = totout;
		n++;
	}
	inflateEnd(&z);
	free(out);
	*ret = cps;
	return n;
}

static int build(const uint8_t *gz, size_t len, uint64_t span,
		 const struct lp_digest *verified, uint8_t **ret_idx,
		 size_t *ret_len, struct lp_err *err)
{
	struct lp_buf out;
	int fd = memfd_create("layer", 0), r;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, gz, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	r = lp_index_build(fd, span, GRAIN, verified, &out, NULL, err);
	close(fd);
	if (r == 0)
		*ret_idx = lp_buf_steal(&out, ret_len);
	lp_buf_release(&out);
	return r;
}

/* span @i's grain digests against the sha256 of @gz's bytes, the span
 * being @gz[@start, @end) */
static void check_grains(const char *what, const struct lp_index *ix, size_t i,
			 const uint8_t *gz, uint64_t start, uint64_t end)
{
	size_t g, n = lp_index_nr_grains(ix, i);
	struct lp_digest d;

	if (n != (end - start + GRAIN - 1) / GRAIN)
		fail_msg("%s: span #%zu of %llu bytes has %zu grains", what, i,
			 (unsigned long long)(end - start), n);
	for (g = 0; g < n; g++) {
		uint64_t a = start + g * GRAIN;
		uint64_t b = a + GRAIN < end ? a + GRAIN : end;

		lp_sha256(gz + a, (size_t)(b - a), &d);
		if (memcmp(d.b, lp_index_grain(ix, i, g)->b, LP_SHA256_LEN))
			fail_msg("%s: span #%zu grain #%zu (bytes %llu..%llu) "
				 "digest wrong",
				 what, i, g, (unsigned long long)a,
				 (unsigned long long)b);
	}
	assert_null(lp_index_grain(ix, i, n));
}

/*
 * @gz's index at @span against the oracle, checkpoint by checkpoint.
 * Returns how many checkpoints fell exactly @d bytes after the one before
 * for d = 0, 1 (indexes of @ret_exact), how many have a bit offset.
 */
static void check_layer(const char *what, const uint8_t *gz, size_t len,
			uint64_t span, size_t ret_exact[2], size_t *ret_bits)
{
	struct lp_err err = { 0 };
	struct lp_index *ix = NULL;
	struct cp *want = NULL;
	uint8_t *idx = NULL, *window = malloc(LP_INDEX_WINDOW);
	size_t idx_len = 0, n, i, windows_len = 0, grains = 0;
	const uint8_t *windows;
	int r;

	assert_non_null(window);
	r = build(gz, len, span, NULL, &idx, &idx_len, &err);
	if (r < 0)
		fail_msg("%s: build: %s", what, lp_err_str(&err, r));
	assert_int_equal(lp_index_parse(idx, idx_len, &ix, &err), 0);
	n = oracle(gz, len, span, &want);
	if (lp_index_nr_checkpoints(ix) != n)
		fail_msg("%s: %zu checkpoints, the oracle finds %zu", what,
			 lp_index_nr_checkpoints(ix), n);
	/* the windows are the section before the grain digests, the last */
	for (i = 0; i < n; i++)
		grains += lp_index_nr_grains(ix, i);
	assert_int_equal(lp_index_grain_size(ix), GRAIN);
	assert_int_equal(lp_get_le32(idx + 12), LP_INDEX_FLAG_GRAINS);
	assert_int_equal(lp_get_le32(idx + 92), grains);
	for (i = 0; i < n; i++) {
		const struct lp_index_checkpoint *c =
			lp_index_checkpoint(ix, i);

		if (c->window_len &&
		    c->window_off + c->window_len > windows_len)
			windows_len = c->window_off + c->window_len;
	}
	windows = idx + idx_len - grains * LP_SHA256_LEN - windows_len;
	for (i = 0; i < n; i++) {
		const struct lp_index_checkpoint *c =
			lp_index_checkpoint(ix, i);
		uint64_t start = c->in - (c->bits ? 1 : 0);
		uint64_t end =
			i + 1 < n ? lp_index_checkpoint(ix, i + 1)->in : len;
		struct lp_digest d;
		uLongf wlen = LP_INDEX_WINDOW;

		if (c->in != want[i].in || c->out != want[i].out ||
		    c->bits != want[i].bits || c->kind != want[i].kind ||
		    c->window_raw != want[i].window_len)
			fail_msg("%s: checkpoint #%zu at %llu/%llu bits %u "
				 "kind %u window %u, the oracle's at "
				 "%llu/%llu bits %u kind %u window %u",
				 what, i, (unsigned long long)c->in,
				 (unsigned long long)c->out, c->bits, c->kind,
				 c->window_raw, (unsigned long long)want[i].in,
				 (unsigned long long)want[i].out, want[i].bits,
				 want[i].kind, want[i].window_len);
		if (c->window_raw) {
			assert_int_equal(uncompress(window, &wlen,
						    windows + c->window_off,
						    c->window_len),
					 Z_OK);
			assert_int_equal(wlen, c->window_raw);
			assert_memory_equal(window, want[i].window, wlen);
		}
		lp_sha256(gz + start, (size_t)(end - start), &d);
		assert_memory_equal(d.b, c->span.b, LP_SHA256_LEN);
		check_grains(what, ix, i, gz, start, end);
		if (i > 0 && ret_exact) {
			uint64_t past =
				c->out - lp_index_checkpoint(ix, i - 1)->out;

			if (past == span)
				ret_exact[0]++;
			else if (past == span + 1)
				ret_exact[1]++;
		}
		if (c->bits && ret_bits)
			(*ret_bits)++;
	}
	lp_index_free(ix);
	free(idx);
	free(want);
	free(window);
}

static void test_block_sizes(void **state)
{
	size_t tar_len, len;
	uint8_t *tar = load_tar(&tar_len), *gz;

	(void)state;
	/* blocks of a few hundred bytes: many boundaries in a span */
	gz = make_plain(tar, tar_len, 1, 1, &len);
	check_layer("small blocks", gz, len, SPAN, NULL, NULL);
	check_layer("small blocks, 1 MiB spans", gz, len, 1024 * 1024, NULL,
		    NULL);
	free(gz);
	/* deflate's largest blocks (memLevel 9): few per span, or none */
	gz = make_plain(tar, tar_len, 9, 9, &len);
	check_layer("large blocks", gz, len, SPAN, NULL, NULL);
	check_layer("large blocks, 3 MiB spans", gz, len, 3 * 1024 * 1024, NULL,
		    NULL);
	free(gz);
	/* stored blocks: byte-aligned boundaries */
	gz = make_plain(tar, tar_len, 0, 8, &len);
	check_layer("stored blocks", gz, len, SPAN, NULL, NULL);
	free(gz);
	free(tar);
}

static void test_due_edges(void **state)
{
	size_t tar_len, len, exact[2] = { 0 }, bits = 0;
	uint8_t *tar = load_tar(&tar_len), *gz;

	(void)state;
	gz = make_forced(tar, tar_len, SPAN, &len);
	check_layer("forced blocks", gz, len, SPAN, exact, &bits);
	/* the edges were there: a checkpoint exactly span_size after the
	 * one before (a boundary at T), one byte later (T - 1 not due), and
	 * boundaries inside a byte */
	assert_true(exact[0] >= 10);
	assert_true(exact[1] >= 10);
	assert_true(bits >= 10);
	free(gz);
	gz = make_forced(tar, tar_len, 3 * SPAN + 5, &len);
	check_layer("forced blocks, odd spacing", gz, len, 3 * SPAN + 5, exact,
		    &bits);
	free(gz);
	free(tar);
}

static void test_member_edges(void **state)
{
	static const size_t steps[] = { SPAN - 1, SPAN, SPAN + 1 };
	size_t tar_len, len, k;
	uint8_t *tar = load_tar(&tar_len), *gz;
	char what[64];

	(void)state;
	for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		gz = make_members(tar, tar_len, steps[k], &len);
		snprintf(what, sizeof(what), "members of %zu bytes", steps[k]);
		check_layer(what, gz, len, SPAN, NULL, NULL);
		free(gz);
	}
	free(tar);
}

/* build @gz and expect -EINVAL with @msg in the error */
static void expect_refused(const uint8_t *gz, size_t len, const char *msg)
{
	struct lp_err err = { 0 };
	uint8_t *idx = NULL;
	size_t idx_len;
	int r;

	r = build(gz, len, SPAN, NULL, &idx, &idx_len, &err);
	if (r != -EINVAL || !strstr(err.msg, msg))
		fail_msg("expected -EINVAL \"%s\", got %d: %s", msg, r,
			 err.msg);
}

static void test_trailer_checks(void **state)
{
	size_t tar_len, len, m1, m2, idx_len;
	uint8_t *tar = load_tar(&tar_len), *gz, *two, *idx = NULL;
	struct lp_digest any = { { 0 } };
	struct lp_err err = { 0 };
	struct gz g = { 0 };
	gz_header h = { 0 };

	(void)state;
	gz = make_plain(tar, tar_len, 6, 8, &len);
	gz[len - 8] ^= 1; /* the CRC32 */
	expect_refused(gz, len, "incorrect data check");
	/* a verified digest: the CRCs are checked all the same (they check
	 * the decoder too) */
	assert_int_equal(build(gz, len, SPAN, &any, &idx, &idx_len, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "incorrect data check"));
	gz[len - 8] ^= 1;
	gz[len - 2] ^= 1; /* ISIZE */
	expect_refused(gz, len, "incorrect length check");
	gz[len - 2] ^= 1;
	/* the first of two members lies: its own trailer is checked */
	two = make_members(tar, tar_len, tar_len / 2 + 1, &m2);
	m1 = 0;
	{
		/* the first member's end: its trailer's ISIZE says so */
		uint8_t *sink = malloc(tar_len);

		assert_non_null(sink);
		gunzip_first(two, m2, sink, tar_len, &m1);
		free(sink);
	}
	assert_true(m1 > 8 && m1 < m2);
	two[m1 - 5] ^= 0x40; /* its CRC32 */
	expect_refused(two, m2, "incorrect data check");
	free(two);
	/* a header CRC16 (FHCRC): zlib checks it */
	free(gz);
	gz_begin(&g, 6, 8);
	h.hcrc = 1;
	assert_int_equal(deflateSetHeader(&g.z, &h), Z_OK);
	gz_feed(&g, tar, tar_len, Z_FINISH);
	gz = g.buf;
	len = g.len;
	assert_true(gz[3] & 2);
	assert_int_equal(build(gz, len, SPAN, NULL, &idx, &idx_len, &err), 0);
	free(idx);
	gz[10] ^= 1;
	expect_refused(gz, len, "header crc mismatch");
	free(gz);
	free(tar);
}

/*
 * The member ends of @gz (each member's inflate(Z_FINISH)): fills @ends,
 * returns their count.
 */
static size_t member_ends(const uint8_t *gz, size_t len, size_t *ends,
			  size_t max, size_t out_cap)
{
	uint8_t *sink = malloc(out_cap);
	size_t pos = 0, n = 0;

	assert_non_null(sink);
	while (pos < len) {
		z_stream z = { 0 };

		assert_true(n < max);
		assert_int_equal(inflateInit2(&z, 31), Z_OK);
		z.next_in = (uint8_t *)gz + pos;
		z.avail_in = (uInt)(len - pos);
		z.next_out = sink;
		z.avail_out = (uInt)out_cap;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		pos = len - z.avail_in;
		ends[n++] = pos;
		inflateEnd(&z);
	}
	free(sink);
	return n;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * build() with @gz coming through a SOCK_SEQPACKET socket, written by a
 * child in pieces that end at each of the @nr_cuts offsets in @cuts (and
 * at most MAX_PIECE long): every read() the builder makes returns one
 * piece, exactly as written, so a member's header and trailer reach it in
 * the pieces chosen (a pipe's reads would depend on timing).
 */
static int build_split(const uint8_t *gz, size_t len, size_t *cuts,
		       size_t nr_cuts, uint8_t **ret_idx, size_t *ret_len,
		       struct lp_err *err)
{
	struct lp_buf out;
	int sv[2], r, status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	qsort(cuts, nr_cuts, sizeof(*cuts), cmp_size);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		size_t p = 0, k = 0;

		close(sv[0]);
		while (p < len) {
			size_t end = p + MAX_PIECE < len ? p + MAX_PIECE : len;

			while (k < nr_cuts && cuts[k] <= p)
				k++;
			if (k < nr_cuts && cuts[k] < end)
				end = cuts[k];
			if (send(sv[1], gz + p, end - p, MSG_NOSIGNAL) !=
			    (ssize_t)(end - p))
				_exit(1);
			p = end;
		}
		_exit(0);
	}
	close(sv[1]);
	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	r = lp_index_build(sv[0], SPAN, GRAIN, NULL, &out, NULL, err);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* the writer wrote everything unless the build stopped early */
	if (r == 0)
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (r == 0)
		*ret_idx = lp_buf_steal(&out, ret_len);
	lp_buf_release(&out);
	return r;
}

/*
 * Members whose headers and trailers reach the builder in pieces of a few
 * bytes (the trailer's last bytes kept from several read()s), and their
 * deflate data in pieces that end at the decoder's stops and in one-byte
 * pieces (the decoder asks for more input between symbols): the index
 * is the one built from a regular file, and a wrong CRC32 split the same
 * way is refused.
 */
static void test_split_reads(void **state)
{
	static const size_t in_trailer[] = { 7, 6, 3, 1 };
	size_t tar_len, len, nr, nr_cuts = 0, k, j, ref_len = 0, idx_len = 0;
	size_t *ends = calloc(MAX_CUTS, sizeof(*ends));
	size_t *cuts = calloc(MAX_CUTS, sizeof(*cuts));
	uint8_t *tar = load_tar(&tar_len), *gz, *ref = NULL, *idx = NULL;
	struct lp_err err = { 0 };
	int r;

	(void)state;
	assert_non_null(ends);
	assert_non_null(cuts);
	gz = make_members(tar, tar_len, SPAN + 1, &len);
	nr = member_ends(gz, len, ends, MAX_CUTS / 8, tar_len);
	assert_true(nr >= 3);
	for (k = 0; k < nr; k++) {
		size_t start = k ? ends[k - 1] : 0;

		/* the header (10 bytes) in three pieces */
		cuts[nr_cuts++] = start + 1;
		cuts[nr_cuts++] = start + 5;
		/* the trailer's 8 bytes in five pieces */
		for (j = 0; j < sizeof(in_trailer) / sizeof(in_trailer[0]); j++)
			cuts[nr_cuts++] = ends[k] - in_trailer[j];
	}
	assert_int_equal(build(gz, len, SPAN, NULL, &ref, &ref_len, &err), 0);
	{
		/* inside the deflate data: reads ending at, one byte before
		 * and one after each checkpoint (where the decoder stops),
		 * 200 pseudo-random ends, and 600 one-byte reads */
		struct lp_index *ix = NULL;
		uint32_t x = 12345;
		size_t i, mid = ends[0] / 2;

		assert_int_equal(lp_index_parse(ref, ref_len, &ix, &err), 0);
		for (i = 1; i < lp_index_nr_checkpoints(ix); i++) {
			uint64_t in = lp_index_checkpoint(ix, i)->in;

			cuts[nr_cuts++] = (size_t)in - 1;
			cuts[nr_cuts++] = (size_t)in;
			if (in + 1 < len)
				cuts[nr_cuts++] = (size_t)in + 1;
		}
		assert_true(lp_index_nr_checkpoints(ix) > 3);
		lp_index_free(ix);
		for (i = 0; i < 200; i++) {
			x = x * 1103515245u + 12345u;
			cuts[nr_cuts++] = 1 + (x >> 8) % (len - 1);
		}
		for (i = 0; i < 600; i++)
			cuts[nr_cuts++] = mid + i;
		assert_true(nr_cuts <= MAX_CUTS);
	}
	r = build_split(gz, len, cuts, nr_cuts, &idx, &idx_len, &err);
	if (r < 0)
		fail_msg("split reads: build: %s", lp_err_str(&err, r));
	assert_int_equal(idx_len, ref_len);
	assert_memory_equal(idx, ref, ref_len);
	free(idx);
	idx = NULL;
	/* a middle member's CRC32, its byte in a piece of its own */
	gz[ends[nr / 2] - 7] ^= 0x10;
	r = build_split(gz, len, cuts, nr_cuts, &idx, &idx_len, &err);
	if (r != -EINVAL || !strstr(err.msg, "incorrect data check"))
		fail_msg("split reads, bad CRC32: expected -EINVAL "
			 "\"incorrect data check\", got %d: %s",
			 r, err.msg);
	free(ref);
	free(gz);
	free(tar);
	free(cuts);
	free(ends);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_sizes),
		cmocka_unit_test(test_due_edges),
		cmocka_unit_test(test_member_edges),
		cmocka_unit_test(test_trailer_checks),
		cmocka_unit_test(test_split_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
