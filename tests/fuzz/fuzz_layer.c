// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for lp_layer_open() and lp_layer_read_chunk(): the input is a
 * whole blob. When it opens, every chunk (up to a bound) is read, decoded and
 * verified; failures must come with a message. Every regular file (up to a
 * bound) is read whole with lp_layer_read_file(): on success the bytes
 * handed over add up to the file's size. lp_layer_open_tail() with a
 * tail of the blob's own last bytes (its length taken from the input) must
 * come to the same result and the same TOC digest.
 */
#include <stdlib.h>

#include "lp_layer.h"

#define MAX_CHUNKS 64
#define MAX_FILES 16

/* counts what the whole-file reader hands over */
static int count_sink(void *opaque, const void *data, size_t len)
{
	(void)data;
	*(uint64_t *)opaque += len;
	return 0;
}

/* every regular file, read whole: a failure has a message, a success all
 * of the file's bytes */
static void read_files(struct lp_layer *l, struct lp_chunk_decoder *dec)
{
	const struct lp_toc *toc = lp_layer_toc(l);
	uint32_t i, files = 0;

	for (i = 0; i < lp_toc_nr_entries(toc) && files < MAX_FILES; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		struct lp_err err = { 0 };
		uint64_t got = 0;
		int r;

		if (e->type != LP_TOC_REG || lp_toc_entry_ino(toc, e) != i)
			continue;
		files++;
		r = lp_layer_read_file(l, dec, i, count_sink, &got, NULL, &err);
		if ((r < 0 && !err.msg[0]) || (r == 0 && got != e->size))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the same outcome from a tail of @size's last bytes as from the blob */
static void check_tail(struct lp_blob *blob, const uint8_t *data, size_t size,
		       int want_r, const struct lp_layer *want)
{
	struct lp_layer *l = NULL;
	struct lp_err err = { 0 };
	size_t t;
	int r;

	if (!size)
		return;
	t = ((size_t)data[0] << 8 | data[size - 1]) % (size + 1);
	r = lp_layer_open_tail(blob, data + size - t, t, NULL, &l, &err);
	if (r != want_r || (r < 0 && !err.msg[0]) ||
	    (r == 0 && !lp_digest_equal(lp_layer_toc_digest(l),
					lp_layer_toc_digest(want))))
		abort();
	lp_layer_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	struct lp_err err = { 0 };
	const struct lp_toc *toc;
	uint32_t i;
	int r;

	if (lp_blob_new_mem(data, size, "fuzz", &blob) < 0)
		return 0;
	r = lp_layer_open(blob, NULL, &l, &err);
	check_tail(blob, data, size, r, l);
	if (r < 0) {
		if (!err.msg[0])
			abort();
		goto out;
	}
	toc = lp_layer_toc(l);
	if (lp_chunk_decoder_new(lp_format_compression(lp_layer_format(l)),
				 &dec) < 0)
		goto out;
	for (i = 0; i < lp_toc_nr_chunks(toc) && i < MAX_CHUNKS; i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(toc, i);
		uint8_t *dst = malloc(c.chunk_size);

		if (!dst)
			break;
		lp_err_clear(&err);
		if (lp_layer_read_chunk(l, dec, i, dst, &err) < 0 &&
		    !err.msg[0])
			abort();
		free(dst);
	}
	read_files(l, dec);
out:
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
	lp_blob_unref(blob);
	return 0;
}
