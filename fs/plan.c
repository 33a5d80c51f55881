// SPDX-License-Identifier: Apache-2.0
/*
 * The fetch planner: every decision about what to fetch together and in
 * which order, and every constant behind it, as pure functions over the TOC
 * (and, where the cache's state matters, a predicate the caller passes in).
 * Nothing here locks, allocates or does I/O, so each rule is unit-tested on
 * its own (tests/unit/test_plan.c). The hops of the read path ask:
 *   file_read.c   how far a read may fetch along (read-ahead, neighbours)
 *   pipeline.c    how many chunks one blob read may cover (coalescing)
 *   scheduler.c   which run to fetch next and how many blob reads may be in
 *                 flight in the background (the scheduling order and width)
 * The constants are in fs_int.h ("the fetch planner"), next to these
 * functions' declarations.
 */
#include "fs_int.h"

bool fs_plan_coalesce(const struct lp_toc_chunk *next, uint64_t start,
		      uint64_t end, uint64_t max)
{
	uint64_t next_end = next->offset + next->compressed_size;

	if (next->offset < start)
		return false; /* not in blob order */
	if (next->offset > end && next->offset - end > FS_PLAN_MAX_GAP)
		return false;
	return lp_max_u64(end, next_end) - start <= max;
}

uint64_t fs_plan_run_bytes(enum fs_fetch_kind kind)
{
	/*
	 * On demand, a reader waits for the whole claimed run, read-ahead
	 * included: it asked for what it reads. Prefetch and background
	 * runs are the scheduler's streams: several in flight, each a
	 * bounded piece, so that an on-demand read never queues behind a
	 * long one and the workload, following the first stream, is never
	 * far behind the link.
	 */
	return kind == FS_FETCH_ONDEMAND ? FS_PLAN_MAX_COALESCE :
					   FS_PLAN_STREAM_RUN;
}

uint64_t fs_plan_stream_bytes(unsigned int streak)
{
	/*
	 * The background starts with small reads, and after an on-demand
	 * miss away from its stream goes on from the miss with small reads
	 * again (the miss's neighbourhood: a workload that jumps around, as
	 * an import does, gets its next files soon, and its next misses do
	 * not queue behind long reads it does not need on a full link). Four
	 * small reads in flight already fill the link (256 KiB each is more
	 * than the bandwidth-delay product at 100 Mbit/s and 20 ms, or
	 * 1 Gbit/s and 2 ms); what a bigger read saves is requests, so the
	 * size doubles only with each read handed out while the workload
	 * reads the layer in blob order (one that reads everything gets
	 * full-size reads after a few).
	 */
	uint64_t b = FS_PLAN_STREAM_FIRST;

	while (streak-- && b < FS_PLAN_STREAM_RUN)
		b *= 2;
	return lp_min_u64(b, FS_PLAN_STREAM_RUN);
}

uint64_t fs_plan_background_bytes(unsigned int streak, bool busy)
{
	/*
	 * While on-demand reads are going on, each of their replies queues
	 * behind whatever bulk read shares the link (a full bottleneck
	 * queue holds 100 ms and more): the one background read then stays
	 * small, the neighbourhood of the last miss.
	 */
	uint64_t b = fs_plan_stream_bytes(streak);

	return busy ? lp_min_u64(b, FS_PLAN_BUSY_RUN) : b;
}

bool fs_plan_in_order(uint32_t last, uint32_t ci)
{
	return ci >= last && ci - last <= FS_PLAN_IN_ORDER_SLACK;
}

bool fs_plan_miss_ahead(const struct lp_toc *toc, uint32_t cursor,
			uint32_t miss)
{
	const uint32_t nr = lp_toc_nr_chunks(toc);

	if (miss < cursor || miss >= nr || cursor >= nr)
		return false;
	return lp_toc_chunk(toc, miss).offset -
		       lp_toc_chunk(toc, cursor).offset <=
	       FS_PLAN_STREAM_RUN;
}

uint32_t fs_plan_run_end(const struct lp_toc *toc, uint32_t ci, uint32_t limit,
			 uint64_t max)
{
	const uint32_t nr = lp_toc_nr_chunks(toc);
	struct lp_toc_chunk c;
	uint64_t start, end;
	uint32_t j;

	if (ci >= nr)
		return ci;
	if (limit > nr)
		limit = nr;
	c = lp_toc_chunk(toc, ci);
	start = c.offset;
	end = c.offset + c.compressed_size;
	for (j = ci + 1; j < limit && j - ci < FS_MAX_RUN; j++) {
		c = lp_toc_chunk(toc, j);
		if (!fs_plan_coalesce(&c, start, end, max))
			break;
		end = lp_max_u64(end, c.offset + c.compressed_size);
	}
	return j;
}

uint32_t fs_plan_read_limit(const struct lp_toc *toc, uint32_t idx,
			    uint32_t last, bool sequential)
{
	const struct lp_toc_entry *e = lp_toc_entry(toc, idx);
	uint32_t limit = e->first_chunk + e->nr_chunks, ci = last + 1;
	uint32_t nr = lp_toc_nr_chunks(toc);
	uint64_t extra = 0;

	if (sequential)
		while (ci < limit && extra < FS_PLAN_READAHEAD)
			extra += lp_toc_chunk(toc, ci++).chunk_size;
	if (ci < limit)
		return ci;
	/*
	 * The read reaches the end of the file: bring the chunks of the files
	 * that follow it in the blob along, a bounded number of compressed
	 * bytes, since a workload that opens one small file tends to open its
	 * neighbours next (same directory, same package). The fetch claims
	 * them only while they are absent and coalesce with this read.
	 */
	extra = 0;
	while (ci < nr) {
		extra += lp_toc_chunk(toc, ci).compressed_size;
		if (extra > FS_PLAN_NEIGHBOURS)
			break;
		ci++;
	}
	return ci;
}

uint32_t fs_plan_prefetch_chunks(const struct lp_toc *toc,
				 uint64_t prefetch_end)
{
	uint32_t nr = lp_toc_nr_chunks(toc), end = 0;

	while (end < nr && lp_toc_chunk(toc, end).offset < prefetch_end)
		end++;
	return end;
}

uint64_t fs_plan_profile_chunks(const struct lp_toc *toc, const uint32_t *files,
				size_t n)
{
	uint64_t total = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, files[i]);

		if (e && e->type == LP_TOC_REG)
			total += e->nr_chunks;
	}
	return total;
}

uint64_t fs_plan_profile_byte_cap(uint64_t layer_bytes)
{
	uint64_t cap = layer_bytes / FS_PLAN_PROFILE_LAYER_DIV;

	if (cap < FS_PLAN_PROFILE_MIN_BYTES)
		cap = FS_PLAN_PROFILE_MIN_BYTES;
	return cap < FS_PLAN_PROFILE_MAX_BYTES ? cap :
						 FS_PLAN_PROFILE_MAX_BYTES;
}

uint32_t fs_plan_profile_runs(const struct lp_toc *toc, const uint32_t *files,
			      size_t n, uint8_t *listed,
			      struct fs_plan_run *runs, uint32_t cap,
			      uint64_t max_bytes)
{
	const uint32_t nr = lp_toc_nr_chunks(toc);
	uint32_t nr_runs = 0, ci, end;
	uint64_t bytes = 0, sz;
	size_t i;

	/*
	 * The profile's order is the workload's: a file it opened first is
	 * wanted first, wherever it lies in the blob (an unoptimised layer
	 * has it anywhere). Runs are not sorted by offset: fetching the first
	 * file's chunks before the tenth's is the point. Adjacent chunks of
	 * consecutive files still make one run (one blob read).
	 */
	for (i = 0; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, files[i]);

		if (!e || e->type != LP_TOC_REG || !e->nr_chunks ||
		    e->first_chunk >= nr)
			continue;
		end = e->first_chunk + e->nr_chunks;
		if (end > nr || end < e->first_chunk)
			end = nr;
		for (ci = e->first_chunk; ci < end; ci++) {
			if (fs_plan_listed(listed, ci))
				continue;
			/* a profile's worth is bounded: a forged one that
			 * lists everything costs @max_bytes, not the layer */
			sz = lp_toc_chunk(toc, ci).compressed_size;
			if (sz > max_bytes - bytes)
				return nr_runs;
			bytes += sz;
			if (!nr_runs || runs[nr_runs - 1].end != ci) {
				if (nr_runs == cap)
					return nr_runs;
				runs[nr_runs++] =
					(struct fs_plan_run){ ci, ci };
			}
			runs[nr_runs - 1].end = ci + 1;
			listed[ci / 8] |= (uint8_t)(1u << (ci % 8));
		}
	}
	return nr_runs;
}

uint32_t fs_plan_next(uint32_t nr, uint32_t from, fs_plan_skip_fn skip,
		      void *arg)
{
	uint32_t i, ci;

	if (from >= nr)
		from = 0;
	/* from the cursor to the end, then what was jumped over */
	for (i = 0; i < nr; i++) {
		ci = from + i < nr ? from + i : from + i - nr;
		if (!skip(arg, ci))
			return ci;
	}
	return LP_TOC_NO_INDEX;
}

/* ns from @t to @now; 0 when @t was stamped after @now was read */
static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

bool fs_plan_defers(const struct fs_plan_layer *l)
{
	/*
	 * Only a layer with a prefetch landmark (optimised for a workload)
	 * defers to prioritised fetching: its workload's files are in, the
	 * rest is unlikely to be wanted soon. It stops deferring once it has
	 * waited FS_PLAN_MAX_DEFER quiet times in all (a busy workload cannot
	 * starve it), or once the workload has missed the prefetch range
	 * FS_PLAN_RELEASE_MISSES times: it wants more than its prefetch list
	 * named, and the rest fetched at once is what spares it those round
	 * trips (the rule for a layer without a landmark). Sooner, after
	 * FS_PLAN_RELEASE_MISSES_IN_ORDER misses, when it reads past the
	 * prefetch range in blob order (FS_PLAN_IN_ORDER_RUN reads in a
	 * row): a workload that reads everything, which otherwise paid a
	 * round trip per miss until the 16th, the link 60% idle for 0.5 s.
	 * Reading in order without missing is no reason: what it reads is
	 * in already.
	 */
	const bool in_order = l->in_order >= FS_PLAN_IN_ORDER_RUN;

	return l->optimised && l->quiet_ns &&
	       l->deferred_ns < l->quiet_ns * FS_PLAN_MAX_DEFER &&
	       l->misses < (in_order ? FS_PLAN_RELEASE_MISSES_IN_ORDER :
				       FS_PLAN_RELEASE_MISSES);
}

bool fs_plan_uncontended(const struct fs_plan_clock *c,
			 const struct fs_plan_layer *l)
{
	/*
	 * Between the mount and the workload's first miss (a container
	 * still starting) nobody else reads: 256 KiB reads, about the
	 * bandwidth-delay product at 100 Mbit/s and 20 ms, left a third of
	 * the link idle there (a request's round trip each, two in flight).
	 * Bigger reads then cost the first miss a wait behind them, bounded
	 * by FS_PLAN_UNCONTENDED_RUN; from that miss on the usual rules
	 * apply (a jump makes the reads small again).
	 */
	const uint64_t short_quiet = (uint64_t)FS_PLAN_SHORT_QUIET_MS * 1000000;

	return !l->missed && !c->ondemand &&
	       since(c->now_ns, c->last_ondemand_ns) >= short_quiet;
}

uint64_t fs_plan_uncontended_bytes(uint64_t bytes)
{
	return lp_min_u64(bytes, FS_PLAN_UNCONTENDED_RUN);
}

unsigned int fs_plan_background_width(const struct fs_plan_clock *c,
				      const struct fs_plan_layer *l)
{
	const uint64_t short_quiet = (uint64_t)FS_PLAN_SHORT_QUIET_MS * 1000000;
	const bool ondemand =
		c->ondemand ||
		since(c->now_ns, c->last_ondemand_ns) < short_quiet;

	if (fs_plan_defers(l) && (ondemand || c->prefetch ||
				  since(c->now_ns, c->last_ns) < l->quiet_ns))
		return 0;
	/*
	 * On-demand reads jump the queue: they never wait for a stream
	 * slot, and while they are in flight the background keeps one
	 * stream going instead of pausing (a paused background made a
	 * workload that reads everything fetch it file by file, a round
	 * trip each: 1.41x a full pull), so their replies share the link
	 * with one bulk read, not several. A workload that reads the layer
	 * in blob order is the exception: what it waits for is the stream
	 * itself, and the wider the sooner.
	 */
	if (l->in_order >= FS_PLAN_IN_ORDER_RUN)
		return FS_PLAN_STREAMS;
	return ondemand ? FS_PLAN_STREAMS_BUSY : FS_PLAN_STREAMS;
}
