/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layer converter: a tar stream (plain, gzip or zstd, detected by magic)
 * in, an eStargz or zstd:chunked blob out.
 *
 * Output order: prioritised files first (in the order given, each preceded by
 * its parent directories and, for hardlinks, by their targets), then
 * `.prefetch.landmark`; with no prioritised files, `.no.prefetch.landmark`
 * first. Then the remaining entries in input order. Each regular file's
 * payload starts a new member; files larger than the chunk size are split.
 * Members are compressed in parallel; the output is byte-for-byte the same
 * for a given input and options whatever the thread count.
 *
 * The output is written to a temporary file next to @out_path and renamed
 * into place only on success; after any error no output file remains.
 */
#ifndef LP_CONVERT_H
#define LP_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "lp_digest.h"
#include "lp_err.h"
#include "lp_format.h"
#include "lp_prio.h" /* LP_PRIO_MAX_PATHS bounds nr_prioritized */

/* default bound on the uncompressed output (sparse files expand) */
#define LP_CONVERT_MAX_UNCOMPRESSED ((uint64_t)1 << 42)

struct lp_convert_opts {
	enum lp_layer_format format; /* LP_FMT_ESTARGZ or LP_FMT_ZSTD_CHUNKED */
	uint64_t chunk_size; /* 0: LP_DEFAULT_CHUNK_SIZE */
	int level; /* -1: the format's default */
	unsigned int threads; /* 0: number of online CPUs */
	const char *const *prioritized; /* paths, as in the layer */
	size_t nr_prioritized;
	/* bound on the uncompressed output; 0: LP_CONVERT_MAX_UNCOMPRESSED
	   (over it: -EFBIG naming the entry) */
	uint64_t max_uncompressed;
};

/* lp_convert_opts_init() - defaults: eStargz, 4 MiB chunks, level 9. */
void lp_convert_opts_init(struct lp_convert_opts *opts);

struct lp_convert_result {
	struct lp_digest toc_digest; /* sha256 of the TOC JSON */
	struct lp_digest diff_id; /* sha256 of the uncompressed output */
	struct lp_digest blob_digest; /* sha256 of the output blob */
	uint64_t uncompressed_size; /* bytes of the uncompressed output */
	uint64_t size; /* bytes of the output blob */
	/* zstd:chunked only: sha256 of the compressed TOC, and its position */
	struct lp_digest manifest_checksum;
	uint64_t toc_offset, toc_compressed_size, toc_uncompressed_size;
};

/*
 * lp_convert_layer() - convert the tar stream read from @in_fd (a pipe is
 * fine) into @out_path. Returns 0, -EINVAL (not a tar, corrupt input, a
 * prioritised path that is not in the layer is NOT an error: it is skipped),
 * -EFBIG over a bound, or an I/O -errno; @err names the entry and reason.
 */
int lp_convert_layer(int in_fd, const char *out_path,
		     const struct lp_convert_opts *opts,
		     struct lp_convert_result *res, struct lp_err *err);

/*
 * lp_prio_list_load() - the paths of a prioritised-files list (format/
 * lp_prio.h: plain or JSON lines; the layer members of JSON lines are
 * checked, then ignored). *ret_paths is a NULL-terminated array owned by
 * the caller (lp_prio_list_free). Returns the count, or -errno as
 * lp_prio_load().
 */
int lp_prio_list_load(const char *path, char ***ret_paths, struct lp_err *err);
void lp_prio_list_free(char **paths);

#endif /* LP_CONVERT_H */
