// SPDX-License-Identifier: Apache-2.0
/*
 * The persistent tier of the chunk cache: one file per chunk, named by the
 * digest its bytes were verified against (DIR/chunks/ab/abcd...), so it
 * survives remounts and is shared by every layer holding the same chunk.
 * Files are written to DIR/tmp and renamed into place, so a reader never sees
 * a partial file under a final name; every read is verified again (a bad or
 * wrong-sized file is deleted and counts as a miss). The tier is bounded:
 * past its byte budget the coldest files (oldest mtime; a hit refreshes it)
 * are deleted down to 90% of the budget.
 *
 * One object per directory per process: fs_disk_open() of a directory that
 * is already open (same device and inode, however it is spelled) returns a
 * new reference to the same object, so every layer of a process caching in
 * that directory (the snapshotter mounts all its layers over ROOT/cache)
 * shares one byte count and one budget, and an eviction scan sees and may
 * delete every layer's files. This needs a process-wide table of open
 * directories: the one mutable global of fs/ (house rule 7), kept because
 * the thing it models, a directory's byte budget, is process-wide too; a
 * per-caller object would let two callers of one directory each fill it to
 * the budget again. The table holds no reference: the last unref removes
 * the object from it.
 *
 * What it does not do: coordinate with other processes sharing the
 * directory (the byte count is this process's view, refreshed by every
 * eviction scan), or fsync (a torn file fails verification and is dropped).
 *
 * Lock order: disks_lock (the table), then disk->lock; disk->lock is
 * otherwise a leaf, and neither is held during I/O but the directory scan
 * of the first open of a directory (under disks_lock only).
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
#include "lp_io.h"

#define DISK_HEX_LEN (2 * LP_SHA256_LEN)
/* "chunks/ab/" + 64 hex + NUL */
#define DISK_PATH_MAX (10 + DISK_HEX_LEN + 1)
#define DISK_MAX_SCAN (16u * 1024 * 1024) /* files looked at per eviction */

#define DISK_MAX_EVICT_ROUNDS 4 /* scans per eviction, writers racing */

struct fs_disk {
	int dirfd;
	dev_t dev; /* immutable: the directory's identity */
	ino_t ino;
	struct fs_disk *next; /* protected by disks_lock */
	unsigned int refs; /* protected by disks_lock */
	atomic_uint tmp_seq;
	pthread_mutex_t lock;
	uint64_t budget; /* the smallest asked for; protected by lock */
	uint64_t used; /* every user's files; protected by lock */
	bool evicting; /* protected by lock */
};

/* the directories open in this process (see the top of the file) */
static pthread_mutex_t disks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fs_disk *disks; /* protected by disks_lock */

struct disk_file {
	int64_t mtime_ns;
	uint64_t size;
	char path[DISK_PATH_MAX];
};

static void hex_of(const struct lp_digest *dg, char hex[DISK_HEX_LEN + 1])
{
	char s[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(dg, s);
	memcpy(hex, s + 7, DISK_HEX_LEN + 1);
}

static void path_of(const struct lp_digest *dg, char path[DISK_PATH_MAX])
{
	char hex[DISK_HEX_LEN + 1];

	hex_of(dg, hex);
	snprintf(path, DISK_PATH_MAX, "chunks/%.2s/%s", hex, hex);
}

/* call @fn on every chunk file; stops early when @fn returns nonzero */
static int scan(struct fs_disk *d,
		int (*fn)(void *, const char *, const struct stat *),
		void *opaque)
{
	int cfd = -1, r = 0;
	DIR *top = NULL;
	struct dirent *de;

	cfd = openat(d->dirfd, "chunks", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0 || !(top = fdopendir(cfd))) {
		r = -errno;
		if (cfd >= 0)
			close(cfd);
		goto out;
	}
	while (r == 0 && (de = readdir(top))) {
		int sfd;
		DIR *sub;
		struct dirent *fe;

		if (strlen(de->d_name) != 2)
			continue;
		sfd = openat(dirfd(top), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0)
			continue;
		sub = fdopendir(sfd);
		if (!sub) {
			close(sfd);
			continue;
		}
		while (r == 0 && (fe = readdir(sub))) {
			char path[DISK_PATH_MAX];
			struct stat st;

			if (strlen(fe->d_name) != DISK_HEX_LEN ||
			    fstatat(sfd, fe->d_name, &st, 0) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			/* lengths checked above: 2 and DISK_HEX_LEN */
			memcpy(path, "chunks/", 7);
			memcpy(path + 7, de->d_name, 2);
			path[9] = '/';
			memcpy(path + 10, fe->d_name, DISK_HEX_LEN + 1);
			r = fn(opaque, path, &st);
		}
		closedir(sub);
	}
	closedir(top);
out:
	return r;
}

static int add_size(void *opaque, const char *path, const struct stat *st)
{
	*(uint64_t *)opaque += (uint64_t)st->st_size;
	return 0;
}

static void evict(struct fs_disk *d);

/* a new object for directory @dirfd (taken over); disks_lock held */
static int disk_new(int dirfd, const struct stat *st, uint64_t budget,
		    struct fs_disk **ret_disk)
{
	struct fs_disk *d = calloc(1, sizeof(*d));

	if (!d) {
		close(dirfd);
		return -ENOMEM;
	}
	d->dirfd = dirfd;
	d->dev = st->st_dev;
	d->ino = st->st_ino;
	d->refs = 1;
	pthread_mutex_init(&d->lock, NULL);
	d->budget = budget;
	scan(d, add_size, &d->used);
	if (d->used > d->budget) {
		d->evicting = true; /* the budget may have shrunk */
		evict(d);
	}
	*ret_disk = d;
	return 0;
}

int fs_disk_open(const char *dir, uint64_t budget, struct fs_disk **ret_disk,
		 struct lp_err *err)
{
	struct fs_disk *d;
	struct stat st;
	bool do_evict = false;
	int dirfd = -1, r;

	r = lp_mkdir_p(dir, 0700, 0700);
	if (r < 0) {
		lp_err_set(err, r, "cache dir %s: %s", dir, strerror(-r));
		goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || fstat(dirfd, &st) < 0 ||
	    (mkdirat(dirfd, "chunks", 0700) < 0 && errno != EEXIST) ||
	    (mkdirat(dirfd, "tmp", 0700) < 0 && errno != EEXIST)) {
		r = lp_err_set(err, -errno, "cache dir %s: %s", dir,
			       strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&disks_lock);
	for (d = disks; d; d = d->next)
		if (d->dev == st.st_dev && d->ino == st.st_ino)
			break;
	if (d) {
		/* shared: one count, the smallest budget anyone asked for */
		d->refs++;
		pthread_mutex_lock(&d->lock);
		if (budget < d->budget) {
			d->budget = budget;
			if (d->used > budget && !d->evicting)
				do_evict = d->evicting = true;
		}
		pthread_mutex_unlock(&d->lock);
	} else {
		r = disk_new(dirfd, &st, budget, &d);
		dirfd = -1; /* taken, also on failure */
		if (r == 0) {
			d->next = disks;
			disks = d;
		}
	}
	pthread_mutex_unlock(&disks_lock);
	if (r < 0) {
		lp_err_set(err, r, "out of memory");
		goto out;
	}
	if (do_evict)
		evict(d);
	*ret_disk = d;
out:
	if (dirfd >= 0)
		close(dirfd);
	return r;
}

void fs_disk_unref(struct fs_disk *disk)
{
	struct fs_disk **pp;
	bool last;

	if (!disk)
		return;
	pthread_mutex_lock(&disks_lock);
	last = --disk->refs == 0;
	if (last) {
		for (pp = &disks; *pp && *pp != disk; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = disk->next;
	}
	pthread_mutex_unlock(&disks_lock);
	if (!last)
		return;
	close(disk->dirfd);
	pthread_mutex_destroy(&disk->lock);
	free(disk);
}

uint64_t fs_disk_used(struct fs_disk *disk)
{
	uint64_t used;

	pthread_mutex_lock(&disk->lock);
	used = disk->used;
	pthread_mutex_unlock(&disk->lock);
	return used;
}

static void forget_bytes(struct fs_disk *d, uint64_t n)
{
	pthread_mutex_lock(&d->lock);
	d->used -= lp_min_u64(d->used, n);
	pthread_mutex_unlock(&d->lock);
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t off = 0;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fs_disk_get(struct fs_disk *disk, const struct lp_digest *dg, void *buf,
		size_t len)
{
	char path[DISK_PATH_MAX];
	struct stat st = { 0 };
	int fd, r = -ENOENT;

	path_of(dg, path);
	fd = openat(disk->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != len ||
	    read_all(fd, buf, len) < 0 || lp_chunk_verify(buf, len, dg) < 0) {
		/* torn, truncated or tampered with: drop it, refetch */
		if (unlinkat(disk->dirfd, path, 0) == 0)
			forget_bytes(disk, (uint64_t)st.st_size);
		goto out;
	}
	futimens(fd, NULL); /* warm: evicted last */
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

bool fs_disk_has(struct fs_disk *disk, const struct lp_digest *dg)
{
	char path[DISK_PATH_MAX];

	path_of(dg, path);
	return faccessat(disk->dirfd, path, F_OK, 0) == 0;
}

static int collect(void *opaque, const char *path, const struct stat *st)
{
	struct {
		struct disk_file *files;
		size_t n, alloc;
	} *c = opaque;

	if (c->n == c->alloc) {
		size_t alloc = c->alloc ? 2 * c->alloc : 1024;
		struct disk_file *f;

		if (alloc > DISK_MAX_SCAN)
			return 1;
		f = realloc(c->files, alloc * sizeof(*f));
		if (!f)
			return -ENOMEM;
		c->files = f;
		c->alloc = alloc;
	}
	c->files[c->n].mtime_ns =
		(int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	c->files[c->n].size = (uint64_t)st->st_size;
	snprintf(c->files[c->n].path, DISK_PATH_MAX, "%s", path);
	c->n++;
	return 0;
}

static int colder_first(const void *a, const void *b)
{
	const struct disk_file *x = a, *y = b;

	return (x->mtime_ns > y->mtime_ns) - (x->mtime_ns < y->mtime_ns);
}

/*
 * delete the coldest files until the tier is at 90% of its budget. The
 * caller set d->evicting; it is cleared here. Other users keep writing
 * during the scan: what they added meanwhile is added to the scanned total
 * (counted twice when the scan saw it too: the count errs high, so the
 * bound holds), and when that is still over budget the scan runs again.
 */
static void evict(struct fs_disk *d)
{
	struct {
		struct disk_file *files;
		size_t n, alloc;
	} c = { 0 };
	unsigned int round;
	uint64_t total, low, used0, budget;
	bool again = true;
	size_t i;

	for (round = 0; again && round < DISK_MAX_EVICT_ROUNDS; round++) {
		pthread_mutex_lock(&d->lock);
		used0 = d->used;
		budget = d->budget;
		pthread_mutex_unlock(&d->lock);
		low = budget / 10 * 9;
		total = 0;
		c.n = 0;
		scan(d, collect, &c);
		for (i = 0; i < c.n; i++)
			total += c.files[i].size;
		qsort(c.files, c.n, sizeof(*c.files), colder_first);
		for (i = 0; i < c.n && total > low; i++) {
			if (unlinkat(d->dirfd, c.files[i].path, 0) == 0)
				total -= c.files[i].size;
		}
		pthread_mutex_lock(&d->lock);
		if (d->used >= used0)
			total += d->used - used0;
		else
			total -= lp_min_u64(total, used0 - d->used);
		d->used = total;
		again = d->used > d->budget;
		if (!again || round + 1 == DISK_MAX_EVICT_ROUNDS)
			d->evicting = false;
		pthread_mutex_unlock(&d->lock);
	}
	free(c.files);
}

int fs_disk_put(struct fs_disk *disk, const struct lp_digest *dg,
		const void *buf, size_t len)
{
	char hex[DISK_HEX_LEN + 1], path[DISK_PATH_MAX],
		tmp[DISK_PATH_MAX + 32];
	bool do_evict = false, too_big;
	int fd = -1, r = 0;

	pthread_mutex_lock(&disk->lock);
	too_big = len > disk->budget;
	pthread_mutex_unlock(&disk->lock);
	if (too_big || fs_disk_has(disk, dg))
		goto out;
	hex_of(dg, hex);
	path_of(dg, path);
	snprintf(tmp, sizeof(tmp), "chunks/%.2s", hex);
	if (mkdirat(disk->dirfd, tmp, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "tmp/%.16s.%d.%u", hex, (int)getpid(),
		 atomic_fetch_add(&disk->tmp_seq, 1));
	fd = openat(disk->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = lp_write_all(fd, buf, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	fd = -1;
	if (r == 0 && renameat(disk->dirfd, tmp, disk->dirfd, path) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(disk->dirfd, tmp, 0);
		goto out;
	}
	pthread_mutex_lock(&disk->lock);
	disk->used += len;
	if (disk->used > disk->budget && !disk->evicting) {
		disk->evicting = true;
		do_evict = true;
	}
	pthread_mutex_unlock(&disk->lock);
	if (do_evict)
		evict(disk);
out:
	if (fd >= 0)
		close(fd);
	return r;
}
