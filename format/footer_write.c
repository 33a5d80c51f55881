// SPDX-License-Identifier: Apache-2.0
/*
 * Footer writers: the 51-byte eStargz footer (an empty gzip member whose
 * extra field "SG" carries the TOC offset) and the 48-byte zstd:chunked
 * footer (a skippable frame holding the manifest position). Byte-for-byte
 * what the reference writer emits; the readers live in footer.c.
 */
#include <stdio.h>
#include <string.h>

#include "lp_common.h"
#include "lp_footer.h"

/* "%016x" + "STARGZ" */
#define LP_FOOTER_SG_PAYLOAD 22

void lp_footer_write_estargz(uint64_t toc_offset,
			     uint8_t out[LP_FOOTER_ESTARGZ_SIZE])
{
	/* gzip header: FEXTRA set, mtime 0, XFL 0, OS 255 (unknown) */
	static const uint8_t head[10] = { 0x1f, 0x8b, 0x08, 0x04, 0x00,
					  0x00, 0x00, 0x00, 0x00, 0xff };
	/* empty final stored block, then CRC32 = 0 and ISIZE = 0 */
	static const uint8_t tail[13] = { 0x01, 0x00, 0x00, 0xff, 0xff,
					  0x00, 0x00, 0x00, 0x00, 0x00,
					  0x00, 0x00, 0x00 };
	char sub[LP_FOOTER_SG_PAYLOAD + 1];
	uint8_t *p = out;

	snprintf(sub, sizeof(sub), "%016llxSTARGZ",
		 (unsigned long long)toc_offset);
	memcpy(p, head, sizeof(head));
	p += sizeof(head);
	/* XLEN: subfield header (4) + payload */
	*p++ = LP_FOOTER_SG_PAYLOAD + 4;
	*p++ = 0;
	*p++ = 'S';
	*p++ = 'G';
	*p++ = LP_FOOTER_SG_PAYLOAD;
	*p++ = 0;
	memcpy(p, sub, LP_FOOTER_SG_PAYLOAD);
	p += LP_FOOTER_SG_PAYLOAD;
	memcpy(p, tail, sizeof(tail));
}

void lp_footer_write_zstd(uint64_t toc_offset, uint64_t toc_compressed_size,
			  uint64_t toc_uncompressed_size,
			  uint8_t out[LP_FOOTER_ZSTD_SIZE])
{
	lp_put_le32(out, LP_ZSTD_SKIPPABLE_MAGIC);
	lp_put_le32(out + 4, LP_FOOTER_ZSTD_SIZE - 8);
	lp_put_le64(out + 8, toc_offset);
	lp_put_le64(out + 16, toc_compressed_size);
	lp_put_le64(out + 24, toc_uncompressed_size);
	lp_put_le64(out + 32, LP_ZSTD_CHUNKED_MANIFEST_TYPE);
	memcpy(out + 40, LP_ZSTD_CHUNKED_MAGIC, 8);
}
