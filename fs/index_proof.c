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
 * index: the pass stops and reads go on as before it.
 *
 * Lock order: no locks; the state is in atomics (fs_int.h, struct
 * fs_proof).
 */
#include <errno.h>

#include "fs_int.h"
#include "lp_log.h"

static bool proof_stop(void *arg)
{
	struct lp_fs *fs = arg;

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

static void *proof_main(void *arg)
{
	struct lp_fs *fs = arg;
	struct lp_index_stream_stats st = { 0 };
	struct lp_err err = { 0 };
	int r;

	r = lp_layer_prove(fs->layer, proof_stop, fs, &st, &err);
	atomic_fetch_add(&fs->stats.fetched_bytes, st.bytes_fetched);
	atomic_fetch_add(&fs->stats.blob_reads, st.spans);
	if (r == 0) {
		atomic_store(&fs->proof.state, FS_JOB_DONE);
		lp_log_info("layer %s: gzip index proven (%zu checkpoints, "
			    "%llu bytes read)",
			    lp_blob_name(fs->blob),
			    lp_index_nr_checkpoints(fs->ix),
			    (unsigned long long)st.bytes_fetched);
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
	pthread_join(fs->proof.thread, NULL);
	fs->proof.started = false;
}
