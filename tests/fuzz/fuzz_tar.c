// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for the converter's input side: arbitrary bytes fed as a tar,
 * tar.gz or tar.zst stream to lp_convert_layer(). The input length picks the
 * mode (eStargz, zstd:chunked, or prioritised with spooling) so every path
 * is reached. Conversion must fail cleanly or produce a layer; a produced
 * layer is opened with the reader. The output is bounded (max_uncompressed)
 * because a tiny tar may claim a huge sparse file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lp_convert.h"
#include "lp_layer.h"

#define LP_FUZZ_MAX_OUTPUT (16 * LP_MIB)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const prio[] = { "./d/f", "d/sym", "/" };
	char dir[] = "/tmp/lp-fuzz-tar.XXXXXX", out[64];
	struct lp_convert_opts o;
	struct lp_convert_result res;
	struct lp_err err = { 0 };
	struct lp_blob *blob = NULL;
	struct lp_layer *layer = NULL;
	int fd;

	if (!mkdtemp(dir))
		return 0;
	snprintf(out, sizeof(out), "%s/out", dir);
	fd = memfd_create("fuzz-tar", 0);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size ||
	    lseek(fd, 0, SEEK_SET) != 0)
		goto out;
	lp_convert_opts_init(&o);
	o.threads = 1 + size % 2;
	o.chunk_size = 4096;
	o.max_uncompressed = LP_FUZZ_MAX_OUTPUT;
	switch (size % 3) {
	case 0:
		o.level = 1;
		break;
	case 1:
		o.format = LP_FMT_ZSTD_CHUNKED;
		o.level = 1;
		break;
	default:
		o.level = 1;
		o.prioritized = prio;
		o.nr_prioritized = 3;
	}
	if (lp_convert_layer(fd, out, &o, &res, &err) == 0) {
		if (res.size == 0 || access(out, F_OK) != 0)
			abort();
		if (lp_blob_open_file(out, &blob) == 0)
			lp_layer_open(blob, &res.toc_digest, &layer, NULL);
		lp_layer_free(layer);
		lp_blob_unref(blob);
		unlink(out);
	} else if (access(out, F_OK) == 0 || err.msg[0] == 0) {
		/* no output after an error, and always a reason */
		abort();
	}
out:
	if (fd >= 0)
		close(fd);
	rmdir(dir); /* fails, and so is caught by the fuzzer, if not empty */
	return 0;
}
