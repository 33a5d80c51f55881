// SPDX-License-Identifier: Apache-2.0
/*
 * Names of layer formats and TOC entry types.
 */
#include "lp_format.h"
#include "lp_toc.h"

const char *lp_format_name(enum lp_layer_format f)
{
	switch (f) {
	case LP_FMT_ESTARGZ:
		return "estargz";
	case LP_FMT_STARGZ_LEGACY:
		return "stargz";
	case LP_FMT_ZSTD_CHUNKED:
		return "zstd-chunked";
	case LP_FMT_GZIP_INDEX:
		return "gzip-index";
	}
	return "unknown";
}

const char *lp_toc_type_name(enum lp_toc_type t)
{
	static const char *const names[] = {
		[LP_TOC_DIR] = "dir",	      [LP_TOC_REG] = "reg",
		[LP_TOC_SYMLINK] = "symlink", [LP_TOC_HARDLINK] = "hardlink",
		[LP_TOC_CHAR] = "char",	      [LP_TOC_BLOCK] = "block",
		[LP_TOC_FIFO] = "fifo",	      [LP_TOC_CHUNK] = "chunk",
	};

	if ((unsigned)t < LP_ARRAY_SIZE(names) && names[t])
		return names[t];
	return "unknown";
}
