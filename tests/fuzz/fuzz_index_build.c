// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for the gzip index build (lp_index_build()): the input after
 * its first byte is the layer, read from a memfd; the first byte picks
 * grain digests on or off and whether the blob's digest counts as
 * verified. The build must fail cleanly or give an index that parses and
 * describes a blob of the input's size. fuzz_inflate covers the deflate
 * decoder alone; this covers what the builder adds around it: gzip
 * headers and trailers, several members, zero padding, the tar reader fed
 * from the decoder's buffer, checkpoints and digests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lp_index.h"
#include "lp_indexer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_digest verified = { { 0 } };
	struct lp_err err = { 0 };
	struct lp_index *ix = NULL;
	struct lp_index_build_result res;
	struct lp_buf out;
	uint32_t grain;
	int fd, r;

	if (size < 1)
		return 0;
	grain = data[0] & 1 ? LP_INDEX_GRAIN_MIN : 0;
	fd = memfd_create("fuzz-index-build", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1) ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return 0;
	}
	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	r = lp_index_build(fd, LP_INDEX_MIN_SPAN_SIZE, grain,
			   data[0] & 2 ? &verified : NULL, &out, &res, &err);
	close(fd);
	if (r == 0) {
		if (res.blob_size != size - 1)
			abort();
		if (lp_index_parse(out.data, out.len, &ix, &err) != 0)
			abort();
		lp_index_free(ix);
	} else if (!err.msg[0]) {
		abort(); /* an error says what */
	}
	lp_buf_release(&out);
	return 0;
}
