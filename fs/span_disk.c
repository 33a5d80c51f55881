// SPDX-License-Identifier: Apache-2.0
/*
 * The disk tier of a gzip index layer's spans (docs/format.md, "the span
 * disk tier"): with a cache directory, every span verified from the blob is
 * also written to DIR/spans/<layer hex>, one sparse file per layer holding
 * the compressed blob at its own offsets, so that a span the memory budget
 * evicted, or one wanted after a remount or a restart of the daemon, is
 * read from disk instead of the network (the index's span cache asks here
 * first: lp_index_span_cache_store(), format/index_spans.c).
 *
 * Keyed by the LAYER digest (the blob digest the index names, which for a
 * registry layer is the layer descriptor's digest) and the offset, never by
 * a span digest alone: a forged index naming spans another layer cached
 * would otherwise be served them without its blob ever matching
 * (docs/format.md says why). Which spans are there is the file's own
 * record: its allocated extents (SEEK_DATA / SEEK_HOLE, looked at once per
 * span when the layer is mounted, then kept in memory as writes land). That
 * is a hint, never trusted: every span read back has its sha256 compared
 * with the span digest again before use (index_spans.c), and one that does
 * not match (torn by a crash, corrupted, a file system without holes) is
 * fetched from the blob and written again. A mount that finds its index
 * lying deletes the layer's file (fs_span_disk_drop()).
 *
 * Writes never hold up a reader: save() queues the span (a reference, at
 * most SPAN_DISK_QUEUE_MAX bytes queued, past it the write is dropped and
 * counted) and a thread of this layer, started at the first save, writes
 * it with pwrite(2) after the span was handed to every reader waiting for
 * it. Bound: its own, the disk tier's number (lp_fs_options.
 * disk_cache_bytes, default 8 GiB) applied to DIR/spans apart from the
 * chunk files: past it, whole layers' files leave, least recently used
 * first (mtime: a write, or a read at most once a second, refreshes it),
 * down to 90%, never a file a mount of this process has open (the layer's
 * own or another's: one deleted under a mount would go on growing outside
 * every count); when the open files alone are over the bound, the next
 * scan waits until another tenth of it was written. A file deleted while
 * another process's mount has it open keeps serving that mount (its space
 * comes back when it closes). Like the chunk tier: no fsync, and the byte count is this
 * object's view, refreshed by each eviction scan.
 *
 * Lock order: d->lock and open_lock are leaves; no I/O under them but
 * the eviction's unlinkat() under open_lock (unlink_unless_open()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_int.h"

#define SPAN_DISK_DIR "spans"
#define SPAN_DISK_HEX_LEN (2 * LP_SHA256_LEN)
/* bytes of spans queued for the writer at most (memory) */
#define SPAN_DISK_QUEUE_MAX (32 * LP_MIB)
/* files looked at per eviction scan */
#define SPAN_DISK_MAX_SCAN 65536
#define SPAN_DISK_TOUCH_NS 1000000000ull /* mtime refreshed at most */

struct span_write {
	struct lp_index_span *sp; /* a reference */
	uint64_t off;
	struct span_write *next;
};

struct fs_span_disk {
	const struct lp_index *ix; /* borrowed */
	int dirfd; /* DIR/spans */
	int fd; /* the layer's file */
	char name[SPAN_DISK_HEX_LEN + 1];
	uint64_t budget; /* immutable */
	size_t nr; /* spans */
	atomic_uchar *present; /* [nr]: the file has span i (a hint) */
	atomic_uint_fast64_t touched_ns;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a write queued, or stop */
	struct span_write *head, *tail; /* protected by lock */
	size_t queued; /* bytes; protected by lock */
	bool stop, started, dropped; /* protected by lock */
	uint64_t used; /* DIR/spans bytes, this view; protected by lock */
	uint64_t rescan_at; /* no eviction scan below it; protected by lock */
	struct fs_span_disk *open_next; /* open_list; protected by open_lock */
	pthread_t thread;
	struct fs_span_disk_stats stats; /* protected by lock */
};

/* the layers' files open in this process, in any cache directory */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fs_span_disk *open_list; /* protected by open_lock */

static void open_add(struct fs_span_disk *d)
{
	pthread_mutex_lock(&open_lock);
	d->open_next = open_list;
	open_list = d;
	pthread_mutex_unlock(&open_lock);
}

static void open_remove(struct fs_span_disk *d)
{
	struct fs_span_disk **pp;

	pthread_mutex_lock(&open_lock);
	for (pp = &open_list; *pp; pp = &(*pp)->open_next)
		if (*pp == d) {
			*pp = d->open_next;
			break;
		}
	pthread_mutex_unlock(&open_lock);
}

/* whether a mount of this process has file @name open; open_lock held */
static bool name_open_locked(const char *name)
{
	const struct fs_span_disk *o;

	for (o = open_list; o; o = o->open_next)
		if (!strcmp(o->name, name))
			return true;
	return false;
}

static bool name_open(const char *name)
{
	bool found;

	pthread_mutex_lock(&open_lock);
	found = name_open_locked(name);
	pthread_mutex_unlock(&open_lock);
	return found;
}

/* delete layer file @name of @dirfd unless a mount of this process has
 * it open: the check and the unlink under open_lock (its one I/O), so a
 * mount opening it meanwhile (open_add() comes before its openat()) never
 * loses it */
static bool unlink_unless_open(int dirfd, const char *name)
{
	bool gone = false;

	pthread_mutex_lock(&open_lock);
	if (!name_open_locked(name))
		gone = unlinkat(dirfd, name, 0) == 0;
	pthread_mutex_unlock(&open_lock);
	return gone;
}

/* whether the file has data (no hole) all over [@start, @end) */
static bool has_data(int fd, uint64_t start, uint64_t end)
{
	off_t d = lseek(fd, (off_t)start, SEEK_DATA);
	off_t h;

	if (d < 0 || (uint64_t)d != start)
		return false;
	h = lseek(fd, (off_t)start, SEEK_HOLE);
	return h >= 0 && (uint64_t)h >= end;
}

struct span_file {
	int64_t mtime_ns;
	uint64_t bytes;
	char name[SPAN_DISK_HEX_LEN + 1];
};

static int by_mtime(const void *a, const void *b)
{
	const struct span_file *x = a, *y = b;

	return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

static bool hex_name(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n == SPAN_DISK_HEX_LEN && !s[n];
}

/*
 * The layers' files of DIR/spans: their bytes on disk in all; with @evict
 * (else only counted) the oldest deleted, never one a mount of this
 * process has open, until at most @keep bytes are left. No lock held.
 */
static uint64_t scan(struct fs_span_disk *d, uint64_t keep, bool evict)
{
	struct span_file *files = NULL;
	size_t n = 0, cap = 0, k;
	uint64_t total = 0;
	struct dirent *de;
	DIR *dir = NULL;
	int fd = dup(d->dirfd);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) && n < SPAN_DISK_MAX_SCAN) {
		struct stat st;

		if (!hex_name(de->d_name) ||
		    fstatat(d->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode))
			continue;
		total += (uint64_t)st.st_blocks * 512;
		if (!evict || !strcmp(de->d_name, d->name) ||
		    name_open(de->d_name))
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 64;
			struct span_file *nf =
				realloc(files, nc * sizeof(*files));

			if (!nf)
				break;
			files = nf;
			cap = nc;
		}
		files[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
				    st.st_mtim.tv_nsec;
		files[n].bytes = (uint64_t)st.st_blocks * 512;
		memcpy(files[n].name, de->d_name, sizeof(files[n].name));
		n++;
	}
	closedir(dir);
	if (evict && n)
		qsort(files, n, sizeof(*files), by_mtime);
	for (k = 0; evict && k < n && total > keep; k++) {
		if (unlink_unless_open(d->dirfd, files[k].name)) {
			total -= files[k].bytes;
			pthread_mutex_lock(&d->lock);
			d->stats.evicted_files++;
			pthread_mutex_unlock(&d->lock);
		}
	}
	free(files);
	return total;
}

static void *writer_main(void *arg)
{
	struct fs_span_disk *d = arg;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct span_write *w = d->head;
		size_t len;
		bool over, ok;

		if (!w) {
			if (d->stop)
				break;
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		d->head = w->next;
		if (!d->head)
			d->tail = NULL;
		pthread_mutex_unlock(&d->lock);
		len = lp_index_span_len(w->sp);
		ok = pwrite(d->fd, lp_index_span_data(w->sp), len,
			    (off_t)w->off) == (ssize_t)len;
		if (ok)
			atomic_store(&d->present[lp_index_span_nr(w->sp)], 1);
		lp_index_span_put(w->sp);
		free(w);
		pthread_mutex_lock(&d->lock);
		d->queued -= len;
		if (ok) {
			d->stats.writes++;
			d->stats.write_bytes += len;
			d->used += len;
		} else {
			d->stats.write_errors++;
		}
		over = d->used > d->budget && d->used >= d->rescan_at &&
		       !d->dropped;
		pthread_mutex_unlock(&d->lock);
		if (over) {
			uint64_t left = scan(d, d->budget / 10 * 9, true);

			pthread_mutex_lock(&d->lock);
			d->used = left;
			/* open files alone over the bound: not at every write */
			d->rescan_at = left + d->budget / 10;
			pthread_mutex_unlock(&d->lock);
		}
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static bool store_has(void *arg, size_t i)
{
	struct fs_span_disk *d = arg;

	return i < d->nr && atomic_load(&d->present[i]);
}

static int store_load(void *arg, size_t i, uint64_t off, void *buf, size_t len)
{
	struct fs_span_disk *d = arg;
	uint64_t now = lp_mono_ns();
	size_t got = 0;

	(void)i;
	while (got < len) {
		ssize_t n = pread(d->fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	/* least recently used is by mtime: a read keeps the layer */
	if (now - atomic_load(&d->touched_ns) > SPAN_DISK_TOUCH_NS) {
		atomic_store(&d->touched_ns, now);
		futimens(d->fd, NULL);
	}
	return 0;
}

static void store_save(void *arg, struct lp_index_span *sp, uint64_t off)
{
	struct fs_span_disk *d = arg;
	const size_t len = lp_index_span_len(sp);
	struct span_write *w = malloc(sizeof(*w));

	pthread_mutex_lock(&d->lock);
	if (w && !d->started && !d->stop && !d->dropped) {
		/* the first save: the mount runs (lp_fs_new starts none) */
		d->started =
			pthread_create(&d->thread, NULL, writer_main, d) == 0;
	}
	if (!w || !d->started || d->stop || d->dropped ||
	    d->queued + len > SPAN_DISK_QUEUE_MAX) {
		d->stats.dropped_writes++;
		pthread_mutex_unlock(&d->lock);
		free(w);
		lp_index_span_put(sp);
		return;
	}
	w->sp = sp;
	w->off = off;
	w->next = NULL;
	if (d->tail)
		d->tail->next = w;
	else
		d->head = w;
	d->tail = w;
	d->queued += len;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

int fs_span_disk_open(const char *cache_dir, const struct lp_index *ix,
		      uint64_t budget, struct fs_span_disk **ret,
		      struct lp_err *err)
{
	struct fs_span_disk *d = calloc(1, sizeof(*d));
	char dg[LP_DIGEST_STR_LEN + 1];
	uint64_t size = lp_index_blob_size(ix);
	int top = -1, r = 0;
	struct stat st;
	size_t i;

	if (!d)
		return lp_err_set(err, -ENOMEM, "out of memory");
	d->dirfd = d->fd = -1;
	d->ix = ix;
	d->budget = budget;
	d->nr = lp_index_nr_checkpoints(ix);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	lp_digest_format(lp_index_blob_digest(ix), dg);
	memcpy(d->name, dg + 7, sizeof(d->name));
	/* listed before the file is opened: no scan deletes it from here */
	open_add(d);
	d->present = calloc(d->nr ? d->nr : 1, sizeof(*d->present));
	if (!d->present) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	top = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0 ||
	    (mkdirat(top, SPAN_DISK_DIR, 0700) < 0 && errno != EEXIST)) {
		r = lp_err_set(err, -errno, "cache directory %s: %s/: %s",
			       cache_dir, SPAN_DISK_DIR, strerror(errno));
		goto out;
	}
	d->dirfd = openat(top, SPAN_DISK_DIR,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d->dirfd >= 0)
		d->fd = openat(d->dirfd, d->name,
			       O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d->fd < 0 || fstat(d->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    ((uint64_t)st.st_size != size && ftruncate(d->fd, (off_t)size))) {
		r = lp_err_set(err, errno ? -errno : -EIO,
			       "cache directory %s: %s/%s: %s", cache_dir,
			       SPAN_DISK_DIR, d->name, strerror(errno));
		goto out;
	}
	/* the spans a mount of this layer wrote before */
	for (i = 0; i < d->nr; i++) {
		uint64_t s0, s1;

		lp_index_span_range(ix, i, &s0, &s1);
		atomic_init(&d->present[i], has_data(d->fd, s0, s1));
	}
	atomic_init(&d->touched_ns, lp_mono_ns());
	futimens(d->fd, NULL);
	d->used = scan(d, 0, false);
out:
	if (top >= 0)
		close(top);
	if (r < 0) {
		fs_span_disk_close(d);
		return r;
	}
	*ret = d;
	return 0;
}

void fs_span_disk_close(struct fs_span_disk *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->started) /* it writes what is queued first */
		pthread_join(d->thread, NULL);
	open_remove(d);
	if (d->fd >= 0)
		close(d->fd);
	if (d->dirfd >= 0)
		close(d->dirfd);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d->present);
	free(d);
}

void fs_span_disk_drop(struct fs_span_disk *d)
{
	struct span_write *w;
	size_t i;

	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->dropped = true;
	w = d->head;
	while (w) {
		struct span_write *next = w->next;

		d->queued -= lp_index_span_len(w->sp);
		lp_index_span_put(w->sp);
		free(w);
		w = next;
	}
	d->head = d->tail = NULL;
	pthread_mutex_unlock(&d->lock);
	for (i = 0; i < d->nr; i++)
		atomic_store(&d->present[i], 0);
	unlinkat(d->dirfd, d->name, 0);
}

void fs_span_disk_store(struct fs_span_disk *d, struct lp_index_span_store *ret)
{
	ret->arg = d;
	ret->has = store_has;
	ret->load = store_load;
	ret->save = store_save;
}

void fs_span_disk_stats(struct fs_span_disk *d, struct fs_span_disk_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	*ret = d->stats;
	pthread_mutex_unlock(&d->lock);
}
