// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for fs_disk_record_parse() (fs/disk_cache.c): the input is a
 * pack file of the chunk cache's disk tier, walked record by record the way
 * the scan at open walks it. Every record accepted must lie inside the pack
 * with a length within LP_CHUNK_MAX_SIZE, and the walk must move forward;
 * a header parsed from a shorter buffer or with less room must be refused.
 * A header written by fs_disk_record_header() for the first record's
 * digest and length must parse back to them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_disk_record rec, back;
	uint8_t hdr[FS_DISK_RECORD_HDR];
	uint64_t off = 0;
	int r;

	while (off < size) {
		r = fs_disk_record_parse(data + off, size - off, size - off,
					 &rec);
		if (r < 0)
			break;
		if (rec.len > LP_CHUNK_MAX_SIZE ||
		    rec.len > size - off - FS_DISK_RECORD_HDR)
			abort();
		/* the same header with a byte less of room, or of header */
		if (fs_disk_record_parse(data + off, size - off,
					 FS_DISK_RECORD_HDR + rec.len - 1,
					 &back) != -ENODATA ||
		    fs_disk_record_parse(data + off, FS_DISK_RECORD_HDR - 1,
					 size - off, &back) != -ENODATA)
			abort();
		fs_disk_record_header(&rec.dg, rec.len, hdr);
		if (fs_disk_record_parse(hdr, sizeof(hdr),
					 FS_DISK_RECORD_HDR + rec.len,
					 &back) != 0 ||
		    back.len != rec.len || !lp_digest_equal(&back.dg, &rec.dg))
			abort();
		off += FS_DISK_RECORD_HDR + rec.len;
	}
	return 0;
}
