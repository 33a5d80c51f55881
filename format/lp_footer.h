/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Layer footers: the 51-byte eStargz footer (an empty gzip member whose extra
 * field "SG" holds "%016x" of the TOC offset + "STARGZ"), the 47-byte legacy
 * stargz footer, and the zstd:chunked footer (a skippable frame holding LE64
 * TOC offset, compressed length, uncompressed length, type 1, "GnUlInUx").
 * Pure functions on byte buffers: no I/O.
 */
#ifndef LP_FOOTER_H
#define LP_FOOTER_H

#include "lp_err.h"
#include "lp_format.h"

#define LP_FOOTER_ESTARGZ_SIZE 51
#define LP_FOOTER_LEGACY_SIZE 47
#define LP_FOOTER_ZSTD_SIZE 48 /* 8-byte skippable frame header + 40 */
#define LP_FOOTER_MAX_SIZE 51

#define LP_ZSTD_SKIPPABLE_MAGIC 0x184D2A50u
#define LP_ZSTD_CHUNKED_MAGIC "GnUlInUx"
#define LP_ZSTD_CHUNKED_MANIFEST_TYPE 1

struct lp_footer {
	enum lp_layer_format format;
	size_t footer_size; /* bytes of footer at the end of the blob */
	uint64_t toc_offset; /* estargz: offset of the TOC gzip member;
				   zstd: offset of the compressed TOC bytes */
	uint64_t toc_size; /* bytes from toc_offset that hold the TOC:
				   estargz: blob_size - footer - toc_offset;
				   zstd: the compressed length */
	uint64_t toc_uncompressed_size; /* zstd only; 0 otherwise */
};

/*
 * lp_footer_parse() - find the footer in the last @tail_len bytes of a blob of
 * @blob_size bytes (@tail holds those bytes; pass at least
 * LP_FOOTER_MAX_SIZE when the blob is that large). Tries eStargz (51), legacy
 * stargz (47) and zstd:chunked (48). Checks that the TOC lies inside the blob
 * before the footer and within the LP_TOC_MAX_* bounds.
 * Returns 0, -EINVAL when no footer is recognised, -EFBIG over a bound.
 */
int lp_footer_parse(const uint8_t *tail, size_t tail_len, uint64_t blob_size,
		    struct lp_footer *out, struct lp_err *err);

/* lp_footer_write_estargz() - the 51-byte eStargz footer for @toc_offset. */
void lp_footer_write_estargz(uint64_t toc_offset,
			     uint8_t out[LP_FOOTER_ESTARGZ_SIZE]);

/*
 * lp_footer_write_zstd() - the 48-byte zstd:chunked footer frame. @toc_offset
 * is the offset of the compressed TOC bytes (after their skippable header).
 */
void lp_footer_write_zstd(uint64_t toc_offset, uint64_t toc_compressed_size,
			  uint64_t toc_uncompressed_size,
			  uint8_t out[LP_FOOTER_ZSTD_SIZE]);

#endif /* LP_FOOTER_H */
