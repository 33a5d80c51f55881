/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gzip index's parser (index.c) hands its stream (index_stream.c)
 * and the index as a TOC (index_toc.c): checkpoints' state and windows,
 * span arithmetic. Not included from other modules.
 */
#ifndef LP_INDEX_INT_H
#define LP_INDEX_INT_H

#include "lp_index.h"

/*
 * lp_index_checkpoint_mark_verified() - checkpoint @i is a proven resume
 * point: a stream that started at a verified checkpoint reached it and
 * found the inflate state there to be the one the index describes. Only
 * index_stream.c calls it (atomic: any thread).
 */
void lp_index_checkpoint_mark_verified(const struct lp_index *ix, size_t i);
/* lp_index_count_trusted_read() - one more decode of a trusted index
 * (lp_index_trust()) that started at a checkpoint no stream had proven */
void lp_index_count_trusted_read(const struct lp_index *ix);
/* lp_index_last_verified() - the last verified checkpoint <= @i (0 is). */
size_t lp_index_last_verified(const struct lp_index *ix, size_t i);

/* the @c->window_len bytes of checkpoint @c's compressed window */
const uint8_t *lp_index_window_data(const struct lp_index *ix,
				    const struct lp_index_checkpoint *c);

/*
 * lp_index_prove_open() - a stream from the blob's first byte that also
 * hashes every blob byte it fetches (for lp_index_prove_finish()); its
 * spans come from @ahead (NULL: none) when it has them, else through the
 * span cache as the proving pass's.
 */
struct lp_index_ahead;
int lp_index_prove_open(const struct lp_index *ix, struct lp_blob *blob,
			struct lp_index_ahead *ahead,
			struct lp_index_stream **ret_s, struct lp_err *err);
/*
 * lp_index_prove_finish() - for a stream from lp_index_prove_open() that
 * has read the whole layer: the rest of the blob inflates to nothing (it
 * ends with its last gzip member, every checkpoint passed and proven), and
 * the blob's sha256 is the index's blob digest. 0 or -EBADMSG.
 */
int lp_index_prove_finish(struct lp_index_stream *s, struct lp_err *err);

/* ---- the span cache (index_spans.c) ---- */
struct lp_index_spans;
/* lp_index_spans_new() - an empty, off cache for an index of
 * @nr_checkpoints spans (index.c, at parse); _free() drops what it holds */
int lp_index_spans_new(size_t nr_checkpoints, struct lp_index_spans **ret);
void lp_index_spans_free(struct lp_index_spans *sc); /* NULL allowed */
/* lp_index_spans_of() - the span cache of @ix (its own lock inside: the
 * cache is the other mutable part of a parsed index) */
struct lp_index_spans *lp_index_spans_of(const struct lp_index *ix);
/*
 * The proving pass and the readers that wait for it (index_spans.c). The
 * pass calls _begin() before its first span, _at() before proving each
 * checkpoint it reaches, _end() whatever its result; every stream that
 * proves a checkpoint calls lp_index_proven_notify() after marking it.
 * lp_index_wait_prover() (lp_index.h) - waiting for the pass.
 */
/* lp_index_span_get() for the proving pass (@prover): its spans are held
 * cold (unless a reader waits for or uses them), and leave when it ends if
 * no reader got a span (or read elsewhere) meanwhile */
int lp_index_span_get_as(const struct lp_index *ix, struct lp_blob *blob,
			 size_t i, bool prover, struct lp_index_span **ret_sp,
			 struct lp_index_stream_stats *st, struct lp_err *err);
void lp_index_prover_begin(const struct lp_index *ix);
void lp_index_prover_at(const struct lp_index *ix, size_t i);
void lp_index_prover_end(const struct lp_index *ix);
void lp_index_proven_notify(const struct lp_index *ix);

/*
 * For the proving pass's read-ahead (index_pass_fetch.c):
 * lp_index_span_cached() - whether span @i is held in memory or the store
 * says it has it (a hint: the pass need not fetch it ahead);
 * lp_index_span_from() - a new span (one reference, the caller's) of @len
 * bytes copied from @src, which must be span @i's exact bytes: their
 * digest is compared first (-EBADMSG, -ENOMEM);
 * lp_index_span_claim() - the read-ahead will fetch span @i: readers that
 * want it meanwhile wait for it (single flight). Returns 1 (claimed: settle
 * it), 0 (the cache is off: nothing to claim, settle it unclaimed),
 * -EEXIST (held, or another fetch has it: leave it), -ENOMEM;
 * lp_index_span_settle() - the result of span @i's fetch by the read-ahead
 * (@claimed: it claimed it): @sp (verified, the caller keeps its
 * reference) or @r < 0 with @ferr, to the cache (held cold, as the pass's,
 * unless a reader waits), its waiters and the store;
 * lp_index_span_cache_max() - the cache's limit now (0: off);
 * lp_index_pass_note() - count @requests blob requests that brought @spans
 * spans (the cache's stats).
 */
bool lp_index_span_cached(const struct lp_index *ix, size_t i);
/*
 * lp_index_grains_check() - compare the grains of span @i (its @len bytes
 * at @data, of which the first @done have come) from *@verified on with
 * their digests, as far as whole grains have come (the last may be
 * shorter), advancing *@verified: 0, or -EBADMSG at the first that does
 * not match. Nothing to compare without grain digests.
 */
int lp_index_grains_check(const struct lp_index *ix, size_t i,
			  const uint8_t *data, size_t len, size_t done,
			  size_t *verified, struct lp_err *err);
int lp_index_span_from(const struct lp_index *ix, size_t i, const void *src,
		       size_t len, struct lp_index_span **ret_sp,
		       struct lp_err *err);
int lp_index_span_claim(const struct lp_index *ix, size_t i);
void lp_index_span_settle(const struct lp_index *ix, size_t i, bool claimed,
			  struct lp_index_span *sp, int r,
			  const struct lp_err *ferr);
size_t lp_index_span_cache_max(const struct lp_index *ix);
void lp_index_pass_note(const struct lp_index *ix, uint64_t requests,
			uint64_t spans);

/* ---- the proving pass's read-ahead (index_pass_fetch.c) ---- */
/*
 * lp_index_ahead_new() - a read-ahead of @ix's spans from @blob for one
 * proving pass, from span 0 in order (LP_INDEX_PASS_* in lp_index.h);
 * threads start here. Returns 0 or -errno. _free() stops it (waiting for
 * the requests in flight) and drops what it holds; NULL allowed.
 * lp_index_ahead_take() - span @i for the pass, which takes spans in
 * order (those before @i are dropped): 0 with a reference (waiting for its
 * request when one is in flight); -ENOENT: fetch it yourself (not
 * planned, on disk or in memory already); or the error its request met
 * (the source's -errno; -EBADMSG, its digest did not match) with @err.
 * lp_index_ahead_stats() - what it fetched, added to @st.
 */
int lp_index_ahead_new(const struct lp_index *ix, struct lp_blob *blob,
		       struct lp_index_ahead **ret);
void lp_index_ahead_free(struct lp_index_ahead *a);
int lp_index_ahead_take(struct lp_index_ahead *a, size_t i,
			struct lp_index_span **ret_sp, struct lp_err *err);
void lp_index_ahead_stats(const struct lp_index_ahead *a,
			  struct lp_index_stream_stats *st);

/*
 * lp_index_blob_read() - lp_blob_pread() for the index's readers: a source
 * that fails (a mirror's whole blob that did not verify, a short blob) is
 * -EIO, whatever it says, so that only what the index itself claims (a
 * span digest, a window, a header) can come back -EBADMSG or -ERANGE: a
 * mount is poisoned for a lie of the index, never for a fault of the
 * registry.
 */
int lp_index_blob_read(struct lp_blob *blob, void *buf, size_t len,
		       uint64_t off, struct lp_err *err);

#endif /* LP_INDEX_INT_H */
