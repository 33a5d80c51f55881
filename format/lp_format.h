/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Names and limits shared by every part of the layer format: the layer
 * formats, compressions, landmark names and the bounds on every size read
 * from a blob (house rule 8). A blob exceeding a bound is rejected with
 * -EFBIG and a message naming the bound.
 */
#ifndef LP_FORMAT_H
#define LP_FORMAT_H

#include "lp_common.h"

enum lp_layer_format {
	LP_FMT_ESTARGZ = 1, /* 51-byte footer */
	LP_FMT_STARGZ_LEGACY, /* 47-byte footer (read only) */
	LP_FMT_ZSTD_CHUNKED, /* zstd frames, skippable-frame TOC + footer */
	LP_FMT_GZIP_INDEX, /* plain tar+gzip read through a gzip index */
};

enum lp_compression {
	LP_COMP_GZIP = 1,
	LP_COMP_ZSTD,
};

static inline enum lp_compression lp_format_compression(enum lp_layer_format f)
{
	return f == LP_FMT_ZSTD_CHUNKED ? LP_COMP_ZSTD : LP_COMP_GZIP;
}

/* "estargz", "stargz", "zstd-chunked", "gzip-index" */
const char *lp_format_name(enum lp_layer_format f);

#define LP_TOC_NAME "stargz.index.json"
#define LP_PREFETCH_LANDMARK ".prefetch.landmark"
#define LP_NO_PREFETCH_LANDMARK ".no.prefetch.landmark"
#define LP_LANDMARK_CONTENT 0x0f
#define LP_WHITEOUT_PREFIX ".wh."
#define LP_WHITEOUT_OPAQUE ".wh..wh..opq"

#define LP_DEFAULT_CHUNK_SIZE (4 * LP_MIB)
#define LP_DEFAULT_GZIP_LEVEL 9
#define LP_DEFAULT_ZSTD_LEVEL 3

/* Bounds on what a blob may claim. */
/* uncompressed TOC JSON: a layer of 1M files with digests writes ~300 MB */
#define LP_TOC_MAX_JSON (512 * LP_MIB)
#define LP_TOC_MAX_COMPRESSED (128 * LP_MIB)
#define LP_TOC_MAX_ENTRIES (4u * 1024 * 1024)
#define LP_TOC_MAX_PATH 4096 /* whole normalised path */
#define LP_TOC_MAX_NAME 255 /* one path component */
#define LP_TOC_MAX_DEPTH 256 /* path components */
#define LP_TOC_MAX_XATTRS 1024 /* per entry */
#define LP_TOC_MAX_XATTR_VALUE (64 * LP_KIB)
#define LP_TOC_MAX_JSON_NESTING 16 /* JSON object/array depth */
#define LP_CHUNK_MAX_SIZE (64 * LP_MIB) /* one decompressed chunk */
#define LP_CHUNK_MAX_INNER_OFFSET (64 * LP_MIB)
/* a member may end with tar headers (PAX, long names) for following entries */
#define LP_MEMBER_MAX_TRAILER (1 * LP_MIB)
#define LP_FILE_MAX_SIZE ((uint64_t)1 << 50)

#endif /* LP_FORMAT_H */
