// SPDX-License-Identifier: Apache-2.0
/*
 * Footer parsing: recognise the end of an eStargz (51 bytes), legacy stargz
 * (47 bytes) or zstd:chunked (48 bytes) blob and say where its TOC lies.
 * Every byte of the gzip footers is checked (they are fixed except for the
 * gzip MTIME/XFL/OS fields, which readers like Go's ignore), and the TOC range
 * is checked against the blob size and the LP_TOC_MAX_* bounds before anyone
 * reads it. The footer writers live in footer_write.c.
 */
#include <errno.h>
#include <string.h>

#include "lp_common.h"
#include "lp_footer.h"

#define GZ_HDR_LEN 10 /* ID1 ID2 CM FLG MTIME(4) XFL OS */
#define GZ_FLG_FEXTRA 0x04
#define SG_PAYLOAD_LEN 22 /* "%016x" + "STARGZ" */
#define SG_MAGIC "STARGZ"
#define ZSTD_FOOTER_PAYLOAD 40

/* empty final stored deflate block, then CRC32 = 0 and ISIZE = 0 */
static const uint8_t gz_empty_tail[13] = { 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0,
					   0,	 0,    0,    0,	   0,	 0 };

/* 16 hex digits + "STARGZ" -> TOC offset; false when malformed */
static bool parse_sg_payload(const uint8_t *p, uint64_t *ret_off)
{
	uint64_t v = 0;
	int i;

	if (memcmp(p + 16, SG_MAGIC, 6) != 0)
		return false;
	for (i = 0; i < 16; i++) {
		int d = lp_hex_digit(p[i]);

		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*ret_off = v;
	return true;
}

/*
 * The gzip footers: @p holds @size bytes (51 or 47). @sg says whether the
 * payload sits in an "SG" subfield (eStargz) or is the whole extra field.
 */
static bool parse_gzip_footer(const uint8_t *p, size_t size, bool sg,
			      uint64_t *ret_off)
{
	size_t xlen = sg ? 4 + SG_PAYLOAD_LEN : SG_PAYLOAD_LEN;
	const uint8_t *x = p + GZ_HDR_LEN + 2;

	if (size != GZ_HDR_LEN + 2 + xlen + sizeof(gz_empty_tail))
		return false;
	if (p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || p[3] != GZ_FLG_FEXTRA)
		return false;
	if (p[GZ_HDR_LEN] != (uint8_t)xlen || p[GZ_HDR_LEN + 1] != 0)
		return false;
	if (sg) {
		if (x[0] != 'S' || x[1] != 'G' || x[2] != SG_PAYLOAD_LEN ||
		    x[3] != 0)
			return false;
		x += 4;
	}
	if (memcmp(p + size - sizeof(gz_empty_tail), gz_empty_tail,
		   sizeof(gz_empty_tail)) != 0)
		return false;
	return parse_sg_payload(x, ret_off);
}

static int check_gzip_toc(uint64_t blob_size, struct lp_footer *f,
			  struct lp_err *err)
{
	uint64_t end = blob_size - f->footer_size;

	if (f->toc_offset >= end)
		return lp_err_set(err, -EINVAL,
				  "%s footer: TOC offset %llu is not before "
				  "the footer at %llu",
				  lp_format_name(f->format),
				  (unsigned long long)f->toc_offset,
				  (unsigned long long)end);
	f->toc_size = end - f->toc_offset;
	if (f->toc_size > LP_TOC_MAX_COMPRESSED)
		return lp_err_set(err, -EFBIG,
				  "%s footer: TOC of %llu bytes exceeds "
				  "LP_TOC_MAX_COMPRESSED",
				  lp_format_name(f->format),
				  (unsigned long long)f->toc_size);
	return 0;
}

static int parse_zstd_footer(const uint8_t *p, uint64_t blob_size,
			     struct lp_footer *f, struct lp_err *err)
{
	uint64_t end = blob_size - LP_FOOTER_ZSTD_SIZE, toc_end;
	const uint8_t *q = p + 8;

	f->format = LP_FMT_ZSTD_CHUNKED;
	f->footer_size = LP_FOOTER_ZSTD_SIZE;
	f->toc_offset = lp_get_le64(q);
	f->toc_size = lp_get_le64(q + 8);
	f->toc_uncompressed_size = lp_get_le64(q + 16);
	if (lp_get_le64(q + 24) != LP_ZSTD_CHUNKED_MANIFEST_TYPE)
		return lp_err_set(err, -EINVAL,
				  "zstd:chunked footer: manifest type %llu, "
				  "want %d",
				  (unsigned long long)lp_get_le64(q + 24),
				  LP_ZSTD_CHUNKED_MANIFEST_TYPE);
	if (f->toc_size > LP_TOC_MAX_COMPRESSED)
		return lp_err_set(err, -EFBIG,
				  "zstd:chunked footer: compressed TOC of %llu "
				  "bytes exceeds LP_TOC_MAX_COMPRESSED",
				  (unsigned long long)f->toc_size);
	if (f->toc_uncompressed_size > LP_TOC_MAX_JSON)
		return lp_err_set(err, -EFBIG,
				  "zstd:chunked footer: TOC of %llu bytes "
				  "exceeds LP_TOC_MAX_JSON",
				  (unsigned long long)f->toc_uncompressed_size);
	/* the TOC sits in a skippable frame: 8 header bytes precede it */
	if (f->toc_offset < 8 || f->toc_size == 0 ||
	    f->toc_uncompressed_size == 0 ||
	    lp_add_overflow_u64(f->toc_offset, f->toc_size, &toc_end) ||
	    toc_end > end)
		return lp_err_set(err, -EINVAL,
				  "zstd:chunked footer: TOC at %llu+%llu does "
				  "not fit before the footer at %llu",
				  (unsigned long long)f->toc_offset,
				  (unsigned long long)f->toc_size,
				  (unsigned long long)end);
	return 0;
}

int lp_footer_parse(const uint8_t *tail, size_t tail_len, uint64_t blob_size,
		    struct lp_footer *out, struct lp_err *err)
{
	struct lp_footer f = { 0 };
	uint64_t off;
	int r = -EINVAL;

	if (tail_len > blob_size) {
		r = lp_err_set(err, -EINVAL,
			       "footer: %zu tail bytes of a "
			       "%llu-byte blob",
			       tail_len, (unsigned long long)blob_size);
		goto out;
	}
	if (tail_len >= LP_FOOTER_ESTARGZ_SIZE &&
	    parse_gzip_footer(tail + tail_len - LP_FOOTER_ESTARGZ_SIZE,
			      LP_FOOTER_ESTARGZ_SIZE, true, &off)) {
		f.format = LP_FMT_ESTARGZ;
		f.footer_size = LP_FOOTER_ESTARGZ_SIZE;
		f.toc_offset = off;
		r = check_gzip_toc(blob_size, &f, err);
		goto out;
	}
	if (tail_len >= LP_FOOTER_LEGACY_SIZE &&
	    parse_gzip_footer(tail + tail_len - LP_FOOTER_LEGACY_SIZE,
			      LP_FOOTER_LEGACY_SIZE, false, &off)) {
		f.format = LP_FMT_STARGZ_LEGACY;
		f.footer_size = LP_FOOTER_LEGACY_SIZE;
		f.toc_offset = off;
		r = check_gzip_toc(blob_size, &f, err);
		goto out;
	}
	if (tail_len >= LP_FOOTER_ZSTD_SIZE) {
		const uint8_t *p = tail + tail_len - LP_FOOTER_ZSTD_SIZE;

		if (lp_get_le32(p) == LP_ZSTD_SKIPPABLE_MAGIC &&
		    lp_get_le32(p + 4) == ZSTD_FOOTER_PAYLOAD &&
		    memcmp(p + 8 + 32, LP_ZSTD_CHUNKED_MAGIC, 8) == 0) {
			r = parse_zstd_footer(p, blob_size, &f, err);
			goto out;
		}
	}
	r = lp_err_set(err, -EINVAL,
		       "no eStargz, stargz or zstd:chunked footer in the last "
		       "%zu bytes of a %llu-byte blob",
		       tail_len, (unsigned long long)blob_size);
out:
	if (r == 0)
		*out = f;
	return r;
}
