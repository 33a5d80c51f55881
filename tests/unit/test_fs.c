// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for fs/, mostly without FUSE: the inode view (lookup, readdir,
 * getattr, readlink, xattrs, overlayfs conventions, the control file) and
 * every file of every vector read back and compared with the .files
 * digests; a fault-injecting blob (corrupt, replace with a valid but wrong
 * member, fail, delay) that must give errors and never wrong bytes; single
 * flight under threads; the memory budget, one for the layers of a process
 * (least recent first across layers; background chunks left to the disk
 * tier; without a disk tier the background stops at the process's
 * budget); the disk tier across remounts; its writer (an on-demand read
 * leaves the copies a full queue cannot take for later, never writes them
 * itself);
 * no disk lookup under the scheduler's lock (faccessat watched);
 * the one digest policy (a TOC rewritten by craft_toc.h: a file without
 * chunkDigest is served by its file digest when it is one chunk, refused
 * when that lies, is missing, or the file has several chunks);
 * prefetch and background fetch (a background read starts while an
 * on-demand read is in flight); the on-demand latency histogram and FUSE
 * operation counts (through a real mount: run as root with /dev/fuse; without
 * them the test fails, or with LP_ALLOW_SKIP=1 is skipped and the binary
 * exits 77, which ctest reports as skipped).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "toc_test_digest.h"
#include "craft_toc.h"
#include "fs_int.h" /* test_writer_full: the disk writer's queue */
#include "lp_fs.h"
#include "lp_fuse.h"
#include "toc_fault.h"
#include "deleted_fd.h"

#define VEC(name) LP_VECTORS_DIR "/" name
#define MAX_FILES 512
#define READ_PIECE 100003 /* odd, so reads straddle chunk ends */

static const char *const vectors[] = { "v1-default", "v1-chunk64k", "v1-prio",
				       "v1-zstd" };

/* --- a fault-injecting blob --- */

enum fault_mode {
	FAULT_NONE,
	FAULT_CORRUPT, /* flip bytes in [lo, hi) */
	FAULT_REPLACE, /* serve repl at lo */
	FAULT_FAIL, /* -EIO for reads touching [lo, hi), retryable: the
		       source is away (as a registry that does not answer) */
	FAULT_GONE, /* -EIO for reads touching [lo, hi), permanent, HTTP
		       404: the source says the blob is not there */
	FAULT_ZERO, /* a truncated download: zeros from lo on */
};

struct fault {
	struct lp_blob *inner;
	atomic_int mode;
	uint64_t lo, hi;
	const uint8_t *repl;
	size_t repl_len;
	atomic_uint reads;
	atomic_uint multi_reads; /* pread_multi calls */
	atomic_uint delay_ms;
	/* CLOCK_MONOTONIC ms when the first read since it was 0 began: when
	 * a fetch started, whenever a polling thread gets to see it */
	atomic_uint_fast64_t first_read_ms;
	/* streaming (stream_ops): pieces of STREAM_PIECE; a read stops before
	 * the first piece reaching past @gate until the gate opens */
	atomic_uint streams; /* pread_stream calls */
	atomic_size_t max_stream; /* the longest pread_stream's length */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t gate; /* protected by lock; 0: none */
	bool at_gate; /* protected by lock; a read waits there */
	atomic_uint rejects; /* lp_blob_reject() calls: a host blamed */
};

static int fault_pread(void *ctx, void *buf, size_t len, uint64_t off,
		       struct lp_err *err)
{
	struct fault *f = ctx;
	uint8_t *p = buf;
	int mode = atomic_load(&f->mode), r;
	uint64_t i;

	uint_fast64_t zero = 0;

	atomic_compare_exchange_strong(&f->first_read_ms, &zero, lp_mono_ms());
	atomic_fetch_add(&f->reads, 1);
	if (atomic_load(&f->delay_ms))
		usleep(1000 * atomic_load(&f->delay_ms));
	if (mode == FAULT_FAIL && off < f->hi && off + len > f->lo)
		return lp_err_set_ex(err, -EIO, LP_ERR_RETRYABLE, 0,
				     "fault: source unreachable");
	if (mode == FAULT_GONE && off < f->hi && off + len > f->lo)
		return lp_err_set_ex(err, -EIO, 0, 404,
				     "fault: blob range: HTTP 404");
	r = lp_blob_pread(f->inner, buf, len, off, err);
	if (r < 0)
		return r;
	for (i = off; i < off + len; i++) {
		if (mode == FAULT_CORRUPT && i >= f->lo && i < f->hi)
			p[i - off] ^= 0x5a;
		if (mode == FAULT_REPLACE && i >= f->lo &&
		    i < f->lo + f->repl_len)
			p[i - off] = f->repl[i - f->lo];
		if (mode == FAULT_ZERO && i >= f->lo && i < f->hi)
			p[i - off] = 0;
	}
	return 0;
}

/* several ranges in one call, as a registry's multi-range request */
static int fault_pread_multi(void *ctx, const struct lp_blob_range *ranges,
			     size_t n, struct lp_err *err)
{
	struct fault *f = ctx;
	size_t i;
	int r = 0;

	atomic_fetch_add(&f->multi_reads, 1);
	for (i = 0; i < n && r == 0; i++)
		r = fault_pread(ctx, ranges[i].buf, ranges[i].len,
				ranges[i].off, err);
	return r;
}

#define STREAM_PIECE (16 * 1024) /* as curl hands a body over */

/* a source that streams, as a registry blob: one request per call */
static int fault_pread_stream(void *ctx, void *buf, size_t len, uint64_t off,
			      lp_blob_progress_fn fn, void *arg,
			      struct lp_err *err)
{
	struct fault *f = ctx;
	size_t done = 0, n;
	int r = 0;

	atomic_fetch_add(&f->streams, 1);
	n = atomic_load(&f->max_stream);
	while (len > n &&
	       !atomic_compare_exchange_weak(&f->max_stream, &n, len))
		;
	while (done < len && r == 0) {
		n = len - done < STREAM_PIECE ? len - done : STREAM_PIECE;
		pthread_mutex_lock(&f->lock);
		while (f->gate && off + done + n > f->gate) {
			f->at_gate = true;
			pthread_cond_broadcast(&f->cond);
			pthread_cond_wait(&f->cond, &f->lock);
		}
		f->at_gate = false;
		pthread_mutex_unlock(&f->lock);
		r = fault_pread(ctx, (uint8_t *)buf + done, n, off + done, err);
		atomic_fetch_sub(&f->reads, 1); /* one read: the stream */
		if (r == 0) {
			done += n;
			r = fn(arg, done);
		}
	}
	atomic_fetch_add(&f->reads, 1);
	return r;
}

static void gate_set(struct fault *f, uint64_t gate)
{
	pthread_mutex_lock(&f->lock);
	f->gate = gate;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* wait (up to 10 s) until a streamed read stands at the gate */
static void gate_wait(struct fault *f)
{
	struct timespec ts;
	bool at;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&f->lock);
	while (!f->at_gate &&
	       pthread_cond_timedwait(&f->cond, &f->lock, &ts) != ETIMEDOUT)
		;
	at = f->at_gate;
	pthread_mutex_unlock(&f->lock);
	if (!at)
		fail_msg("no streamed read reached the gate");
}

static void fault_close(void *ctx)
{
	struct fault *f = ctx;

	lp_blob_unref(f->inner);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static void fault_reject(void *ctx, uint64_t off, uint64_t len)
{
	struct fault *f = ctx;

	(void)off;
	(void)len;
	atomic_fetch_add(&f->rejects, 1);
}

static const struct lp_blob_ops fault_ops = {
	.pread = fault_pread,
	.close = fault_close,
	.pread_multi = fault_pread_multi,
	.reject = fault_reject,
};

static const struct lp_blob_ops stream_ops = {
	.pread = fault_pread,
	.close = fault_close,
	.pread_multi = fault_pread_multi,
	.pread_stream = fault_pread_stream,
	.reject = fault_reject,
};

struct fixture {
	struct lp_fs *fs;
	struct fault *fault; /* owned by the blob */
	bool stream; /* set before open_fs: the blob streams */
	/* set before open_fs: the TOC's digests spilled to a file there */
	const char *spill_dir;
};

static void read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_non_null(fgets(buf, (int)len, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void open_fs(struct fixture *fx, const char *vec,
		    const struct lp_fs_options *opts_in)
{
	char path[512], dgs[128];
	struct lp_fs_options opts;
	struct lp_blob *file = NULL, *blob = NULL;
	struct lp_layer *layer = NULL;
	struct lp_digest dg;
	struct lp_err err = { 0 };
	struct fault *f;

	if (opts_in) {
		opts = *opts_in;
	} else {
		lp_fs_options_init(&opts);
		opts.prefetch = false;
		opts.background_fetch = false;
	}
	snprintf(path, sizeof(path), "%s/%s.toc-digest", LP_VECTORS_DIR, vec);
	read_text(path, dgs, sizeof(dgs));
	assert_int_equal(lp_digest_parse(dgs, &dg), 0);
	snprintf(path, sizeof(path), "%s/%s.esgz", LP_VECTORS_DIR, vec);
	assert_int_equal(lp_blob_open_file(path, &file), 0);
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->inner = file;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	assert_int_equal(lp_blob_new(fx->stream ? &stream_ops : &fault_ops, f,
				     lp_blob_size(file), path, &blob),
			 0);
	assert_int_equal(lp_layer_open(blob, &dg, &layer, &err), 0);
	lp_blob_unref(blob);
	if (fx->spill_dir)
		assert_int_equal(lp_toc_spill_digests(
					 (struct lp_toc *)lp_layer_toc(layer),
					 fx->spill_dir, 0, &err),
				 1);
	assert_int_equal(lp_fs_new(layer, &opts, &fx->fs, &err), 0);
	fx->fault = f;
}

/* --- the .files listing --- */

struct want_file {
	char path[4200];
	struct lp_digest dg;
};

static size_t load_files(const char *vec, struct want_file *out)
{
	char path[512], line[4100];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.files", LP_VECTORS_DIR, vec);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *sp;

		line[strcspn(line, "\n")] = '\0';
		sp = strrchr(line, ' ');
		assert_non_null(sp);
		*sp = '\0';
		assert_true(n < MAX_FILES);
		snprintf(out[n].path, sizeof(out[n].path), "%s", line);
		assert_int_equal(lp_digest_parse(sp + 1, &out[n].dg), 0);
		n++;
	}
	fclose(f);
	return n;
}

/* lookup a path one component at a time, as the kernel does */
static int lookup_path(struct lp_fs *fs, const char *path, struct stat *st)
{
	char buf[4200], *save = NULL, *comp;
	uint64_t ino = LP_FS_ROOT_INO;
	int r = lp_fs_getattr(fs, ino, st);

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, strlen(path) + 1);
	for (comp = strtok_r(buf, "/", &save); comp && r == 0;
	     comp = strtok_r(NULL, "/", &save)) {
		r = lp_fs_lookup(fs, ino, comp, st);
		ino = st->st_ino;
	}
	return r;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* read pieces in place (lp_fs_read_pin); the copy when they span too many */
static int read_piece(struct lp_fs *fs, uint64_t ino, struct lp_fs_file *file,
		      struct lp_sha256 *h, uint8_t *buf, uint64_t off, bool pin,
		      struct lp_err *err)
{
	struct lp_fs_segs segs;
	size_t total = 0;
	unsigned int i;
	int r = -E2BIG;

	if (pin)
		r = lp_fs_read_pin(fs, ino, file, READ_PIECE, off, &segs, err);
	if (r == -E2BIG) {
		r = lp_fs_read(fs, ino, file, buf, READ_PIECE, off, err);
		if (r > 0)
			lp_sha256_update(h, buf, (size_t)r);
		return r;
	}
	if (r < 0) {
		assert_int_equal(segs.nr, 0); /* nothing left pinned */
		return r;
	}
	for (i = 0; i < segs.nr; i++) {
		lp_sha256_update(h, segs.iov[i].iov_base, segs.iov[i].iov_len);
		total += segs.iov[i].iov_len;
	}
	assert_int_equal(total, (size_t)r);
	lp_fs_read_unpin(fs, &segs);
	return r;
}

/* read a whole file in odd pieces, copied and in place by turns, through
 * a handle or (odd inodes) by inode alone as a mount without opens does;
 * digest and result */
static int read_digest(struct lp_fs *fs, uint64_t ino, struct lp_digest *out,
		       struct lp_err *err)
{
	struct lp_sha256 *h = NULL;
	struct lp_fs_file *file = NULL;
	uint8_t *buf = malloc(READ_PIECE);
	uint64_t off = 0;
	bool direct, pin = false;
	int r;

	assert_non_null(buf);
	assert_int_equal(lp_sha256_new(&h), 0);
	if (!(ino & 1)) {
		r = lp_fs_open(fs, ino, O_RDONLY, &file, &direct);
		assert_int_equal(r, 0);
	}
	for (;;) {
		r = read_piece(fs, ino, file, h, buf, off, pin, err);
		if (r <= 0)
			break;
		off += (uint64_t)r;
		pin = !pin;
	}
	lp_sha256_final(h, out);
	lp_sha256_free(h);
	lp_fs_release(fs, file);
	free(buf);
	return r;
}

static void check_all_files(struct lp_fs *fs, const char *vec)
{
	static struct want_file want[MAX_FILES];
	size_t n = load_files(vec, want), i;

	assert_true(n > 200);
	for (i = 0; i < n; i++) {
		const char *b = base_name(want[i].path);
		struct lp_err err = { 0 };
		struct lp_digest got;
		struct stat st;

		if (!strcmp(b, ".prefetch.landmark") ||
		    !strcmp(b, ".no.prefetch.landmark") ||
		    !strncmp(b, ".wh.", 4)) {
			/* hidden under their own name */
			assert_int_equal(lookup_path(fs, want[i].path, &st),
					 -ENOENT);
			continue;
		}
		assert_int_equal(lookup_path(fs, want[i].path, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(read_digest(fs, st.st_ino, &got, &err), 0);
		if (!lp_digest_equal(&got, &want[i].dg))
			fail_msg("%s: %s: wrong bytes", vec, want[i].path);
	}
}

static void test_read_every_file(void **state)
{
	size_t v;

	for (v = 0; v < LP_ARRAY_SIZE(vectors); v++) {
		struct fixture fx = { 0 };

		open_fs(&fx, vectors[v], NULL);
		check_all_files(fx.fs, vectors[v]);
		lp_fs_free(fx.fs);
	}
}

/* --- the inode view --- */

struct listing {
	char names[64][256];
	uint64_t inos[64];
	size_t n;
	size_t stop_after; /* 0: never stop */
	uint64_t last_off;
};

static int collect(void *opaque, const char *name, const struct stat *st,
		   uint64_t next_off)
{
	struct listing *l = opaque;

	if (l->stop_after && l->n == l->stop_after)
		return 1;
	assert_true(l->n < 64);
	snprintf(l->names[l->n], 256, "%s", name);
	l->inos[l->n++] = st->st_ino;
	l->last_off = next_off;
	return 0;
}

static bool listed(const struct listing *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return true;
	return false;
}

static void test_inode_view(void **state)
{
	struct fixture fx = { 0 };
	struct listing l = { 0 }, part = { 0 };
	struct stat st, st2;
	const char *target;
	char buf[300];
	int n;

	open_fs(&fx, "v1-prio", NULL);

	/* root: landmarks and the control dir are not listed */
	assert_int_equal(lp_fs_readdir(fx.fs, LP_FS_ROOT_INO, 0, collect, &l),
			 0);
	assert_true(listed(&l, ".") && listed(&l, ".."));
	assert_true(listed(&l, "usr") && listed(&l, "whiteouts"));
	assert_false(listed(&l, ".prefetch.landmark"));
	assert_false(listed(&l, ".lazypull"));
	/* offsets resume where a full buffer stopped */
	part.stop_after = 3;
	lp_fs_readdir(fx.fs, LP_FS_ROOT_INO, 0, collect, &part);
	part.stop_after = 0;
	lp_fs_readdir(fx.fs, LP_FS_ROOT_INO, part.last_off, collect, &part);
	assert_int_equal(part.n, l.n);

	/* attributes */
	assert_int_equal(lookup_path(fx.fs, "usr/bin/tool", &st), 0);
	assert_int_equal(st.st_mode, S_IFREG | 04755);
	assert_int_equal(st.st_size, 300000);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(lookup_path(fx.fs, "usr/bin/tool-hardlink", &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(lookup_path(fx.fs, "var/null-dev", &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(major(st.st_rdev), 1);
	assert_int_equal(minor(st.st_rdev), 3);
	assert_int_equal(lookup_path(fx.fs, "var/blk", &st), 0);
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(major(st.st_rdev), 7);
	assert_int_equal(lookup_path(fx.fs, "var/fifo", &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(lookup_path(fx.fs, "var/empty", &st), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 01777);
	assert_int_equal(lookup_path(fx.fs, "opt/ünïcødé dir", &st), 0);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1001);
	assert_int_equal(lookup_path(fx.fs, "etc/empty-file", &st), 0);
	assert_int_equal(st.st_mtim.tv_sec,
			 1614834367); /* 2021-03-04T05:06:07Z */

	/* symlinks */
	assert_int_equal(lookup_path(fx.fs, "usr/bin/big-link", &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lp_fs_readlink(fx.fs, st.st_ino, &target), 0);
	assert_string_equal(target, "../lib/big.bin");
	assert_int_equal(st.st_size, strlen(target));
	assert_int_equal(lp_fs_readlink(fx.fs, LP_FS_ROOT_INO, &target),
			 -EINVAL);

	/* xattrs */
	assert_int_equal(lookup_path(fx.fs, "etc/conf.d/app.conf", &st), 0);
	n = lp_fs_getxattr(fx.fs, st.st_ino, "user.lazypull.test", NULL, 0);
	assert_int_equal(n, 6);
	assert_int_equal(
		lp_fs_getxattr(fx.fs, st.st_ino, "user.lazypull.test", buf, 2),
		-ERANGE);
	assert_int_equal(lp_fs_getxattr(fx.fs, st.st_ino, "user.lazypull.test",
					buf, sizeof(buf)),
			 6);
	assert_memory_equal(buf, "seed-1", 6);
	assert_int_equal(
		lp_fs_getxattr(fx.fs, st.st_ino, "user.nope", buf, sizeof(buf)),
		-ENODATA);
	n = lp_fs_listxattr(fx.fs, st.st_ino, buf, sizeof(buf));
	assert_int_equal(n, strlen("user.lazypull.test") + 1);

	/* whiteouts: .wh.NAME is a 0/0 char device NAME */
	l.n = 0;
	assert_int_equal(lookup_path(fx.fs, "whiteouts", &st), 0);
	assert_int_equal(lp_fs_readdir(fx.fs, st.st_ino, 0, collect, &l), 0);
	assert_true(listed(&l, "deleted-file"));
	assert_false(listed(&l, ".wh.deleted-file"));
	assert_int_equal(lookup_path(fx.fs, "whiteouts/deleted-file", &st), 0);
	assert_int_equal(st.st_mode, S_IFCHR);
	assert_int_equal(st.st_rdev, makedev(0, 0));
	assert_int_equal(lookup_path(fx.fs, "whiteouts/.wh.deleted-file", &st),
			 -ENOENT);

	/* opaque: marker hidden, xattr reported */
	l.n = 0;
	assert_int_equal(lookup_path(fx.fs, "whiteouts/gone-dir", &st), 0);
	assert_int_equal(lp_fs_readdir(fx.fs, st.st_ino, 0, collect, &l), 0);
	assert_int_equal(l.n, 2); /* ".", ".." */
	assert_false(listed(&l, ".wh..wh..opq"));
	assert_int_equal(lp_fs_getxattr(fx.fs, st.st_ino,
					"trusted.overlay.opaque", buf,
					sizeof(buf)),
			 1);
	assert_int_equal(buf[0], 'y');
	n = lp_fs_listxattr(fx.fs, st.st_ino, buf, sizeof(buf));
	assert_int_equal(n, sizeof("trusted.overlay.opaque"));

	/* errors */
	assert_int_equal(lookup_path(fx.fs, "usr/bin/tool/x", &st), -ENOTDIR);
	assert_int_equal(lookup_path(fx.fs, "nope", &st), -ENOENT);
	assert_int_equal(lp_fs_getattr(fx.fs, 1u << 30, &st), -ENOENT);
	memset(buf, 'x', 255);
	buf[255] = '\0';
	assert_int_equal(lp_fs_lookup(fx.fs, LP_FS_ROOT_INO, buf, &st),
			 -ENOENT);
	strcat(buf, "y"); /* 256: one over NAME_MAX */
	assert_int_equal(lp_fs_lookup(fx.fs, LP_FS_ROOT_INO, buf, &st),
			 -ENAMETOOLONG);
	lp_fs_free(fx.fs);
}

static void test_control_file(void **state)
{
	struct fixture fx = { 0 };
	struct lp_fs_file *file = NULL;
	struct lp_err err = { 0 };
	struct stat st;
	char buf[8192];
	bool direct;
	int n;

	open_fs(&fx, "v1-default", NULL);
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &st), 0);
	assert_int_equal(lp_fs_open(fx.fs, st.st_ino, O_RDWR, &file, &direct),
			 -EROFS);
	assert_int_equal(lookup_path(fx.fs, ".lazypull/stats", &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(lp_fs_open(fx.fs, st.st_ino, O_RDONLY, &file, &direct),
			 0);
	assert_true(direct);
	n = lp_fs_read(fx.fs, st.st_ino, file, buf, sizeof(buf) - 1, 0, &err);
	assert_true(n > 100);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"fetched_bytes\": "));
	assert_non_null(strstr(buf, "\"background\": {\"state\": \"off\""));
	lp_fs_release(fx.fs, file);
	lp_fs_free(fx.fs);
}

/* the control file read without a handle: each lookup makes a snapshot,
 * reported with its size and a newer mtime; reads serve the last one */
static void test_control_file_no_open(void **state)
{
	struct fixture fx = { 0 };
	struct lp_fs_segs segs;
	struct lp_err err = { 0 };
	struct stat st, st2, big, dir;
	char buf[8192], one;
	int n;

	open_fs(&fx, "v1-default", NULL);
	assert_int_equal(lookup_path(fx.fs, ".lazypull/stats", &st), 0);
	assert_true(st.st_size > 100 && st.st_size < (off_t)sizeof(buf));
	n = lp_fs_read(fx.fs, st.st_ino, NULL, buf, sizeof(buf) - 1, 0, &err);
	assert_int_equal(n, st.st_size);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"fetched_chunks\": 0,"));
	assert_string_equal(buf + n - 2, "}\n");
	/* no pinning: the snapshot may be replaced while a reply is written */
	assert_int_equal(
		lp_fs_read_pin(fx.fs, st.st_ino, NULL, 10, 0, &segs, &err),
		-E2BIG);
	assert_int_equal(segs.nr, 0);
	/* getattr reports the snapshot without making a new one */
	assert_int_equal(lp_fs_getattr(fx.fs, st.st_ino, &st2), 0);
	assert_int_equal(st2.st_size, st.st_size);
	assert_int_equal(st2.st_mtim.tv_sec, st.st_mtim.tv_sec);
	assert_int_equal(st2.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
	assert_true(lp_fs_volatile(fx.fs, st.st_ino));

	/* a read without a handle fetches; the next lookup shows it */
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &big), 0);
	assert_false(lp_fs_volatile(fx.fs, big.st_ino));
	assert_int_equal(lp_fs_read(fx.fs, big.st_ino, NULL, &one, 1, 0, &err),
			 1);
	n = lp_fs_read(fx.fs, st.st_ino, NULL, buf, sizeof(buf) - 1, 0, &err);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"fetched_chunks\": 0,")); /* same */
	assert_int_equal(lookup_path(fx.fs, ".lazypull/stats", &st2), 0);
	assert_true(st2.st_mtim.tv_sec > st.st_mtim.tv_sec ||
		    (st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
		     st2.st_mtim.tv_nsec > st.st_mtim.tv_nsec));
	n = lp_fs_read(fx.fs, st.st_ino, NULL, buf, sizeof(buf) - 1, 0, &err);
	assert_int_equal(n, st2.st_size);
	buf[n] = '\0';
	assert_null(strstr(buf, "\"fetched_chunks\": 0,"));
	/* reads past the end, and of what is not a regular file */
	assert_int_equal(lp_fs_read(fx.fs, st.st_ino, NULL, buf, 10,
				    (uint64_t)st2.st_size, &err),
			 0);
	assert_int_equal(lookup_path(fx.fs, "usr/lib", &dir), 0);
	assert_int_equal(lp_fs_read(fx.fs, dir.st_ino, NULL, buf, 10, 0, &err),
			 -EISDIR);
	assert_int_equal(
		lp_fs_read(fx.fs, st.st_ino - 1, NULL, buf, 10, 0, &err),
		-EISDIR); /* the control directory */
	assert_int_equal(
		lp_fs_read(fx.fs, st.st_ino + 1, NULL, buf, 10, 0, &err),
		-ENOENT);
	assert_int_equal(lp_fs_read(fx.fs, 0, NULL, buf, 10, 0, &err), -ENOENT);
	lp_fs_free(fx.fs);
}

/* --- faults --- */

/* the first chunk of @path: valid until the next call */
static const struct lp_toc_chunk *first_chunk_of(struct lp_fs *fs,
						 const char *path)
{
	static struct lp_toc_chunk c;
	const struct lp_toc *toc = lp_layer_toc(lp_fs_layer(fs));
	uint32_t idx = lp_toc_lookup_path(toc, path);

	assert_int_not_equal(idx, LP_TOC_NO_INDEX);
	c = lp_toc_chunk(toc, lp_toc_entry(toc, idx)->first_chunk);
	return &c;
}

static int read_path(struct lp_fs *fs, const char *path, struct lp_err *err)
{
	struct lp_digest got;
	struct stat st;

	assert_int_equal(lookup_path(fs, path, &st), 0);
	return read_digest(fs, st.st_ino, &got, err);
}

static void test_faults(void **state)
{
	struct fixture fx = { 0 };
	const struct lp_toc_chunk *c;
	struct lp_err err = { 0 };
	uint8_t *fake, *orig;
	uLongf fake_len;
	z_stream z = { 0 };

	open_fs(&fx, "v1-default", NULL);

	/* flipped bytes in app.conf's member: -EBADMSG naming the file */
	c = first_chunk_of(fx.fs, "etc/conf.d/app.conf");
	fx.fault->lo = c->offset + c->compressed_size / 2;
	fx.fault->hi = fx.fault->lo + 4;
	atomic_store(&fx.fault->mode, FAULT_CORRUPT);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "etc/conf.d/app.conf"));
	assert_non_null(strstr(err.msg, "offset 0"));
	/* nothing bad was cached: the next read is fine once bytes are */
	atomic_store(&fx.fault->mode, FAULT_NONE);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", &err), 0);

	/* a valid gzip member with the wrong bytes: digest mismatch */
	c = first_chunk_of(fx.fs, "usr/bin/tool");
	orig = calloc(1, c->chunk_size);
	fake_len = c->compressed_size;
	fake = calloc(1, fake_len);
	assert_non_null(orig);
	assert_non_null(fake);
	memset(orig, 'A', c->chunk_size);
	assert_int_equal(
		deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY),
		Z_OK);
	z.next_in = orig;
	z.avail_in = (uInt)c->chunk_size;
	z.next_out = fake;
	z.avail_out = (uInt)fake_len;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	deflateEnd(&z);
	fx.fault->lo = c->offset;
	fx.fault->repl = fake;
	fx.fault->repl_len = fake_len;
	atomic_store(&fx.fault->mode, FAULT_REPLACE);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "usr/bin/tool"));
	assert_non_null(strstr(err.msg, "digest mismatch"));

	/* a failing source: its error, not bytes */
	c = first_chunk_of(fx.fs, "usr/lib/big.bin");
	fx.fault->lo = c->offset;
	fx.fault->hi = c->offset + 1;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", &err), -EIO);

	/* a truncated download (zeros past a point) */
	fx.fault->lo = c->offset + 1000;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_ZERO);
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", &err), -EBADMSG);

	atomic_store(&fx.fault->mode, FAULT_NONE);
	check_all_files(fx.fs, "v1-default");
	lp_fs_free(fx.fs);
	free(fake);
	free(orig);
}

/*
 * The TOC's spilled digest table failing to read (a local disk error) is
 * neither a verify failure nor the source's fault: the read fails with EIO
 * naming the table, verify_failures stays 0 and no host is rejected, the
 * refusal is counted in digest_table_errors; nothing bad is kept, so the
 * file reads once the table does. Both places a chunk fetch reads its
 * digest: a table that fails every read (/dev/null in its place), and one
 * whose second read fails (toc_fault.h) after the first one served.
 */

static uint64_t stat_of(struct lp_fs *fs, const char *key);

static void test_spill_read_error(void **state)
{
	char tmpl[] = "lp-test-fs-spill.XXXXXX", dir[4096];
	struct fixture fx = { 0 };
	const struct lp_toc *toc;
	const struct lp_toc_chunk *c;
	struct lp_err err = { 0 };
	uint8_t *data;
	int dfd, good, null;

	(void)state;
	/* the build's directory: a disk (a tmpfs keeps the table in memory) */
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, dir));
	fx.spill_dir = dir;
	open_fs(&fx, "v1-default", NULL);
	dfd = deleted_fd_in(dir);
	assert_int_equal(rmdir(dir), 0);
	toc = lp_layer_toc(lp_fs_layer(fx.fs));
	c = first_chunk_of(fx.fs, "etc/conf.d/app.conf");
	data = calloc(1, c->chunk_size);
	assert_non_null(data);

	/* every read of the table fails (short: -EIO) */
	good = dup(dfd);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(good >= 0 && null >= 0);
	assert_int_equal(dup2(null, dfd), dfd);
	assert_int_equal(lp_chunk_check(toc, c, data, &err), -EIO);
	assert_non_null(strstr(err.msg, "digest table"));
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", &err), -EIO);
	assert_non_null(strstr(err.msg, "etc/conf.d/app.conf"));
	assert_non_null(strstr(err.msg, "digest table could not be read"));
	assert_int_equal(stat_of(fx.fs, "\"verify_failures"), 0);
	assert_true(stat_of(fx.fs, "\"digest_table_errors") >= 1);
	assert_int_equal(atomic_load(&fx.fault->rejects), 0);
	assert_int_equal(dup2(good, dfd), dfd);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", &err), 0);

	/* a transient error: the one read of the fetch fails, the next
	 * read of the file (a new fetch) is served */
	lp_toc_spill_fault(0, 1);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", &err), -EIO);
	assert_non_null(strstr(err.msg, "usr/bin/tool"));
	assert_non_null(strstr(err.msg, "digest table could not be read"));
	assert_int_equal(stat_of(fx.fs, "\"verify_failures"), 0);
	assert_int_equal(atomic_load(&fx.fault->rejects), 0);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", &err), 0);
	lp_toc_spill_fault(0, 0);

	check_all_files(fx.fs, "v1-default");
	assert_int_equal(stat_of(fx.fs, "\"verify_failures"), 0);
	lp_fs_free(fx.fs);
	close(good);
	close(null);
	free(data);
}

/*
 * A chunk fetch reads its digest from a spilled table once: for the
 * disk-tier lookup, the verify (carried to it) and the disk-tier write
 * (carried on the chunk); with a disk tier an on-demand fetch reads its
 * first chunk's once more beforehand (on_disk: whether the link is used).
 * Counted by toc_fault.h over a read of a file of one chunk (and the
 * chunks read ahead with it).
 */
static void test_spill_reads_once(void **state)
{
	char tmpl[] = "lp-test-fs-spill.XXXXXX", dir[4096];
	char cache[] = "/tmp/lp-test-fs-XXXXXX", cmd[600];
	struct lp_fs_options opts;
	struct lp_err err = { 0 };
	int disk;

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, dir));
	assert_non_null(mkdtemp(cache));
	for (disk = 0; disk < 2; disk++) {
		struct fixture fx = { .spill_dir = dir };

		lp_fs_options_init(&opts);
		opts.prefetch = false;
		opts.background_fetch = false;
		opts.cache_dir = disk ? cache : NULL;
		open_fs(&fx, "v1-default", &opts);
		assert_int_equal(
			lp_toc_entry(lp_layer_toc(lp_fs_layer(fx.fs)),
				     lp_toc_lookup_path(
					     lp_layer_toc(lp_fs_layer(fx.fs)),
					     "etc/conf.d/app.conf"))
				->nr_chunks,
			1);
		lp_toc_spill_fault(0, 0);
		assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", &err),
				 0);
		/* one per chunk the run fetched (read-ahead takes a few);
		 * not started: the fetch wrote its disk-tier copies itself */
		assert_true(stat_of(fx.fs, "\"fetched_chunks") >= 1);
		assert_int_equal(atomic_load(&lp_toc_spill_reads),
				 stat_of(fx.fs, "\"fetched_chunks") +
					 (disk ? 1 : 0));
		if (disk)
			assert_true(stat_of(fx.fs, "\"disk_bytes") > 0);
		lp_fs_free(fx.fs);
	}
	assert_int_equal(rmdir(dir), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	assert_int_equal(system(cmd), 0);
}

/* --- the digest policy (the same as layer extract / verify) --- */

static void test_digest_policy(void **state)
{
	static const struct {
		const char *path;
		enum craft_mode mode;
		int want;
		const char *why;
	} cases[] = {
		{ "etc/conf.d/app.conf", CRAFT_HONEST, 0, NULL },
		{ "etc/conf.d/app.conf", CRAFT_LIE, -EBADMSG,
		  "file digest mismatch" },
		{ "etc/conf.d/app.conf", CRAFT_NONE, -EBADMSG,
		  "no chunkDigest and no file digest" },
		{ "usr/lib/big.bin", CRAFT_MULTI, -EBADMSG,
		  "no chunkDigest to verify against" },
	};
	struct lp_fs_options opts;
	FILE *f = fopen(VEC("v1-default.esgz"), "rb");
	uint8_t *data;
	long len;
	size_t i;

	(void)state;
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	data = malloc((size_t)len);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	for (i = 0; i < LP_ARRAY_SIZE(cases); i++) {
		char dotted[256];
		struct lp_digest tocd, got;
		struct lp_blob *blob = NULL;
		struct lp_layer *layer = NULL;
		struct lp_fs *fs = NULL;
		struct lp_err err = { 0 };
		const struct lp_toc *toc;
		struct stat st;
		size_t clen = 0;
		uint8_t *craft;
		int r;

		snprintf(dotted, sizeof(dotted), "./%s", cases[i].path);
		craft = craft_rewrite(data, (size_t)len, dotted, cases[i].mode,
				      &clen, &tocd);
		assert_non_null(craft);
		assert_int_equal(lp_blob_new_mem(craft, clen, "craft", &blob),
				 0);
		assert_int_equal(lp_layer_open(blob, &tocd, &layer, &err), 0);
		lp_blob_unref(blob);
		assert_int_equal(lp_fs_new(layer, &opts, &fs, &err), 0);
		assert_int_equal(lookup_path(fs, cases[i].path, &st), 0);
		r = read_digest(fs, st.st_ino, &got, &err);
		assert_int_equal(r, cases[i].want);
		if (cases[i].why) {
			assert_non_null(strstr(err.msg, cases[i].path));
			assert_non_null(strstr(err.msg, cases[i].why));
		} else {
			toc = lp_layer_toc(lp_fs_layer(fs));
			assert_true(lp_digest_equal(
				&got,
				edig(toc,
				     lp_toc_entry(
					     toc,
					     lp_toc_lookup_path(
						     toc, cases[i].path)))));
		}
		lp_fs_free(fs);
		free(craft);
	}
	free(data);
}

/* --- concurrency --- */

struct reader {
	struct lp_fs *fs;
	uint64_t ino;
	struct lp_digest dg;
	int r;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct lp_err err = { 0 };

	rd->r = read_digest(rd->fs, rd->ino, &rd->dg, &err);
	return NULL;
}

static uint64_t stat_of(struct lp_fs *fs, const char *key)
{
	struct lp_buf b;
	const char *p;
	uint64_t v = 0;

	lp_buf_init(&b, LP_FS_STATS_MAX);
	assert_int_equal(lp_fs_stats_json(fs, &b), 0);
	p = strstr((const char *)b.data, key);
	assert_non_null(p);
	v = strtoull(p + strlen(key) + 3, NULL, 10); /* skip `": ` */
	lp_buf_release(&b);
	return v;
}

static void test_single_flight(void **state)
{
	struct fixture fx = { 0 };
	struct reader rd[8];
	pthread_t t[8];
	struct stat st;
	size_t i;

	open_fs(&fx, "v1-default", NULL);
	assert_int_equal(lookup_path(fx.fs, "usr/bin/tool", &st), 0);
	atomic_store(&fx.fault->reads, 0);
	atomic_store(&fx.fault->delay_ms, 100);
	for (i = 0; i < 8; i++) {
		rd[i] = (struct reader){ .fs = fx.fs, .ino = st.st_ino };
		assert_int_equal(
			pthread_create(&t[i], NULL, reader_main, &rd[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].r, 0);
		assert_true(lp_digest_equal(&rd[i].dg, &rd[0].dg));
	}
	/* one chunk, one blob read, however many readers */
	assert_int_equal(atomic_load(&fx.fault->reads), 1);
	assert_int_equal(stat_of(fx.fs, "\"fetches"), 1);
	lp_fs_free(fx.fs);
}

static void test_memory_budget(void **state)
{
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	struct stat st;
	struct reader rd[4];
	pthread_t t[4];
	size_t i;

	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.mem_cache_bytes = 512 * 1024;
	open_fs(&fx, "v1-chunk64k", &opts);
	check_all_files(fx.fs, "v1-chunk64k");
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &st), 0);
	for (i = 0; i < 4; i++) {
		rd[i] = (struct reader){ .fs = fx.fs, .ino = st.st_ino };
		pthread_create(&t[i], NULL, reader_main, &rd[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].r, 0);
	}
	/* over budget only by what readers had pinned: 64 KiB each */
	assert_true(stat_of(fx.fs, "\"memory_peak_bytes") <=
		    512 * 1024 + 4 * 64 * 1024);
	assert_true(stat_of(fx.fs, "\"memory_bytes") <= 512 * 1024);
	lp_fs_free(fx.fs);
}

/*
 * The layers of a process share one memory budget (lp_fs_options.
 * mem_budget): SHARED_LAYERS layers, each read whole (9 MiB of 64 KiB
 * chunks and ~300 small files), hold SHARED_BUDGET together, and the least
 * recently used chunks go whichever layer they belong to. Controls that
 * must break the bound, so the test can fail: the same layers with a tier
 * each (the old per-layer budget), and with one budget as large as all.
 */
#define SHARED_LAYERS 4
#define SHARED_BUDGET (1024 * 1024)

struct shared_run {
	size_t layer_bytes[SHARED_LAYERS]; /* each tier at the end */
	size_t total; /* their sum */
	size_t used, peak; /* the shared budget's view (with one) */
};

/* read every layer in turn, tiers under @b (NULL: each its own budget of
 * SHARED_BUDGET) */
static void read_layers(struct lp_fs_budget *b, struct shared_run *run)
{
	struct fixture fx[SHARED_LAYERS];
	struct lp_fs_options opts;
	size_t i;

	memset(fx, 0, sizeof(fx));
	memset(run, 0, sizeof(*run));
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.mem_budget = b;
	opts.mem_cache_bytes = SHARED_BUDGET;
	for (i = 0; i < SHARED_LAYERS; i++)
		open_fs(&fx[i], "v1-chunk64k", &opts);
	for (i = 0; i < SHARED_LAYERS; i++)
		check_all_files(fx[i].fs, "v1-chunk64k");
	for (i = 0; i < SHARED_LAYERS; i++) {
		run->layer_bytes[i] = stat_of(fx[i].fs, "\"memory_bytes");
		run->total += run->layer_bytes[i];
		/* every layer reports the one budget */
		if (b)
			assert_int_equal(
				stat_of(fx[i].fs, "\"memory_budget_bytes"),
				lp_fs_budget_bytes(b));
	}
	if (b)
		lp_fs_budget_usage(b, &run->used, &run->peak);
	for (i = 0; i < SHARED_LAYERS; i++)
		lp_fs_free(fx[i].fs);
	if (b) {
		size_t used, peak;

		/* the tiers gave back what they were charged */
		lp_fs_budget_usage(b, &used, &peak);
		assert_int_equal(used, 0);
	}
}

static void test_shared_budget(void **state)
{
	struct lp_fs_budget *b = NULL, *big = NULL;
	struct shared_run run;

	assert_int_equal(lp_fs_budget_new(SHARED_BUDGET, &b), 0);
	assert_int_equal(lp_fs_budget_bytes(b), SHARED_BUDGET);
	read_layers(b, &run);
	/* one budget for all: never over it, not even for a moment */
	assert_true(run.total <= SHARED_BUDGET);
	assert_true(run.used <= SHARED_BUDGET);
	assert_true(run.peak <= SHARED_BUDGET);
	assert_int_equal(run.used, run.total);
	/* and it was used, by the layer read last: the others' chunks were
	 * older, so they went, however little each layer held itself */
	assert_true(run.layer_bytes[SHARED_LAYERS - 1] >= SHARED_BUDGET / 2);
	assert_int_equal(run.layer_bytes[0], 0);
	lp_fs_budget_free(b);

	/* control: a budget per layer holds up to SHARED_LAYERS times it */
	read_layers(NULL, &run);
	assert_true(run.total > 2 * SHARED_BUDGET);

	/* control: one large budget keeps what it is given, over the bound */
	assert_int_equal(lp_fs_budget_new(64 * 1024 * 1024, &big), 0);
	read_layers(big, &run);
	assert_true(run.used > 4 * SHARED_BUDGET);
	assert_true(run.peak > 4 * SHARED_BUDGET);
	lp_fs_budget_free(big);
}

/*
 * Least recent first across layers: a chunk of one layer read again stays
 * while another layer streams through the budget; an idle one goes.
 */
static void test_shared_budget_lru(void **state)
{
	struct fixture a = { 0 }, c = { 0 };
	struct lp_fs_options opts;
	struct lp_fs_budget *b = NULL;
	struct lp_err err = { 0 };
	struct stat st;
	uint64_t reads;
	int i;

	assert_int_equal(lp_fs_budget_new(SHARED_BUDGET, &b), 0);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.mem_budget = b;
	open_fs(&a, "v1-chunk64k", &opts);
	open_fs(&c, "v1-chunk64k", &opts);
	assert_int_equal(read_path(a.fs, "usr/bin/tool", &err), 0);
	assert_true(stat_of(a.fs, "\"memory_bytes") > 0);
	/* c streams 9 MiB through a 1 MiB budget while a's file is read
	 * again every 64 KiB chunk: it stays the most recent of a's */
	assert_int_equal(lookup_path(c.fs, "usr/lib/big.bin", &st), 0);
	for (i = 0; i < 144; i++) {
		char buf[4096];

		assert_true(lp_fs_read(c.fs, st.st_ino, NULL, buf, sizeof(buf),
				       (uint64_t)i * 65536, &err) > 0);
		assert_int_equal(read_path(a.fs, "usr/bin/tool", &err), 0);
	}
	reads = atomic_load(&a.fault->reads);
	assert_int_equal(read_path(a.fs, "usr/bin/tool", &err), 0);
	assert_int_equal(atomic_load(&a.fault->reads), reads); /* a hit */
	assert_true(stat_of(a.fs, "\"memory_bytes") > 0);
	/* now a is idle: c's next megabytes push it out */
	for (i = 0; i < 24; i++) {
		char buf[4096];

		assert_true(lp_fs_read(c.fs, st.st_ino, NULL, buf, sizeof(buf),
				       (uint64_t)(i + 100) * 65536, &err) > 0);
	}
	assert_int_equal(stat_of(a.fs, "\"memory_bytes"), 0);
	assert_true(stat_of(c.fs, "\"memory_bytes") <= SHARED_BUDGET);
	lp_fs_free(a.fs);
	lp_fs_free(c.fs);
	lp_fs_budget_free(b);
}

/*
 * With a disk tier the background fetch's chunks go there, not into the
 * memory tier (the control, without a disk tier, keeps them: nowhere else
 * to keep them); reads find them on disk.
 */
static bool background_done(struct lp_fs *fs)
{
	struct lp_buf b;
	bool done;

	lp_buf_init(&b, LP_FS_STATS_MAX);
	assert_int_equal(lp_fs_stats_json(fs, &b), 0);
	done = strstr((char *)b.data, "\"background\": {\"state\": \"done\"");
	lp_buf_release(&b);
	return done;
}

static void test_background_not_kept(void **state)
{
	char dir[] = "/tmp/lp-test-fs-XXXXXX", cmd[600];
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	int i;

	assert_non_null(mkdtemp(dir));
	lp_fs_options_init(&opts);
	opts.background_quiet_ms = 0;
	opts.cache_dir = dir;
	open_fs(&fx, "v1-default", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 1000 && !background_done(fx.fs); i++)
		usleep(10000);
	assert_true(i < 1000);
	assert_int_equal(stat_of(fx.fs, "\"memory_bytes"), 0);
	assert_true(stat_of(fx.fs, "\"disk_bytes") > 1000000);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	check_all_files(fx.fs, "v1-default");
	assert_true(stat_of(fx.fs, "\"disk_hits") > 100);
	lp_fs_free(fx.fs);

	/* control: no disk tier, the memory tier keeps them */
	opts.cache_dir = NULL;
	open_fs(&fx, "v1-default", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 1000 && !background_done(fx.fs); i++)
		usleep(10000);
	assert_true(i < 1000);
	assert_true(stat_of(fx.fs, "\"memory_bytes") > 1000000);
	lp_fs_free(fx.fs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_coalescing(void **state)
{
	struct fixture fx = { 0 };
	uint64_t reads, chunks;

	/* 9 MiB in 64 KiB chunks, read sequentially in ~100 KB pieces */
	open_fs(&fx, "v1-chunk64k", NULL);
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", NULL), 0);
	reads = stat_of(fx.fs, "\"blob_reads");
	chunks = stat_of(fx.fs, "\"fetched_chunks");
	/* the file's chunks, and a few of the next file's brought along */
	assert_in_range(chunks, (9449529 + 65535) / 65536,
			(9449529 + 65535) / 65536 + 16);
	/* read-ahead folds the following chunks into the same blob read */
	assert_true(reads <= chunks / 16);
	assert_true(stat_of(fx.fs, "\"readahead_chunks") >= chunks - reads);
	lp_fs_free(fx.fs);
}

static void test_neighbours(void **state)
{
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	uint64_t reads;

	/* mod_1.py (16 B) and mod_10.py (163 B) are neighbours in the blob */
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	open_fs(&fx, "v1-default", &opts);
	assert_int_equal(
		read_path(fx.fs, "usr/lib/python3/site/mod_1.py", NULL), 0);
	reads = stat_of(fx.fs, "\"blob_reads");
	assert_int_equal(reads, 1);
	/* the neighbour came along: served from memory, no new blob read */
	assert_int_equal(
		read_path(fx.fs, "usr/lib/python3/site/mod_10.py", NULL), 0);
	assert_int_equal(stat_of(fx.fs, "\"blob_reads"), reads);
	/* a file far away in the blob still needs its own read */
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", NULL), 0);
	assert_true(stat_of(fx.fs, "\"blob_reads") > reads);
	lp_fs_free(fx.fs);
}

/* --- streamed reads: chunks are served as their bytes arrive --- */

struct piece_reader {
	struct lp_fs *fs;
	uint64_t ino, off;
	size_t len;
	uint8_t *buf;
	int r;
	atomic_bool done;
};

static void *piece_main(void *arg)
{
	struct piece_reader *pr = arg;
	struct lp_fs_file *file = NULL;
	struct lp_err err = { 0 };
	bool direct;

	pr->r = lp_fs_open(pr->fs, pr->ino, O_RDONLY, &file, &direct);
	if (pr->r == 0)
		pr->r = lp_fs_read(pr->fs, pr->ino, file, pr->buf, pr->len,
				   pr->off, &err);
	lp_fs_release(pr->fs, file);
	atomic_store(&pr->done, true);
	return NULL;
}

static void piece_start(struct piece_reader *pr, struct lp_fs *fs, uint64_t ino,
			uint64_t off, size_t len, pthread_t *t)
{
	*pr = (struct piece_reader){ .fs = fs, .ino = ino, .off = off };
	pr->len = len;
	pr->buf = calloc(1, len);
	assert_non_null(pr->buf);
	assert_int_equal(pthread_create(t, NULL, piece_main, pr), 0);
}

/* whether @pr finishes within @ms */
static bool piece_done_within(struct piece_reader *pr, unsigned int ms)
{
	unsigned int i;

	for (i = 0; i < ms && !atomic_load(&pr->done); i++)
		usleep(1000);
	return atomic_load(&pr->done);
}

/* check @got against @path's bytes at @off, read through a plain file blob */
static void want_bytes(const char *path, uint64_t off, size_t len,
		       const uint8_t *got)
{
	struct lp_fs *ref = NULL;
	struct lp_layer *layer = NULL;
	struct lp_blob *blob = NULL;
	struct lp_fs_options opts;
	struct lp_fs_file *file = NULL;
	struct lp_err err = { 0 };
	struct lp_digest dg;
	struct stat st;
	char p[512], dgs[128];
	uint8_t *buf = malloc(len);
	bool direct;

	assert_non_null(buf);
	snprintf(p, sizeof(p), "%s/v1-chunk64k.toc-digest", LP_VECTORS_DIR);
	read_text(p, dgs, sizeof(dgs));
	assert_int_equal(lp_digest_parse(dgs, &dg), 0);
	snprintf(p, sizeof(p), "%s/v1-chunk64k.esgz", LP_VECTORS_DIR);
	assert_int_equal(lp_blob_open_file(p, &blob), 0);
	assert_int_equal(lp_layer_open(blob, &dg, &layer, &err), 0);
	lp_blob_unref(blob);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	assert_int_equal(lp_fs_new(layer, &opts, &ref, &err), 0);
	assert_int_equal(lookup_path(ref, path, &st), 0);
	assert_int_equal(lp_fs_open(ref, st.st_ino, O_RDONLY, &file, &direct),
			 0);
	assert_int_equal(lp_fs_read(ref, st.st_ino, file, buf, len, off, &err),
			 (int)len);
	assert_memory_equal(buf, got, len);
	lp_fs_release(ref, file);
	lp_fs_free(ref);
	free(buf);
}

static void test_streamed_run(void **state)
{
	struct fixture fx = { .stream = true };
	struct piece_reader a, b, late;
	pthread_t ta, tb, tl;
	const struct lp_toc_chunk *c;
	struct stat st;

	/* big.bin: 64 KiB chunks; a sequential read claims 4 MiB of them */
	open_fs(&fx, "v1-chunk64k", NULL);
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &st), 0);
	c = first_chunk_of(fx.fs, "usr/lib/big.bin");
	/* the stream stops after a few chunks' bytes */
	gate_set(fx.fault, c->offset + 4 * c->compressed_size);
	piece_start(&a, fx.fs, st.st_ino, 0, 100, &ta);
	gate_wait(fx.fault);
	/* chunk 1 is in the same run, still streaming: yet it is served */
	piece_start(&b, fx.fs, st.st_ino, 65536 + 10, 1000, &tb);
	if (!piece_done_within(&b, 5000)) {
		gate_set(fx.fault, 0);
		pthread_join(tb, NULL);
		fail_msg("chunk 1 waited for the end of its run");
	}
	pthread_join(tb, NULL);
	assert_int_equal(b.r, 1000);
	want_bytes("usr/lib/big.bin", 65536 + 10, 1000, b.buf);
	/* a chunk past the gate waits for its bytes */
	piece_start(&late, fx.fs, st.st_ino, 40 * 65536, 1000, &tl);
	assert_false(piece_done_within(&late, 100));
	gate_set(fx.fault, 0);
	pthread_join(ta, NULL);
	pthread_join(tl, NULL);
	assert_int_equal(a.r, 100);
	assert_int_equal(late.r, 1000);
	want_bytes("usr/lib/big.bin", 40 * 65536, 1000, late.buf);
	/* one request for the whole run, however many readers */
	assert_int_equal(atomic_load(&fx.fault->streams), 1);
	assert_int_equal(stat_of(fx.fs, "\"blob_reads"), 1);
	free(a.buf);
	free(b.buf);
	free(late.buf);
	lp_fs_free(fx.fs);
}

static void test_streamed_faults(void **state)
{
	struct fixture fx = { .stream = true };
	struct piece_reader a, late;
	pthread_t ta, tl;
	const struct lp_toc_chunk *c;
	struct lp_err err = { 0 };
	struct stat st;
	uint64_t reads;

	open_fs(&fx, "v1-chunk64k", NULL);
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &st), 0);
	c = first_chunk_of(fx.fs, "usr/lib/big.bin");

	/* the source fails mid-stream: what arrived stands, a reader
	 * waiting further on gets the error, never bytes */
	gate_set(fx.fault, c->offset + 4 * c->compressed_size);
	piece_start(&a, fx.fs, st.st_ino, 0, 100, &ta);
	gate_wait(fx.fault);
	piece_start(&late, fx.fs, st.st_ino, 40 * 65536, 1000, &tl);
	assert_false(piece_done_within(&late, 100));
	fx.fault->lo = c->offset + 10 * c->compressed_size;
	fx.fault->hi = fx.fault->lo + 1;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	gate_set(fx.fault, 0);
	pthread_join(ta, NULL);
	pthread_join(tl, NULL);
	assert_int_equal(a.r, 100);
	assert_int_equal(late.r, -EIO);
	reads = stat_of(fx.fs, "\"blob_reads");
	/* chunks 0-8 arrived whole before the failure: served from memory */
	atomic_store(&fx.fault->mode, FAULT_NONE);
	free(a.buf);
	piece_start(&a, fx.fs, st.st_ino, 8 * 65536, 65536, &ta);
	pthread_join(ta, NULL);
	assert_int_equal(a.r, 65536);
	want_bytes("usr/lib/big.bin", 8 * 65536, 65536, a.buf);
	assert_int_equal(stat_of(fx.fs, "\"blob_reads"), reads);
	/* the rest is fetched again, right */
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", &err), 0);
	check_all_files(fx.fs, "v1-chunk64k");
	free(a.buf);
	free(late.buf);
	lp_fs_free(fx.fs);

	/* wrong bytes mid-stream: that chunk fails, its neighbours in the
	 * same run are served */
	fx = (struct fixture){ .stream = true };
	open_fs(&fx, "v1-chunk64k", NULL);
	c = first_chunk_of(fx.fs, "usr/lib/big.bin");
	fx.fault->lo =
		c->offset + 5 * c->compressed_size + c->compressed_size / 2;
	fx.fault->hi = fx.fault->lo + 4;
	atomic_store(&fx.fault->mode, FAULT_CORRUPT);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "usr/lib/big.bin"));
	atomic_store(&fx.fault->mode, FAULT_NONE);
	reads = stat_of(fx.fs, "\"blob_reads");
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &st), 0);
	piece_start(&a, fx.fs, st.st_ino, 6 * 65536, 65536, &ta);
	pthread_join(ta, NULL);
	assert_int_equal(a.r, 65536);
	want_bytes("usr/lib/big.bin", 6 * 65536, 65536, a.buf);
	assert_int_equal(stat_of(fx.fs, "\"blob_reads"), reads);
	free(a.buf);
	check_all_files(fx.fs, "v1-chunk64k");
	lp_fs_free(fx.fs);
}

/* --- disk tier --- */

static uint64_t du(const char *dir)
{
	char cmd[600];
	unsigned long long v = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "find %s/chunks -type f -printf '%%s\\n' | "
		 "awk '{s+=$1} END {print s+0}'",
		 dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%llu", &v), 1);
	pclose(p);
	return v;
}

/* change byte 3 of every record's payload in DIR/chunks' packs (their
 * headers stay good: the read's digest check must catch it); how many */
static unsigned int tamper_packs(const char *dir)
{
	char path[600];
	struct dirent *de;
	unsigned int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/chunks", dir);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		uint8_t hdr[FS_DISK_RECORD_HDR], x;
		struct fs_disk_record rec;
		uint64_t off = 0, size;
		struct stat st;
		int fd;

		if (!strstr(de->d_name, ".pack"))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		size = (uint64_t)st.st_size;
		while (off < size &&
		       pread(fd, hdr, sizeof(hdr), (off_t)off) ==
			       (ssize_t)sizeof(hdr) &&
		       fs_disk_record_parse(hdr, sizeof(hdr), size - off,
					    &rec) == 0) {
			if (rec.len > 3) {
				const off_t at =
					(off_t)off + FS_DISK_RECORD_HDR + 3;

				assert_int_equal(pread(fd, &x, 1, at), 1);
				x ^= 0x78;
				assert_int_equal(pwrite(fd, &x, 1, at), 1);
				n++;
			}
			off += FS_DISK_RECORD_HDR + rec.len;
		}
		close(fd);
	}
	closedir(d);
	return n;
}

static void test_disk_tier(void **state)
{
	char dir[] = "/tmp/lp-test-fs-XXXXXX", cmd[600];
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	struct lp_err err = { 0 };

	assert_non_null(mkdtemp(dir));
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.cache_dir = dir;
	open_fs(&fx, "v1-chunk64k", &opts);
	check_all_files(fx.fs, "v1-chunk64k");
	lp_fs_free(fx.fs);

	/* remount over a dead source: everything comes from disk */
	open_fs(&fx, "v1-chunk64k", &opts);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	check_all_files(fx.fs, "v1-chunk64k");
	assert_true(stat_of(fx.fs, "\"disk_hits") > 100);
	assert_int_equal(stat_of(fx.fs, "\"fetched_bytes"), 0);
	lp_fs_free(fx.fs);

	/* a tampered cache record is dropped, never served */
	assert_true(tamper_packs(dir) > 100);
	open_fs(&fx, "v1-chunk64k", &opts);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", &err), -EIO);
	atomic_store(&fx.fault->mode, FAULT_NONE);
	check_all_files(fx.fs, "v1-chunk64k");
	lp_fs_free(fx.fs);

	/* the size bound holds */
	opts.disk_cache_bytes = 1024 * 1024;
	open_fs(&fx, "v1-chunk64k", &opts);
	check_all_files(fx.fs, "v1-chunk64k");
	lp_fs_free(fx.fs);
	assert_true(du(dir) <= 1024 * 1024 + 64 * 1024);
	/* and evictions stop at 90% of it (less one 64 KiB chunk at most) */
	assert_true(du(dir) >= 1024 * 1024 / 10 * 9 - 64 * 1024);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * No reader waits for a disk write: while the disk writer's queue is full
 * (here a writer that takes nothing: marked started, its thread not yet
 * made), an on-demand read leaves the disk copies it cannot queue for
 * later (disk_write_deferred) and writes none itself, however long its
 * runs (big.bin: 144 chunks, over twice the queue); a prefetch fetch still
 * writes its own copy (back pressure). Then the real writer writes what
 * was queued and what was left for later, from memory: all of it.
 */
static void test_writer_full(void **state)
{
	char dir[] = "/tmp/lp-test-fs-XXXXXX", cmd[600];
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	struct lp_err err = { 0 };
	struct fs_writer *w;
	unsigned int queued;
	uint32_t ci;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.cache_dir = dir;
	open_fs(&fx, "v1-chunk64k", &opts);
	w = &fx.fs->writer;
	pthread_mutex_lock(&w->lock);
	w->started = true;
	pthread_mutex_unlock(&w->lock);
	assert_int_equal(read_path(fx.fs, "usr/lib/big.bin", &err), 0);
	pthread_mutex_lock(&w->lock);
	queued = w->n;
	pthread_mutex_unlock(&w->lock);
	assert_int_equal(queued, FS_WRITE_QUEUE);
	/* the rest was left for later, not written by the reader */
	assert_int_equal(du(dir), 0);
	assert_true(stat_of(fx.fs, "\"disk_write_deferred") >= 144 - queued);
	/* a prefetch fetch with the queue full writes its copy itself */
	for (ci = 0; fs_chunk_is_present(fx.fs, ci); ci++)
		;
	assert_true(ci < lp_toc_nr_chunks(lp_layer_toc(lp_fs_layer(fx.fs))));
	assert_int_equal(fs_chunk_get(fx.fs, ci, ci + 1, FS_FETCH_PREFETCH,
				      NULL, NULL, &err),
			 0);
	assert_true(du(dir) > 0);
	/* the writer starts: it writes what is queued */
	pthread_mutex_lock(&w->lock);
	w->started = false;
	pthread_mutex_unlock(&w->lock);
	assert_int_equal(fs_writer_start(fx.fs), 0);
	for (i = 0; i < 1000 && !fs_writer_idle(fx.fs); i++)
		usleep(10000);
	assert_true(fs_writer_idle(fx.fs));
	/* memory kept them: every copy left for later was written too */
	assert_int_equal(stat_of(fx.fs, "\"disk_write_dropped"), 0);
	assert_true(du(dir) >= 144 * 64 * 1024);
	lp_fs_free(fx.fs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * The disk tier's lookups (fs/disk_cache.c's faccessat), watched for one
 * fs: one made by a thread holding that fs's fetch.lock breaks fs_int.h's
 * rule that no lock is held across disk work (glibc's mutex records its
 * owner's thread id). Defined here, it is the faccessat the fs calls.
 */
static struct lp_fs *_Atomic watched;
static atomic_uint disk_lookups, disk_lookups_locked;

int faccessat(int dirfd, const char *path, int mode, int flags)
{
	struct lp_fs *fs = atomic_load(&watched);

	if (fs) {
		atomic_fetch_add(&disk_lookups, 1);
#ifdef __GLIBC__
		if (fs->fetch.lock.__data.__owner == (int)syscall(SYS_gettid))
			atomic_fetch_add(&disk_lookups_locked, 1);
#endif
	}
	if (flags)
		return (int)syscall(SYS_faccessat2, dirfd, path, mode, flags);
	return (int)syscall(SYS_faccessat, dirfd, path, mode);
}

/*
 * The background fetch over a layer the disk tier holds (every file read
 * before): it looks the chunks up there (the watch sees the lookups),
 * never with fetch.lock held, and is done without fetching them.
 */
static void test_background_disk_unlocked(void **state)
{
	char dir[] = "/tmp/lp-test-fs-XXXXXX", cmd[600];
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	int i;

	(void)state;
#ifndef __GLIBC__
	fail_msg("the lock-owner check needs glibc");
#endif
	assert_non_null(mkdtemp(dir));
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.cache_dir = dir;
	open_fs(&fx, "v1-chunk64k", &opts);
	check_all_files(fx.fs, "v1-chunk64k"); /* no writer yet: all on disk */
	lp_fs_free(fx.fs);

	opts.background_fetch = true;
	opts.background_quiet_ms = 0;
	open_fs(&fx, "v1-chunk64k", &opts);
	atomic_store(&disk_lookups, 0);
	atomic_store(&disk_lookups_locked, 0);
	atomic_store(&watched, fx.fs);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 1000 && !background_done(fx.fs); i++)
		usleep(10000);
	assert_true(i < 1000);
	atomic_store(&watched, NULL);
	assert_true(atomic_load(&disk_lookups) > 100);
	assert_int_equal(atomic_load(&disk_lookups_locked), 0);
	/* only what no file holds (the landmark's member) was fetched */
	assert_true(stat_of(fx.fs, "\"fetched_bytes") < 4096);
	lp_fs_free(fx.fs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* two layers of one process caching in one directory share one budget */
struct cache_reader {
	struct lp_fs *fs;
	const char *vec;
	int r;
};

static void *cache_reader_main(void *arg)
{
	struct cache_reader *cr = arg;
	struct want_file *want = calloc(MAX_FILES, sizeof(*want));
	size_t n, i;

	n = load_files(cr->vec, want);
	for (i = 0; i < n && cr->r == 0; i++) {
		const char *b = base_name(want[i].path);
		struct lp_digest got;
		struct stat st;

		if (!strcmp(b, ".prefetch.landmark") ||
		    !strcmp(b, ".no.prefetch.landmark") ||
		    !strncmp(b, ".wh.", 4))
			continue;
		cr->r = lookup_path(cr->fs, want[i].path, &st);
		if (cr->r == 0)
			cr->r = read_digest(cr->fs, st.st_ino, &got, NULL);
		if (cr->r == 0 && !lp_digest_equal(&got, &want[i].dg))
			cr->r = -EBADMSG;
	}
	free(want);
	return NULL;
}

static void test_disk_tier_shared(void **state)
{
	char dir[] = "/tmp/lp-test-fs-XXXXXX", cmd[600];
	const uint64_t budget = 6 * 1024 * 1024;
	struct lp_fs_options opts;
	struct fixture a = { 0 }, b = { 0 };
	struct cache_reader ra, rb;
	pthread_t ta, tb;

	assert_non_null(mkdtemp(dir));
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.cache_dir = dir;
	opts.disk_cache_bytes = budget;
	/* the same tree in 4 MiB and in 64 KiB chunks: big.bin's chunks
	 * differ, ~9 MiB each, so either layer alone fills the budget */
	open_fs(&a, "v1-default", &opts);
	opts.disk_cache_bytes = 2 * budget; /* the smaller budget rules */
	open_fs(&b, "v1-chunk64k", &opts);
	ra = (struct cache_reader){ .fs = a.fs, .vec = "v1-default" };
	rb = (struct cache_reader){ .fs = b.fs, .vec = "v1-chunk64k" };
	assert_int_equal(pthread_create(&ta, NULL, cache_reader_main, &ra), 0);
	assert_int_equal(pthread_create(&tb, NULL, cache_reader_main, &rb), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(ra.r, 0);
	assert_int_equal(rb.r, 0);
	/* one count: both layers report the same bytes, within the budget */
	assert_int_equal(stat_of(a.fs, "\"disk_bytes"),
			 stat_of(b.fs, "\"disk_bytes"));
	assert_true(stat_of(a.fs, "\"disk_bytes") <= budget);
	assert_true(du(dir) <= budget);
	/* it was used, not emptied: an eviction deletes the coldest files
	 * until the tier is at 90% of the budget, so the last file deleted
	 * may take it below that by up to one file's size, here one of
	 * v1-default's 4 MiB chunks; which file is coldest when depends on
	 * how the two readers interleave (it ended at 2.1 MB in 1 of 12
	 * loaded runs, so budget / 2 was no bound) */
	assert_true(du(dir) >= budget / 10 * 9 - 4 * 1024 * 1024);
	/* the count is the directory's, what both layers wrote; writers
	 * racing an eviction scan make it err high, never low */
	assert_true(stat_of(a.fs, "\"disk_bytes") >= du(dir));

	/* sequentially too (a layer fills the tier, the next one evicts the
	 * first one's files): still one budget */
	check_all_files(a.fs, "v1-default");
	check_all_files(b.fs, "v1-chunk64k");
	assert_true(du(dir) <= budget);
	lp_fs_free(a.fs);
	assert_true(stat_of(b.fs, "\"disk_bytes") <= budget);
	lp_fs_free(b.fs);
	assert_true(du(dir) <= budget);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* disk-tier hits split a claimed run: the rest goes out as one multi-range */
static void test_multi_range(void **state)
{
	char dir[] = "/tmp/lp-test-fs-XXXXXX", cmd[600], one;
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	struct lp_fs_file *file = NULL;
	struct lp_err err = { 0 };
	struct stat st;
	bool direct;
	uint64_t k;

	assert_non_null(mkdtemp(dir));
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.cache_dir = dir;
	/* every other 64 KiB chunk of big.bin into the disk tier */
	open_fs(&fx, "v1-chunk64k", &opts);
	assert_int_equal(lookup_path(fx.fs, "usr/lib/big.bin", &st), 0);
	assert_int_equal(lp_fs_open(fx.fs, st.st_ino, O_RDONLY, &file, &direct),
			 0);
	for (k = 2; k < 40; k += 2)
		assert_int_equal(lp_fs_read(fx.fs, st.st_ino, file, &one, 1,
					    k * 65536 + 1, &err),
				 1);
	lp_fs_release(fx.fs, file);
	assert_int_equal(stat_of(fx.fs, "\"multi_range_reads"), 0);
	lp_fs_free(fx.fs);

	/* a sequential read claims runs across them: holes in one call */
	open_fs(&fx, "v1-chunk64k", &opts);
	check_all_files(fx.fs, "v1-chunk64k");
	assert_true(stat_of(fx.fs, "\"multi_range_reads") >= 1);
	assert_true(atomic_load(&fx.fault->multi_reads) >= 1);
	assert_true(stat_of(fx.fs, "\"disk_hits") >= 19);
	assert_int_equal(stat_of(fx.fs, "\"verify_failures"), 0);
	lp_fs_free(fx.fs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* --- prefetch and background fetch --- */

static void test_prefetch_background(void **state)
{
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	uint64_t fetches;
	int i;

	lp_fs_options_init(&opts);
	opts.background_fetch = false;
	open_fs(&fx, "v1-prio", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	assert_int_equal(lp_fs_wait_prefetch(fx.fs, 10000), 0);
	assert_true(stat_of(fx.fs, "\"fetched_bytes") > 300000 / 2);
	/* prioritised files are served without an on-demand fetch */
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", NULL), 0);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", NULL), 0);
	assert_int_equal(stat_of(fx.fs, "\"fetches"), 0);
	lp_fs_free(fx.fs);

	/* a prefetch profile on a layer without a landmark: its files are
	 * in before anything reads them, in the profile's order; a path the
	 * layer lacks is counted and passed over */
	{
		static const char *const prof[] = { "etc/conf.d/app.conf",
						    "no/such/file",
						    "usr/bin/tool" };

		lp_fs_options_init(&opts);
		opts.background_fetch = false;
		opts.prefetch_files = prof;
		opts.n_prefetch_files = 3;
		open_fs(&fx, "v1-default", &opts);
		assert_int_equal(lp_fs_start(fx.fs), 0);
		assert_int_equal(lp_fs_wait_prefetch(fx.fs, 10000), 0);
		assert_int_equal(stat_of(fx.fs, "\"files"), 2);
		assert_int_equal(stat_of(fx.fs, "\"missing"), 1);
		assert_true(stat_of(fx.fs, "\"fetched_chunks") > 0);
		assert_int_equal(read_path(fx.fs, "usr/bin/tool", NULL), 0);
		assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", NULL),
				 0);
		assert_int_equal(stat_of(fx.fs, "\"fetches"), 0);
		lp_fs_free(fx.fs);

		/* the same layer without it: nothing prefetched, reads miss */
		lp_fs_options_init(&opts);
		opts.background_fetch = false;
		open_fs(&fx, "v1-default", &opts);
		assert_int_equal(lp_fs_start(fx.fs), 0);
		assert_int_equal(lp_fs_wait_prefetch(fx.fs, 10000), 0);
		assert_int_equal(stat_of(fx.fs, "\"fetched_chunks"), 0);
		assert_int_equal(read_path(fx.fs, "usr/bin/tool", NULL), 0);
		assert_true(stat_of(fx.fs, "\"fetches") > 0);
		lp_fs_free(fx.fs);
	}

	/* background: the whole layer arrives; then the source may die */
	lp_fs_options_init(&opts);
	opts.background_quiet_ms = 0;
	open_fs(&fx, "v1-default", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 1000; i++) {
		struct lp_buf b;
		bool done;

		lp_buf_init(&b, LP_FS_STATS_MAX);
		lp_fs_stats_json(fx.fs, &b);
		done = strstr((char *)b.data,
			      "\"background\": {\"state\": \"done\"");
		lp_buf_release(&b);
		if (done)
			break;
		usleep(10000);
	}
	assert_true(i < 1000);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	fetches = stat_of(fx.fs, "\"fetches");
	check_all_files(fx.fs, "v1-default");
	assert_int_equal(stat_of(fx.fs, "\"fetches"), fetches);
	lp_fs_free(fx.fs);

	/* a source that is away: background waits and retries, then
	 * covers everything once it is back */
	lp_fs_options_init(&opts);
	opts.background_quiet_ms = 0;
	open_fs(&fx, "v1-default", &opts);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 500 && stat_of(fx.fs, "\"retries") < 1; i++)
		usleep(10000);
	assert_true(stat_of(fx.fs, "\"retries") >= 1);
	atomic_store(&fx.fault->mode, FAULT_NONE);
	for (i = 0; i < 1000; i++) {
		struct lp_buf b;
		bool done;

		lp_buf_init(&b, LP_FS_STATS_MAX);
		lp_fs_stats_json(fx.fs, &b);
		done = strstr((char *)b.data,
			      "\"background\": {\"state\": \"done\", "
			      "\"error\": 0");
		lp_buf_release(&b);
		if (done)
			break;
		usleep(10000);
	}
	assert_true(i < 1000);
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	check_all_files(fx.fs, "v1-default");
	lp_fs_free(fx.fs);
}

/* the background job's state in the stats: true once it reads @want */
static bool background_is(struct lp_fs *fs, const char *want)
{
	struct lp_buf b;
	bool is;

	lp_buf_init(&b, LP_FS_STATS_MAX);
	assert_int_equal(lp_fs_stats_json(fs, &b), 0);
	is = strstr((char *)b.data, want) != NULL;
	lp_buf_release(&b);
	return is;
}

/* wait until the background job of @fs is over; true when it stopped */
static bool background_stops(struct lp_fs *fs)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (background_is(fs, "\"background\": {\"state\": "
				      "\"stopped\""))
			return true;
		if (background_is(fs, "\"background\": {\"state\": "
				      "\"done\"") ||
		    background_is(fs, "\"background\": {\"state\": "
				      "\"failed\""))
			return false;
		usleep(10000);
	}
	fail_msg("background fetch still running after 10 s");
	return false;
}

/*
 * Without a disk tier the background fetch stops when the process's memory
 * budget is full, not when its own layer's chunks fill it: the second of
 * two layers under one budget stops at once instead of running through its
 * layer with cold chunks that evict each other and the first layer's.
 */
#define BG_SHARED_BUDGET (512 * 1024)
static void test_background_budget_shared(void **state)
{
	struct lp_fs_options opts;
	struct lp_fs_budget *b = NULL;
	struct fixture a = { 0 }, c = { 0 };
	size_t used, peak, a_bytes;

	(void)state;
	assert_int_equal(lp_fs_budget_new(BG_SHARED_BUDGET, &b), 0);
	lp_fs_options_init(&opts);
	opts.background_quiet_ms = 0;
	opts.mem_budget = b;
	open_fs(&a, "v1-default", &opts);
	assert_int_equal(lp_fs_start(a.fs), 0);
	/* the layer is larger than the budget: it fills it, then stops */
	assert_true(background_stops(a.fs));
	a_bytes = stat_of(a.fs, "\"memory_bytes");
	assert_true(a_bytes >= BG_SHARED_BUDGET / 2);
	open_fs(&c, "v1-default", &opts);
	assert_int_equal(lp_fs_start(c.fs), 0);
	assert_true(background_stops(c.fs));
	/* what c fetched fitted the room a left: a kept its chunks */
	assert_true(stat_of(c.fs, "\"fetched_bytes") < BG_SHARED_BUDGET / 4);
	assert_true(stat_of(a.fs, "\"memory_bytes") >= a_bytes / 2);
	lp_fs_budget_usage(b, &used, &peak);
	assert_true(used <= BG_SHARED_BUDGET);
	lp_fs_free(a.fs);
	lp_fs_free(c.fs);
	lp_fs_budget_free(b);
}

/*
 * A source that answers 404 (permanent, decided where it arose): the
 * background fetch stops after one failed read instead of backing off and
 * retrying forever; a read gets EIO and the source's reason. The retryable
 * case (FAULT_FAIL) is test_prefetch_background's outage.
 */
static void test_background_gone(void **state)
{
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	struct lp_err err = { 0 };
	unsigned int reads;
	int i;

	(void)state;
	lp_fs_options_init(&opts);
	opts.background_quiet_ms = 0;
	open_fs(&fx, "v1-default", &opts);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_GONE);
	atomic_store(&fx.fault->reads, 0);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 1000; i++) {
		if (background_is(fx.fs, "\"background\": {\"state\": "
					 "\"failed\", \"error\": -5"))
			break;
		usleep(10000);
	}
	assert_true(i < 1000);
	reads = atomic_load(&fx.fault->reads);
	/* one run, one read: it did not walk on chunk by chunk */
	assert_true(reads >= 1 && reads <= 2);
	assert_int_equal(stat_of(fx.fs, "\"retries"), 0);
	usleep(700000); /* more than the first back-off */
	assert_int_equal(atomic_load(&fx.fault->reads), reads);
	/* an on-demand read: EIO (lp_fs_reply_errno), the reason kept */
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", &err), -EIO);
	assert_int_equal(lp_fs_reply_errno(-EIO), EIO);
	assert_false(lp_err_retryable(&err, -EIO));
	assert_int_equal(err.http_status, 404);
	assert_non_null(strstr(err.msg, "usr/bin/tool"));
	assert_non_null(strstr(err.msg, "HTTP 404"));
	/* and an away source's error stays retryable through the fs */
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	lp_err_clear(&err);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", &err), -EIO);
	assert_true(lp_err_retryable(&err, -EIO));
	assert_non_null(strstr(err.msg, "etc/conf.d/app.conf"));
	lp_fs_free(fx.fs);
}

/* the one mapping of core errors to replies, by the errno alone */
static void test_reply_errno(void **state)
{
	static const struct {
		int r, want;
	} map[] = {
		{ -EBADMSG, EIO },	{ -EFBIG, EIO },
		{ -EPROTO, EIO },	{ -ETIMEDOUT, EIO },
		{ -ECONNREFUSED, EIO }, { -EAGAIN, EIO },
		{ -EIO, EIO },		{ -ENOMEM, ENOMEM },
		{ -ENOENT, ENOENT },	{ -ENOTDIR, ENOTDIR },
		{ -ERANGE, ERANGE },	{ -ENODATA, ENODATA },
		{ -EROFS, EROFS },	{ -EISDIR, EISDIR },
		{ -EINVAL, EINVAL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < LP_ARRAY_SIZE(map); i++)
		assert_int_equal(lp_fs_reply_errno(map[i].r), map[i].want);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* when @f's first read since first_read_ms was 0 began (waits; up to
 * 10 s) */
static uint64_t first_read_ms(struct fault *f)
{
	int i;

	for (i = 0; i < 2000 && !atomic_load(&f->first_read_ms); i++)
		usleep(5000);
	assert_true(i < 2000);
	return atomic_load(&f->first_read_ms);
}

/* whether @later - @earlier (ms) is at least @ms (false when earlier) */
static bool at_least(uint64_t later, uint64_t earlier, uint64_t ms)
{
	return later >= earlier && later - earlier >= ms;
}

/* when prioritised fetching last ended in activity @act (CLOCK_MONOTONIC,
 * as mono_ms) */
static uint64_t activity_end_ms(struct lp_fs_activity *act)
{
	return (uint64_t)atomic_load(&act->last_ns) / 1000000;
}

/* one on-demand fetch in a fresh layer sharing @opts->activity */
static void read_elsewhere(const struct lp_fs_options *opts)
{
	struct fixture fx = { 0 };

	open_fs(&fx, "v1-default", opts);
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", NULL), 0);
	assert_int_equal(stat_of(fx.fs, "\"fetches"), 1);
	lp_fs_free(fx.fs);
}

static void test_background_quiet(void **state)
{
	struct lp_fs_activity *act = lp_fs_activity_new();
	struct lp_fs_options opts, other;
	struct fixture fx = { 0 };
	uint64_t t;
	int i;

	assert_non_null(act);
	lp_fs_options_init(&opts);
	opts.background_quiet_ms = 500;
	opts.activity = act;
	other = opts;
	other.prefetch = false;
	other.background_fetch = false;

	/* after the prefetch, background waits for the quiet time, counted
	 * from when the prefetch ended (not from when this thread got to
	 * look: on a loaded machine that may be much later) */
	open_fs(&fx, "v1-prio", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	assert_int_equal(lp_fs_wait_prefetch(fx.fs, 10000), 0);
	t = activity_end_ms(act);
	atomic_store(&fx.fault->first_read_ms, 0); /* reads from now on */
	assert_true(at_least(first_read_ms(fx.fault), t, 450));
	/* nothing prioritised since: the quiet time was counted from it */
	assert_int_equal(activity_end_ms(act), t);
	lp_fs_free(fx.fs);

	/* on-demand fetches in another layer quiet it too; it starts
	 * after the last one */
	opts.prefetch = false;
	open_fs(&fx, "v1-prio", &opts);
	atomic_store(&fx.fault->first_read_ms, 0); /* the TOC's were before */
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 8; i++) {
		usleep(100000);
		read_elsewhere(&other);
	}
	t = activity_end_ms(act); /* the last on-demand fetch's end */
	/* this layer's first read ever: none while the others read */
	assert_true(at_least(first_read_ms(fx.fault), t, 450));
	lp_fs_free(fx.fs);

	/* a layer without a prefetch landmark (not optimised) does not
	 * defer: its background fetch starts at once, here right after an
	 * on-demand fetch, with a quiet time (20 s) that a deferring layer
	 * would wait out (the v1-prio layers above) and that no scheduling
	 * delay of a loaded machine comes near; well within half of it */
	opts.background_quiet_ms = 20000;
	open_fs(&fx, "v1-default", &opts);
	assert_int_equal(lp_toc_prefetch_end(lp_layer_toc(lp_fs_layer(fx.fs))),
			 0);
	read_elsewhere(&other);
	atomic_store(&fx.fault->first_read_ms, 0);
	t = mono_ms();
	assert_int_equal(lp_fs_start(fx.fs), 0);
	assert_true(!at_least(first_read_ms(fx.fault), t, 10000));
	lp_fs_free(fx.fs);

	/* a workload that keeps fetching delays it at most 10 quiet times
	 * (2 s here), then background fetch goes on between its fetches */
	opts.background_quiet_ms = 200;
	open_fs(&fx, "v1-prio", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 200 && stat_of(fx.fs, "\"fetched_bytes") == 0; i++) {
		read_elsewhere(&other);
		usleep(30000);
	}
	assert_true(i < 200);
	lp_fs_free(fx.fs);

	/* beyond the bound: a clear error */
	opts.background_quiet_ms = LP_FS_MAX_BACKGROUND_QUIET_MS + 1;
	{
		struct lp_err err = { 0 };
		struct lp_layer *layer = NULL;
		struct lp_blob *blob = NULL;
		struct lp_fs *fs = NULL;
		struct lp_digest dg;
		char path[512], dgs[128];

		snprintf(path, sizeof(path), "%s/v1-default.toc-digest",
			 LP_VECTORS_DIR);
		read_text(path, dgs, sizeof(dgs));
		assert_int_equal(lp_digest_parse(dgs, &dg), 0);
		snprintf(path, sizeof(path), "%s/v1-default.esgz",
			 LP_VECTORS_DIR);
		assert_int_equal(lp_blob_open_file(path, &blob), 0);
		assert_int_equal(lp_layer_open(blob, &dg, &layer, &err), 0);
		lp_blob_unref(blob);
		assert_int_equal(lp_fs_new(layer, &opts, &fs, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "quiet"));
		assert_null(fs);
	}
	lp_fs_activity_free(act);
}

/* a reader that says when it is done */
struct timed_reader {
	struct reader rd;
	atomic_bool done;
};

static void *timed_reader_main(void *arg)
{
	struct timed_reader *tr = arg;

	reader_main(&tr->rd);
	atomic_store(&tr->done, true);
	return NULL;
}

/*
 * On-demand reads jump the queue without pausing the background: while a
 * slow on-demand read is in flight in a layer without a landmark, the
 * scheduler still starts a background read (one stream: the planner's
 * FS_PLAN_STREAMS_BUSY). Before the scheduler the background waited until
 * every on-demand read had ended (and 20 ms more), which made a workload
 * that reads everything fetch it file by file.
 */
static void test_background_streams(void **state)
{
	struct lp_fs_options opts;
	struct fixture fx = { 0 };
	struct timed_reader tr = { 0 };
	pthread_t t;
	struct stat st;
	bool overlapped = false;
	int i;

	(void)state;
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	open_fs(&fx, "v1-default", &opts);
	assert_int_equal(lookup_path(fx.fs, "usr/bin/tool", &st), 0);
	atomic_store(&fx.fault->delay_ms, 1500); /* every read */
	atomic_store(&fx.fault->reads, 0);
	tr.rd = (struct reader){ .fs = fx.fs, .ino = st.st_ino };
	assert_int_equal(pthread_create(&t, NULL, timed_reader_main, &tr), 0);
	for (i = 0; i < 1000 && atomic_load(&fx.fault->reads) < 1; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&fx.fault->reads), 1);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	/* a second read starts while the on-demand one is still waiting */
	while (!atomic_load(&tr.done)) {
		if (atomic_load(&fx.fault->reads) >= 2) {
			overlapped = !atomic_load(&tr.done);
			break;
		}
		usleep(2000);
	}
	assert_true(overlapped);
	pthread_join(t, NULL);
	assert_int_equal(tr.rd.r, 0);
	/* and it covers the layer: everything served with the source gone */
	atomic_store(&fx.fault->delay_ms, 0);
	for (i = 0; i < 1000 && !background_is(fx.fs, "\"background\": "
						      "{\"state\": \"done\"");
	     i++)
		usleep(10000);
	assert_true(i < 1000);
	fx.fault->lo = 0;
	fx.fault->hi = UINT64_MAX;
	atomic_store(&fx.fault->mode, FAULT_FAIL);
	check_all_files(fx.fs, "v1-default");
	lp_fs_free(fx.fs);
}

/*
 * Before the workload's first miss the link is the background's alone
 * (fs_plan_uncontended): its reads grow past FS_PLAN_STREAM_FIRST, and no
 * further than FS_PLAN_UNCONTENDED_RUN. The layer has 64 KiB chunks, so
 * every read of the old rule (256 KiB until the workload reads in order)
 * stayed within FS_PLAN_STREAM_FIRST.
 */
static void test_background_uncontended(void **state)
{
	struct lp_fs_options opts;
	struct fixture fx = { .stream = true };
	int i;

	(void)state;
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	open_fs(&fx, "v1-chunk64k", &opts);
	assert_int_equal(lp_fs_start(fx.fs), 0);
	for (i = 0; i < 3000 && !background_is(fx.fs, "\"background\": "
						      "{\"state\": \"done\"");
	     i++)
		usleep(10000);
	assert_true(i < 3000);
	assert_true(atomic_load(&fx.fault->streams) > 2);
	assert_true(atomic_load(&fx.fault->max_stream) > FS_PLAN_STREAM_FIRST);
	assert_true(atomic_load(&fx.fault->max_stream) <=
		    FS_PLAN_UNCONTENDED_RUN);
	check_all_files(fx.fs, "v1-chunk64k");
	lp_fs_free(fx.fs);
}

/* --- statistics: the latency histogram and FUSE operation counts --- */

static void test_latency_histogram(void **state)
{
	struct fixture fx = { 0 };
	struct lp_fs_stats st;
	unsigned int i, slow_bucket = 0;
	struct lp_buf b;

	for (i = 1; i < LP_FS_LATENCY_BUCKETS; i++)
		assert_true(lp_fs_latency_bound_ns(i) >
			    lp_fs_latency_bound_ns(i - 1));
	assert_int_equal(lp_fs_latency_bound_ns(0), 100000);
	assert_int_equal(lp_fs_latency_bound_ns(LP_FS_LATENCY_BUCKETS - 1),
			 10000000000ull);
	assert_true(lp_fs_latency_bound_ns(LP_FS_LATENCY_BUCKETS) ==
		    UINT64_MAX);
	/* the last bucket under the 30 ms delay below */
	while (lp_fs_latency_bound_ns(slow_bucket + 1) < 30000000)
		slow_bucket++;

	open_fs(&fx, "v1-default", NULL);
	lp_fs_stats_get(fx.fs, &st);
	for (i = 0; i <= LP_FS_LATENCY_BUCKETS; i++)
		assert_int_equal(st.ondemand_le[i], 0);
	/* one fast fetch, one that waits 30 ms for the blob */
	assert_int_equal(read_path(fx.fs, "etc/conf.d/app.conf", NULL), 0);
	atomic_store(&fx.fault->delay_ms, 30);
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", NULL), 0);
	atomic_store(&fx.fault->delay_ms, 0);

	lp_fs_stats_get(fx.fs, &st);
	assert_int_equal(st.ondemand_fetches, 2);
	assert_int_equal(st.ondemand_le[LP_FS_LATENCY_BUCKETS], 2);
	for (i = 1; i <= LP_FS_LATENCY_BUCKETS; i++)
		assert_true(st.ondemand_le[i] >= st.ondemand_le[i - 1]);
	/* the slow one is in no bucket below 30 ms */
	assert_true(st.ondemand_le[slow_bucket] <= 1);
	assert_true(st.ondemand_ns_total >= 30000000);
	assert_true(st.ondemand_ns_max >= 30000000);
	assert_true(st.fetched_chunks >= 2);
	assert_int_equal(stat_of(fx.fs, "\"fetches"), 2);

	/* the JSON carries the bounds and the cumulative counts */
	lp_buf_init(&b, LP_FS_STATS_MAX);
	assert_int_equal(lp_fs_stats_json(fx.fs, &b), 0);
	assert_non_null(
		strstr((char *)b.data, "\"latency_le_ns\": [100000, 250000, "));
	assert_non_null(strstr((char *)b.data, ", 10000000000], "
					       "\"latency_cumulative\": ["));
	assert_non_null(strstr((char *)b.data, ", 2]},\n"));
	lp_buf_release(&b);
	lp_fs_free(fx.fs);
}

static void test_op_counts(void **state)
{
	struct fixture fx = { 0 };
	struct lp_fs_stats st;
	struct lp_buf b;

	open_fs(&fx, "v1-default", NULL);
	lp_fs_stats_get(fx.fs, &st);
	for (unsigned int i = 0; i < LP_FS_OP_COUNT; i++)
		assert_int_equal(st.ops[i], 0);
	/* the core's own calls are not FUSE traffic */
	assert_int_equal(read_path(fx.fs, "usr/bin/tool", NULL), 0);
	lp_fs_stats_get(fx.fs, &st);
	for (unsigned int i = 0; i < LP_FS_OP_COUNT; i++)
		assert_int_equal(st.ops[i], 0);

	lp_fs_count_op(fx.fs, LP_FS_OP_LOOKUP);
	lp_fs_count_op(fx.fs, LP_FS_OP_LOOKUP);
	lp_fs_count_op(fx.fs, LP_FS_OP_READDIRPLUS);
	lp_fs_count_op(fx.fs, LP_FS_OP_COUNT); /* ignored */
	lp_fs_stats_get(fx.fs, &st);
	assert_int_equal(st.ops[LP_FS_OP_LOOKUP], 2);
	assert_int_equal(st.ops[LP_FS_OP_READDIRPLUS], 1);
	assert_int_equal(st.ops[LP_FS_OP_READ], 0);
	assert_string_equal(lp_fs_op_name(LP_FS_OP_READDIRPLUS), "readdirplus");
	assert_string_equal(lp_fs_op_name(LP_FS_OP_COUNT), "unknown");
	lp_buf_init(&b, LP_FS_STATS_MAX);
	assert_int_equal(lp_fs_stats_json(fx.fs, &b), 0);
	assert_non_null(strstr((char *)b.data, "\"fuse_ops\": {\"lookup\": 2, "
					       "\"getattr\": 0, "));
	assert_non_null(strstr((char *)b.data, "\"readdirplus\": 1, "));
	lp_buf_release(&b);
	lp_fs_free(fx.fs);
}

static void *serve_main(void *arg)
{
	lp_fuse_serve(arg);
	return NULL;
}

/* the whole control file, as cat reads it; its length or -1 when the
 * length is not the one fstat reports or the JSON does not end */
static ssize_t read_stats(const char *mnt, char *buf, size_t size)
{
	char path[600];
	struct stat sb;
	ssize_t n = 0, k;
	int fd;

	snprintf(path, sizeof(path), "%s/.lazypull/stats", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	while ((size_t)n < size - 1 &&
	       (k = read(fd, buf + n, size - 1 - (size_t)n)) > 0)
		n += k;
	if (fstat(fd, &sb) != 0 || sb.st_size != n)
		n = -1;
	close(fd);
	if (n < 2)
		return -1;
	buf[n] = '\0';
	return strcmp(buf + n - 2, "}\n") ? -1 : n;
}

static unsigned long long json_num(const char *json, const char *key)
{
	const char *p = strstr(json, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : ~0ull;
}

/*
 * The client side of test_op_counts_mounted, in a child process: a process
 * must not be a client of its own FUSE mount (if its server dies, a request
 * in flight never ends and neither does the process). Exits with the number
 * of the step that failed, 0 when all went well.
 */
static int mounted_client(const char *mnt)
{
	char path[600], buf[4096], json[LP_FS_STATS_MAX];
	unsigned long long chunks, lookups = 0;
	struct statvfs sv;
	struct stat sb;
	int fd, i;
	DIR *d;

	snprintf(path, sizeof(path), "%s/usr/bin/tool", mnt);
	for (i = 0; i < 3; i++) { /* warm: with no open, no request */
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return 1;
		if (read(fd, buf, sizeof(buf)) <= 0)
			return 2;
		close(fd);
	}
	/* the stats are fresh on each open, whole, and agree with fstat:
	 * each open looks the file up, so the count grows each time (while
	 * the size mostly stays: the kernel must see the new mtime) */
	for (i = 0; i < 5; i++) {
		if (read_stats(mnt, json, sizeof(json)) < 0)
			return 9;
		if (i && json_num(json, "\"lookup\": ") <= lookups)
			return 13;
		lookups = json_num(json, "\"lookup\": ");
	}
	chunks = json_num(json, "\"fetched_chunks\": ");
	snprintf(path, sizeof(path), "%s/usr/lib/big.bin", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) != 0 ||
	    pread(fd, buf, 1, sb.st_size - 1) != 1)
		return 10;
	close(fd);
	if (read_stats(mnt, json, sizeof(json)) < 0)
		return 11;
	if (json_num(json, "\"fetched_chunks\": ") <= chunks)
		return 12;
	snprintf(path, sizeof(path), "%s/usr/bin/tool", mnt);
	snprintf(path, sizeof(path), "%s/usr/bin/big-link", mnt);
	if (readlink(path, buf, sizeof(buf)) <= 0)
		return 3;
	snprintf(path, sizeof(path), "%s/etc/conf.d/app.conf", mnt);
	if (getxattr(path, "user.lazypull.test", buf, sizeof(buf)) <= 0)
		return 4;
	if (listxattr(path, buf, sizeof(buf)) <= 0)
		return 5;
	if (stat(path, &sb) != 0)
		return 6;
	d = opendir(mnt);
	if (!d)
		return 7;
	while (readdir(d))
		;
	closedir(d);
	if (statvfs(mnt, &sv) != 0)
		return 8;
	return 0;
}

/* set when a test skipped because LP_ALLOW_SKIP=1 let it (main exits 77) */
static bool skipped_on_request;

/* a component this test needs is missing (MSG names it): skip() when
 * LP_ALLOW_SKIP=1 asks for it, else fail; never a silent pass */
static void skip_or_fail(const char *msg)
{
	const char *allow = getenv("LP_ALLOW_SKIP");

	if (allow && !strcmp(allow, "1")) {
		print_message("SKIP (LP_ALLOW_SKIP=1): %s\n", msg);
		skipped_on_request = true;
		skip();
	}
	fail_msg("%s (a missing component fails the test; LP_ALLOW_SKIP=1 "
		 "makes it a skip)",
		 msg);
}

/* through a real mount (root and /dev/fuse): the adapter counts */
static void run_mounted(bool keep_open)
{
	char mnt[] = "/tmp/lp-test-fs-mnt-XXXXXX", go = 0;
	struct lp_fuse_options fo = { .keep_open = keep_open };
	struct lp_fuse *fuse = NULL;
	struct fixture fx = { 0 };
	struct lp_err err = { 0 };
	struct lp_fs_stats st;
	int status = 0, i, p[2];
	pthread_t t;
	pid_t pid;

	if (geteuid() != 0)
		skip_or_fail("not root: the FUSE mount needs it");
	if (access("/dev/fuse", R_OK | W_OK) != 0)
		skip_or_fail("/dev/fuse missing or not readable and writable");
	assert_non_null(mkdtemp(mnt));
	/* the client forks before the mount: it must not hold the /dev/fuse
	 * descriptor, or a dead server would leave its requests hanging */
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		if (read(p[0], &go, 1) != 1 || go != 'y')
			_exit(100);
		_exit(mounted_client(mnt));
	}
	close(p[0]);
	open_fs(&fx, "v1-default", NULL);
	if (lp_fuse_mount(fx.fs, mnt, &fo, &fuse, &err) < 0) {
		/* root with /dev/fuse: a mount that fails is a defect */
		close(p[1]);
		waitpid(pid, NULL, 0);
		lp_fs_free(fx.fs);
		rmdir(mnt);
		fail_msg("lp_fuse_mount on %s: %s", mnt, err.msg);
	}
	assert_int_equal(pthread_create(&t, NULL, serve_main, fuse), 0);
	assert_int_equal(write(p[1], "y", 1), 1);
	close(p[1]);
	for (i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(100000);
	if (i == 300) {
		/* leave the mount and its session to this process's exit,
		 * which ends the child's requests too */
		kill(pid, SIGKILL);
		fail_msg("the client on the mount did not finish in 30 s");
	}
	lp_fs_stats_get(fx.fs, &st);
	assert_int_equal(lp_fuse_unmount(fuse), 0);
	pthread_join(t, NULL);
	lp_fuse_free(fuse);
	rmdir(mnt);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("client on the mount: status %#x (step %d failed)",
			 status, WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	assert_true(st.ops[LP_FS_OP_LOOKUP] >= 5); /* usr bin tool ... */
	if (keep_open) {
		assert_true(st.ops[LP_FS_OP_OPEN] >= 6); /* 3 tool, 2 stats */
	} else {
		/* the first open is answered ENOSYS, and is the only one */
		assert_int_equal(st.ops[LP_FS_OP_OPEN], 1);
		assert_int_equal(st.ops[LP_FS_OP_RELEASE], 0);
		assert_int_equal(st.ops[LP_FS_OP_OPENDIR], 1);
	}
	assert_true(st.ops[LP_FS_OP_READ] >= 1);
	assert_true(st.ops[LP_FS_OP_READLINK] >= 1);
	assert_true(st.ops[LP_FS_OP_GETXATTR] >= 1);
	assert_true(st.ops[LP_FS_OP_LISTXATTR] >= 1);
	assert_true(st.ops[LP_FS_OP_OPENDIR] >= 1);
	assert_true(st.ops[LP_FS_OP_READDIR] + st.ops[LP_FS_OP_READDIRPLUS] >=
		    1);
	assert_true(st.ops[LP_FS_OP_STATFS] >= 1);
	/* tool: one chunk, read once; big.bin's last */
	assert_int_equal(st.ondemand_fetches, 2);
	lp_fs_free(fx.fs);
}

/*
 * lp_fuse_resume() takes only a state of this build's serving scheme from a
 * connection that gave out no file handles: another scheme, an unknown
 * head, a truncated state or a connection that kept opens is refused with
 * a message before anything is served. The head's layout (magic, scheme,
 * flags: three 32-bit words) is fs/fuse_ops.c's struct state_head.
 */
static void resume_refused(struct lp_fs *fs, const char *mnt,
			   const struct lp_fuse *fuse,
			   const struct lp_fuse_state *st, int want,
			   const char *why)
{
	struct lp_fuse_options fo = { 0 };
	struct lp_fuse *f2 = NULL;
	struct lp_err err = { 0 };
	int fd = dup(lp_fuse_fd(fuse));

	assert_true(fd >= 0);
	assert_int_equal(lp_fuse_resume(fs, fd, mnt, st, &fo, &f2, &err), want);
	assert_null(f2);
	if (!strstr(err.msg, why))
		fail_msg("resume refused with \"%s\", not \"%s\"", err.msg,
			 why);
}

static void test_resume_state(void **state)
{
	char mnt[] = "/tmp/lp-test-fs-resume-XXXXXX";
	struct lp_fuse_options fo = { 0 };
	struct lp_fuse *fuse = NULL;
	struct lp_fuse_state st, bad;
	struct fixture fx = { 0 };
	struct lp_err err = { 0 };
	pthread_t t;
	uint32_t w;

	(void)state;
	if (geteuid() != 0)
		skip_or_fail("not root: the FUSE mount needs it");
	if (access("/dev/fuse", R_OK | W_OK) != 0)
		skip_or_fail("/dev/fuse missing or not readable and writable");
	assert_non_null(mkdtemp(mnt));
	open_fs(&fx, "v1-default", NULL);
	for (int keep_open = 0; keep_open < 2; keep_open++) {
		fo.keep_open = keep_open;
		if (lp_fuse_mount(fx.fs, mnt, &fo, &fuse, &err) < 0)
			fail_msg("lp_fuse_mount on %s: %s", mnt, err.msg);
		/* served, so that nothing here waits on its own mount */
		assert_int_equal(pthread_create(&t, NULL, serve_main, fuse), 0);
		lp_fuse_get_state(fuse, &st);
		assert_true(st.len > 3 * sizeof(uint32_t));
		if (keep_open) {
			resume_refused(fx.fs, mnt, fuse, &st, -EOPNOTSUPP,
				       "opens were kept");
		} else {
			bad = st;
			memcpy(&w, bad.bytes + 4, sizeof(w));
			assert_int_equal(w, LP_FUSE_SERVE_SCHEME);
			w++;
			memcpy(bad.bytes + 4, &w, sizeof(w));
			resume_refused(fx.fs, mnt, fuse, &bad, -EPROTO,
				       "scheme");
			bad = st;
			bad.bytes[0] ^= 0xff;
			resume_refused(fx.fs, mnt, fuse, &bad, -EPROTO,
				       "unknown head");
			bad = st;
			bad.bytes[8] = 0x80; /* a flag no build knows yet */
			resume_refused(fx.fs, mnt, fuse, &bad, -EPROTO,
				       "unknown flags");
			bad = st;
			bad.len = 3 * sizeof(uint32_t) + 8;
			resume_refused(fx.fs, mnt, fuse, &bad, -EPROTO,
				       "no INIT");
		}
		assert_int_equal(lp_fuse_unmount(fuse), 0);
		pthread_join(t, NULL);
		lp_fuse_free(fuse);
		fuse = NULL;
	}
	lp_fs_free(fx.fs);
	rmdir(mnt);
}

static void test_op_counts_mounted(void **state)
{
	run_mounted(false);
}

static void test_op_counts_mounted_keep_open(void **state)
{
	run_mounted(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_every_file),
		cmocka_unit_test(test_inode_view),
		cmocka_unit_test(test_control_file),
		cmocka_unit_test(test_control_file_no_open),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_spill_read_error),
		cmocka_unit_test(test_spill_reads_once),
		cmocka_unit_test(test_digest_policy),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_memory_budget),
		cmocka_unit_test(test_shared_budget),
		cmocka_unit_test(test_shared_budget_lru),
		cmocka_unit_test(test_background_not_kept),
		cmocka_unit_test(test_coalescing),
		cmocka_unit_test(test_neighbours),
		cmocka_unit_test(test_streamed_run),
		cmocka_unit_test(test_streamed_faults),
		cmocka_unit_test(test_disk_tier),
		cmocka_unit_test(test_disk_tier_shared),
		cmocka_unit_test(test_multi_range),
		cmocka_unit_test(test_prefetch_background),
		cmocka_unit_test(test_background_gone),
		cmocka_unit_test(test_reply_errno),
		cmocka_unit_test(test_background_quiet),
		cmocka_unit_test(test_writer_full),
		cmocka_unit_test(test_background_disk_unlocked),
		cmocka_unit_test(test_background_budget_shared),
		cmocka_unit_test(test_background_streams),
		cmocka_unit_test(test_background_uncontended),
		cmocka_unit_test(test_latency_histogram),
		cmocka_unit_test(test_op_counts),
		cmocka_unit_test(test_op_counts_mounted),
		cmocka_unit_test(test_resume_state),
		cmocka_unit_test(test_op_counts_mounted_keep_open),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* 77: ctest's SKIP_RETURN_CODE (tests/CMakeLists.txt) */
	return failed ? 1 : skipped_on_request ? 77 : 0;
}
