// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for the gzip index (format/lp_index.h, converter/
 * lp_indexer.h): the input is an index, or (when it does not start with the
 * magic) LE32 n, n bytes of index, then the layer blob it describes, so
 * that a corpus of real (index, layer) pairs drives the inflate, verify and
 * header-check paths with spans whose digests match. lp_index_parse() must refuse it or
 * return one whose every promise holds (checkpoints increasing and inside
 * the blob, files in order, inside the layer, findable by path, with grain
 * digests exactly one per grain of each span). A parsed
 * index is then read through against a blob of its size made of a fixed
 * byte pattern (when small): the stream must refuse the spans (their
 * digests cannot match) or serve bytes without crashing; and the input's
 * own bytes are offered to the tar header check as the first entry's
 * header. Then the index seen as a TOC (lp_index_toc()): every chunk of it
 * must name a span by its offset and lie inside that span's output, and a
 * few are decoded from the same blob bytes (lp_index_span_decode()).
 * lp_index_read() at a few entries (the window rule's two decodes, its
 * steps back) and the proving pass (lp_index_prove(): the whole blob, the
 * tar between the table's entries parsed) must refuse or finish.
 *
 * Never a wrong byte: the blob is inflated whole by zlib (members in turn,
 * up to the first error), and every read that succeeds from a proven
 * start (lp_index_read() proven-only, lp_index_read_file(), a span decode
 * from a proven checkpoint) must equal zlib's bytes where zlib has them;
 * a difference aborts. Reads under the window rule from an unproven
 * checkpoint are not compared: they believe its position (a known gap,
 * docs/format.md).
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lp_index.h"
#include "lp_indexer.h"
#include "lp_toc.h"

#define FUZZ_BLOB_MAX (1024 * 1024)
#define FUZZ_FILES_MAX 64
#define FUZZ_TRUTH_MAX (16 * 1024 * 1024) /* zlib's output kept */

/* zlib's inflation of blob @b: *ret_len bytes, up to its first error */
static uint8_t *truth_of(const uint8_t *b, size_t len, size_t *ret_len)
{
	uint8_t *out = malloc(FUZZ_TRUTH_MAX);
	z_stream z;
	int zr = Z_OK;

	*ret_len = 0;
	if (!out)
		return NULL;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 31) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (uint8_t *)b;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = FUZZ_TRUTH_MAX;
	while (z.avail_out) {
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END && z.avail_in && *z.next_in == 0x1f) {
			inflateReset(&z); /* the next member */
			continue;
		}
		if (zr != Z_OK)
			break;
	}
	*ret_len = FUZZ_TRUTH_MAX - z.avail_out;
	inflateEnd(&z);
	return out;
}

/* @got (@len bytes at uncompressed @off) against zlib's; abort on a lie */
static void same_as_truth(const uint8_t *truth, size_t truth_len, uint64_t off,
			  const uint8_t *got, size_t len)
{
	size_t n;

	if (!truth || off >= truth_len)
		return;
	n = (size_t)lp_min_u64(len, truth_len - off);
	if (memcmp(truth + off, got, n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* span @i (@len bytes) has one grain digest per grain, or none at all */
static void check_grains(const struct lp_index *ix, size_t i, uint64_t len)
{
	uint32_t gs = lp_index_grain_size(ix);
	size_t n = lp_index_nr_grains(ix, i), g;

	if (gs ? !lp_index_grain_size_ok(gs) || n != (len + gs - 1) / gs : n)
		abort();
	for (g = 0; g < n; g++)
		if (!lp_index_grain(ix, i, g))
			abort();
	if (lp_index_grain(ix, i, n) ||
	    lp_index_nr_grains(ix, lp_index_nr_checkpoints(ix)))
		abort();
}

static void check_index(const struct lp_index *ix)
{
	uint64_t prev_in = 0, prev_out = 0, prev_end = 0;
	size_t i;

	for (i = 0; i < lp_index_nr_checkpoints(ix); i++) {
		const struct lp_index_checkpoint *c =
			lp_index_checkpoint(ix, i);
		uint64_t s, e;

		if (c->in >= lp_index_blob_size(ix) ||
		    c->out > lp_index_uncompressed_size(ix) ||
		    (i && (c->in <= prev_in || c->out <= prev_out)))
			abort();
		lp_index_span_range(ix, i, &s, &e);
		if (s > e || e > lp_index_blob_size(ix) ||
		    e - s > LP_INDEX_MAX_SPAN_IN)
			abort();
		check_grains(ix, i, e - s);
		prev_in = c->in;
		prev_out = c->out;
	}
	for (i = 0; i < lp_index_nr_files(ix); i++) {
		const struct lp_index_file *f = lp_index_file(ix, i);
		int j;

		if (f->hdr_off < prev_end || f->data_off <= f->hdr_off ||
		    f->data_off > lp_index_uncompressed_size(ix) ||
		    f->size > lp_index_uncompressed_size(ix) - f->data_off ||
		    !f->path[0] || strlen(f->path) > LP_TOC_MAX_PATH)
			abort();
		prev_end = f->data_off + f->size;
		j = lp_index_lookup(ix, f->path);
		if (j < 0 ||
		    strcmp(lp_index_file(ix, (size_t)j)->path, f->path))
			abort();
	}
}

static void through_toc(const struct lp_index *ix, const uint8_t *b,
			const uint8_t *truth, size_t truth_len)
{
	struct lp_toc *toc = NULL;
	uint8_t buf[4096];
	uint32_t i;

	if (lp_index_toc(ix, &toc, NULL) < 0)
		return;
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(toc, i);
		int sp = lp_index_span_at(ix, c.offset);
		uint64_t s, e, out0, out1;

		if (sp < 0)
			abort();
		out0 = lp_index_checkpoint(ix, (size_t)sp)->out;
		out1 = (size_t)sp + 1 < lp_index_nr_checkpoints(ix) ?
			       lp_index_checkpoint(ix, (size_t)sp + 1)->out :
			       lp_index_uncompressed_size(ix);
		if ((uint64_t)c.inner_offset + c.chunk_size > out1 - out0)
			abort();
		lp_index_span_range(ix, (size_t)sp, &s, &e);
		if (b && i < FUZZ_FILES_MAX) {
			size_t len = c.chunk_size < sizeof(buf) ? c.chunk_size :
								  sizeof(buf);
			bool proven =
				lp_index_checkpoint_verified(ix, (size_t)sp);

			if (lp_index_span_decode(
				    ix, (size_t)sp, b + s, (size_t)(e - s),
				    c.inner_offset, buf, len, NULL) == 0 &&
			    proven)
				same_as_truth(truth, truth_len,
					      out0 + c.inner_offset, buf, len);
		}
	}
	lp_toc_free(toc);
}

static void read_through(const struct lp_index *ix, const uint8_t *data,
			 size_t size, const uint8_t *layer, size_t layer_len)
{
	struct lp_blob *blob = NULL;
	uint8_t *b = NULL, *truth = NULL, buf[4096];
	size_t i, n = lp_index_nr_files(ix), truth_len = 0;

	if (lp_index_blob_size(ix) > FUZZ_BLOB_MAX) {
		through_toc(ix, NULL, NULL, 0);
		return;
	}
	b = malloc((size_t)lp_index_blob_size(ix));
	if (!b)
		return;
	for (i = 0; i < lp_index_blob_size(ix); i++)
		b[i] = i < layer_len ? layer[i] : (uint8_t)(i * 31 + 7);
	if (layer_len)
		truth = truth_of(b, (size_t)lp_index_blob_size(ix), &truth_len);
	if (lp_blob_new_mem(b, (size_t)lp_index_blob_size(ix), "fuzz", &blob) ==
	    0) {
		for (i = 0; i < n && i < FUZZ_FILES_MAX; i++) {
			const struct lp_index_file *f = lp_index_file(ix, i);
			size_t len = f->size < sizeof(buf) ? (size_t)f->size :
							     sizeof(buf);

			if (f->type == '0' &&
			    lp_index_read_file(ix, blob, i, buf, len, 0, NULL,
					       NULL) == 0)
				same_as_truth(truth, truth_len, f->data_off,
					      buf, len);
		}
	}
	/* random access under the window rule (lp_index_read: two decodes,
	 * spans further back) at a few entries, then the proving pass, whose
	 * walk parses the tar between the file table's entries */
	for (i = 0; blob && i < n && i < 8; i++) {
		const struct lp_index_file *f = lp_index_file(ix, i);
		uint64_t len =
			lp_min_u64(sizeof(buf),
				   lp_index_uncompressed_size(ix) - f->hdr_off);

		if (lp_index_read(ix, blob, f->hdr_off, buf, (size_t)len, NULL,
				  0, i % 2, NULL, NULL) == 0 &&
		    i % 2)
			same_as_truth(truth, truth_len, f->hdr_off, buf,
				      (size_t)len);
	}
	if (blob)
		(void)lp_index_prove(ix, blob, lp_index_check_header, NULL,
				     NULL, NULL, NULL);
	if (n)
		(void)lp_index_check_header(
			ix, 0, data,
			(size_t)lp_min_u64(
				size, lp_index_file(ix, 0)->data_off -
					      lp_index_file(ix, 0)->hdr_off),
			NULL);
	through_toc(ix, b, truth, truth_len);
	lp_blob_unref(blob);
	free(truth);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_index *ix = NULL;
	const uint8_t *layer = NULL;
	size_t layer_len = 0;

	if (size >= 4 && memcmp(data, LP_INDEX_MAGIC, 4)) {
		size_t n = lp_get_le32(data);

		if (n > size - 4)
			return 0;
		layer = data + 4 + n;
		layer_len = size - 4 - n;
		data += 4;
		size = n;
	}
	if (lp_index_parse(data, size, &ix, NULL) < 0)
		return 0;
	check_index(ix);
	read_through(ix, data, size, layer, layer_len);
	lp_index_free(ix);
	return 0;
}
