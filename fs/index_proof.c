// SPDX-License-Identifier: Apache-2.0
/*
 * The proving pass of a layer mounted through its gzip index, and what a
 * lie found costs the mount. Until the pass is through, reads start at
 * proven checkpoints (or, opted in, under the window rule, which believes
 * an unproven checkpoint's position), the span digests vouch for the spans
 * and each file's tar header (a hardlink's own) is checked before the
 * file; the other metadata, and the span digests themselves, are the
 * index's word until the pass (docs/format.md, "mounting through a gzip
 * index", says exactly what is verified when). The pass
 * (lp_layer_prove(), on a thread of its own while the background fetch is
 * on) reads the layer in order from its first byte, proves every
 * checkpoint as it passes (later reads decode once, from the span they
 * need) and checks all else the index claims, the blob's sha256 last. A
 * lie, found by the pass or by a read, poisons the mount: it is logged
 * once with its reason, and from then on every read, open, lookup and
 * attribute of the layer's entries gets EIO (what was served before is
 * not recalled). A source that fails (network) says nothing about the
 * index: the pass stops and reads go on as before it. The pass also
 * spares the readers its work: each header it found true is marked
 * checked, each span it inflated is handed to the mount's decoded spans
 * (proof_decoded(), which keeps pace with readers that follow it), and
 * after it its thread decodes ahead of readers reading in order
 * (decode_ahead()).
 *
 * Lock order: no locks; the state is in atomics (fs_int.h, struct
 * fs_proof).
 */
#include <errno.h>
#include <time.h>

#include "fs_int.h"
#include "lp_log.h"

/*
 * A trusted index (signed by a key the node trusts, lp_index_trust()):
 * reads start at any checkpoint and need no pass, so the pass yields to
 * them, like the chunk background: it waits while on-demand fetches ran
 * within opts.background_quiet_ms, for at most FS_PROOF_MAX_DEFER_MS in
 * all (a busy workload cannot put the check off for ever). It does not
 * wait at the mount for reads to come: tried (background_quiet_ms after it
 * began, docs/benchmarks.md "Everything together"), the import fetched
 * 10 MB less but took as long, and reading everything took 1.15x longer.
 */
#define FS_PROOF_MAX_DEFER_MS (60 * 1000)
#define FS_PROOF_DEFER_STEP_MS 20

/*
 * Whether the workload reads the layer in blob order (the scheduler's rule,
 * fs_plan_in_order: FS_PLAN_IN_ORDER_RUN on-demand reads in a row; from
 * then on for good): it reads what the pass reads next. The pass's thread
 * only.
 */
static bool reads_in_order(struct lp_fs *fs)
{
	if ((uint32_t)atomic_load(&fs->fetch.order) >= FS_PLAN_IN_ORDER_RUN)
		fs->proof.in_order = true;
	return fs->proof.in_order;
}

static bool proof_busy(struct lp_fs *fs)
{
	uint64_t quiet = (uint64_t)fs->opts.background_quiet_ms * 1000000;

	/* a workload that reads the layer in blob order: yielding would
	 * leave it fetching span after span on demand, a round trip each,
	 * and the link idle while it works through them (readall through a
	 * signed index: 4.5 s of 10.4 below half the line). From then on the
	 * pass yields no more */
	if (reads_in_order(fs))
		return false;
	/* readers waiting for the pass itself (read_span_piece: its span's
	 * output) */
	if (fs_index_pass_waiters(fs))
		return false;
	return atomic_load(&fs->act->ondemand) > 0 ||
	       lp_mono_ns() - atomic_load(&fs->act->last_ondemand_ns) < quiet;
}

static bool proof_stop(void *arg)
{
	struct lp_fs *fs = arg;
	const struct timespec step = { 0, FS_PROOF_DEFER_STEP_MS * 1000000L };

	while (lp_index_trusted(fs->ix) && !atomic_load(&fs->proof.stop) &&
	       fs->proof.deferred_ms < FS_PROOF_MAX_DEFER_MS &&
	       proof_busy(fs)) {
		nanosleep(&step, NULL);
		fs->proof.deferred_ms += FS_PROOF_DEFER_STEP_MS;
	}
	return atomic_load(&fs->proof.stop);
}

void fs_poison(struct lp_fs *fs, int code, const struct lp_err *why)
{
	int none = 0;

	if (!atomic_compare_exchange_strong(&fs->proof.poisoned, &none, code))
		return; /* logged once */
	lp_log_err("layer %s: its gzip index lies: %s; every read, lookup "
		   "and attribute of this mount fails with EIO from now on",
		   lp_blob_name(fs->blob), lp_err_str(why, code));
	/* what the disk tier has of the layer came through a liar's index */
	fs_span_disk_drop(fs->span_disk);
}

int fs_poisoned(struct lp_fs *fs, struct lp_err *err)
{
	if (!fs->ix || !atomic_load(&fs->proof.poisoned))
		return 0;
	return lp_err_set(err, -EIO,
			  "layer %s: its gzip index was found lying (logged "
			  "once): reads refused",
			  lp_blob_name(fs->blob));
}

/* the pass found file record @k's header true: readers need not check
 * the entry's again (the same check, on bytes from a stream that began at
 * the blob's first byte) */
static void proof_checked(void *arg, size_t k)
{
	struct lp_fs *fs = arg;
	uint32_t t = lp_layer_file_entry(fs->layer, k);

	if (t == LP_TOC_NO_INDEX || atomic_load(&fs->hdr_checked[t]))
		return;
	atomic_store(&fs->hdr_checked[t], 1);
	atomic_fetch_add(&fs->stats.index_pass_checked, 1);
}

/*
 * The pass's span @i, decoded whole, for the readers (fs_index_span_decoded):
 * they copy their pieces from it instead of inflating the span again on
 * the FUSE threads (readall of python3: every span decoded twice, once
 * here, once by them). The mount keeps a few spans decoded; a pass running
 * ahead of readers that follow it would push out its own outputs before
 * they get there. So when the workload reads the layer in blob order
 * (reads_in_order()) and follows the pass (within FS_PROOF_FOLLOW_MS one
 * got a piece of a span at most FS_PROOF_FOLLOW_SPANS before its last
 * output), none waits for the pass, and its last output is unread, it
 * waits for them (at most FS_PROOF_PACE_MAX_MS a span): they decode what
 * lies between themselves, then copy from its outputs, one span behind
 * it. Readers elsewhere in the layer (an import's scattered files, which
 * do not read in order) never slow it down. Its read-ahead fetches on
 * meanwhile (index_pass_fetch.c, up to LP_INDEX_PASS_AHEAD_MAX), so the
 * link stays full as long as the readers keep up with it; when they do
 * not, they set the pace anyway.
 */
#define FS_PROOF_FOLLOW_MS 50
#define FS_PROOF_FOLLOW_SPANS 64
#define FS_PROOF_PACE_MAX_MS 2000
#define FS_PROOF_PACE_STEP_US 500

static void proof_decoded(void *arg, size_t i, const uint8_t *out, size_t len)
{
	struct lp_fs *fs = arg;
	const struct timespec step = { 0, FS_PROOF_PACE_STEP_US * 1000L };
	const uint64_t t0 = lp_mono_ns();

	while (reads_in_order(fs) && !atomic_load(&fs->proof.stop) &&
	       lp_mono_ns() - t0 < (uint64_t)FS_PROOF_PACE_MAX_MS * 1000000 &&
	       fs_index_outs_behind(fs, (uint64_t)FS_PROOF_FOLLOW_MS * 1000000,
				    FS_PROOF_FOLLOW_SPANS))
		nanosleep(&step, NULL);
	fs_index_span_decoded(fs, i, out, len);
}

/*
 * After the pass, while the workload reads the layer in blob order: its
 * thread decodes the span after the one the readers are in (on the other
 * core; FS_PROOF_AHEAD spans ahead), kept like its outputs, so they copy
 * instead of inflating on the FUSE threads. In proven-only mounts a
 * workload that reads everything often starts only when the pass is done
 * (a lookup of a directory deep in the layer, /var, waits for it): it then
 * reads the whole layer behind the pass, whose outputs are long gone.
 * Ends when the readers reach the last span, or have read nothing from a
 * decoded span for FS_PROOF_AHEAD_IDLE_MS. Between decodes it sleeps until
 * the readers move to another span (fs_index_outs_wait_reader(), at most
 * FS_PROOF_AHEAD_IDLE_STEP_MS), not polling them.
 */
#define FS_PROOF_AHEAD 1
#define FS_PROOF_AHEAD_IDLE_MS 3000
#define FS_PROOF_AHEAD_IDLE_STEP_MS 50

static void decode_ahead(struct lp_fs *fs)
{
	/* readers not (yet) in order: nothing to do but look again */
	const struct timespec idle = { 0,
				       FS_PROOF_AHEAD_IDLE_STEP_MS * 1000000L };
	const size_t nr = lp_index_nr_checkpoints(fs->ix);
	uint64_t t0 = lp_mono_ns(), t;
	size_t at, k;

	while (!atomic_load(&fs->proof.stop)) {
		at = fs_index_outs_reader(fs, &t);
		if (t > t0)
			t0 = t;
		if (lp_mono_ns() - t0 >
			    (uint64_t)FS_PROOF_AHEAD_IDLE_MS * 1000000 ||
		    (t && at + 1 >= nr))
			break;
		for (k = at + 1; t && reads_in_order(fs) && k < nr &&
				 k <= at + FS_PROOF_AHEAD;
		     k++)
			if (fs_index_decode_ahead(fs, k) < 0)
				break;
		if (reads_in_order(fs))
			fs_index_outs_wait_reader(
				fs, at,
				(uint64_t)FS_PROOF_AHEAD_IDLE_STEP_MS *
					1000000);
		else
			nanosleep(&idle, NULL);
	}
}

/* readers in blob order got a piece of a span decoded whole within
 * FS_PROOF_FOLLOW_MS: they follow the pass, and read its last outputs
 * next */
static bool readers_follow(struct lp_fs *fs)
{
	uint64_t t;

	(void)fs_index_outs_reader(fs, &t);
	return reads_in_order(fs) && t &&
	       lp_mono_ns() - t < (uint64_t)FS_PROOF_FOLLOW_MS * 1000000;
}

static void *proof_main(void *arg)
{
	struct lp_fs *fs = arg;
	const struct lp_index_prove_hooks hooks = {
		.stop = proof_stop,
		.checked = proof_checked,
		.decoded = fs_index_out_max(fs) ? proof_decoded : NULL,
		.decoded_max = fs_index_out_max(fs),
		.arg = fs,
	};
	struct lp_index_stream_stats st = { 0 };
	struct lp_err err = { 0 };
	int r;

	r = lp_layer_prove(fs->layer, &hooks, &st, &err);
	/* its outputs nobody read leave with it (as its spans do, format/
	 * index_spans.c), before it says it is through: a layer nobody reads
	 * holds nothing of it; those the readers right behind it are about
	 * to read stay until the decoding ahead ends */
	if (r < 0 || !readers_follow(fs))
		fs_index_outs_drop_cold(fs);
	atomic_fetch_add(&fs->stats.fetched_bytes, st.bytes_fetched);
	atomic_fetch_add(&fs->stats.blob_reads, st.spans);
	if (r == 0) {
		atomic_store(&fs->proof.state, FS_JOB_DONE);
		lp_log_info("layer %s: gzip index proven (%zu checkpoints, "
			    "%llu bytes read)",
			    lp_blob_name(fs->blob),
			    lp_index_nr_checkpoints(fs->ix),
			    (unsigned long long)st.bytes_fetched);
		/* a mount a read poisoned records nothing (the index held,
		 * but whatever the read found is looked at first) */
		if (fs->opts.index_proven && !atomic_load(&fs->proof.poisoned))
			fs->opts.index_proven(fs->opts.index_proven_arg);
		decode_ahead(fs);
		fs_index_outs_drop_cold(fs);
	} else if (r == -ECANCELED) {
		atomic_store(&fs->proof.state, FS_JOB_STOPPED);
	} else if (r == -EBADMSG) {
		/* poisoned before FAILED is published: whoever sees FAILED
		 * sees the poison */
		atomic_fetch_add(&fs->stats.verify_failures, 1);
		fs_poison(fs, r, &err);
		atomic_store(&fs->proof.state, FS_JOB_FAILED);
	} else {
		atomic_store(&fs->proof.state, FS_JOB_FAILED);
		lp_log_warn("layer %s: proving its gzip index stopped: %s; "
			    "reads go on under the window rule",
			    lp_blob_name(fs->blob), lp_err_str(&err, r));
	}
	return NULL;
}

int fs_proof_start(struct lp_fs *fs)
{
	int r;

	if (!fs->ix || !fs->proof.wanted)
		return 0;
	/* the pass reads span 0 first, and a container's create reads
	 * /etc/passwd there: served as it comes (fs_index_stream_first()),
	 * the pass's read-ahead starting after it */
	fs_index_stream_first(fs);
	atomic_store(&fs->proof.state, FS_JOB_RUNNING);
	r = -pthread_create(&fs->proof.thread, NULL, proof_main, fs);
	if (r < 0) {
		atomic_store(&fs->proof.state, FS_JOB_FAILED);
		return r;
	}
	fs->proof.started = true;
	return 0;
}

void fs_proof_stop(struct lp_fs *fs)
{
	if (!fs->proof.started)
		return;
	atomic_store(&fs->proof.stop, true);
	fs_index_outs_wake(fs); /* a decode-ahead waiting for the readers */
	pthread_join(fs->proof.thread, NULL);
	fs->proof.started = false;
}
