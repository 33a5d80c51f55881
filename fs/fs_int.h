/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs/-private: the definition of struct lp_fs and the hops of the read path
 * that live in separate files (plan.c, pipeline.c, chunk_cache.c,
 * chunk_fetch.c, disk_cache.c, scheduler.c, stats.c). Not included outside
 * fs/.
 *
 * The pipeline, each hop calling forward only:
 *   file_read.c (what a read needs) -> pipeline.c (fs_chunk_get: ask the
 *   planner for the run, claim it in the cache, fetch it, publish) ->
 *   chunk_cache.c (table, LRU, single flight) / chunk_fetch.c (disk tier
 *   lookup, blob read, decode + verify; results handed back through a
 *   callback) -> publish -> disk-tier write (pipeline.c's writer thread).
 *   scheduler.c runs prefetch and background fetch through fs_chunk_get.
 *   plan.c holds every policy decision and constant, as pure functions.
 *
 * Lock order (every file that locks follows it): fetch.lock, then
 * budget.lock (mem_budget.c), then cache.lock; decoders.lock, writer.lock,
 * disk->lock, record.lock and stats_file.lock are leaves, never held while
 * taking another lock (disk_cache.c's table lock comes before disk->lock
 * and is taken by no other file). No lock is held across blob, disk or
 * decode work.
 */
#ifndef LP_FS_INT_H
#define LP_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "lp_common.h"
#include "lp_fs.h"

#define FS_MAX_IDLE_DECODERS 32
/* a compressed chunk may carry tar headers of following entries */
#define FS_MAX_COMPRESSED_CHUNK (LP_CHUNK_MAX_SIZE + 2 * LP_MEMBER_MAX_TRAILER)
#define FS_MAX_RUN 1024 /* chunks claimed for one blob read */
/*
 * A gzip index layer's span cache (format/index_spans.c): compressed spans
 * shared by its chunks, header checks, streams and proving pass, so a span
 * is fetched once. At most this, and at most a quarter of the memory
 * budget the mount's chunks get. Per layer and outside that budget (not a
 * member of it: the spans are compressed, a fraction of what their chunks
 * decode to), so a process mounting k index layers may hold k times this.
 * Smaller than the layer, it thrashes when files are read out of tar
 * order (docs/format.md, "the span cache": 2.7x the layer with 8 MiB for
 * a 15 MB layer).
 */
#define FS_INDEX_SPAN_CACHE_MAX (64 * LP_MIB)
#define FS_INDEX_SPAN_CACHE_SHARE 4 /* of the memory budget, at most 1/4 */

/* --- the process-wide memory budget (mem_budget.c) --- */

/*
 * A memory tier as a member of a budget. @cold is the stamp of its coldest
 * chunk (UINT64_MAX: none), kept up to date by the member under its own
 * lock and read by evictors without it (advisory: a guide to which member
 * to shrink). @shrink evicts the member's coldest chunks: unpinned ones
 * only unless @pinned, those with a stamp up to @upto (and regardless of
 * stamps at least FS_BUDGET_BATCH bytes when it can), until @want bytes
 * are released; returns the bytes released (the budget uncharges them).
 * Called with budget.lock held.
 */
/*
 * Bytes a member may evict past the next member's coldest stamp: global LRU
 * to within this much per pick, so that making room for a 4 MiB chunk out
 * of the 100-byte chunks of many layers takes a few picks, not one pick
 * (a scan of every member) per chunk.
 */
#define FS_BUDGET_BATCH (256 * LP_KIB)
struct fs_mem_member {
	struct fs_mem_member *prev, *next; /* protected by budget.lock */
	unsigned int gen; /* protected by budget.lock: found empty in round */
	atomic_uint_fast64_t cold;
	size_t (*shrink)(struct fs_mem_member *m, uint64_t upto, size_t want,
			 bool pinned);
};

/* fs_budget_stamp() - the next stamp of @b's clock (a use, now). */
uint64_t fs_budget_stamp(struct lp_fs_budget *b);
/* fs_budget_join/leave() - add/remove member @m; after leave returns no
 * evictor touches @m. */
void fs_budget_join(struct lp_fs_budget *b, struct fs_mem_member *m);
void fs_budget_leave(struct lp_fs_budget *b, struct fs_mem_member *m);
/*
 * fs_budget_reserve() - charge @bytes, first evicting the coldest chunks of
 * any member so that the total stays within the budget when it can. Call
 * with no cache.lock held.
 */
void fs_budget_reserve(struct lp_fs_budget *b, size_t bytes);
/* fs_budget_release() - uncharge @bytes a member dropped by itself. */
void fs_budget_release(struct lp_fs_budget *b, size_t bytes);
/*
 * fs_budget_enforce() - evict while over the budget (fetchers reserving at
 * once each counted on room the other's chunk could not give back yet),
 * then note the peak. Call after a charged chunk went in, with no
 * cache.lock held.
 */
void fs_budget_enforce(struct lp_fs_budget *b);

/* --- memory tier (chunk_cache.c) --- */

enum fs_chunk_state {
	FS_CHUNK_LOADING = 1, /* claimed; one fetcher fills it */
	FS_CHUNK_READY, /* data verified and immutable */
	FS_CHUNK_FAILED, /* fetch failed; out of the table, error set */
};

struct fs_chunk {
	uint32_t ci; /* index into lp_toc_chunk() */
	uint8_t state; /* protected by cache.lock */
	bool in_lru; /* protected by cache.lock */
	/* protected by cache.lock: READY but not kept (a background chunk the
	   disk tier will hold): in the table, off the LRU and uncharged, only
	   until its disk-tier write is done (fs_chunk_written) */
	bool transient;
	int error; /* protected by cache.lock; FAILED only */
	bool retryable; /* protected by cache.lock; FAILED: error was marked so */
	uint32_t refs; /* protected by cache.lock; slot + pins + waiters */
	uint8_t *data; /* written by the fetcher, then immutable (READY) */
	size_t len;
	/* the digest the fetch verified it against, for its disk-tier write
	 * (no second read of a spilled table): written once by the fetch's
	 * settle on its pin, then has_dg set (release); read by a writer
	 * only after it saw has_dg (acquire) */
	struct lp_digest dg;
	atomic_bool has_dg;
	uint64_t stamp; /* protected by cache.lock; last use, budget clock */
	struct fs_chunk *lru_prev, *lru_next; /* protected by cache.lock */
};

struct fs_cache {
	pthread_mutex_t lock;
	pthread_cond_t settled; /* a LOADING chunk became READY or FAILED */
	/* the chunks in the table (LOADING or READY), an open-addressing
	   hash on ->ci of tab_cap (a power of two) slots; protected by lock */
	struct fs_chunk **tab;
	size_t tab_cap, tab_used;
	struct fs_chunk lru; /* sentinel; lru.lru_next is the most recent;
				protected by lock */
	size_t used; /* bytes charged for READY chunks; protected by lock */
	size_t peak; /* highest used seen; protected by lock */
	struct lp_fs_budget *mem; /* borrowed: the process's budget */
	struct fs_mem_member member; /* in mem */
	bool keep_background; /* no disk tier: background chunks stay, cold */
	size_t budget; /* bytes of mem (immutable) */
	uint32_t nr_chunks;
};

enum fs_fetch_kind {
	FS_FETCH_ONDEMAND, /* a reader waits; counts toward latency stats */
	FS_FETCH_PREFETCH,
	/* with a disk tier only handed to waiters, not kept; without one
	 * kept cold (evicted first) */
	FS_FETCH_BACKGROUND,
};

/* --- the fetch planner (plan.c): policy and its constants --- */

/* one on-demand blob read, compressed (read-ahead and neighbours included) */
#define FS_PLAN_MAX_COALESCE (16 * LP_MIB)
#define FS_PLAN_MAX_GAP (256 * LP_KIB) /* unneeded bytes read over */
#define FS_PLAN_READAHEAD (4 * LP_MIB) /* extra bytes on sequential reads */
/* compressed bytes of following files fetched along with a file's end */
#define FS_PLAN_NEIGHBOURS (128 * LP_KIB)
/* one prefetch or background blob read (a stream), compressed */
#define FS_PLAN_STREAM_RUN (8 * LP_MIB)
/* a background read at first (of a layer, and after an on-demand miss away
 * from the stream); each read while the workload reads in blob order
 * doubles it, up to FS_PLAN_STREAM_RUN */
#define FS_PLAN_STREAM_FIRST (256 * LP_KIB)
/* prefetch and background reads in flight, over every layer sharing an
 * activity (the snapshotter's whole process), and workers per layer: 2
 * cover the bandwidth-delay product with 256 KiB reads and decode on both
 * cores; 4 left ~8 MB more resident at rest (test_mount_memory) */
#define FS_PLAN_STREAMS 2
/* background reads in flight while on-demand reads are */
#define FS_PLAN_STREAMS_BUSY 1
/* "while": and this long after the last one */
#define FS_PLAN_SHORT_QUIET_MS 300
/* a background read's most compressed bytes while narrowed */
#define FS_PLAN_BUSY_RUN (512 * LP_KIB)
/* ... and before the workload's first miss in the layer (the link is the
 * background's alone, fs_plan_uncontended): its first miss then queues
 * behind at most FS_PLAN_STREAMS reads of this size (~170 ms at 100 Mbit/s) */
#define FS_PLAN_UNCONTENDED_RUN (1 * LP_MIB)
/* an optimised layer's background fetch defers at most this many quiet
 * times in all, and no longer once the workload has missed the prefetch
 * range this many times */
#define FS_PLAN_MAX_DEFER 10
#define FS_PLAN_RELEASE_MISSES 16
/* ... or this many while it reads in blob order (FS_PLAN_IN_ORDER_RUN) */
#define FS_PLAN_RELEASE_MISSES_IN_ORDER 4
/* on-demand reads of chunks in blob order (each at most this many chunks
 * past the last) this many times in a row: the workload reads the layer in
 * order, and follows the background's stream */
#define FS_PLAN_IN_ORDER_SLACK 8
#define FS_PLAN_IN_ORDER_RUN 32

/* fs_plan_coalesce() - whether chunk @next may join a blob read that spans
 * [start, end) of compressed bytes and may grow to @max bytes. */
bool fs_plan_coalesce(const struct lp_toc_chunk *next, uint64_t start,
		      uint64_t end, uint64_t max);

/* fs_plan_run_bytes() - the most compressed bytes one blob read of @kind
 * covers. */
uint64_t fs_plan_run_bytes(enum fs_fetch_kind kind);

/* fs_plan_stream_bytes() - the most compressed bytes of a background read
 * after @streak reads handed out while the workload read in blob order
 * since the background started or an on-demand miss away from the stream
 * moved its cursor */
uint64_t fs_plan_stream_bytes(unsigned int streak);

/* fs_plan_background_bytes() - fs_plan_stream_bytes(), at most
 * FS_PLAN_BUSY_RUN while the background is narrowed (@busy) */
uint64_t fs_plan_background_bytes(unsigned int streak, bool busy);

/*
 * fs_plan_miss_ahead() - whether an on-demand miss at chunk @miss is the
 * workload running ahead of the background's stream, whose next chunk to
 * hand out is @cursor: at or after it, within FS_PLAN_STREAM_RUN compressed
 * bytes. Such a miss moves the stream on without making its reads small
 * again; any other miss is a jump.
 */
bool fs_plan_miss_ahead(const struct lp_toc *toc, uint32_t cursor,
			uint32_t miss);

/*
 * fs_plan_run_end() - one past the last chunk a blob read starting at chunk
 * @ci may cover: the chunks after it that coalesce (fs_plan_coalesce) within
 * @max bytes, below @limit, at most FS_MAX_RUN in all. @ci itself always
 * belongs (the result is > @ci when @ci exists).
 */
uint32_t fs_plan_run_end(const struct lp_toc *toc, uint32_t ci, uint32_t limit,
			 uint64_t max);

/*
 * fs_plan_read_limit() - one past the last chunk a read of file entry @idx
 * whose last chunk is @last may fetch along: FS_PLAN_READAHEAD bytes of the
 * file's next chunks when @sequential, and when the read reaches the file's
 * end, the following chunks in blob order up to FS_PLAN_NEIGHBOURS
 * compressed bytes.
 */
uint32_t fs_plan_read_limit(const struct lp_toc *toc, uint32_t idx,
			    uint32_t last, bool sequential);

/* fs_plan_prefetch_chunks() - how many chunks, from the first, lie in the
 * prefetch range [0, @prefetch_end) of the blob. */
uint32_t fs_plan_prefetch_chunks(const struct lp_toc *toc,
				 uint64_t prefetch_end);

/* a run of chunks to prefetch: [ci, end) */
struct fs_plan_run {
	uint32_t ci, end;
};

/*
 * A profile's prefetch is bounded (a forged profile that lists every file
 * must not make a mount fetch a whole big layer before Prepare returns):
 * half the layer's compressed bytes, at least 8 MiB, at most 256 MiB.
 * fs_plan_profile_byte_cap() - that bound for a blob of @layer_bytes.
 */
#define FS_PLAN_PROFILE_LAYER_DIV 2
#define FS_PLAN_PROFILE_MIN_BYTES (8ull << 20)
#define FS_PLAN_PROFILE_MAX_BYTES (256ull << 20)
uint64_t fs_plan_profile_byte_cap(uint64_t layer_bytes);

/*
 * fs_plan_profile_chunks() - how many chunks the regular file entries
 * @files[0..@n) hold in all (each entry's nr_chunks; other types none):
 * the most runs fs_plan_profile_runs() can make of them.
 */
uint64_t fs_plan_profile_chunks(const struct lp_toc *toc, const uint32_t *files,
				size_t n);

/*
 * fs_plan_profile_runs() - the prefetch order of a profile (the files a
 * workload opened, in first-access order; @files are inode entries, not
 * hardlinks): each regular file's chunks in file order, leaving out the
 * chunks listed already (@listed, a bitmap over the TOC's chunks, which it
 * sets: a file listed twice, or two files sharing chunks, is fetched once),
 * as runs [ci, end) in the profile's order; a file whose chunks start
 * where the previous run ended extends that run (neighbours in the blob
 * make one read). At most @cap runs are written to @runs, holding at most
 * @max_bytes compressed bytes (fs_plan_profile_byte_cap(): the planning
 * stops at the first chunk that would take it over); returns how many
 * (never more than fs_plan_profile_chunks()). What did not fit is not
 * marked listed.
 */
uint32_t fs_plan_profile_runs(const struct lp_toc *toc, const uint32_t *files,
			      size_t n, uint8_t *listed,
			      struct fs_plan_run *runs, uint32_t cap,
			      uint64_t max_bytes);

/* fs_plan_listed() - bit @ci of bitmap @listed */
static inline bool fs_plan_listed(const uint8_t *listed, uint32_t ci)
{
	return listed && (listed[ci / 8] & (1u << (ci % 8)));
}

/* whether the scheduler should pass chunk @ci by (held, or already tried) */
typedef bool (*fs_plan_skip_fn)(void *arg, uint32_t ci);

/*
 * fs_plan_next() - the next chunk for the background to fetch, of @nr: the
 * first from @from on that @skip does not pass by, else the first before
 * @from (what a jump of the cursor went over); LP_TOC_NO_INDEX when none is
 * left. The scheduler moves @from to where the last on-demand miss ended,
 * so the background streams on from where the workload reads.
 */
uint32_t fs_plan_next(uint32_t nr, uint32_t from, fs_plan_skip_fn skip,
		      void *arg);

/* fs_plan_in_order() - whether an on-demand read of chunk @ci after one of
 * @last goes on in blob order (the same chunk, or a few past it) */
bool fs_plan_in_order(uint32_t last, uint32_t ci);

/* prioritised fetching as the scheduler sees it at one instant */
struct fs_plan_clock {
	uint64_t now_ns; /* CLOCK_MONOTONIC */
	unsigned int ondemand, prefetch; /* fetches in flight */
	uint64_t last_ns; /* when a prioritised fetch last ended */
	uint64_t last_ondemand_ns; /* when an on-demand one last ended */
};

/* one layer's background fetch as the scheduler sees it */
struct fs_plan_layer {
	bool optimised; /* it has a prefetch landmark */
	uint64_t quiet_ns; /* opts.background_quiet_ms */
	uint64_t deferred_ns; /* waited for quiet so far */
	uint64_t misses; /* on-demand fetches past the prefetch range */
	uint32_t in_order; /* on-demand reads in blob order in a row */
	bool missed; /* an on-demand read of it went to the source */
};

/* fs_plan_defers() - whether layer @l's background still waits for quiet
 * (the rule for optimised layers, until it waited FS_PLAN_MAX_DEFER quiet
 * times, or the workload missed FS_PLAN_RELEASE_MISSES times, or
 * FS_PLAN_RELEASE_MISSES_IN_ORDER times while it reads past the prefetch
 * range in blob order). */
bool fs_plan_defers(const struct fs_plan_layer *l);

/*
 * fs_plan_uncontended() - whether the link is the background's alone: the
 * workload has not missed in layer @l yet, and no on-demand read of the
 * activity is in flight or ended less than FS_PLAN_SHORT_QUIET_MS ago. Its
 * reads then grow with every read handed out (the streak), up to
 * FS_PLAN_UNCONTENDED_RUN (fs_plan_uncontended_bytes), instead of staying
 * at FS_PLAN_STREAM_FIRST until the workload reads in blob order.
 */
bool fs_plan_uncontended(const struct fs_plan_clock *c,
			 const struct fs_plan_layer *l);

/* fs_plan_uncontended_bytes() - a background read of @bytes (what
 * fs_plan_background_bytes() allows) cut to FS_PLAN_UNCONTENDED_RUN */
uint64_t fs_plan_uncontended_bytes(uint64_t bytes);

/*
 * fs_plan_background_width() - how many background reads may be in flight
 * now (over the layers sharing the activity): 0 while an optimised layer
 * defers and prioritised fetching is going on or ended less than its quiet
 * time ago; FS_PLAN_STREAMS_BUSY while on-demand reads are in flight (and
 * FS_PLAN_SHORT_QUIET_MS after) unless the workload reads the layer in
 * order (it follows the stream); else FS_PLAN_STREAMS.
 */
unsigned int fs_plan_background_width(const struct fs_plan_clock *c,
				      const struct fs_plan_layer *l);

/* --- disk tier (disk_cache.c) --- */

struct fs_disk;

/*
 * fs_disk_open() - a reference to the disk tier in @dir (created if need
 * be): the object every user of that directory in this process shares, its
 * budget the smallest any of them asked for. Drop with fs_disk_unref().
 */
int fs_disk_open(const char *dir, uint64_t budget, struct fs_disk **ret_disk,
		 struct lp_err *err);
void fs_disk_unref(struct fs_disk *disk); /* NULL allowed */
/* fs_disk_get() - 0 with @len verified bytes in @buf, or -ENOENT. */
int fs_disk_get(struct fs_disk *disk, const struct lp_digest *dg, void *buf,
		size_t len);
bool fs_disk_has(struct fs_disk *disk, const struct lp_digest *dg);
/* fs_disk_put() - store verified bytes; 0 or -errno (best effort). */
int fs_disk_put(struct fs_disk *disk, const struct lp_digest *dg,
		const void *buf, size_t len);
uint64_t fs_disk_used(struct fs_disk *disk);

/*
 * A record of a pack file (disk_cache.c): a FS_DISK_RECORD_HDR-byte header
 * (bytes 0-3 magic "LPCR", 4-7 LE32 version 1, 8-11 LE32 payload length,
 * 12-43 the payload's sha256, 44-47 LE32 CRC-32 of bytes 0-43; no reserved
 * field), then the payload. fs_disk_record_header() writes one for @len bytes of @dg.
 * fs_disk_record_parse() reads the header at @hdr (@hdr_len bytes there)
 * of a record with @room bytes left in its pack from its start: 0 with
 * @ret filled, -ENODATA when the header or payload does not fit in @room
 * (torn), -EBADMSG (bad magic or CRC), -EOPNOTSUPP (another version),
 * -EFBIG (a payload over LP_CHUNK_MAX_SIZE). The payload is not looked at:
 * a read checks its sha256.
 */
#define FS_DISK_RECORD_HDR 48
struct fs_disk_record {
	struct lp_digest dg;
	uint32_t len;
};
void fs_disk_record_header(const struct lp_digest *dg, uint32_t len,
			   uint8_t hdr[FS_DISK_RECORD_HDR]);
int fs_disk_record_parse(const void *hdr, size_t hdr_len, uint64_t room,
			 struct fs_disk_record *ret);

/* --- statistics (stats.c) --- */

struct fs_stats {
	atomic_uint_fast64_t fetched_bytes; /* compressed, from the blob */
	atomic_uint_fast64_t fetched_chunks;
	atomic_uint_fast64_t blob_reads;
	atomic_uint_fast64_t multi_range_reads; /* of blob_reads */
	atomic_uint_fast64_t mem_hits;
	atomic_uint_fast64_t disk_hits;
	atomic_uint_fast64_t ondemand_fetches;
	atomic_uint_fast64_t ondemand_ns_total;
	atomic_uint_fast64_t ondemand_ns_max;
	atomic_uint_fast64_t verify_failures;
	atomic_uint_fast64_t fetch_errors;
	/* chunks refused because the TOC's spilled digest table could not
	 * be read: a local read error, neither a verify failure nor the
	 * source's (chunk_fetch.c: digest_table_error) */
	atomic_uint_fast64_t digest_table_errors;
	atomic_uint_fast64_t readahead_chunks;
	atomic_uint_fast64_t prefetch_done_bytes; /* compressed span covered */
	/* gzip index: spans decoded whole, and pieces copied from one */
	atomic_uint_fast64_t index_span_decodes, index_decoded_hits;
	/* gzip index: span decodes that were streamed (fs/index_fetch.c:
	 * stream_start), and reads served before their span had all come */
	atomic_uint_fast64_t index_span_streams, index_early_reads;
	/* gzip index: spans the proving pass handed over decoded
	 * (fs_index_span_decoded), entries whose header it checked, and
	 * header checks readers decoded themselves (fs_check_file) */
	atomic_uint_fast64_t index_pass_outs, index_pass_checked;
	atomic_uint_fast64_t index_ahead_decodes; /* fs_index_decode_ahead */
	atomic_uint_fast64_t index_header_checks;
	atomic_uint_fast64_t background_done_bytes;
	atomic_uint_fast64_t background_retries; /* waits for the source */
	/* disk-tier copies an on-demand fetch left to the writer for later
	 * (its queue was full), and of those, the ones gone from memory by
	 * then, never written (pipeline.c) */
	atomic_uint_fast64_t disk_write_deferred;
	atomic_uint_fast64_t disk_write_dropped;
	/* gzip index layers: reads whose bytes depended on a window nobody
	 * had proven, read again from spans further back (lp_index_read) */
	atomic_uint_fast64_t index_window_rereads;
	/* on-demand latency: [i] counts fetches in (bound(i-1), bound(i)],
	 * the last one those over every bound (not cumulative) */
	atomic_uint_fast64_t ondemand_hist[LP_FS_LATENCY_BUCKETS + 1];
	atomic_uint_fast64_t ops[LP_FS_OP_COUNT]; /* FUSE requests */
};

void fs_stats_ondemand(struct fs_stats *s, uint64_t ns);

/*
 * The control file's contents for reads that come without an open handle
 * (the kernel stopped sending FUSE_OPEN): one JSON snapshot per layer,
 * made anew by each lookup of the name (an open by path looks it up first:
 * the entry is never cached), its length and a new mtime reported as the
 * file's attributes so that the kernel drops the pages of the previous one.
 */
struct fs_stats_file {
	pthread_mutex_t lock;
	uint8_t *data; /* protected by lock; NULL before the first lookup */
	size_t len; /* protected by lock */
	uint64_t mtime_ns; /* protected by lock; grows with each snapshot */
};

/* fs_stats_refresh() - a new snapshot; 0 or -ENOMEM/-EFBIG. */
int fs_stats_refresh(struct lp_fs *fs);
/* fs_stats_file_attr() - the snapshot's size and mtime into @st. */
void fs_stats_file_attr(struct lp_fs *fs, struct stat *st);
/* fs_stats_file_read() - copy from the snapshot; the byte count. */
size_t fs_stats_file_read(struct lp_fs *fs, void *buf, size_t size,
			  uint64_t off);
/* fs_stats_file_copy() - a malloc'd copy of the snapshot (made now when
 * there is none yet): what an open handle serves. 0 or -ENOMEM/-EFBIG. */
int fs_stats_file_copy(struct lp_fs *fs, uint8_t **ret_data, size_t *ret_len);
void fs_stats_file_destroy(struct fs_stats_file *sf);

/* --- sequential read detection (file_read.c) --- */

/*
 * Where the last read of a file ended, per inode without an open handle: a
 * small table indexed by entry index (FS_SEQ_SLOTS, a power of two), each
 * slot one word: the rest of the entry index above the slot bits, then the
 * end offset (FS_SEQ_OFF_BITS). Files sharing a slot only lose the
 * read-ahead hint; nothing is allocated per inode.
 */
#define FS_SEQ_SLOTS 256
#define FS_SEQ_OFF_BITS 40

/* --- prefetch and background fetch (scheduler.c) --- */

/* prioritised fetching, shared by the layers of a process */
struct lp_fs_activity {
	atomic_uint ondemand; /* on-demand fetches running */
	atomic_uint prefetch; /* prefetch runs running */
	atomic_uint_fast64_t last_ns; /* CLOCK_MONOTONIC, when one ended */
	atomic_uint_fast64_t last_ondemand_ns; /* when an on-demand one ended */
	atomic_uint streams; /* prefetch and background reads in flight */
};

/* fs_activity_begin/end() - a prioritised fetch of @fs starts/ends */
void fs_activity_begin(struct lp_fs *fs, bool ondemand);
void fs_activity_end(struct lp_fs *fs, bool ondemand);

/* fs_sched_ondemand_miss() - an on-demand read of @fs claimed chunks
 * [@ci, @end): the background moves on from @end (scheduler.c) */
void fs_sched_ondemand_miss(struct lp_fs *fs, uint32_t ci, uint32_t end);

/* fs_sched_ondemand_read() - an on-demand read of @fs wants chunk @ci (hit
 * or not): the scheduler watches whether the workload reads in blob order */
void fs_sched_ondemand_read(struct lp_fs *fs, uint32_t ci);

enum fs_job_state {
	FS_JOB_OFF = 0, /* disabled, or nothing to do */
	FS_JOB_PENDING,
	FS_JOB_RUNNING,
	FS_JOB_DONE,
	FS_JOB_FAILED,
	FS_JOB_STOPPED, /* unmounted, or the memory budget is full */
};

const char *fs_job_state_name(enum fs_job_state s);

/*
 * The scheduler: FS_PLAN_STREAMS workers per layer, each taking the next
 * run (prefetch range first, then the background's order, fs_plan_next)
 * and fetching it with fs_chunk_get, while the activity's stream count
 * allows (fs_plan_background_width).
 */
struct fs_fetcher {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* stop, a job settled, a run ended */
	bool stop; /* protected by lock */
	unsigned int nr_threads; /* protected by lock; started workers */
	pthread_t threads[FS_PLAN_STREAMS];
	enum fs_job_state prefetch; /* protected by lock */
	int prefetch_error; /* protected by lock */
	enum fs_job_state background; /* protected by lock */
	int background_error; /* protected by lock */
	/* what prefetch fetches, in order (immutable once made by
	 * fs_sched_plan_prefetch): the profile's runs, then the prefetch
	 * range [0, prefetch landmark) */
	struct fs_plan_run *pf_runs;
	uint32_t pf_nr_runs;
	uint32_t pf_run; /* protected by lock; the run being handed out */
	uint32_t pf_next; /* protected by lock; next chunk to hand out */
	unsigned int pf_running; /* protected by lock; runs in flight */
	bool pf_finishing; /* protected by lock; one worker checks the range */
	uint32_t bg_cursor; /* protected by lock; where fs_plan_next starts */
	unsigned int bg_running; /* protected by lock; runs in flight */
	uint8_t *bg_tried; /* protected by lock; bitmap over chunks */
	uint64_t bg_deferred_ns; /* protected by lock */
	uint64_t hint_seen; /* protected by lock; last hint acted on */
	unsigned int streak; /* protected by lock; runs since the last jump */
	/* protected by lock; a background read succeeded since the start or
	 * the last outage: until then one read at a time probes the source */
	bool proven;
	unsigned int backoff_ms; /* protected by lock; 0: no outage */
	uint64_t retry_at_ns; /* protected by lock; no run before then */
	int bg_last_err; /* protected by lock; a chunk skipped */
	/* on-demand misses: (generation << 32) | end chunk, the first chunk
	 * of the latest, and how many fell past the prefetch range */
	atomic_uint_fast64_t hint;
	atomic_uint hint_ci;
	/* on-demand reads past the prefetch range: (last chunk << 32) | how
	 * many in a row went on in blob order (fs_plan_in_order) */
	atomic_uint_fast64_t order;
	atomic_uint_fast64_t misses;
};

/*
 * fs_sched_plan_prefetch() - at lp_fs_new(), with opts.prefetch: resolve
 * @opts->prefetch_files in the TOC (paths the layer does not have, and
 * files without data, are passed over and counted) and plan the prefetch:
 * their chunks in the profile's order (fs_plan_profile_runs), then the
 * prefetch range. Fills fs->pf_* and fetch.pf_runs. Returns 0 or -ENOMEM
 * (@err set).
 */
int fs_sched_plan_prefetch(struct lp_fs *fs, const struct lp_fs_options *opts,
			   struct lp_err *err);
int fs_fetcher_start(struct lp_fs *fs);
void fs_fetcher_stop(struct lp_fs *fs);

/* --- access recording (record.c) --- */

struct fs_record {
	pthread_mutex_t lock;
	atomic_bool on; /* set once by lp_fs_record_start() */
	uint8_t *seen; /* bitmap over TOC entries; protected by lock */
	uint32_t *order; /* first accesses, entry indexes; protected by lock */
	size_t n; /* entries in order; protected by lock */
};

/* fs_record_access() - note an open/readlink of entry @idx when recording */
void fs_record_access(struct lp_fs *fs, uint32_t idx);
void fs_record_destroy(struct fs_record *rec);

/* --- the filesystem --- */

/* disk-tier writes after publish (pipeline.c): pinned chunks, written by
 * one thread so that no reader waits for a disk write (an on-demand fetch
 * that finds the queue full leaves the copy for later, unpinned) */
#define FS_WRITE_QUEUE 64
/* bytes queued at most: pinned chunks are memory outside the tier's budget */
#define FS_WRITE_QUEUE_BYTES (8 * LP_MIB)
struct fs_writer {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* queued, stop */
	struct fs_chunk *queue[FS_WRITE_QUEUE]; /* protected by lock; pinned */
	unsigned int head, n; /* protected by lock */
	size_t bytes; /* protected by lock; of the queued chunks */
	/* protected by lock: chunks whose copy an on-demand fetch left for
	 * later (the queue was full), a bitmap over the layer's chunks (made
	 * when first needed), how many, and where the writer looks next */
	uint8_t *later;
	uint32_t nr_later, later_pos;
	bool writing; /* protected by lock; one taken off, being written */
	bool started, stop; /* protected by lock */
	pthread_t thread;
};

int fs_writer_start(struct lp_fs *fs);
/* fs_writer_stop() - write what is queued, then join the thread */
void fs_writer_stop(struct lp_fs *fs);
/* fs_writer_idle() - whether every chunk queued so far is written (takes
 * writer.lock, a leaf: callable with fetch.lock held) */
bool fs_writer_idle(struct lp_fs *fs);

/* a pool of idle decoders (chunk_fetch.c) */
struct fs_decoders {
	pthread_mutex_t lock;
	struct lp_chunk_decoder *idle[FS_MAX_IDLE_DECODERS]; /* protected by
								 lock */
	unsigned int nr_idle; /* protected by lock */
};

void fs_decoders_destroy(struct fs_decoders *d);

struct lp_fs {
	struct lp_layer *layer; /* owned */
	const struct lp_toc *toc; /* borrowed from layer */
	struct lp_blob *blob; /* borrowed from layer */
	/* a plain gzip layer read through its gzip index (borrowed from
	 * layer), else NULL: chunks are pieces of spans (fs/chunk_fetch.c),
	 * and a file's tar header is checked before its bytes are served */
	const struct lp_index *ix;
	atomic_uchar *hdr_checked; /* [nr_entries]; with ix */
	/* with ix: the index's span cache as a member of the memory budget
	 * (fs/index_fetch.c), charged there like the chunk tier */
	struct fs_mem_member span_member;
	struct lp_fs_budget *span_budget; /* NULL: not joined */
	/* with ix and a cache directory: the spans' disk tier
	 * (fs/span_disk.c), under the span cache; else NULL */
	struct fs_span_disk *span_disk;
	/* with ix: the last spans decoded whole (index_fetch.c), or NULL */
	struct fs_span_outs *span_outs;
	/* with ix: the proving pass (fs/index_proof.c) */
	struct fs_proof {
		pthread_t thread;
		bool wanted; /* opts.background_fetch was asked for */
		bool started; /* set and read by the mounting thread only */
		atomic_bool stop;
		atomic_int state; /* enum fs_job_state */
		atomic_int poisoned; /* 0, or the -errno of the lie found */
		/* a trusted index's pass: how long it yielded to reads
		 * (index_proof.c; the pass's thread only) */
		unsigned int deferred_ms;
		/* the workload reads the layer in blob order: the pass
		 * yields no more, and keeps pace with the readers behind it
		 * (the pass's thread only) */
		bool in_order;
	} proof;
	enum lp_compression comp;
	struct lp_fs_options opts;
	char *cache_dir; /* owned copy of opts.cache_dir */
	uint64_t ctl_dir_ino; /* /.lazypull */
	uint64_t stats_ino; /* /.lazypull/stats */
	uint64_t prefetch_end; /* blob offset */
	uint32_t prefetch_chunks; /* chunks before prefetch_end */
	/* the prefetch profile (opts.prefetch_files), immutable after
	 * lp_fs_new: a bitmap over the chunks it lists (NULL: no profile),
	 * and its files found, not found (or without data), chunks */
	uint8_t *pf_listed;
	uint32_t pf_files, pf_missing, pf_chunks;
	uint64_t pf_bytes; /* compressed bytes of those chunks */
	uint64_t total_compressed; /* bytes covered by chunks */
	uint64_t total_uncompressed;
	struct fs_cache cache;
	struct fs_disk *disk; /* NULL: memory only */
	struct fs_decoders decoders;
	struct fs_fetcher fetch;
	struct fs_writer writer;
	struct fs_stats stats;
	struct fs_record record;
	struct fs_stats_file stats_file;
	atomic_uint_fast64_t seq[FS_SEQ_SLOTS]; /* sequential detection */
	struct lp_fs_activity own_activity; /* when opts.activity is NULL */
	struct lp_fs_activity *act; /* opts.activity or &own_activity */
	struct lp_fs_budget *own_budget; /* when opts.mem_budget is NULL */
};

/*
 * fs_chunk_range() - the blob range chunk @c's bytes are read from: its
 * compressed member, or for a gzip index layer its span exactly (two spans
 * share a byte, which the TOC's derived compressed size leaves out).
 */
void fs_chunk_range(const struct lp_fs *fs, const struct lp_toc_chunk *c,
		    uint64_t *ret_start, uint64_t *ret_end);

/*
 * fs_check_file() - for a gzip index layer, check entry @idx's own tar
 * header (a hardlink's own, not its target's) against the index's file
 * table once (lp_layer_check_file(), which checks the headers around it
 * in its span with it: each found true is marked too); every later call
 * answers at once. A lie (-EBADMSG) poisons the mount. 0 for other layers.
 * Returns 0, -EBADMSG (@err says why), or the blob's error.
 */
int fs_check_file(struct lp_fs *fs, uint32_t idx, struct lp_err *err);

/*
 * The proving pass of a gzip index layer (index_proof.c): started with the
 * background fetch, stopped (joined) before the fs goes. fs_poison() marks
 * the mount as lied to (@code, @why logged once); fs_poisoned() is then
 * -EIO (@err says why), else 0.
 */
int fs_proof_start(struct lp_fs *fs);
void fs_proof_stop(struct lp_fs *fs);
void fs_poison(struct lp_fs *fs, int code, const struct lp_err *why);
int fs_poisoned(struct lp_fs *fs, struct lp_err *err);

/* --- the memory tier and single flight (chunk_cache.c) --- */

/*
 * fs_cache_init() - an empty tier of a layer of @nr_chunks chunks, a member
 * of @mem (borrowed, outlives the tier). @keep_background: keep chunks
 * fetched in the background (no disk tier has them).
 */
int fs_cache_init(struct fs_cache *c, uint32_t nr_chunks,
		  struct lp_fs_budget *mem, bool keep_background);
void fs_cache_destroy(struct fs_cache *c);

/* what fs_chunk_claim() found */
enum fs_claim {
	FS_CLAIM_READY, /* present and verified (pinned when asked) */
	FS_CLAIM_WAITED, /* as READY, after waiting for its fetcher */
	FS_CLAIM_BUSY, /* another thread is loading it; not waited for */
	FS_CLAIM_CLAIMED, /* absent: claimed, the caller must fill it */
};

/*
 * fs_chunk_claim() - look chunk @ci up. READY: pinned into *@ret_chunk when
 * @ret_chunk is given. LOADING: with @ret_chunk, wait until it settles and
 * answer WAITED (pinned) or with its fetcher's error (*@ret_retryable its verdict);
 * without, FS_CLAIM_BUSY. Absent: claim it and the absent chunks after it
 * below @end (stopping at the first present one) for the caller to fill
 * and publish, *@ret_n of them, the first pinned when @ret_chunk is given.
 * Returns an enum fs_claim, or -errno (-ENOMEM, the fetcher's error).
 */
int fs_chunk_claim(struct lp_fs *fs, uint32_t ci, uint32_t end,
		   struct fs_chunk **ret_chunk, uint32_t *ret_n,
		   bool *ret_retryable);

/*
 * fs_chunk_written() - chunk @ch's disk-tier copy is written (or given
 * up): a transient chunk leaves the table, readers find it on disk. Call
 * before dropping the writer's pin.
 */
void fs_chunk_written(struct lp_fs *fs, struct fs_chunk *ch);

/* fs_chunk_pin_ready() - chunk @ci pinned when it is READY in memory, else
 * NULL (not a use: its place in the LRU stays). */
struct fs_chunk *fs_chunk_pin_ready(struct lp_fs *fs, uint32_t ci);

/* fs_chunk_put() - unpin; NULL allowed. */
void fs_chunk_put(struct lp_fs *fs, struct fs_chunk *chunk);

/*
 * fs_chunk_publish() - settle claimed chunk @ci: READY with @data (the
 * cache takes it; verified) when @res is 0, else FAILED with @res, which
 * its waiters get as retryable when @retryable (the blob read's verdict).
 * Wakes the readers waiting on it. With @ret_pin and @res 0, the chunk is
 * also pinned for the caller (who drops it with fs_chunk_put).
 */
void fs_chunk_publish(struct lp_fs *fs, uint32_t ci, uint8_t *data, int res,
		      bool retryable, enum fs_fetch_kind kind,
		      struct fs_chunk **ret_pin);

/* fs_chunk_is_cached() - whether chunk @ci is READY in memory. */
bool fs_chunk_is_cached(struct lp_fs *fs, uint32_t ci);

/* fs_chunk_is_present() - whether chunk @ci is READY or being loaded. */
bool fs_chunk_is_present(struct lp_fs *fs, uint32_t ci);

/* fs_cache_usage() - bytes in the memory tier now and at most. */
void fs_cache_usage(struct lp_fs *fs, size_t *ret_used, size_t *ret_peak);

/* --- the pipeline (pipeline.c) --- */

/*
 * fs_chunk_get() - make chunk @ci present and verified. When it must be
 * fetched, the absent chunks after it that the planner lets one blob read
 * cover (fs_plan_run_end with fs_plan_run_bytes(@kind)), up to (not
 * including) @extend_to, are claimed and fetched in the same read. With
 * @ret_chunk the chunk is returned pinned (drop with fs_chunk_put); without
 * it nothing is pinned and a chunk another thread is loading is not waited
 * for. *@ret_next (may be NULL) is the first chunk index after what was
 * handled. Returns 0 or -errno with @err naming the file and offset.
 */
int fs_chunk_get(struct lp_fs *fs, uint32_t ci, uint32_t extend_to,
		 enum fs_fetch_kind kind, struct fs_chunk **ret_chunk,
		 uint32_t *ret_next, struct lp_err *err);

/* --- fetching (chunk_fetch.c) --- */

/*
 * The result of one chunk of a run: @data (malloc'd, passed on) holds its
 * verified bytes when @res is 0, else NULL; @from_disk when the disk tier
 * had it; @dg (with @res 0, NULL for a gzip index layer's chunk) the digest
 * it was verified against, read once per chunk by the fetch and carried on
 * to the disk-tier write.
 */
typedef void (*fs_settle_fn)(void *arg, uint32_t ci, uint8_t *data, int res,
			     bool retryable, bool from_disk,
			     const struct lp_digest *dg);

/*
 * fs_fetch_run() - fill the @n claimed chunks from @first: from the disk
 * tier when there, the rest with one blob read per contiguous group (a
 * single group streamed), each decoded and verified, and hand each to
 * @settle as soon as its result is known (in no particular order between
 * groups). Returns the first chunk's result; @err gets the message of its
 * failure.
 */
int fs_fetch_run(struct lp_fs *fs, uint32_t first, uint32_t n,
		 fs_settle_fn settle, void *arg, struct lp_err *err);

/*
 * fs_index_fetch_run() - fs_fetch_run() for a layer mounted through a gzip
 * index (index_fetch.c): each chunk inflated from its span, the spans
 * through the index's span cache (fetched once, digest compared), and
 * settled in order. Returns the first chunk's result.
 */
int fs_index_fetch_run(struct lp_fs *fs, uint32_t first, uint32_t n,
		       fs_settle_fn settle, void *arg, struct lp_err *err);
/*
 * fs_index_read() - the layer's uncompressed bytes [@off, @off + @len)
 * into @buf as the chunks get theirs (each span's piece from the span
 * decoded whole, which stays among the mount's decoded spans for the
 * reads of its files after it; from proven checkpoints only, unless the
 * index is trusted or the window rule is on), counted in the mount's
 * stats: the header checks' reads (fs_check_file). Where a span cannot be
 * started from (not proven, proven-only), one stream from the last
 * proven checkpoint reads the rest of the range and keeps nothing
 * decoded. Returns 0 or -errno with @err saying why (-EBADMSG: a lie;
 * -ERANGE: past the end).
 */
int fs_index_read(struct lp_fs *fs, uint64_t off, void *buf, size_t len,
		  struct lp_err *err);
/*
 * fs_index_spans_join() - charge the span cache of the index mount @fs to
 * budget @b (its spans then leave when the budget needs room, the coldest
 * chunk or span of any layer first); fs_index_spans_leave() drops them all
 * and leaves (before the budget is freed). Call with no other thread using
 * the index. Returns 0 or -ENOMEM.
 */
int fs_index_spans_join(struct lp_fs *fs, struct lp_fs_budget *b);
void fs_index_spans_leave(struct lp_fs *fs);
/*
 * fs_index_streams_wait() - wait for the threads of the spans being
 * streamed (fs/index_fetch.c stream_start()) to end; called once no
 * reader is left, before the span tiers go.
 */
void fs_index_streams_wait(struct lp_fs *fs);
/* fs_index_streams_stop() - the unmount begins: every stream stops at its
 * next bytes (before the pass is joined: it may wait for span 0's stream,
 * fs_index_stream_first()) */
void fs_index_streams_stop(struct lp_fs *fs);
/*
 * fs_index_streamed() - whether the mount serves its spans as they come
 * (a trusted index with grain digests, spans that fit a decoded output):
 * its header checks then read only up to their header.
 */
bool fs_index_streamed(struct lp_fs *fs);
/*
 * fs_index_stream_first() - a mount that streams its spans, whose proving
 * pass is about to start: span 0 streamed now (reserved in the span cache
 * first, so that the pass and its read-ahead wait for this fetch instead
 * of making their own), its readers served as its bytes come
 */
void fs_index_stream_first(struct lp_fs *fs);
/*
 * fs_index_disk_join() - with a cache directory, put the spans' disk tier
 * (span_disk.c) under the span cache of the index mount @fs (lp_fs_new,
 * before any thread uses the index); 0 without one. Returns 0: a tier
 * that cannot be opened (the directory's file system, its permissions) is
 * logged and the mount goes on without it. fs_index_disk_leave() - take it away, writing what is
 * queued (lp_fs_free, after every thread that reads the index stopped).
 */
int fs_index_disk_join(struct lp_fs *fs, struct lp_err *err);
void fs_index_disk_leave(struct lp_fs *fs);

/* --- the disk tier of a gzip index layer's spans (span_disk.c) --- */

struct fs_span_disk;
struct fs_span_disk_stats {
	uint64_t writes, write_bytes; /* spans written */
	uint64_t dropped_writes; /* the queue full, or after drop */
	uint64_t write_errors;
	uint64_t evicted_files; /* layers' files deleted for the bound */
};
/*
 * fs_span_disk_open() - the disk tier of @ix's layer in @cache_dir
 * (@cache_dir/spans/<layer hex>, created sparse at the blob's size;
 * the spans already there found from its extents), at most @budget bytes
 * of such files in the directory. Starts no thread. Returns 0 or -errno
 * with @err set; close with fs_span_disk_close() (writes what is queued;
 * NULL allowed).
 * fs_span_disk_store() - its hooks for lp_index_span_cache_store().
 * fs_span_disk_drop() - the index was found lying: delete the layer's
 * file, write nothing more.
 */
int fs_span_disk_open(const char *cache_dir, const struct lp_index *ix,
		      uint64_t budget, struct fs_span_disk **ret,
		      struct lp_err *err);
void fs_span_disk_close(struct fs_span_disk *d);
void fs_span_disk_store(struct fs_span_disk *d,
			struct lp_index_span_store *ret);
void fs_span_disk_drop(struct fs_span_disk *d);
void fs_span_disk_stats(struct fs_span_disk *d, struct fs_span_disk_stats *ret);

/*
 * fs_index_span_decoded() - span @i of the index mount @fs decoded whole by
 * the proving pass (lp_index_prove_hooks.decoded: the layer's bytes, from
 * the blob's first byte through verified spans): kept among the spans
 * decoded (copied; @out stays the caller's) for the readers behind the
 * pass, who copy their pieces instead of inflating the span again (until
 * one is used, the pass's next output replaces its oldest unused one, and
 * readers' own decodes leave them be while they are under half the
 * slots). Nothing when the mount keeps no decoded spans or @len is over
 * fs_index_out_max(). fs_index_out_max() - the largest span output it
 * keeps, 0 for none. The outputs are charged to the memory budget, which
 * takes them out under pressure (cold ones first, like the span cache's).
 * fs_index_outs_drop_cold() - drop (and uncharge) the outputs of the pass
 * and of fs_index_decode_ahead() no reader used: when the pass ends with
 * no reader following it, and when the decoding ahead ends.
 */
void fs_index_span_decoded(struct lp_fs *fs, size_t i, const uint8_t *out,
			   size_t len);
size_t fs_index_out_max(const struct lp_fs *fs);
void fs_index_outs_drop_cold(struct lp_fs *fs);
/*
 * fs_index_outs_behind() - whether readers of the index mount @fs follow
 * the proving pass (within @follow_ns one got a piece of a span decoded
 * whole at most @follow_spans spans before the last the pass handed over),
 * none waits for it (read_span_piece, or lp_index_wait_prover() anywhere), and
 * an output it handed over, after the readers' span, is still unread: the
 * pass's pacing (index_proof.c) then waits before it hands over the next.
 */
bool fs_index_outs_behind(struct lp_fs *fs, uint64_t follow_ns,
			  size_t follow_spans);
/*
 * fs_index_outs_reader() - the span the index mount @fs's readers last got
 * a piece of from a span decoded whole, and when (*@ret_ns; 0: never).
 * fs_index_decode_ahead() - decode span @i whole for them, kept as the
 * pass's outputs are (cold), unless it is kept already: for readers that
 * read the layer in order after the pass (index_proof.c), so that they
 * copy instead of inflating on the FUSE threads. Only a span that may be
 * started at (proven, or the index trusted). Returns 0, -ENOENT (not
 * such a span), or the span's or the decode's error (nothing kept; a
 * reader's own read of the span finds out what it means).
 */
size_t fs_index_outs_reader(struct lp_fs *fs, uint64_t *ret_ns);
/* fs_index_outs_wait_reader() - wait until the readers of the index mount
 * @fs get a piece of another span than @at (fs_index_outs_reader()), at
 * most @max_ns. */
void fs_index_outs_wait_reader(struct lp_fs *fs, size_t at, uint64_t max_ns);
/* fs_index_outs_wake() - wake such a wait (the pass stopping: it also ends
 * when fs->proof.stop is set) */
void fs_index_outs_wake(struct lp_fs *fs);
int fs_index_decode_ahead(struct lp_fs *fs, size_t i);
/* fs_index_pass_waiters() - readers of the index mount @fs waiting for the
 * proving pass to hand over the span they read (index_fetch.c): a pass
 * that yields to reads must not yield to these */
unsigned int fs_index_pass_waiters(struct lp_fs *fs);

/*
 * fs_chunk_error() - fill @err with "layer L: file F: chunk at offset O
 * (blob offset B+N): @why" for chunk @ci; returns @code.
 */
int fs_chunk_error(struct lp_fs *fs, uint32_t ci, int code, const char *why,
		   struct lp_err *err);

/*
 * fs_chunk_error_from() - fs_chunk_error() for an error caused by @cause
 * (a blob read's error; NULL: none): @err keeps its retryable mark and
 * HTTP status (lp_err_set_from).
 */
int fs_chunk_error_from(struct lp_fs *fs, uint32_t ci, int code,
			const struct lp_err *cause, const char *why,
			struct lp_err *err);

#endif /* LP_FS_INT_H */
