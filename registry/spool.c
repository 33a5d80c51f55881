// SPDX-License-Identifier: Apache-2.0
/*
 * The spool of one blob from a range-less host (a host that answers a Range
 * request with the whole blob, caps.c): the blob is taken once, streamed
 * into an unlinked local file as it arrives, and every read of the blob is
 * served from that file as soon as its bytes are in. Readers of bytes not
 * yet in wait for the stream instead of making requests of their own; when
 * nobody is streaming, the first such reader starts the feeder thread,
 * which asks for the missing tail (a Range from the spool's end; a host
 * that ignores it sends the whole blob again and what is there is skipped).
 * A feeder that fails (the host down, retries spent) wakes the readers
 * waiting with its error; the next read starts a new feeder that resumes
 * where the spool ends.
 *
 * The whole blob is hashed as it is appended and checked against its digest
 * when the last byte is in; on a mismatch the spool is emptied and the
 * owner's verdict hook (reg_spool_on_bad()) says whether to start over (the
 * hosts that fed it were rejected and another host may serve the blob: the
 * next read starts a feeder from byte 0) or to drop the spool for good:
 * every read fails (-EBADMSG), never a wrong byte from then on. Each
 * emptying starts a new generation: a read never returns bytes of two
 * feeds (one that had told its caller some bytes of the bad feed fails,
 * retryable, and is made again). The blob's last byte is
 * served only after that verdict, so a read of the end (where the TOC is)
 * never sees unverified bytes; bytes served before the end are the host's
 * word, as a 206 reply's are: fs/ verifies every chunk against the TOC
 * before it uses it.
 *
 * The file is unlinked from the start (O_TMPFILE, else mkstemp + unlink), so
 * it goes when the spool is freed (the blob closed) or the process dies:
 * nothing to clean up, nothing kept across mounts (fs/'s disk cache keeps
 * verified chunks across mounts and bounds them). Its size is the blob's,
 * bounded by LP_REG_SPOOL_MAX and by the free space of its disk: its
 * blocks are reserved when it is made (fallocate), so that spools made at
 * once cannot together leave less than LP_REG_SPOOL_SLACK free.
 *
 * Lock order: lock is a leaf; the feeder makes its requests without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lp_common.h"
#include "lp_io.h"
#include "lp_log.h"
#include "reg_int.h"

#define SPOOL_DEFAULT_DIR "/var/tmp" /* disk, not tmpfs, by convention */

struct reg_spool {
	int fd;
	uint64_t size;
	struct lp_digest digest;
	char name[LP_DIGEST_STR_LEN + 1];
	reg_spool_feed_fn feed;
	void *feed_ctx;
	reg_spool_bad_fn bad; /* NULL: a mismatch fails for good */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* bytes appended, a feeder ended, cancel */
	uint64_t fed; /* protected by lock: [0, fed) is in the file */
	/* protected by lock: [0, have) may be read: fed, but for the last
	 * byte, which waits for the verdict on the whole blob */
	uint64_t have;
	/* protected by lock: bumped each time the spool is emptied (a
	 * mismatch), so that a reader knows its bytes are of another feed */
	unsigned long gen;
	bool feeding; /* protected by lock: a feeder holds the claim */
	bool verified; /* protected by lock: complete and checked */
	int failed; /* protected by lock: -EBADMSG for good, else 0 */
	bool cancel; /* protected by lock: being freed */
	bool thread_live; /* protected by lock: started, not joined */
	pthread_t thread; /* protected by lock */
	unsigned long ends; /* protected by lock: feeders ended short */
	int end_r; /* protected by lock: the last such feeder's error */
	struct lp_err end_err; /* protected by lock: and its reason */
	/* the feeder's own (whoever holds the claim; no lock needed) */
	struct lp_sha256 *sha; /* over [0, fed) */
	uint64_t skip; /* body bytes of a 200 still to pass over */
	uint64_t body_left; /* bytes the current reply still owes */
	bool began;
	char *range; /* the request's Range header, rewritten per retry */
	size_t range_size;
};

/* $TMPDIR, else SPOOL_DEFAULT_DIR */
static const char *default_dir(void)
{
	const char *t = getenv("TMPDIR");

	return t && t[0] ? t : SPOOL_DEFAULT_DIR;
}

/* whether @d keeps LP_REG_SPOOL_SLACK free after @more bytes more */
static int check_free(const char *d, uint64_t more, const char *name,
		      struct lp_err *why)
{
	struct statvfs vfs;
	uint64_t avail;

	if (statvfs(d, &vfs) < 0)
		return 0; /* nothing known: the reservation decides */
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail >= more + LP_REG_SPOOL_SLACK)
		return 0;
	return lp_err_set(why, -ENOSPC,
			  "blob %s: %llu bytes do not fit in %s (%llu free, "
			  "%llu kept free)",
			  name, (unsigned long long)more, d,
			  (unsigned long long)avail,
			  (unsigned long long)LP_REG_SPOOL_SLACK);
}

/*
 * Reserve the blob's @size bytes for the spool file @fd in @d (its blocks
 * allocated now, so that spools made at the same time, in this process or
 * another, cannot together take the disk's last LP_REG_SPOOL_SLACK bytes:
 * each one's check below sees the others' reservations). A filesystem that
 * cannot allocate ahead (EOPNOTSUPP) gets no spool: there would be no such
 * guarantee.
 */
static int reserve(int fd, const char *d, uint64_t size, const char *name,
		   struct lp_err *why)
{
	int r;

	if (!size)
		return 0;
	if (fallocate(fd, 0, 0, (off_t)size) < 0) {
		r = -errno;
		return lp_err_set(why, r,
				  "blob %s: cannot reserve %llu bytes in %s: "
				  "%s",
				  name, (unsigned long long)size, d,
				  strerror(-r));
	}
	/* after the reservation: what the others reserved is counted */
	return check_free(d, 0, name, why);
}

int reg_spool_new(const char *dir, const struct lp_digest *digest,
		  uint64_t size, reg_spool_feed_fn feed, void *ctx,
		  struct reg_spool **ret_sp, struct lp_err *err)
{
	struct reg_spool *sp = NULL;
	char name[LP_DIGEST_STR_LEN + 1];
	struct lp_err why; /* the first directory's complaint */
	int r, i;

	lp_err_clear(&why);
	lp_digest_format(digest, name);
	if (size > LP_REG_SPOOL_MAX) {
		r = lp_err_set(err, -EFBIG,
			       "blob %s: %llu bytes, over the spool's bound "
			       "(%llu)",
			       name, (unsigned long long)size,
			       (unsigned long long)LP_REG_SPOOL_MAX);
		goto out;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		r = -ENOMEM;
		goto out;
	}
	sp->fd = -1;
	r = lp_sha256_new(&sp->sha);
	if (r < 0)
		goto out;
	/* the directory asked for (it may not exist yet: a cache directory
	 * is made when the filesystem opens, after the first read), else
	 * the temporary one */
	for (i = 0; i < 2 && sp->fd < 0; i++) {
		const char *d = i == 0 ? dir : default_dir();

		if (!d || (i == 1 && dir && !strcmp(d, dir)))
			continue;
		/* before: not even a moment's reservation of a disk that
		 * cannot take it */
		r = check_free(d, size, name, &why);
		if (r < 0)
			continue;
		r = lp_file_open_unlinked(d, ".lazypull-spool");
		if (r < 0) {
			lp_err_set(&why, r,
				   "blob %s: cannot make a spool file in %s: "
				   "%s",
				   name, d, strerror(-r));
			continue;
		}
		sp->fd = r;
		r = reserve(sp->fd, d, size, name, &why);
		if (r < 0) {
			close(sp->fd); /* and its blocks with it */
			sp->fd = -1;
		}
	}
	if (sp->fd < 0) {
		lp_err_set_from(err, &why, r, "%s", why.msg);
		goto out;
	}
	sp->size = size;
	sp->digest = *digest;
	memcpy(sp->name, name, sizeof(name));
	sp->feed = feed;
	sp->feed_ctx = ctx;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	*ret_sp = sp;
	sp = NULL;
	r = 0;
out:
	if (sp) {
		if (sp->fd >= 0)
			close(sp->fd);
		lp_sha256_free(sp->sha);
		free(sp);
	}
	return r;
}

void reg_spool_free(struct reg_spool *sp)
{
	bool live;

	if (!sp)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->cancel = true;
	live = sp->thread_live;
	sp->thread_live = false;
	pthread_cond_broadcast(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	if (live)
		pthread_join(sp->thread, NULL);
	close(sp->fd);
	lp_sha256_free(sp->sha);
	pthread_cond_destroy(&sp->cond);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

/* ---- the feeder ---- */

bool reg_spool_claim(struct reg_spool *sp)
{
	bool r;

	pthread_mutex_lock(&sp->lock);
	r = !sp->feeding && !sp->verified && !sp->failed && !sp->cancel;
	if (r)
		sp->feeding = true;
	pthread_mutex_unlock(&sp->lock);
	return r;
}

/* the spool's end, as the feeder sees it */
static uint64_t feeder_have(struct reg_spool *sp)
{
	uint64_t h;

	pthread_mutex_lock(&sp->lock);
	h = sp->fed;
	pthread_mutex_unlock(&sp->lock);
	return h;
}

static void set_range(struct reg_spool *sp)
{
	uint64_t h = feeder_have(sp);

	snprintf(sp->range, sp->range_size, "Range: bytes=%llu-%llu",
		 (unsigned long long)h, (unsigned long long)(sp->size - 1));
}

static int feed_begin(void *ctx, const struct lp_reg_resp *resp)
{
	struct reg_spool *sp = ctx;
	uint64_t h = feeder_have(sp);
	int r;

	sp->began = true;
	r = reg_reply_check(resp, h, sp->size - h, sp->size, NULL);
	if (r < 0)
		return r;
	if (r == 200) {
		/* the whole blob again: pass over what is there */
		sp->skip = h;
		sp->body_left = sp->size;
		return 0;
	}
	sp->skip = 0;
	sp->body_left = sp->size - h;
	return 0;
}

static int feed_write(void *ctx, const void *data, size_t len)
{
	struct reg_spool *sp = ctx;
	const uint8_t *p = data;
	uint64_t h;
	size_t n;
	ssize_t w;

	if (len > sp->body_left)
		return -EPROTO; /* more than the blob */
	sp->body_left -= len;
	n = (size_t)lp_min_u64(sp->skip, len);
	sp->skip -= n;
	p += n;
	len -= n;
	if (!len)
		return 0;
	pthread_mutex_lock(&sp->lock);
	h = sp->fed;
	if (sp->cancel) {
		pthread_mutex_unlock(&sp->lock);
		return -ECANCELED;
	}
	pthread_mutex_unlock(&sp->lock);
	while (len) {
		w = pwrite(sp->fd, p, len, (off_t)h);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		lp_sha256_update(sp->sha, p, (size_t)w);
		p += w;
		len -= (size_t)w;
		h += (uint64_t)w;
		pthread_mutex_lock(&sp->lock);
		sp->fed = h;
		sp->have = h < sp->size ? h : h - 1;
		pthread_cond_broadcast(&sp->cond);
		pthread_mutex_unlock(&sp->lock);
	}
	return 0;
}

static int feed_finish(void *ctx, const struct lp_reg_resp *resp)
{
	struct reg_spool *sp = ctx;

	if (resp->status != 200 && resp->status != 206)
		return -EPROTO;
	return feeder_have(sp) == sp->size ? 0 : -EAGAIN;
}

static bool feed_complete(void *ctx)
{
	struct reg_spool *sp = ctx;

	return sp->began && feeder_have(sp) == sp->size;
}

static void feed_reset(void *ctx)
{
	struct reg_spool *sp = ctx;

	sp->began = false;
	sp->skip = 0;
	sp->body_left = 0;
	set_range(sp); /* ask for the rest only */
}

void reg_spool_sink(struct reg_spool *sp, char *range, size_t range_size,
		    struct lp_reg_sink *ret_sink)
{
	sp->range = range;
	sp->range_size = range_size;
	sp->began = false;
	sp->skip = 0;
	sp->body_left = 0;
	set_range(sp);
	*ret_sink = (struct lp_reg_sink){ .begin = feed_begin,
					  .write = feed_write,
					  .finish = feed_finish,
					  .reset = feed_reset,
					  .complete = feed_complete,
					  .ctx = sp };
}

void reg_spool_on_bad(struct reg_spool *sp, reg_spool_bad_fn bad)
{
	sp->bad = bad;
}

/* the whole blob is in: verified, else emptied (and maybe failed) */
static void verdict(struct reg_spool *sp, bool *again)
{
	struct lp_digest got;
	bool retry;

	lp_sha256_final(sp->sha, &got); /* and reset for a new start */
	if (lp_digest_equal(&got, &sp->digest)) {
		sp->verified = true;
		sp->have = sp->size;
		return;
	}
	/* nothing of it is served from here on; the claim is still ours,
	 * so no feeder starts while the owner is asked. A reader that holds
	 * bytes of this feed sees the new generation (reg_spool_read) */
	sp->have = 0;
	sp->gen++;
	pthread_mutex_unlock(&sp->lock);
	retry = sp->bad && sp->bad(sp->feed_ctx);
	pthread_mutex_lock(&sp->lock);
	sp->fed = 0;
	if (retry) {
		/* the file keeps its blocks (reserved): the next feed
		 * overwrites them, readers go by the generation */
		*again = true;
		lp_log_warn("blob %s: the whole blob does not match its "
			    "digest: spool emptied, taken again from the "
			    "next host",
			    sp->name);
		return;
	}
	sp->failed = -EBADMSG;
	if (ftruncate(sp->fd, 0) < 0) /* its disk space back */
		lp_log_debug("blob %s: truncate of its spool: %s", sp->name,
			     strerror(errno));
	/* the one place this is said; reads refer to it */
	lp_log_err("blob %s: the whole blob from a range-less host does not "
		   "match its digest: spool dropped, its reads fail",
		   sp->name);
}

int reg_spool_release(struct reg_spool *sp, int r, const struct lp_err *cause,
		      struct lp_err *err)
{
	bool again = false;

	pthread_mutex_lock(&sp->lock);
	if (sp->fed == sp->size && !sp->verified && !sp->failed)
		verdict(sp, &again);
	sp->feeding = false;
	if (again) {
		/* not a feeder's end: the readers waiting start another */
		r = 0;
	} else if (sp->failed) {
		r = lp_err_set(err, sp->failed,
			       "blob %s: the whole blob does not match its "
			       "digest (range-less host)",
			       sp->name);
	} else if (sp->verified) {
		r = 0;
	} else {
		if (!r)
			r = -EAGAIN;
		sp->ends++;
		sp->end_r = r;
		lp_err_clear(&sp->end_err);
		if (cause && cause->msg[0])
			sp->end_err = *cause;
		else
			lp_err_set(&sp->end_err, r,
				   "blob %s: spool fed %llu of %llu bytes",
				   sp->name, (unsigned long long)sp->fed,
				   (unsigned long long)sp->size);
		/* a no-op when @err already holds the cause */
		lp_err_set_from(err, &sp->end_err, r, "%s", sp->end_err.msg);
	}
	pthread_cond_broadcast(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	return r;
}

static void *feeder_main(void *arg)
{
	struct reg_spool *sp = arg;
	struct lp_err err;
	int r;

	lp_err_clear(&err);
	r = sp->feed(sp->feed_ctx, sp, &err);
	reg_spool_release(sp, r, &err, NULL);
	return NULL;
}

/* with lock held: start the feeder thread (the claim is taken for it) */
static int start_feeder(struct reg_spool *sp)
{
	int e;

	if (sp->thread_live) {
		/* the last feeder has released: it is ending, if not gone */
		pthread_join(sp->thread, NULL);
		sp->thread_live = false;
	}
	sp->feeding = true;
	e = pthread_create(&sp->thread, NULL, feeder_main, sp);
	if (e) {
		sp->feeding = false;
		return -e;
	}
	sp->thread_live = true;
	return 0;
}

/* ---- readers ---- */

/*
 * buf[done, avail) from the file, without the lock; the bytes are of the
 * feed of generation @gen only if it is still the spool's when this
 * returns (the caller checks). Returns the bytes read: fewer when the file
 * came short (emptied under us).
 */
static size_t spool_pread(struct reg_spool *sp, uint8_t *buf, size_t done,
			  size_t avail, uint64_t off)
{
	ssize_t n;

	while (done < avail) {
		n = pread(sp->fd, buf + done, avail - done,
			  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

int reg_spool_read(struct reg_spool *sp, void *buf, size_t len, uint64_t off,
		   lp_blob_progress_fn fn, void *arg, struct lp_err *err)
{
	unsigned long ends, gen;
	size_t done = 0, got, avail, told = 0;
	int r = 0;

	pthread_mutex_lock(&sp->lock);
	ends = sp->ends;
	gen = sp->gen;
	for (;;) {
		if (sp->failed) {
			r = lp_err_set(err, sp->failed,
				       "blob %s: the whole blob does not match "
				       "its digest (range-less host)",
				       sp->name);
			break;
		}
		if (sp->gen != gen) {
			/* emptied after a mismatch: buf[0, done) is of the
			 * bad feed. Unreported, it is read again from the
			 * next feed; reported final, it cannot be taken
			 * back: the caller reads again */
			if (told) {
				r = lp_err_set_ex(
					err, -EAGAIN, LP_ERR_RETRYABLE, 0,
					"blob %s: the whole blob did not "
					"verify while a read at %llu waited "
					"for its end; taken again from the "
					"next host: read again",
					sp->name, (unsigned long long)off);
				break;
			}
			gen = sp->gen;
			done = 0;
		}
		avail = sp->have > off ?
				(size_t)lp_min_u64(sp->have - off, len) :
				0;
		if (avail > done) {
			pthread_mutex_unlock(&sp->lock);
			got = spool_pread(sp, buf, done, avail, off);
			pthread_mutex_lock(&sp->lock);
			if (sp->gen != gen || sp->failed)
				continue; /* emptied under us: see above */
			if (got < avail) {
				r = lp_err_set(err, -EIO,
					       "blob %s: spool read at %llu "
					       "came short",
					       sp->name,
					       (unsigned long long)(off + got));
				break;
			}
			done = got;
			if (fn) {
				/* of this feed: told, whatever comes next */
				told = done;
				pthread_mutex_unlock(&sp->lock);
				r = fn(arg, done);
				pthread_mutex_lock(&sp->lock);
				if (r < 0)
					break;
			}
			continue;
		}
		if (done == len)
			break;
		if (sp->cancel) {
			r = -ECANCELED;
			break;
		}
		if (!sp->feeding && sp->ends != ends) {
			/* the feeder that this read waited for gave up */
			r = lp_err_set_from(err, &sp->end_err, sp->end_r, "%s",
					    sp->end_err.msg);
			break;
		}
		if (!sp->feeding) {
			r = start_feeder(sp);
			if (r < 0) {
				lp_err_set(err, r,
					   "blob %s: cannot start its feeder: "
					   "%s",
					   sp->name, strerror(-r));
				break;
			}
		}
		pthread_cond_wait(&sp->cond, &sp->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	return r;
}
