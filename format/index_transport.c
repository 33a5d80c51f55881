// SPDX-License-Identifier: Apache-2.0
/*
 * How a gzip index travels as an OCI artifact layer (lp_index.h,
 * docs/format.md "gzip index transport"): its bytes as they are
 * (LP_INDEX_MEDIA_TYPE), or one gzip member of them
 * (LP_INDEX_MEDIA_TYPE_GZIP). Only the transfer changes: what comes out of
 * decode is the index, byte for byte, and everything downstream (its
 * digest, the signature, lp_index_parse()) sees only that. The gzip layer
 * is input from outside: decode inflates under a hard bound on its output
 * and refuses anything but one whole member, so that a small layer cannot
 * make a reader hold more than an index may have.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "lp_index.h"

/* the first output buffer of an inflate, as a multiple of its input (the
 * windows barely shrink, the file table about 6x: an index inflates to
 * under 2x); it doubles from there, up to the bound */
#define GUNZIP_FIRST_RATIO 2
#define GUNZIP_FIRST_MIN (64 * LP_KIB)
#define ZLIB_GZIP_WBITS (16 + 15) /* a gzip wrapper, 32 KiB window */
#define ZLIB_MEM_LEVEL 8

int lp_index_transport_of(const char *media_type)
{
	if (!media_type)
		return -EOPNOTSUPP;
	if (!strcmp(media_type, LP_INDEX_MEDIA_TYPE))
		return LP_INDEX_TRANSPORT_PLAIN;
	if (!strcmp(media_type, LP_INDEX_MEDIA_TYPE_GZIP))
		return LP_INDEX_TRANSPORT_GZIP;
	return -EOPNOTSUPP;
}

int lp_index_transport_encode(enum lp_index_transport t, const void *data,
			      size_t len, struct lp_buf *out)
{
	uint8_t piece[64 * 1024];
	z_stream z;
	int r = 0, zr;

	if (t == LP_INDEX_TRANSPORT_PLAIN)
		return lp_buf_append(out, data, len);
	memset(&z, 0, sizeof(z));
	/* no name, no mtime in the header (deflateSetHeader not called:
	 * zlib writes zeros), so the layer's digest depends on @data only */
	if (deflateInit2(&z, LP_INDEX_GZIP_LEVEL, Z_DEFLATED, ZLIB_GZIP_WBITS,
			 ZLIB_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)data;
	do {
		/* uInt: fed in pieces of at most 1 GiB */
		if (!z.avail_in && len) {
			z.avail_in = len > (1u << 30) ? 1u << 30 : (uInt)len;
			len -= z.avail_in;
		}
		z.next_out = piece;
		z.avail_out = sizeof(piece);
		zr = deflate(&z, len || z.avail_in ? Z_NO_FLUSH : Z_FINISH);
		if (zr == Z_STREAM_ERROR) {
			r = -EINVAL;
			break;
		}
		r = lp_buf_append(out, piece, sizeof(piece) - z.avail_out);
	} while (r == 0 && zr != Z_STREAM_END);
	deflateEnd(&z);
	return r;
}

int lp_index_transport_decode(enum lp_index_transport t, const void *data,
			      size_t len, size_t max, uint8_t **ret_data,
			      size_t *ret_len, struct lp_err *err)
{
	uint8_t *buf = NULL, *nb;
	size_t alloc = 0, have = 0, grow;
	z_stream z;
	int r = 0, zr = Z_OK;

	*ret_data = NULL;
	*ret_len = 0;
	if (t == LP_INDEX_TRANSPORT_PLAIN) {
		if (len > max)
			return lp_err_set(err, -EFBIG,
					  "%zu bytes, over the bound %zu", len,
					  max);
		buf = malloc(len ? len : 1);
		if (!buf)
			return -ENOMEM;
		memcpy(buf, data, len);
		*ret_data = buf;
		*ret_len = len;
		return 0;
	}
	if (len > UINT_MAX)
		return lp_err_set(err, -EFBIG, "a gzip'ed index of %zu bytes",
				  len);
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, ZLIB_GZIP_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	for (;;) {
		if (have == alloc) {
			/* room for one byte past the bound: what lands
			 * there says "over" */
			if (alloc > max) {
				r = lp_err_set(err, -EFBIG,
					       "its gzip layer of %zu bytes "
					       "inflates to more than the "
					       "bound %zu (not inflated "
					       "further)",
					       len, max);
				break;
			}
			if (!alloc)
				grow = len * GUNZIP_FIRST_RATIO >
						       GUNZIP_FIRST_MIN ?
					       len * GUNZIP_FIRST_RATIO :
					       GUNZIP_FIRST_MIN;
			else
				grow = alloc * 2;
			if (grow > max)
				grow = max + 1;
			nb = realloc(buf, grow);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			buf = nb;
			alloc = grow;
		}
		z.next_out = buf + have;
		z.avail_out = alloc - have < UINT_MAX ? (uInt)(alloc - have) :
							UINT_MAX;
		zr = inflate(&z, Z_NO_FLUSH);
		have = (size_t)(z.next_out - buf);
		if (zr == Z_STREAM_END)
			break;
		if (zr == Z_MEM_ERROR) {
			r = -ENOMEM;
			break;
		}
		/* Z_BUF_ERROR with room to write: the input ran out */
		if (zr == Z_BUF_ERROR) {
			r = lp_err_set(err, -EBADMSG,
				       "its gzip layer (%zu bytes) ends "
				       "inside the gzip member",
				       len);
			break;
		}
		if (zr != Z_OK) {
			r = lp_err_set(err, -EBADMSG,
				       "its gzip layer does not inflate: %s",
				       z.msg ? z.msg : "bad data");
			break;
		}
	}
	if (r == 0 && have > max)
		r = lp_err_set(err, -EFBIG,
			       "its gzip layer of %zu bytes inflates to more "
			       "than the bound %zu",
			       len, max);
	if (r == 0 && z.avail_in)
		r = lp_err_set(err, -EBADMSG,
			       "%u bytes after the gzip member of its layer",
			       z.avail_in);
	inflateEnd(&z);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_data = buf;
	*ret_len = have;
	return 0;
}
