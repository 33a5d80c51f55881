// SPDX-License-Identifier: Apache-2.0
/*
 * The persistent tier of the chunk cache: verified chunks appended to pack
 * files (DIR/chunks/<time>-<pid>-<seq>.pack), each chunk one self-describing
 * record (fs_disk_record_header(): magic, length, the digest its bytes were
 * verified against, a CRC of the header), found through an in-memory table
 * digest -> (pack, offset, length). Keyed by the chunk digest, so it
 * survives remounts and restarts and is shared by every layer holding the
 * same chunk. Why packs and not a file per chunk: creating and deleting a
 * file per chunk made ext4's inode allocation (after mass deletions) the
 * larger part of the snapshotter's CPU on a workload that reads everything
 * (docs/benchmarks.md); an append is one pwrite to a file already open.
 *
 * The table is rebuilt at the first open of a directory by reading every
 * pack's record headers (no index file: a second file would have to agree
 * with the packs after a crash; the headers are the packs' own account of
 * themselves, and reading them is one small pread per record). A pack is
 * only ever appended to by the object that created it; packs found at
 * open are read only. A crash mid-append leaves nothing wrong: a
 * torn header ends that pack's scan (what follows it is dead bytes, counted
 * until the pack leaves); a torn payload under a good header is found by
 * the read, which checks the header and the bytes' sha256 again on every
 * hit (a record that fails is a miss and leaves the table, never served).
 *
 * The tier is bounded: past its byte budget the coldest whole packs (the
 * latest write or hit; a hit refreshes the pack's mtime at most once a
 * second, so coldness survives a restart) are deleted down to 90% of the
 * budget. Packs are at most DISK_PACK_MAX bytes and at most a 64th of the
 * budget (one record bigger than that gets a pack of its own), so one pack
 * is a small step of the eviction. Past DISK_PACKS_HIGH packs (every
 * process that writes leaves one) the coldest go too, down to
 * DISK_PACKS_LOW, whatever their bytes. A pack deleted by someone else (the
 * integration tests empty DIR/chunks) is noticed by the lookup, which
 * checks that its pack is still linked, and its records are misses.
 *
 * One object per directory per process: fs_disk_open() of a directory that
 * is already open (same device and inode, however it is spelled) returns a
 * new reference to the same object, so every layer of a process caching in
 * that directory (the snapshotter mounts all its layers over ROOT/cache)
 * shares one table, one byte count and one budget. This needs a
 * process-wide table of open directories: the one mutable global of fs/
 * (house rule 7), kept because the thing it models, a directory's byte
 * budget, is process-wide too; a per-caller object would let two callers of
 * one directory each fill it to the budget again. The table holds no
 * reference: the last unref removes the object from it.
 *
 * Other processes sharing the directory: each appends to packs of its
 * own (named after its object: "<open time>-<pid>-<seq>.pack") and reads
 * every pack; a write looks at the directory again at most once a second
 * (refresh()) for packs that are new or have grown, so what another
 * process wrote is found within a second of this one's next write. What
 * it does not do: coordinate beyond that (each byte count is its own view,
 * the other processes' packs included as of its last look; an eviction may
 * delete a pack another process reads, which is then a miss there), or
 * fsync (a torn record fails its checks and is dropped). A directory of
 * the earlier one-file-per-chunk layout (DIR/chunks/ab/<digest>, DIR/tmp)
 * has those directories renamed into DIR/old-<tag> at the first open (a
 * rename each, however many files they hold: the open is on the mount's
 * and the snapshotter's restart path) and a detached thread deletes every
 * DIR/old-* after, with no lock held (what a crash leaves, the next open's
 * thread deletes): their chunks are refetched once.
 *
 * Descriptors: a pack holds none of its own (a directory may hold
 * thousands of packs, one at least per process that wrote). At most
 * DISK_MAX_FDS are open that no I/O holds, the least recently used closed
 * first; pack_fd_get() opens one again by name and keeps it open until
 * pack_fd_put(). A pack is counted by fstatat() of its name, so one that
 * cannot be opened is still in the byte count and evicted in its turn.
 *
 * Lock order: disks_lock (the table of directories), then disk->lock;
 * disk->lock is otherwise a leaf. Neither is held during I/O but the scan
 * of the first open of a directory (under disks_lock only): reads and
 * writes take a reference to their pack under the lock and do their
 * pread/pwrite after dropping it, so no reader waits for another's I/O.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fs_int.h"
#include "lp_io.h"

#define DISK_DIR "chunks"
#define DISK_PACK_SUFFIX ".pack"
/* "ffffffffffffffff-4294967295-4294967295.pack" + NUL */
#define DISK_NAME_MAX 48
#define DISK_TAG_MAX 32 /* "ffffffffffffffff-4294967295-" + NUL */
/* "chunks/" + name */
#define DISK_PATH_MAX (sizeof(DISK_DIR) + DISK_NAME_MAX)
#define DISK_PACK_MAX (64 * LP_MIB) /* bytes per pack at most */
#define DISK_PACK_MIN (64 * 1024) /* a pack's cap at the smallest */
#define DISK_PACK_PER_BUDGET 64 /* a pack is at most budget / this */
#define DISK_MAX_PACKS 65536 /* packs tracked; more are left alone */
/* packs past this: the coldest go, down to DISK_PACKS_LOW (every process
 * that writes leaves one; the scan and the lookups by name are per pack) */
#define DISK_PACKS_HIGH 4096
#define DISK_PACKS_LOW (DISK_PACKS_HIGH / 10 * 9)
#ifndef DISK_MAX_FDS /* a test sets it lower (test_disk_fds.c) */
#define DISK_MAX_FDS 64 /* packs' descriptors open at once (but I/O) */
#endif
#define DISK_MAX_RECORDS (16u * 1024 * 1024) /* table entries at most */
#define DISK_TABLE_MIN 1024 /* slots, a power of two */
#define DISK_TOUCH_NS 1000000000ll /* a hit refreshes mtime at most */
#define DISK_REFRESH_NS 1000000000ll /* other processes' packs looked at */
#define DISK_OLD_PREFIX "old-" /* DIR/old-<tag>: the old layout, aside */
#define DISK_OLD_NAME_MAX (sizeof(DISK_OLD_PREFIX) + DISK_TAG_MAX)
#define DISK_REAP_DEPTH 2 /* old-<tag>/ab/<digest>: directories below */
#define DISK_REAP_PASSES 4 /* readdirs of one directory being emptied */

#define DISK_RECORD_MAGIC "LPCR"
#define DISK_RECORD_VERSION 1

struct pack {
	int fd; /* -1: closed (pack_fd_get() opens it); protected by lock */
	unsigned int fd_users; /* I/O in flight on fd; protected by lock */
	/* in disk->fds, most recently used first, while fd >= 0; lock */
	struct pack *fd_prev, *fd_next;
	char name[DISK_NAME_MAX];
	uint32_t idx; /* immutable: its slot in disk->packs */
	uint64_t size; /* bytes written or reserved; protected by lock */
	/* coldness: realtime, as the mtime it is read from; lock */
	int64_t used_ns;
	int64_t touched_ns; /* mtime last set (monotonic); lock */
	unsigned int refs; /* the list's + I/O in flight; protected by lock */
	uint64_t scanned; /* headers read up to; protected by lock */
	bool ours; /* immutable: made by this object, appended to by it */
	bool dead; /* left the list, its records the table; lock */
};

struct slot {
	struct lp_digest dg;
	uint64_t off; /* of the record's header */
	uint32_t len; /* payload bytes */
	uint32_t pack; /* index in packs; UINT32_MAX: empty slot */
};

struct fs_disk {
	int dirfd; /* DIR */
	int cdirfd; /* DIR/chunks */
	dev_t dev; /* immutable: the directory's identity */
	ino_t ino;
	struct fs_disk *next; /* protected by disks_lock */
	unsigned int refs; /* protected by disks_lock */
	atomic_uint seq; /* pack names */
	pthread_mutex_t lock;
	uint64_t budget; /* the smallest asked for; protected by lock */
	uint64_t used; /* every pack's size; protected by lock */
	struct pack **packs; /* [npacks], NULL: free; protected by lock */
	uint32_t npacks;
	uint32_t nlive; /* packs in the list; protected by lock */
	struct pack *active; /* appended to; protected by lock */
	/* the packs with a descriptor open, most recently used first, and
	 * their number; protected by lock */
	struct pack *fds, *fds_tail;
	unsigned int nfds;
	struct slot *slots; /* [cap]; protected by lock */
	size_t cap, count;
	uint64_t hkey; /* immutable: hash_of()'s key, random */
	/* immutable: "<open time>-<pid>-", the start of its packs' names */
	char tag[DISK_TAG_MAX];
	/* last look at other processes' packs (monotonic); lock */
	int64_t refreshed_ns;
	bool refreshing; /* protected by lock */
};

/* the directories open in this process (see the top of the file) */
static pthread_mutex_t disks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fs_disk *disks; /* protected by disks_lock */

/* --- records --- */

void fs_disk_record_header(const struct lp_digest *dg, uint32_t len,
			   uint8_t hdr[FS_DISK_RECORD_HDR])
{
	memcpy(hdr, DISK_RECORD_MAGIC, 4);
	lp_put_le32(hdr + 4, DISK_RECORD_VERSION);
	lp_put_le32(hdr + 8, len);
	memcpy(hdr + 12, dg->b, LP_SHA256_LEN);
	lp_put_le32(hdr + 44, (uint32_t)crc32(0, hdr, 44));
}

int fs_disk_record_parse(const void *hdr, size_t hdr_len, uint64_t room,
			 struct fs_disk_record *ret)
{
	const uint8_t *h = hdr;
	uint32_t len;

	if (hdr_len < FS_DISK_RECORD_HDR || room < FS_DISK_RECORD_HDR)
		return -ENODATA;
	if (memcmp(h, DISK_RECORD_MAGIC, 4) ||
	    lp_get_le32(h + 44) != (uint32_t)crc32(0, h, 44))
		return -EBADMSG;
	if (lp_get_le32(h + 4) != DISK_RECORD_VERSION)
		return -EOPNOTSUPP;
	len = lp_get_le32(h + 8);
	if (len > LP_CHUNK_MAX_SIZE)
		return -EFBIG;
	if (len > room - FS_DISK_RECORD_HDR)
		return -ENODATA; /* torn: the pack ends inside it */
	memcpy(ret->dg.b, h + 12, LP_SHA256_LEN);
	ret->len = len;
	return 0;
}

/* --- the table: open addressing, linear probing --- */

/*
 * The digests come from headers no one checked before they enter the
 * table (a crafted pack can hold 40,000 digests alike in any bytes it
 * likes), so a digest's slot depends on all its bytes and on @key, a
 * random number of the object's: collisions cannot be made in advance.
 */
static size_t hash_of(uint64_t key, const struct lp_digest *dg, size_t cap)
{
	uint64_t h = key, w;
	size_t i;

	for (i = 0; i < LP_SHA256_LEN; i += sizeof(w)) {
		memcpy(&w, dg->b + i, sizeof(w));
		h ^= w; /* splitmix64's finalizer: every bit moves every bit */
		h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
		h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
		h ^= h >> 31;
	}
	return (size_t)h & (cap - 1);
}

/* the slot holding @dg, or the empty one ending its probe; lock held */
static size_t find_slot(const struct slot *t, size_t cap, uint64_t key,
			const struct lp_digest *dg)
{
	size_t i = hash_of(key, dg, cap);

	while (t[i].pack != UINT32_MAX && !lp_digest_equal(&t[i].dg, dg))
		i = (i + 1) & (cap - 1);
	return i;
}

static struct slot *table_new(size_t cap)
{
	struct slot *t = malloc(cap * sizeof(*t));
	size_t i;

	for (i = 0; t && i < cap; i++)
		t[i].pack = UINT32_MAX;
	return t;
}

/* grow to keep the load at 3/4 at most; lock held */
static int table_reserve(struct fs_disk *d)
{
	size_t cap = d->cap ? d->cap : DISK_TABLE_MIN, i;
	struct slot *t;

	if (d->slots && (d->count + 1) * 4 <= d->cap * 3)
		return 0;
	if (d->count >= DISK_MAX_RECORDS)
		return -EFBIG;
	while ((d->count + 1) * 4 > cap * 3)
		cap *= 2;
	t = table_new(cap);
	if (!t)
		return -ENOMEM;
	for (i = 0; i < d->cap; i++)
		if (d->slots[i].pack != UINT32_MAX)
			t[find_slot(t, cap, d->hkey, &d->slots[i].dg)] =
				d->slots[i];
	free(d->slots);
	d->slots = t;
	d->cap = cap;
	return 0;
}

/* record @dg at @off of pack @p unless it is there already; lock held */
static void table_add(struct fs_disk *d, const struct lp_digest *dg,
		      const struct pack *p, uint64_t off, uint32_t len)
{
	size_t i;

	if (table_reserve(d) < 0)
		return; /* a miss later, never a wrong byte */
	i = find_slot(d->slots, d->cap, d->hkey, dg);
	if (d->slots[i].pack != UINT32_MAX)
		return;
	d->slots[i] = (struct slot){
		.dg = *dg, .off = off, .len = len, .pack = p->idx
	};
	d->count++;
}

/* empty slot @i, moving later slots of its probe back into the hole */
static void table_del_at(struct fs_disk *d, size_t i)
{
	const size_t mask = d->cap - 1;
	size_t j = i, home;

	d->slots[i].pack = UINT32_MAX;
	d->count--;
	for (;;) {
		j = (j + 1) & mask;
		if (d->slots[j].pack == UINT32_MAX)
			return;
		home = hash_of(d->hkey, &d->slots[j].dg, d->cap);
		/* j stays when its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		d->slots[i] = d->slots[j];
		d->slots[j].pack = UINT32_MAX;
		i = j;
	}
}

/* drop every record of dead packs; lock held */
static void table_sweep(struct fs_disk *d)
{
	size_t i = 0;

	/* a deletion may move a later slot into i: look at i again */
	while (i < d->cap) {
		uint32_t pi = d->slots[i].pack;

		if (pi != UINT32_MAX && (!d->packs[pi] || d->packs[pi]->dead))
			table_del_at(d, i);
		else
			i++;
	}
}

/* --- packs --- */

/* the time of day, as file times are: coldness */
static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* for intervals: never steps when the time of day is set */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pack_path(const struct pack *p, char path[DISK_PATH_MAX])
{
	snprintf(path, DISK_PATH_MAX, DISK_DIR "/%s", p->name);
}

/* a new pack in the list (its reference), no descriptor open; lock held */
static int pack_add(struct fs_disk *d, const char *name, uint64_t size,
		    int64_t mtime_ns, struct pack **ret)
{
	struct pack *p = NULL, **packs;
	uint32_t i;

	for (i = 0; i < d->npacks && d->packs[i]; i++)
		;
	if (i == d->npacks) {
		if (d->npacks >= DISK_MAX_PACKS)
			goto fail;
		packs = realloc(d->packs, (d->npacks + 1) * sizeof(*packs));
		if (!packs)
			goto fail;
		d->packs = packs;
		d->packs[d->npacks++] = NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto fail;
	p->fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->idx = i;
	p->size = size;
	p->used_ns = mtime_ns;
	p->touched_ns = mono_ns() - DISK_TOUCH_NS; /* the first hit sets it */
	p->refs = 1;
	d->packs[i] = p;
	d->nlive++;
	d->used += size;
	*ret = p;
	return 0;
fail:
	return -ENOMEM;
}

/* --- the packs' descriptors: at most DISK_MAX_FDS open that no I/O
 * holds, the least recently used closed first --- */

/* take @p off the list of open descriptors; lock held */
static void fds_unlink(struct fs_disk *d, struct pack *p)
{
	if (p->fd_prev)
		p->fd_prev->fd_next = p->fd_next;
	else
		d->fds = p->fd_next;
	if (p->fd_next)
		p->fd_next->fd_prev = p->fd_prev;
	else
		d->fds_tail = p->fd_prev;
	p->fd_prev = p->fd_next = NULL;
}

/* @p (its descriptor open) to the front of the list; lock held */
static void fds_push(struct fs_disk *d, struct pack *p)
{
	p->fd_prev = NULL;
	p->fd_next = d->fds;
	if (d->fds)
		d->fds->fd_prev = p;
	else
		d->fds_tail = p;
	d->fds = p;
}

/* past DISK_MAX_FDS: the least recently used descriptor no I/O holds,
 * taken from its pack for the caller to close, or -1; lock held */
static int fds_trim(struct fs_disk *d)
{
	struct pack *v;
	int fd;

	if (d->nfds <= DISK_MAX_FDS)
		return -1;
	for (v = d->fds_tail; v && v->fd_users; v = v->fd_prev)
		;
	if (!v)
		return -1; /* all busy: over the bound until their I/O ends */
	fd = v->fd;
	v->fd = -1;
	fds_unlink(d, v);
	d->nfds--;
	return fd;
}

/* open pack @name of DIR/chunks: a regular file, never a link or a FIFO
 * (which would block); -errno */
static int pack_open(struct fs_disk *d, const char *name, int flags)
{
	struct stat st;
	int fd = openat(d->cdirfd, name,
			flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* @fd, just opened, becomes @p's unless another thread opened one first;
 * the descriptor the caller closes, or -1; lock held */
static int fd_install(struct fs_disk *d, struct pack *p, int fd)
{
	if (p->fd >= 0) {
		fds_unlink(d, p);
		fds_push(d, p);
		return fd;
	}
	p->fd = fd;
	d->nfds++;
	fds_push(d, p);
	return fds_trim(d);
}

/*
 * @p's descriptor for I/O (the caller holds a reference to @p), valid
 * until pack_fd_put(): opened again when it was closed (packs of their
 * own are opened for writing); -ENOENT when the file is gone. No lock
 * held (it may open a file).
 */
static int pack_fd_get(struct fs_disk *d, struct pack *p)
{
	int fd, extra;

	pthread_mutex_lock(&d->lock);
	if (p->fd >= 0) {
		p->fd_users++;
		fds_unlink(d, p);
		fds_push(d, p);
		fd = p->fd;
		pthread_mutex_unlock(&d->lock);
		return fd;
	}
	pthread_mutex_unlock(&d->lock);
	fd = pack_open(d, p->name, p->ours ? O_RDWR : O_RDONLY);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&d->lock);
	/* counted before the install, whose trim passes over packs in use:
	 * else it could close the descriptor just opened (every other pack
	 * busy) and leave the count taken with no descriptor */
	p->fd_users++;
	extra = fd_install(d, p, fd);
	fd = p->fd;
	pthread_mutex_unlock(&d->lock);
	if (extra >= 0)
		close(extra);
	return fd;
}

static void pack_fd_put(struct fs_disk *d, struct pack *p)
{
	pthread_mutex_lock(&d->lock);
	p->fd_users--;
	pthread_mutex_unlock(&d->lock);
}

/* drop a reference; the caller frees when it returns true (its
 * descriptor, if open, already off the list); lock held */
static bool pack_unref_locked(struct fs_disk *d, struct pack *p)
{
	if (--p->refs)
		return false;
	if (p->fd >= 0) {
		fds_unlink(d, p);
		d->nfds--;
	}
	return true;
}

static void pack_free(struct pack *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

static void pack_unref(struct fs_disk *d, struct pack *p)
{
	bool last;

	pthread_mutex_lock(&d->lock);
	last = pack_unref_locked(d, p);
	pthread_mutex_unlock(&d->lock);
	if (last)
		pack_free(p);
}

/* take @p off the list (not its records: table_sweep()); true when the
 * caller frees it; lock held */
static bool pack_kill(struct fs_disk *d, struct pack *p)
{
	if (p->dead)
		return false;
	p->dead = true;
	d->packs[p->idx] = NULL;
	d->nlive--;
	d->used -= lp_min_u64(d->used, p->size);
	if (d->active == p)
		d->active = NULL;
	return pack_unref_locked(d, p);
}

/* whether @p is still linked under its name (someone may have emptied the
 * directory); a lookup, so made with no lock held */
static bool pack_linked(struct fs_disk *d, const struct pack *p)
{
	char path[DISK_PATH_MAX];

	pack_path(p, path);
	return faccessat(d->dirfd, path, F_OK, 0) == 0;
}

/* @p was deleted under us: its records are misses */
static void pack_vanished(struct fs_disk *d, struct pack *p)
{
	bool last;

	pthread_mutex_lock(&d->lock);
	last = pack_kill(d, p);
	table_sweep(d);
	pthread_mutex_unlock(&d->lock);
	if (last)
		pack_free(p);
}

/*
 * read pack @p's record headers from where the last scan stopped into the
 * table; a header that does not parse ends it (torn by a crash, or an
 * append of another process still under way: the next refresh looks
 * again). No lock held: it takes the lock for each record it adds.
 */
static void pack_scan(struct fs_disk *d, struct pack *p)
{
	uint8_t hdr[FS_DISK_RECORD_HDR];
	struct fs_disk_record rec;
	uint64_t off, size;
	int fd = pack_fd_get(d, p);

	if (fd < 0)
		return; /* its bytes are counted, its records misses */
	pthread_mutex_lock(&d->lock);
	off = p->scanned;
	size = p->size;
	pthread_mutex_unlock(&d->lock);
	while (off < size) {
		ssize_t n = pread(fd, hdr, sizeof(hdr), (off_t)off);

		if (n != (ssize_t)sizeof(hdr) ||
		    fs_disk_record_parse(hdr, sizeof(hdr), size - off, &rec) <
			    0)
			break; /* the rest is dead bytes, or not there yet */
		pthread_mutex_lock(&d->lock);
		if (!p->dead)
			table_add(d, &rec.dg, p, off, rec.len);
		off += FS_DISK_RECORD_HDR + rec.len;
		p->scanned = off;
		pthread_mutex_unlock(&d->lock);
	}
	pack_fd_put(d, p);
}

/* --- the earlier one-file-per-chunk layout: set aside, deleted later --- */

/* delete @name of @pfd and what it holds, @depth directories deep at most;
 * a tree another thread or process deletes at the same time is fine */
static void reap_tree(int pfd, const char *name, unsigned int depth)
{
	unsigned int pass;

	for (pass = 0; pass < DISK_REAP_PASSES; pass++) {
		int fd =
			openat(pfd, name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct dirent *de;
		DIR *dir;

		if (fd < 0) {
			if (errno == ENOTDIR || errno == ELOOP)
				unlinkat(pfd, name, 0);
			return;
		}
		dir = fdopendir(fd);
		if (!dir) {
			close(fd);
			return;
		}
		while ((de = readdir(dir))) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			/* unlink(2) says EISDIR of a directory */
			if (unlinkat(fd, de->d_name, 0) < 0 &&
			    errno == EISDIR && depth)
				reap_tree(fd, de->d_name, depth - 1);
		}
		closedir(dir);
		if (unlinkat(pfd, name, AT_REMOVEDIR) == 0 ||
		    errno != ENOTEMPTY)
			return;
	}
}

static bool is_old_name(const char *name)
{
	return !strncmp(name, DISK_OLD_PREFIX, strlen(DISK_OLD_PREFIX));
}

/* the reaper thread: deletes every DIR/old-* (@arg: a descriptor of DIR,
 * its own), this open's and any an earlier process left half deleted */
static void *reap_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct dirent *de;
	DIR *dir = fdopendir(fd);

	if (!dir) {
		close(fd);
		return NULL;
	}
	while ((de = readdir(dir)))
		if (is_old_name(de->d_name))
			reap_tree(dirfd(dir), de->d_name, DISK_REAP_DEPTH);
	closedir(dir);
	return NULL;
}

/* when DIR holds an old-* directory: a detached thread deletes it, with no
 * lock held and off the open's path (a process that exits first leaves the
 * rest to the next open) */
static void reap_start(int dirfd)
{
	pthread_attr_t attr;
	struct dirent *de;
	bool any = false;
	pthread_t t;
	DIR *dir;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while (!any && (de = readdir(dir)))
		any = is_old_name(de->d_name);
	closedir(dir);
	if (!any)
		return;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (pthread_attr_init(&attr) != 0) {
		close(fd);
		return;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, reap_main, (void *)(intptr_t)fd) != 0)
		close(fd); /* the next open tries again */
	pthread_attr_destroy(&attr);
}

/* @sub of @fromfd (DIR/chunks/ab of the old layout, or DIR/tmp) renamed
 * into this open's DIR/old-<tag>, made at the first call: O(1) a
 * directory, however many files it holds; a failure leaves it for the
 * next open */
static void legacy_aside(struct fs_disk *d, int *oldfd, int fromfd,
			 const char *sub)
{
	char name[DISK_OLD_NAME_MAX];

	if (*oldfd < 0) {
		snprintf(name, sizeof(name), DISK_OLD_PREFIX "%.*s",
			 (int)strlen(d->tag) - 1, d->tag);
		if (mkdirat(d->dirfd, name, 0700) < 0 && errno != EEXIST)
			return;
		*oldfd =
			openat(d->dirfd, name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (*oldfd < 0)
			return;
	}
	renameat(fromfd, sub, *oldfd, sub);
}

static bool is_pack_name(const char *name)
{
	size_t n = strlen(name), s = strlen(DISK_PACK_SUFFIX);

	return n > s && n < DISK_NAME_MAX && name[0] != '.' &&
	       !strcmp(name + n - s, DISK_PACK_SUFFIX);
}

/* the pack named @name, or NULL; lock held */
static struct pack *pack_named(struct fs_disk *d, const char *name)
{
	uint32_t i;

	for (i = 0; i < d->npacks; i++)
		if (d->packs[i] && !strcmp(d->packs[i]->name, name))
			return d->packs[i];
	return NULL;
}

static int64_t mtime_ns_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* pack @name of DIR/chunks: a known one of another process grown since
 * the last look, or one not known yet, scanned into the table */
static void scan_one(struct fs_disk *d, const char *name)
{
	struct pack *p;
	struct stat st;
	bool grew = false, ours;
	int r;

	pthread_mutex_lock(&d->lock);
	p = pack_named(d, name);
	ours = p && p->ours;
	if (p && !ours)
		p->refs++;
	pthread_mutex_unlock(&d->lock);
	if (ours)
		return; /* its records went in as they were written */
	/* by name, no descriptor: a pack this process cannot open (out of
	 * descriptors) is still counted, and so evicted in its turn */
	if (fstatat(d->cdirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode)) {
		if (p)
			pack_unref(d, p);
		return;
	}
	if (p) {
		pthread_mutex_lock(&d->lock);
		if (!p->dead && (uint64_t)st.st_size > p->size) {
			d->used += (uint64_t)st.st_size - p->size;
			p->size = (uint64_t)st.st_size;
			/* written to since first seen: as warm as that */
			if (mtime_ns_of(&st) > p->used_ns)
				p->used_ns = mtime_ns_of(&st);
			grew = true;
		}
		pthread_mutex_unlock(&d->lock);
		if (grew)
			pack_scan(d, p);
		pack_unref(d, p);
		return;
	}
	pthread_mutex_lock(&d->lock);
	r = pack_add(d, name, (uint64_t)st.st_size, mtime_ns_of(&st), &p);
	if (r == 0)
		p->refs++;
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		return; /* untracked; maybe another process's: left alone */
	pack_scan(d, p);
	pack_unref(d, p);
}

/*
 * the packs of DIR/chunks, and their records: at the first open (@first:
 * also the earlier layout's files go), and at most once a DISK_REFRESH_NS
 * from a write (refresh()), for the packs other processes wrote
 */
static void scan(struct fs_disk *d, bool first)
{
	struct dirent *de;
	int fd, oldfd = -1;
	DIR *dir;

	/* its own descriptor: readdir's offset is the descriptor's */
	fd = openat(d->cdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		if (first && strlen(de->d_name) == 2 && de->d_name[0] != '.')
			legacy_aside(d, &oldfd, d->cdirfd, de->d_name);
		else if (is_pack_name(de->d_name) &&
			 strncmp(de->d_name, d->tag, strlen(d->tag)))
			scan_one(d, de->d_name); /* not one being made here */
	}
	closedir(dir);
	/* the old layout's temporary files went to DIR/tmp */
	if (first && unlinkat(d->dirfd, "tmp", AT_REMOVEDIR) < 0 &&
	    errno == ENOTEMPTY)
		legacy_aside(d, &oldfd, d->dirfd, "tmp");
	if (oldfd >= 0)
		close(oldfd);
}

/* what other processes sharing the directory wrote since the last look,
 * and whether the pack appended to is still there, at most once a
 * DISK_REFRESH_NS; one caller at a time */
static void refresh(struct fs_disk *d)
{
	const int64_t now = mono_ns();
	struct pack *p;
	bool go;

	pthread_mutex_lock(&d->lock);
	go = !d->refreshing && now - d->refreshed_ns >= DISK_REFRESH_NS;
	if (go) {
		d->refreshing = true;
		d->refreshed_ns = now;
	}
	pthread_mutex_unlock(&d->lock);
	if (!go)
		return;
	scan(d, false);
	/* the pack appended to, deleted behind our back: not one more
	 * record into a file nobody can open */
	pthread_mutex_lock(&d->lock);
	p = d->active;
	if (p)
		p->refs++;
	pthread_mutex_unlock(&d->lock);
	if (p) {
		if (!pack_linked(d, p))
			pack_vanished(d, p);
		pack_unref(d, p);
	}
	pthread_mutex_lock(&d->lock);
	d->refreshing = false;
	pthread_mutex_unlock(&d->lock);
}

/* a new pack to append to, already in the list, with a reference for the
 * caller; no lock held (it creates a file) */
static int pack_create(struct fs_disk *d, struct pack **ret)
{
	char name[DISK_NAME_MAX];
	struct pack *p;
	int fd, r, extra = -1;

	snprintf(name, sizeof(name), "%s%u" DISK_PACK_SUFFIX, d->tag,
		 atomic_fetch_add(&d->seq, 1));
	fd = pack_open(d, name, O_RDWR | O_CREAT | O_EXCL);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&d->lock);
	r = pack_add(d, name, 0, now_ns(), &p);
	if (r == 0) {
		p->ours = true;
		p->refs++;
		extra = fd_install(d, p, fd);
	}
	pthread_mutex_unlock(&d->lock);
	if (extra >= 0)
		close(extra);
	if (r < 0) {
		close(fd);
		unlinkat(d->cdirfd, name, 0);
		return r;
	}
	*ret = p;
	return 0;
}

/* the largest pack appended to, for @budget */
static uint64_t pack_cap(uint64_t budget)
{
	uint64_t cap = budget / DISK_PACK_PER_BUDGET;

	return cap < DISK_PACK_MIN ? DISK_PACK_MIN :
	       cap > DISK_PACK_MAX ? DISK_PACK_MAX :
				     cap;
}

/* --- eviction --- */

static int colder_first(const void *a, const void *b)
{
	const struct pack *x = *(struct pack *const *)a,
			  *y = *(struct pack *const *)b;

	return (x->used_ns > y->used_ns) - (x->used_ns < y->used_ns);
}

/* whether evict() has work: past the budget or DISK_PACKS_HIGH; lock held */
static bool over(const struct fs_disk *d)
{
	return d->used > d->budget || d->nlive > DISK_PACKS_HIGH;
}

/*
 * Past the budget: take the coldest packs off the list until the tier is
 * at 90% of it (past DISK_PACKS_HIGH packs: until DISK_PACKS_LOW are
 * left), and their records out of the table, under the lock; then
 * delete their files with it dropped. A reader or writer holding one of
 * them finishes with its descriptor (a writer's record is not added).
 */
static void evict(struct fs_disk *d)
{
	struct pack **cand = NULL, **gone = NULL;
	size_t n = 0, ngone = 0, i;
	uint64_t low;
	bool bytes;

	pthread_mutex_lock(&d->lock);
	if (!over(d))
		goto unlock;
	bytes = d->used > d->budget;
	cand = malloc(d->npacks * sizeof(*cand));
	gone = malloc(d->npacks * sizeof(*gone));
	if (!cand || !gone)
		goto unlock;
	for (i = 0; i < d->npacks; i++)
		if (d->packs[i])
			cand[n++] = d->packs[i];
	qsort(cand, n, sizeof(*cand), colder_first);
	low = d->budget / 10 * 9;
	for (i = 0;
	     i < n && ((bytes && d->used > low) || d->nlive > DISK_PACKS_LOW);
	     i++) {
		cand[i]->refs++; /* ours, for the unlink */
		pack_kill(d, cand[i]); /* never the last: ours is left */
		gone[ngone++] = cand[i];
	}
	table_sweep(d);
unlock:
	pthread_mutex_unlock(&d->lock);
	for (i = 0; i < ngone; i++) {
		char path[DISK_PATH_MAX];

		pack_path(gone[i], path);
		unlinkat(d->dirfd, path, 0);
		pack_unref(d, gone[i]);
	}
	free(cand);
	free(gone);
}

/* --- the directory --- */

/* a new object for directory @dirfd (taken over); disks_lock held */
static int disk_new(int dirfd, const struct stat *st, uint64_t budget,
		    struct fs_disk **ret_disk)
{
	struct fs_disk *d = calloc(1, sizeof(*d));
	int r = 0;

	if (!d) {
		close(dirfd);
		return -ENOMEM;
	}
	d->dirfd = dirfd;
	d->cdirfd = openat(dirfd, DISK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->cdirfd < 0) {
		r = -errno;
		close(dirfd);
		free(d);
		return r;
	}
	d->dev = st->st_dev;
	d->ino = st->st_ino;
	d->refs = 1;
	pthread_mutex_init(&d->lock, NULL);
	d->budget = budget;
	if (getrandom(&d->hkey, sizeof(d->hkey), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(d->hkey))
		d->hkey = (uint64_t)now_ns() ^ (uint64_t)(uintptr_t)d;
	d->refreshed_ns = mono_ns();
	snprintf(d->tag, sizeof(d->tag), "%016llx-%d-",
		 (unsigned long long)now_ns(), (int)getpid());
	scan(d, true);
	reap_start(dirfd);
	evict(d); /* the budget may have shrunk */
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
	    (mkdirat(dirfd, DISK_DIR, 0700) < 0 && errno != EEXIST)) {
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
			do_evict = d->used > budget;
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
		lp_err_set(err, r, "cache dir %s: %s", dir, strerror(-r));
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
	uint32_t i;

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
	/* no I/O is in flight: every user has dropped its reference */
	for (i = 0; i < disk->npacks; i++)
		if (disk->packs[i])
			pack_free(disk->packs[i]);
	free(disk->packs);
	free(disk->slots);
	close(disk->cdirfd);
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

/* the record of @dg and a reference to its pack, or NULL */
static struct pack *lookup(struct fs_disk *d, const struct lp_digest *dg,
			   struct slot *ret)
{
	struct pack *p = NULL;
	size_t i;

	pthread_mutex_lock(&d->lock);
	if (d->slots) {
		i = find_slot(d->slots, d->cap, d->hkey, dg);
		if (d->slots[i].pack != UINT32_MAX) {
			*ret = d->slots[i];
			p = d->packs[ret->pack];
			p->refs++;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return p;
}

/* the record of @dg at @off in @p failed its checks: out of the table */
static void drop_record(struct fs_disk *d, const struct lp_digest *dg,
			const struct pack *p, uint64_t off)
{
	size_t i;

	pthread_mutex_lock(&d->lock);
	if (d->slots) {
		i = find_slot(d->slots, d->cap, d->hkey, dg);
		if (d->slots[i].pack == p->idx && d->slots[i].off == off &&
		    !p->dead)
			table_del_at(d, i);
	}
	pthread_mutex_unlock(&d->lock);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *b = buf;

	while (len) {
		ssize_t n = pread(fd, b, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		b += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fs_disk_get(struct fs_disk *disk, const struct lp_digest *dg, void *buf,
		size_t len)
{
	uint8_t hdr[FS_DISK_RECORD_HDR];
	struct fs_disk_record rec;
	struct pack *p;
	struct slot s;
	int64_t now; /* monotonic */
	bool touch;
	int r = -ENOENT, fd;

	p = lookup(disk, dg, &s);
	if (!p)
		return -ENOENT;
	if (!pack_linked(disk, p)) {
		pack_vanished(disk, p);
		goto out;
	}
	if (s.len != len)
		goto out; /* another length: not what the caller verifies */
	fd = pack_fd_get(disk, p);
	if (fd == -ENOENT) {
		pack_vanished(disk, p);
		goto out;
	}
	if (fd < 0)
		goto out; /* out of descriptors, say: a miss */
	if (pread_all(fd, hdr, sizeof(hdr), s.off) < 0 ||
	    fs_disk_record_parse(hdr, sizeof(hdr), FS_DISK_RECORD_HDR + len,
				 &rec) < 0 ||
	    rec.len != len || !lp_digest_equal(&rec.dg, dg) ||
	    pread_all(fd, buf, len, s.off + FS_DISK_RECORD_HDR) < 0 ||
	    lp_chunk_verify(buf, len, dg) < 0) {
		/* torn, truncated or tampered with: a miss, refetched */
		pack_fd_put(disk, p);
		drop_record(disk, dg, p, s.off);
		goto out;
	}
	now = mono_ns();
	pthread_mutex_lock(&disk->lock);
	p->used_ns = now_ns(); /* warm: evicted last */
	touch = now - p->touched_ns >= DISK_TOUCH_NS;
	if (touch)
		p->touched_ns = now;
	pthread_mutex_unlock(&disk->lock);
	if (touch)
		futimens(fd, NULL); /* and after a restart */
	pack_fd_put(disk, p);
	r = 0;
out:
	pack_unref(disk, p);
	return r;
}

bool fs_disk_has(struct fs_disk *disk, const struct lp_digest *dg)
{
	struct pack *p;
	struct slot s;
	bool has;

	p = lookup(disk, dg, &s);
	if (!p)
		return false;
	has = pack_linked(disk, p);
	if (!has)
		pack_vanished(disk, p);
	pack_unref(disk, p);
	return has;
}

/* room for a record of @rec bytes: the active pack (a new one when it is
 * full) with a reference, @ret_off reserved in it; no lock held */
static int reserve(struct fs_disk *d, uint64_t rec, struct pack **ret,
		   uint64_t *ret_off)
{
	struct pack *p, *fresh = NULL, *spare;
	char path[DISK_PATH_MAX];
	int r;

	for (;;) {
		pthread_mutex_lock(&d->lock);
		spare = NULL;
		if (fresh && !fresh->dead) {
			if (!d->active) {
				d->active = fresh;
			} else {
				/* another writer's is newer: ours goes,
				 * empty (never the last reference) */
				pack_kill(d, fresh);
				spare = fresh;
			}
		}
		p = d->active;
		if (p && p->size > 0 && p->size + rec > pack_cap(d->budget)) {
			d->active = NULL; /* full: read only from now on */
			p = NULL;
		}
		if (p) {
			*ret_off = p->size;
			p->size += rec;
			p->used_ns = now_ns();
			d->used += rec;
			p->refs++;
		}
		pthread_mutex_unlock(&d->lock);
		if (spare) {
			pack_path(spare, path);
			unlinkat(d->dirfd, path, 0);
		}
		if (fresh)
			pack_unref(d, fresh);
		fresh = NULL;
		if (p) {
			*ret = p;
			return 0;
		}
		r = pack_create(d, &fresh);
		if (r < 0)
			return r;
	}
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = pwrite(fd, b, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		b += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fs_disk_put(struct fs_disk *disk, const struct lp_digest *dg,
		const void *buf, size_t len)
{
	uint8_t hdr[FS_DISK_RECORD_HDR];
	struct pack *p = NULL;
	bool too_big, do_evict;
	uint64_t off;
	int r = 0, fd;

	pthread_mutex_lock(&disk->lock);
	too_big = len > LP_CHUNK_MAX_SIZE ||
		  len + FS_DISK_RECORD_HDR > disk->budget;
	pthread_mutex_unlock(&disk->lock);
	if (too_big)
		goto out;
	refresh(disk);
	if (fs_disk_has(disk, dg))
		goto out;
	r = reserve(disk, FS_DISK_RECORD_HDR + len, &p, &off);
	if (r < 0)
		goto out;
	/* the header first: a crash before the payload leaves a record the
	 * read rejects, not a torn header that ends the pack's scan */
	fs_disk_record_header(dg, (uint32_t)len, hdr);
	fd = pack_fd_get(disk, p);
	r = fd < 0 ? fd : pwrite_all(fd, hdr, sizeof(hdr), off);
	if (r == 0)
		r = pwrite_all(fd, buf, len, off + sizeof(hdr));
	if (fd >= 0)
		pack_fd_put(disk, p);
	pthread_mutex_lock(&disk->lock);
	if (r == 0 && !p->dead)
		table_add(disk, dg, p, off, (uint32_t)len);
	/* ENOSPC, EIO: a hole or a torn header where the record was to be,
	 * which would end the pack's next scan: later records go to a new
	 * pack (those already reserved here are served until a restart) */
	if (r < 0 && disk->active == p)
		disk->active = NULL;
	do_evict = over(disk);
	pthread_mutex_unlock(&disk->lock);
	pack_unref(disk, p);
	if (do_evict)
		evict(disk);
out:
	return r;
}
