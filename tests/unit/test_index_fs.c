// SPDX-License-Identifier: Apache-2.0
/*
 * A gzip index layer mounted (lp_layer_open_index() + lp_fs_new()) against
 * forged and tricky indexes: the regression tests of a review that made the
 * mount serve wrong bytes. Never a wrong byte: EIO (or a refused mount) or
 * the layer's true bytes.
 *
 * - A tar holding a (v1), b hardlink to a, then a again (v2): GNU tar
 *   extracts b as v1; the mount must not serve v2 for b (it refuses the
 *   index at mount).
 * - A regular file's record forged into a hardlink to another file: its
 *   path must not serve the other file's bytes (its own header is checked
 *   before the hardlink is answered), by default and with the window rule.
 * - Checkpoints' uncompressed offsets moved back 512 bytes (windows, span
 *   digests and file table honest): by default no read serves another
 *   file's bytes.
 * - A lie found by a read (a span digest) poisons the whole mount: every
 *   later read, lookup, getattr, readdir gets EIO.
 * - Metadata: a setuid bit added to a file's record, a symlink's target
 *   swapped for another's: lookup / readlink answer EIO (the entry's own
 *   header is checked before anything of it is answered), not the lie.
 *   A trusted index's lookup answers the record (the signer's word, no
 *   fetch); the file's read and the symlink's readlink are EIO.
 * - Memory: no more than LP_INDEX_READ_MAX_CONCURRENT lp_index_read()s
 *   run at once (a slow blob counts the reads in flight), and their bytes
 *   are right.
 * - A proven-only read that streams holds no read slot: two streams
 *   blocked in the blob do not stop a third read that needs a slot.
 * - A whiteout whose record disagrees with its tar header: its name's
 *   lookup is EIO (and the mount poisoned), never ENOENT.
 * - A source that fails with EBADMSG (a mirror's whole-blob digest): the
 *   index readers answer EIO, and the mount is not poisoned.
 * - The span cache: a span is fetched once (a second get is a hit; four
 *   threads getting one span fetch it once, three waiting), a span whose
 *   digest does not match is refused and never held, the least recently
 *   used span leaves at the limit; through a mount, four threads reading
 *   every file in different orders (proven-only, window rule, with the
 *   proving pass) fetch each span at most once (with the pass: exactly
 *   once) and every byte is the tar's; a span whose digest lies, read by
 *   them, poisons the mount, serves no wrong byte, and is never held.
 * - A proven-only read whose span the running proving pass will prove
 *   waits for it rather than streaming there itself; when the pass fails
 *   first, the read streams itself and is right.
 *
 * The fixture (the vectors' v1.tar.gz, its index) is test_index.c's,
 * included with its main renamed.
 */
int test_index_main(void);
#define main test_index_main
#include "test_index.c"
#undef main

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "fs_int.h"
#include "lp_fs.h"
#include "lp_layer.h"

/* mount @idx over @blob; NULL when the index or the layer is refused */
static struct lp_fs *mount_ix(struct lp_blob *blob, const uint8_t *idx,
			      size_t len, bool window_rule, struct lp_err *err)
{
	struct lp_index *ix = NULL;
	struct lp_layer *layer = NULL;
	struct lp_fs *fs = NULL;
	struct lp_fs_options opts;
	int r = lp_index_parse(idx, len, &ix, err);

	if (r < 0)
		return NULL;
	r = lp_layer_open_index(blob, ix, lp_index_check_header, &layer, err);
	if (r < 0)
		return NULL;
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	opts.index_window_rule = window_rule;
	assert_int_equal(lp_fs_new(layer, &opts, &fs, err), 0);
	assert_int_equal(lp_fs_start(fs), 0);
	return fs;
}

/* look @path up from the root: 0 and its attributes, or -errno */
static int lookup(struct lp_fs *fs, const char *path, struct stat *st)
{
	char buf[4200], *save = NULL, *comp;
	uint64_t ino = LP_FS_ROOT_INO;
	int r = lp_fs_getattr(fs, ino, st);

	snprintf(buf, sizeof(buf), "%s", path);
	for (comp = strtok_r(buf, "/", &save); comp && r == 0;
	     comp = strtok_r(NULL, "/", &save)) {
		r = lp_fs_lookup(fs, ino, comp, st);
		ino = st->st_ino;
	}
	return r;
}

/* read @len bytes of @path at @off: the count or -errno */
static int read_path(struct lp_fs *fs, const char *path, void *buf, size_t len,
		     uint64_t off)
{
	struct lp_fs_file *file = NULL;
	struct lp_err err = { 0 };
	struct stat st;
	bool direct;
	int r = lookup(fs, path, &st);

	if (r < 0)
		return r;
	r = lp_fs_open(fs, st.st_ino, O_RDONLY, &file, &direct);
	if (r < 0)
		return r;
	r = lp_fs_read(fs, st.st_ino, file, buf, len, off, &err);
	lp_fs_release(fs, file);
	return r;
}

/* ---- A: a hardlink to a path the tar holds again after it ---------- */

static void tar_entry(uint8_t *tar, size_t *at, const char *name, char type,
		      const char *link, const void *data, size_t size)
{
	uint8_t *h = tar + *at;
	unsigned int sum = 0;
	size_t i;

	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", size);
	snprintf((char *)h + 136, 12, "%011o", 0);
	memset(h + 148, ' ', 8);
	h[156] = (uint8_t)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	for (i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	*at += 512;
	if (size) {
		memcpy(tar + *at, data, size);
		*at += (size + 511) / 512 * 512;
	}
}

static uint64_t stats_num(struct lp_fs *fs, const char *key);

/* gzip @tar (@len bytes) as one member and index it: *@gz, *@idx (the
 * caller frees both) and *@ix (parsed from *@idx, lp_index_free()) */
static void tar_index(const uint8_t *tar, size_t len, uint8_t **gz,
		      size_t *gz_len, uint8_t **idx, size_t *idx_len,
		      struct lp_index **ix)
{
	struct lp_index_build_result res;
	struct lp_err err = { 0 };
	struct lp_buf out;
	int fd, r;

	*gz = gzip_members(tar, len, len, gz_len);
	fd = memfd_create("layer", 0);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, *gz, *gz_len), (ssize_t)*gz_len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	lp_buf_init(&out, LP_INDEX_MAX_SIZE);
	r = lp_index_build(fd, SPAN, LP_INDEX_GRAIN_DEFAULT, NULL, &out, &res,
			   &err);
	close(fd);
	if (r < 0)
		fail_msg("build: %s", lp_err_str(&err, r));
	*idx = lp_buf_steal(&out, idx_len);
	assert_int_equal(lp_index_parse(*idx, *idx_len, ix, &err), 0);
}

/* the index of the entry at @path (fails the test when there is none) */
static uint32_t entry_at(const struct lp_index *ix, const char *path)
{
	uint32_t i;

	for (i = 0; i < lp_index_nr_files(ix); i++)
		if (!strcmp(lp_index_file(ix, i)->path, path))
			return i;
	fail_msg("no entry %s", path);
	return UINT32_MAX;
}

static void test_hardlink_shadowed(void **state)
{
	uint8_t tar[8192] = { 0 }, *gz, *idx;
	size_t at = 0, gz_len, idx_len;
	struct lp_index *ix = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	struct lp_fs *fs;
	char buf[16] = { 0 };
	int r;

	(void)state;
	tar_entry(tar, &at, "a", '0', NULL, "version one\n", 12);
	tar_entry(tar, &at, "b", '1', "a", NULL, 0);
	tar_entry(tar, &at, "a", '0', NULL, "version two\n", 12);
	at += 1024; /* the end-of-archive blocks */
	tar_index(tar, at, &gz, &gz_len, &idx, &idx_len, &ix);
	lp_index_free(ix);
	assert_int_equal(lp_blob_new_mem(gz, gz_len, "layer", &blob), 0);
	fs = mount_ix(blob, idx, idx_len, true, &err);
	if (fs) {
		/* if ever mounted: b is what GNU tar extracts, version one */
		r = read_path(fs, "b", buf, sizeof(buf) - 1, 0);
		assert_true(r < 0 || !strcmp(buf, "version one\n"));
		lp_fs_free(fs);
	} else {
		assert_non_null(strstr(err.msg, "hardlink"));
	}
	lp_blob_unref(blob);
	free(gz);
	free(idx);
}

/* ---- D: a regular file's record forged into a hardlink ------------- */

static void check_forged_hardlink(struct fixture *f, bool window_rule,
				  bool trusted)
{
	uint32_t ncp, nf, i, a = UINT32_MAX, b = UINT32_MAX;
	const struct lp_index_file *fa, *fb;
	struct lp_err err = { 0 };
	uint8_t *idx, *files, *ra, *rb, buf[4096];
	struct lp_fs *fs;
	struct stat st;
	int n;

	idx = malloc(f->idx_len);
	assert_non_null(idx);
	memcpy(idx, f->idx, f->idx_len);
	ncp = lp_get_le32(idx + 68);
	nf = lp_get_le32(idx + 72);
	files = CP(idx, ncp);
	for (i = 0; i < nf; i++) {
		uint8_t *rec = files + (size_t)i * LP_INDEX_FILE_SIZE;

		if (rec[64] != '0' || lp_get_le64(rec + 16) < 100 ||
		    lp_index_lookup(f->ix, lp_index_file(f->ix, i)->path) !=
			    (int)i)
			continue;
		if (a == UINT32_MAX)
			a = i;
		else if (b == UINT32_MAX)
			b = i;
	}
	assert_true(b != UINT32_MAX);
	/* b becomes a hardlink to a (type, no size, link = a's path) */
	rb = files + (size_t)b * LP_INDEX_FILE_SIZE;
	ra = files + (size_t)a * LP_INDEX_FILE_SIZE;
	rb[64] = '1';
	lp_put_le64(rb + 16, 0);
	memcpy(rb + 56, ra + 52, 4);
	fa = lp_index_file(f->ix, a);
	fb = lp_index_file(f->ix, b);
	fs = mount_ix(f->blob, idx, f->idx_len, window_rule, &err);
	if (fs) {
		/* a trusted index's hardlink is checked all the same: its
		 * answer is another entry's inode */
		if (trusted)
			lp_index_trust(lp_layer_index(lp_fs_layer(fs)));
		n = read_path(fs, fb->path, buf, sizeof(buf), 0);
		/* b is no hardlink in the tar: refused, at its lookup */
		assert_true(n < 0);
		assert_int_equal(lookup(fs, fb->path, &st), -EIO);
		if (n > 0) {
			/* only b's own bytes may come out of b's path */
			assert_true((size_t)n <= fb->size);
			assert_memory_equal(buf, f->tar + fb->data_off,
					    (size_t)n);
		}
		/* a itself stays readable and right until a lie is found */
		n = read_path(fs, fa->path, buf, sizeof(buf), 0);
		assert_true(n < 0 ||
			    !memcmp(buf, f->tar + fa->data_off, (size_t)n));
		lp_fs_free(fs);
	}
	free(idx);
}

static void test_forged_hardlink(void **state)
{
	struct fixture f = { 0 };

	(void)state;
	build_vector(&f);
	check_forged_hardlink(&f, false, false);
	check_forged_hardlink(&f, true, false);
	check_forged_hardlink(&f, false, true);
	release(&f);
}

/* ---- B: checkpoints' uncompressed offsets moved back --------------- */

static void test_shifted_checkpoints(void **state)
{
	struct fixture f = { 0 };
	size_t k, j, tried = 0, mounts = 0;

	(void)state;
	build_vector(&f);
	for (k = 2; k < lp_index_nr_checkpoints(f.ix) && mounts < 6; k++) {
		const struct lp_index_checkpoint *c = lp_index_checkpoint(f.ix,
									  k),
						 *pc = lp_index_checkpoint(
							 f.ix, k - 1);

		if (c->kind != LP_INDEX_CP_DEFLATE || c->out - 512 <= pc->out)
			continue;
		for (j = 0; j < lp_index_nr_files(f.ix); j++) {
			const struct lp_index_file *fa = lp_index_file(f.ix, j);
			struct lp_err err = { 0 };
			uint8_t *idx, buf[4096];
			struct lp_fs *fs;
			uint64_t o;
			size_t q;

			if (fa->type != '0' || fa->data_off > c->out - 512 ||
			    fa->data_off + fa->size < c->out + 8192 ||
			    lp_index_lookup(f.ix, fa->path) != (int)j)
				continue;
			idx = malloc(f.idx_len);
			assert_non_null(idx);
			memcpy(idx, f.idx, f.idx_len);
			for (q = k; q < lp_index_nr_checkpoints(f.ix); q++)
				lp_put_le64(CP(idx, q) + 8,
					    lp_index_checkpoint(f.ix, q)->out -
						    512);
			/* the default options: no window rule */
			fs = mount_ix(f.blob, idx, f.idx_len, false, &err);
			free(idx);
			if (!fs)
				break;
			mounts++;
			/* pieces in span k (cold) */
			for (o = c->out - 512 - fa->data_off;
			     o + 4096 <= fa->size &&
			     o + fa->data_off < c->out + 65536;
			     o += 4096) {
				int n = read_path(fs, fa->path, buf, 4096, o);

				tried++;
				if (n > 0)
					assert_memory_equal(
						buf, f.tar + fa->data_off + o,
						(size_t)n);
			}
			lp_fs_free(fs);
			break;
		}
	}
	assert_true(mounts > 0 && tried > 0);
	release(&f);
}

/* ---- C: a lie a read finds poisons the mount ----------------------- */

static void test_read_lie_poisons(void **state)
{
	struct fixture f = { 0 };
	const struct lp_index_file *fa = NULL, *fz = NULL;
	struct lp_err err = { 0 };
	uint8_t *idx, buf[4096];
	struct stat st;
	struct lp_fs *fs;
	size_t j, k;
	int n;

	(void)state;
	build_vector(&f);
	/* a file whose first byte lies in a span after the first, and an
	 * honest file in the first span, read after the lie */
	for (j = 0; j < lp_index_nr_files(f.ix); j++) {
		const struct lp_index_file *x = lp_index_file(f.ix, j);

		if (x->type != '0' || x->size < 16 ||
		    lp_index_lookup(f.ix, x->path) != (int)j)
			continue;
		if (!fz &&
		    x->data_off + x->size < lp_index_checkpoint(f.ix, 1)->out)
			fz = x;
		if (x->hdr_off > lp_index_checkpoint(f.ix, 4)->out) {
			fa = x;
			break;
		}
	}
	assert_non_null(fa);
	assert_non_null(fz);
	for (k = 1; lp_index_checkpoint(f.ix, k + 1)->out <= fa->data_off; k++)
		;
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	memcpy(idx, f.idx, f.idx_len);
	CP(idx, k)[40] ^= 1; /* span k's digest lies */
	fs = mount_ix(f.blob, idx, f.idx_len, false, &err);
	assert_non_null(fs);
	n = read_path(fs, fa->path, buf, 16, 0);
	assert_true(n < 0);
	/* the lie is known: the mount answers nothing more */
	assert_int_equal(read_path(fs, fz->path, buf, 16, 0), -EIO);
	assert_int_equal(lookup(fs, fz->path, &st), -EIO);
	assert_int_equal(lp_fs_getattr(fs, LP_FS_ROOT_INO, &st), -EIO);
	lp_fs_free(fs);
	free(idx);
	release(&f);
}

/* ---- D: metadata checked before it is answered ---------------------- */

/* the first file record of type @type (from the middle of the table,
 * or with @other from its start) that is its path's TOC entry, and
 * (@other) a later one with another link target; UINT32_MAX for none */
static uint32_t pick(struct fixture *f, char type, uint32_t *other)
{
	uint32_t i, n = (uint32_t)lp_index_nr_files(f->ix), a = UINT32_MAX;

	for (i = other ? 0 : n / 2; i < n; i++) {
		const struct lp_index_file *x = lp_index_file(f->ix, i);

		if (x->type != type ||
		    lp_index_lookup(f->ix, x->path) != (int)i)
			continue;
		if (a == UINT32_MAX) {
			a = i;
			if (!other)
				break;
		} else if (strcmp(x->link, lp_index_file(f->ix, a)->link)) {
			*other = i;
			break;
		}
	}
	return a;
}

/*
 * A mount of @f's layer through a copy of its index, made in @idx
 * (f->idx_len bytes), whose file record @k has its little-endian field of
 * @width bytes (4 or 8) at record offset @field set to @value; trusted
 * (lp_index_trust()) when @trusted. Fails the test when it is refused.
 */
static struct lp_fs *mount_forged(const struct fixture *f, uint8_t *idx,
				  size_t k, size_t field, unsigned int width,
				  uint64_t value, bool window_rule,
				  bool trusted)
{
	uint8_t *rec = CP(idx, lp_get_le32(f->idx + 68)) +
		       k * LP_INDEX_FILE_SIZE + field;
	struct lp_err err = { 0 };
	struct lp_fs *fs;

	memcpy(idx, f->idx, f->idx_len);
	if (width == 8)
		lp_put_le64(rec, value);
	else
		lp_put_le32(rec, (uint32_t)value);
	fs = mount_ix(f->blob, idx, f->idx_len, window_rule, &err);
	assert_non_null(fs);
	if (trusted)
		lp_index_trust(lp_layer_index(lp_fs_layer(fs)));
	return fs;
}

/* record @k's link target field (a string offset) in @f's index */
static uint32_t link_field(const struct fixture *f, size_t k)
{
	return lp_get_le32(CP(f->idx, lp_get_le32(f->idx + 68)) +
			   k * LP_INDEX_FILE_SIZE + 56);
}

static void test_forged_metadata(void **state)
{
	struct fixture f = { 0 };
	uint32_t a, b = UINT32_MAX;
	const char *target = NULL;
	uint8_t *idx;
	struct lp_fs *fs;
	struct stat st;
	int r;

	(void)state;
	build_vector(&f);
	/* a regular file made setuid */
	a = pick(&f, '0', NULL);
	assert_true(a != UINT32_MAX);
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	fs = mount_forged(&f, idx, a, 32, 4,
			  lp_index_file(f.ix, a)->mode | 04000, false, false);
	r = lookup(fs, lp_index_file(f.ix, a)->path, &st);
	assert_true(r == -EIO || (r == 0 && !(st.st_mode & 04000)));
	assert_int_equal(r, -EIO);
	lp_fs_free(fs);
	/* a symlink given another one's target */
	a = pick(&f, '2', &b);
	assert_true(a != UINT32_MAX && b != UINT32_MAX);
	fs = mount_forged(&f, idx, a, 56, 4, link_field(&f, b), true, false);
	r = lookup(fs, lp_index_file(f.ix, a)->path, &st);
	if (r == 0)
		r = lp_fs_readlink(fs, st.st_ino, &target);
	assert_true(r < 0 || !strcmp(target, lp_index_file(f.ix, a)->link));
	assert_int_equal(r, -EIO);
	lp_fs_free(fs);
	free(idx);
	release(&f);
}

/* ---- E: lp_index_read()s at once are bounded --------------------- */

struct slow_blob {
	const uint8_t *data;
	pthread_mutex_t lock;
	unsigned int now, max; /* preads in flight; protected by lock */
};

static int slow_pread(void *ctx, void *buf, size_t len, uint64_t off,
		      struct lp_err *err)
{
	struct slow_blob *sb = ctx;

	(void)err;
	pthread_mutex_lock(&sb->lock);
	if (++sb->now > sb->max)
		sb->max = sb->now;
	pthread_mutex_unlock(&sb->lock);
	usleep(20000);
	memcpy(buf, sb->data + off, len);
	pthread_mutex_lock(&sb->lock);
	sb->now--;
	pthread_mutex_unlock(&sb->lock);
	return 0;
}

static void slow_close(void *ctx)
{
	(void)ctx;
}

struct bounded_arg {
	struct fixture *f;
	struct lp_blob *blob;
	unsigned int n, bad;
};

static void *bounded_reader(void *arg)
{
	struct bounded_arg *a = arg;
	const struct lp_index *ix = a->f->ix;
	size_t k = 1 + a->n % (lp_index_nr_checkpoints(ix) - 1);
	uint64_t off = lp_index_checkpoint(ix, k)->out + 100;
	uint8_t buf[512];

	if (lp_index_read(ix, a->blob, off, buf, sizeof(buf), NULL, 0, false,
			  NULL, NULL) < 0 ||
	    memcmp(buf, a->f->tar + off, sizeof(buf)))
		a->bad = 1;
	return NULL;
}

static void test_read_bounded(void **state)
{
	static const struct lp_blob_ops ops = { .pread = slow_pread,
						.close = slow_close };
	struct fixture f = { 0 };
	struct slow_blob sb = { 0 };
	struct bounded_arg a[8];
	pthread_t t[8];
	unsigned int i;

	(void)state;
	build_vector(&f);
	sb.data = f.gz;
	pthread_mutex_init(&sb.lock, NULL);
	for (i = 0; i < 8; i++) {
		a[i].f = &f;
		a[i].n = i * 3;
		a[i].bad = 0;
		assert_int_equal(
			lp_blob_new(&ops, &sb, f.gz_len, "slow", &a[i].blob),
			0);
		assert_int_equal(
			pthread_create(&t[i], NULL, bounded_reader, &a[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].bad, 0);
		lp_blob_unref(a[i].blob);
	}
	assert_true(sb.max >= 1);
	assert_true(sb.max <= LP_INDEX_READ_MAX_CONCURRENT);
	pthread_mutex_destroy(&sb.lock);
	release(&f);
}

/* ---- F: a stream holds no read slot -------------------------------- */

/* a blob whose reads at or past @gate block until @open (counted in
 * @blocked), the others served at once */
struct gate_blob {
	const uint8_t *data;
	uint64_t gate;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int blocked; /* protected by lock */
	bool open; /* protected by lock */
};

static int gate_pread(void *ctx, void *buf, size_t len, uint64_t off,
		      struct lp_err *err)
{
	struct gate_blob *gb = ctx;

	(void)err;
	if (off + len > gb->gate) {
		pthread_mutex_lock(&gb->lock);
		gb->blocked++;
		pthread_cond_broadcast(&gb->cond);
		while (!gb->open)
			pthread_cond_wait(&gb->cond, &gb->lock);
		gb->blocked--;
		pthread_mutex_unlock(&gb->lock);
	}
	memcpy(buf, gb->data + off, len);
	return 0;
}

struct gate_arg {
	struct fixture *f;
	struct gate_blob *gb;
	struct lp_blob *blob;
	uint64_t off;
	int r;
	bool done, bad; /* done: protected by gb->lock */
};

static void *gate_reader(void *arg)
{
	struct gate_arg *a = arg;
	uint8_t buf[512];

	a->r = lp_index_read(a->f->ix, a->blob, a->off, buf, sizeof(buf), NULL,
			     0, true, NULL, NULL);
	a->bad = a->r == 0 && memcmp(buf, a->f->tar + a->off, sizeof(buf));
	pthread_mutex_lock(&a->gb->lock);
	a->done = true;
	pthread_cond_broadcast(&a->gb->cond);
	pthread_mutex_unlock(&a->gb->lock);
	return NULL;
}

/* wait (30 s at most: a hang, not a speed, is what fails) until @pred;
 * with gb->lock held */
static bool gate_wait(struct gate_blob *gb, bool (*pred)(void *), void *arg)
{
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	while (!pred(arg) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&gb->cond, &gb->lock, &ts);
	return pred(arg);
}

static bool two_blocked(void *arg)
{
	return ((struct gate_blob *)arg)->blocked >= 2;
}

static bool reader_done(void *arg)
{
	return ((struct gate_arg *)arg)->done;
}

static void test_stream_holds_no_slot(void **state)
{
	static const struct lp_blob_ops ops = { .pread = gate_pread,
						.close = slow_close };
	struct fixture f = { 0 };
	struct gate_blob gb = { 0 };
	struct gate_arg a[3];
	pthread_t t[3];
	bool blocked, third_done;
	unsigned int i;

	(void)state;
	build_vector(&f);
	gb.data = f.gz;
	gb.gate = lp_index_checkpoint(f.ix, 2)->in;
	pthread_mutex_init(&gb.lock, NULL);
	pthread_cond_init(&gb.cond, NULL);
	for (i = 0; i < 3; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].f = &f;
		a[i].gb = &gb;
		assert_int_equal(
			lp_blob_new(&ops, &gb, f.gz_len, "gate", &a[i].blob),
			0);
	}
	/* two proven-only reads deep in the unproven layer: streams from
	 * checkpoint 0, both blocked past the gate (as many as the slots) */
	a[0].off = lp_index_checkpoint(f.ix, 8)->out + 100;
	a[1].off = lp_index_checkpoint(f.ix, 9)->out + 100;
	/* then a read whose span is proven (the first): it needs a slot */
	a[2].off = 100;
	for (i = 0; i < 2; i++)
		assert_int_equal(
			pthread_create(&t[i], NULL, gate_reader, &a[i]), 0);
	pthread_mutex_lock(&gb.lock);
	blocked = gate_wait(&gb, two_blocked, &gb);
	pthread_mutex_unlock(&gb.lock);
	assert_int_equal(pthread_create(&t[2], NULL, gate_reader, &a[2]), 0);
	pthread_mutex_lock(&gb.lock);
	third_done = blocked && gate_wait(&gb, reader_done, &a[2]);
	/* whatever happened: the streams go on, everyone ends */
	gb.open = true;
	pthread_cond_broadcast(&gb.cond);
	pthread_mutex_unlock(&gb.lock);
	for (i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		lp_blob_unref(a[i].blob);
	}
	assert_true(blocked);
	/* the third read ended while both streams were still blocked */
	assert_true(third_done);
	for (i = 0; i < 3; i++) {
		assert_int_equal(a[i].r, 0);
		assert_false(a[i].bad);
	}
	pthread_cond_destroy(&gb.cond);
	pthread_mutex_destroy(&gb.lock);
	release(&f);
}

/* ---- G: a whiteout whose header check fails ------------------------ */

static void test_forged_whiteout(void **state)
{
	uint8_t tar[8192] = { 0 }, *gz, *idx, *rec;
	size_t at = 0, gz_len, idx_len;
	struct lp_index *ix = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	struct lp_fs *fs;
	struct stat st;
	uint32_t w;
	int trusted;

	(void)state;
	tar_entry(tar, &at, "keep", '0', NULL, "kept\n", 5);
	/* not empty: only its name makes it a whiteout (a trusted index
	 * answers non-empty files before their checks) */
	tar_entry(tar, &at, ".wh.gone", '0', NULL, "x", 1);
	at += 1024; /* the end-of-archive blocks */
	tar_index(tar, at, &gz, &gz_len, &idx, &idx_len, &ix);
	w = entry_at(ix, ".wh.gone");
	/* the whiteout's record says another mode than its tar header */
	rec = CP(idx, lp_index_nr_checkpoints(ix)) +
	      (size_t)w * LP_INDEX_FILE_SIZE;
	lp_put_le32(rec + 32, lp_index_file(ix, w)->mode ^ 0100);
	lp_index_free(ix);
	assert_int_equal(lp_blob_new_mem(gz, gz_len, "layer", &blob), 0);
	for (trusted = 0; trusted < 2; trusted++) {
		fs = mount_ix(blob, idx, idx_len, false, &err);
		assert_non_null(fs);
		/* a trusted index's whiteout is checked all the same: it
		 * hides a lower layer's file */
		if (trusted)
			lp_index_trust(lp_layer_index(lp_fs_layer(fs)));
		/* an error, never "absent" (overlayfs would show a lower
		 * "gone") */
		assert_int_equal(lookup(fs, "gone", &st), -EIO);
		/* the lie poisons the mount */
		assert_int_equal(lp_fs_getattr(fs, LP_FS_ROOT_INO, &st), -EIO);
		lp_fs_free(fs);
	}
	lp_blob_unref(blob);
	free(gz);
	free(idx);
}

/*
 * An opaque directory's marker (d/.wh..wh..opq) whose record disagrees
 * with its tar header, right after d and 300 KB after it (outside d's
 * check batch): overlayfs's question (getxattr trusted.overlay.opaque)
 * is EIO, never "y", proven-only and trusted: the marker is checked
 * before the answer (it hides a lower layer's directory contents).
 */
static void test_forged_opaque_marker(void **state)
{
	const size_t big = 300000;
	uint8_t *tar = calloc(1, 2 * LP_MIB), *fill = malloc(big), *gz, *idx;
	size_t at, gz_len, idx_len, k;
	struct lp_index *ix = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	struct lp_fs *fs;
	struct stat st;
	char val[8];
	uint32_t m;
	int far, trusted;

	(void)state;
	assert_non_null(tar);
	assert_non_null(fill);
	for (k = 0; k < big; k++) /* incompressible enough: a span away */
		fill[k] = (uint8_t)((k * 2654435761u) >> 13);
	for (far = 0; far < 2; far++) {
		memset(tar, 0, 2 * LP_MIB);
		at = 0;
		tar_entry(tar, &at, "d/", '5', NULL, NULL, 0);
		if (far)
			tar_entry(tar, &at, "d/big", '0', NULL, fill, big);
		tar_entry(tar, &at, "d/.wh..wh..opq", '0', NULL, NULL, 0);
		tar_entry(tar, &at, "d/f", '0', NULL, "x\n", 2);
		at += 1024;
		tar_index(tar, at, &gz, &gz_len, &idx, &idx_len, &ix);
		m = entry_at(ix, "d/.wh..wh..opq");
		lp_put_le32(CP(idx, lp_index_nr_checkpoints(ix)) +
				    (size_t)m * LP_INDEX_FILE_SIZE + 32,
			    lp_index_file(ix, m)->mode ^ 0100);
		lp_index_free(ix);
		assert_int_equal(lp_blob_new_mem(gz, gz_len, "layer", &blob),
				 0);
		for (trusted = 0; trusted < 2; trusted++) {
			fs = mount_ix(blob, idx, idx_len, false, &err);
			assert_non_null(fs);
			if (trusted)
				lp_index_trust(lp_layer_index(lp_fs_layer(fs)));
			if (lookup(fs, "d", &st) == 0)
				assert_int_equal(
					lp_fs_getxattr(fs, st.st_ino,
						       "trusted.overlay.opaque",
						       val, sizeof(val)),
					-EIO);
			assert_int_equal(stats_num(fs, "\"verify_failures\": "),
					 1);
			lp_fs_free(fs);
		}
		lp_blob_unref(blob);
		free(gz);
		free(idx);
	}
	free(fill);
	free(tar);
}

/*
 * A hardlink to a hardlink (a -> b -> d; GNU tar writes every other name
 * of an inode as a link to its first, a regular file): the index is
 * refused at mount, true or forged (b's record made b -> c would have
 * served c's bytes under a, whose check covers a and the inode it
 * resolves to, not b).
 */
static void test_hardlink_chain_refused(void **state)
{
	uint8_t tar[16384] = { 0 }, *gz, *idx, *files;
	size_t at = 0, gz_len, idx_len;
	struct lp_index *ix = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	uint32_t b, c;
	int forged;

	(void)state;
	tar_entry(tar, &at, "c", '0', NULL, "CCCC\n", 5);
	tar_entry(tar, &at, "d", '0', NULL, "DDDD\n", 5);
	tar_entry(tar, &at, "b", '1', "d", NULL, 0);
	tar_entry(tar, &at, "a", '1', "b", NULL, 0);
	at += 1024;
	tar_index(tar, at, &gz, &gz_len, &idx, &idx_len, &ix);
	b = entry_at(ix, "b");
	c = entry_at(ix, "c");
	assert_int_equal(lp_blob_new_mem(gz, gz_len, "layer", &blob), 0);
	for (forged = 0; forged < 2; forged++) {
		files = CP(idx, lp_index_nr_checkpoints(ix));
		if (forged) /* b's link target: c's path */
			memcpy(files + (size_t)b * LP_INDEX_FILE_SIZE + 56,
			       files + (size_t)c * LP_INDEX_FILE_SIZE + 52, 4);
		memset(&err, 0, sizeof(err));
		assert_null(mount_ix(blob, idx, idx_len, false, &err));
		assert_non_null(strstr(err.msg, "itself a hardlink"));
	}
	lp_index_free(ix);
	lp_blob_unref(blob);
	free(gz);
	free(idx);
}

/* ---- H: a source's -EBADMSG is no lie of the index ----------------- */

/* a blob whose reads fail with -EBADMSG (a mirror's whole blob that did
 * not verify) while @fail */
struct badmsg_blob {
	const uint8_t *data;
	atomic_bool fail;
	atomic_uint calls; /* failed reads */
};

static int badmsg_pread(void *ctx, void *buf, size_t len, uint64_t off,
			struct lp_err *err)
{
	struct badmsg_blob *bb = ctx;

	if (atomic_load(&bb->fail)) {
		atomic_fetch_add(&bb->calls, 1);
		return lp_err_set(err, -EBADMSG, "whole blob digest mismatch");
	}
	memcpy(buf, bb->data + off, len);
	return 0;
}

static void test_source_badmsg(void **state)
{
	static const struct lp_blob_ops ops = { .pread = badmsg_pread,
						.close = slow_close };
	struct fixture f = { 0 };
	struct badmsg_blob bb = { 0 };
	const struct lp_index_file *fa = NULL;
	struct lp_index_stream *s = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	uint8_t buf[64];
	struct lp_fs *fs;
	struct stat st;
	size_t j;
	int r;

	(void)state;
	build_vector(&f);
	bb.data = f.gz;
	atomic_store(&bb.fail, true);
	assert_int_equal(lp_blob_new(&ops, &bb, f.gz_len, "bad", &blob), 0);
	/* the index's readers: -EIO, both ways (a span read, a stream) */
	assert_int_equal(lp_index_read(f.ix, blob, 100, buf, sizeof(buf), NULL,
				       0, false, NULL, &err),
			 -EIO);
	assert_int_equal(lp_index_read(f.ix, blob,
				       lp_index_checkpoint(f.ix, 5)->out, buf,
				       sizeof(buf), NULL, 0, true, NULL, &err),
			 -EIO);
	r = lp_index_stream_open(f.ix, blob, 100, &s, &err);
	if (r == 0)
		r = lp_index_stream_read(s, buf, sizeof(buf), &err);
	lp_index_stream_free(s);
	assert_int_equal(r, -EIO);
	assert_true(atomic_load(&bb.calls) >= 3);
	/* a mount over it: a failed lookup poisons nothing */
	for (j = 0; j < lp_index_nr_files(f.ix) && !fa; j++) {
		const struct lp_index_file *x = lp_index_file(f.ix, j);

		if (x->type == '0' && x->size >= sizeof(buf) &&
		    lp_index_lookup(f.ix, x->path) == (int)j)
			fa = x;
	}
	assert_non_null(fa);
	fs = mount_ix(blob, f.idx, f.idx_len, false, &err);
	assert_non_null(fs);
	assert_int_equal(lookup(fs, fa->path, &st), -EIO);
	assert_int_equal(read_path(fs, fa->path, buf, sizeof(buf), 0), -EIO);
	assert_int_equal(lp_fs_getattr(fs, LP_FS_ROOT_INO, &st), 0);
	/* the source healed: the same mount answers, and right */
	atomic_store(&bb.fail, false);
	assert_int_equal(lookup(fs, fa->path, &st), 0);
	assert_int_equal(read_path(fs, fa->path, buf, sizeof(buf), 0),
			 (int)sizeof(buf));
	assert_memory_equal(buf, f.tar + fa->data_off, sizeof(buf));
	lp_fs_free(fs);
	lp_blob_unref(blob);
	release(&f);
}

/* ---- I: the span cache: one fetch per span, never a wrong byte ---- */

/* a blob that counts its reads per span (a read of several whole spans,
 * the proving pass's read-ahead, counts once for each of them; a read
 * that is not whole spans' exact range is counted in @odd) and in all
 * (@requests), optionally slow, optionally serving span @corrupt with a
 * byte flipped while @corrupting, and blocking reads of span @gate until
 * @open */
struct count_blob {
	const uint8_t *data;
	const struct lp_index *ix; /* the spans to count by */
	unsigned int delay_us;
	size_t corrupt, gate; /* SIZE_MAX: none */
	atomic_bool corrupting;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int *reads; /* [nr checkpoints]; protected by lock */
	unsigned int odd, blocked, requests; /* protected by lock */
	bool open; /* protected by lock */
	bool gate_fail; /* the gated read, once open, fails (once) */
};

static void count_init(struct count_blob *cb, const struct fixture *f,
		       const struct lp_index *ix)
{
	memset(cb, 0, sizeof(*cb));
	cb->data = f->gz;
	cb->ix = ix;
	cb->corrupt = cb->gate = SIZE_MAX;
	pthread_mutex_init(&cb->lock, NULL);
	pthread_cond_init(&cb->cond, NULL);
	cb->reads = calloc(lp_index_nr_checkpoints(ix), sizeof(*cb->reads));
	assert_non_null(cb->reads);
}

static void count_destroy(struct count_blob *cb)
{
	free(cb->reads);
	pthread_cond_destroy(&cb->cond);
	pthread_mutex_destroy(&cb->lock);
}

static int count_pread(void *ctx, void *buf, size_t len, uint64_t off,
		       struct lp_err *err)
{
	struct count_blob *cb = ctx;
	const size_t nr = lp_index_nr_checkpoints(cb->ix);
	size_t i, sp = SIZE_MAX, last = SIZE_MAX;
	uint64_t s0, s1, c0 = 0, c1 = 0;

	for (i = 0; i < nr && sp == SIZE_MAX; i++) {
		lp_index_span_range(cb->ix, i, &s0, &s1);
		if (s0 == off)
			sp = i;
	}
	/* the spans [sp, last] whose ranges make up the read exactly */
	for (i = sp; sp != SIZE_MAX && i < nr; i++) {
		lp_index_span_range(cb->ix, i, &s0, &s1);
		if (s1 > off + len)
			break;
		if (s1 == off + len)
			last = i;
	}
	pthread_mutex_lock(&cb->lock);
	cb->requests++;
	if (last == SIZE_MAX)
		cb->odd++;
	for (i = sp; last != SIZE_MAX && i <= last; i++)
		cb->reads[i]++;
	if (last != SIZE_MAX && cb->corrupt >= sp && cb->corrupt <= last)
		lp_index_span_range(cb->ix, cb->corrupt, &c0, &c1);
	if (last != SIZE_MAX && cb->gate >= sp && cb->gate <= last) {
		cb->blocked++;
		pthread_cond_broadcast(&cb->cond);
		while (!cb->open)
			pthread_cond_wait(&cb->cond, &cb->lock);
		cb->blocked--;
		if (cb->gate_fail) {
			cb->gate_fail = false;
			pthread_mutex_unlock(&cb->lock);
			return lp_err_set(err, -EIO, "gated read failed");
		}
	}
	pthread_mutex_unlock(&cb->lock);
	if (cb->delay_us)
		usleep(cb->delay_us);
	memcpy(buf, cb->data + off, len);
	if (c1 > c0 && atomic_load(&cb->corrupting))
		((uint8_t *)buf)[c0 - off + (c1 - c0) / 2] ^= 0x20;
	return 0;
}

static unsigned int count_reads(struct count_blob *cb, size_t i)
{
	unsigned int n;

	pthread_mutex_lock(&cb->lock);
	n = cb->reads[i];
	pthread_mutex_unlock(&cb->lock);
	return n;
}

static struct lp_blob *count_blob_new(struct count_blob *cb,
				      const struct fixture *f)
{
	static const struct lp_blob_ops ops = { .pread = count_pread,
						.close = slow_close };
	struct lp_blob *blob = NULL;

	assert_int_equal(lp_blob_new(&ops, cb, f->gz_len, "count", &blob), 0);
	return blob;
}

/* span @i of @f's blob through @ix's cache equals the blob's bytes */
static void expect_span(const struct fixture *f, const struct lp_index *ix,
			struct lp_blob *blob, size_t i, int want)
{
	struct lp_index_span *sp = NULL;
	struct lp_err err = { 0 };
	uint64_t s0, s1;
	int r = lp_index_span_get(ix, blob, i, &sp, NULL, &err);

	assert_int_equal(r, want);
	if (r < 0) {
		assert_null(sp);
		return;
	}
	lp_index_span_range(ix, i, &s0, &s1);
	assert_int_equal(lp_index_span_len(sp), s1 - s0);
	assert_memory_equal(lp_index_span_data(sp), f->gz + s0, s1 - s0);
	lp_index_span_put(sp);
}

static void test_span_cache(void **state)
{
	struct lp_index_span_cache_stats cs;
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	uint64_t s0, s1, t0, t1, u0, u1, limit;

	(void)state;
	build_vector(&f);
	assert_true(lp_index_nr_checkpoints(f.ix) > 6);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	/* off (the default): every get fetches */
	expect_span(&f, f.ix, blob, 1, 0);
	expect_span(&f, f.ix, blob, 1, 0);
	assert_int_equal(count_reads(&cb, 1), 2);
	/* on: a second get is a hit */
	assert_int_equal(lp_index_span_cache_limit(f.ix, 64 * LP_MIB), 0);
	expect_span(&f, f.ix, blob, 2, 0);
	expect_span(&f, f.ix, blob, 2, 0);
	assert_int_equal(count_reads(&cb, 2), 1);
	/* a span that does not match its digest is refused and not held:
	 * the next get fetches it again (and, the source healed, is right);
	 * once held, a source gone bad since does not matter */
	cb.corrupt = 3;
	atomic_store(&cb.corrupting, true);
	expect_span(&f, f.ix, blob, 3, -EBADMSG);
	expect_span(&f, f.ix, blob, 3, -EBADMSG);
	assert_int_equal(count_reads(&cb, 3), 2);
	atomic_store(&cb.corrupting, false);
	expect_span(&f, f.ix, blob, 3, 0);
	atomic_store(&cb.corrupting, true);
	expect_span(&f, f.ix, blob, 3, 0);
	assert_int_equal(count_reads(&cb, 3), 3);
	atomic_store(&cb.corrupting, false);
	/* a limit of span 4 and the larger of 5 and 6: never all three
	 * (whatever their sizes in this fixture), so 6 makes one leave:
	 * the least recently used */
	lp_index_span_range(f.ix, 4, &s0, &s1);
	lp_index_span_range(f.ix, 5, &t0, &t1);
	lp_index_span_range(f.ix, 6, &u0, &u1);
	limit = s1 - s0 + lp_max_u64(t1 - t0, u1 - u0);
	assert_int_equal(lp_index_span_cache_limit(f.ix, 0), 0);
	lp_index_span_cache_stats(f.ix, &cs);
	assert_int_equal(cs.held_bytes, 0);
	assert_int_equal(lp_index_span_cache_limit(f.ix, (size_t)limit), 0);
	expect_span(&f, f.ix, blob, 4, 0);
	expect_span(&f, f.ix, blob, 5, 0);
	expect_span(&f, f.ix, blob, 4, 0); /* 4 the newer now */
	expect_span(&f, f.ix, blob, 6, 0); /* 5 leaves */
	expect_span(&f, f.ix, blob, 4, 0);
	assert_int_equal(count_reads(&cb, 4), 1);
	expect_span(&f, f.ix, blob, 5, 0);
	assert_int_equal(count_reads(&cb, 5), 2);
	lp_index_span_cache_stats(f.ix, &cs);
	assert_true(cs.held_bytes <= limit);
	assert_true(cs.evictions >= 1);
	assert_int_equal(cb.odd, 0);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

struct getter_arg {
	const struct fixture *f;
	struct lp_blob *blob;
	size_t i;
};

static void *span_getter(void *arg)
{
	struct getter_arg *a = arg;

	expect_span(a->f, a->f->ix, a->blob, a->i, 0);
	return NULL;
}

static bool gated(void *arg)
{
	return ((struct count_blob *)arg)->blocked >= 1;
}

/* wait (30 s at most) until @pred; with cb->lock held */
static bool count_wait(struct count_blob *cb, bool (*pred)(void *))
{
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	while (!pred(cb) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&cb->cond, &cb->lock, &ts);
	return pred(cb);
}

/* 4 threads get span 3 at once: one fetch, whose result the 3 others
 * take, also when the span is over the cache's limit (@over) and so not
 * held */
static void check_single_flight(bool over)
{
	struct lp_index_span_cache_stats cs = { 0 };
	struct fixture f = { 0 };
	struct getter_arg a = { 0 };
	struct count_blob cb;
	uint64_t s0, s1;
	pthread_t t[4];
	bool blocked;
	int i, tries;

	build_vector(&f);
	count_init(&cb, &f, f.ix);
	cb.gate = 3;
	a.f = &f;
	a.blob = count_blob_new(&cb, &f);
	a.i = 3;
	lp_index_span_range(f.ix, 3, &s0, &s1);
	assert_int_equal(
		lp_index_span_cache_limit(f.ix, over ? (size_t)(s1 - s0 - 1) :
						       64 * LP_MIB),
		0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, span_getter, &a),
				 0);
	/* one fetch blocked in the blob, the three others waiting for it */
	pthread_mutex_lock(&cb.lock);
	blocked = count_wait(&cb, gated);
	pthread_mutex_unlock(&cb.lock);
	for (tries = 0; tries < 3000 && cs.waits < 3; tries++) {
		usleep(10000);
		lp_index_span_cache_stats(f.ix, &cs);
	}
	pthread_mutex_lock(&cb.lock);
	cb.open = true;
	pthread_cond_broadcast(&cb.cond);
	pthread_mutex_unlock(&cb.lock);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_true(blocked);
	assert_int_equal(cs.waits, 3);
	assert_int_equal(count_reads(&cb, 3), 1);
	lp_index_span_cache_stats(f.ix, &cs);
	assert_int_equal(cs.fetches, 1);
	assert_int_equal(cs.hits, 3);
	assert_int_equal(cs.held_bytes, over ? 0 : s1 - s0);
	lp_blob_unref(a.blob);
	count_destroy(&cb);
	release(&f);
}

static void test_span_single_flight(void **state)
{
	(void)state;
	check_single_flight(false);
	check_single_flight(true);
}

/* every regular file of @f (its path's entry), read whole through @fs by
 * several threads in different orders */
struct walker_arg {
	const struct fixture *f;
	struct lp_fs *fs;
	unsigned int seed;
	unsigned int files, eio, wrong; /* counts */
	int other; /* an error other than EIO, or 0 */
};

static void *walker(void *arg)
{
	struct walker_arg *a = arg;
	const struct lp_index *ix = a->f->ix;
	size_t n = lp_index_nr_files(ix), k;
	uint8_t *buf = NULL, *nb;

	for (k = 0; k < n; k++) {
		/* a different order per thread: a stride prime to most n */
		size_t j = (k * (2 * a->seed + 1) + a->seed * 7) % n;
		const struct lp_index_file *x = lp_index_file(ix, j);
		int r;

		const char *base = strrchr(x->path, '/');

		base = base ? base + 1 : x->path;
		/* whiteouts show as overlayfs's devices, under another name */
		if (x->type != '0' || lp_index_lookup(ix, x->path) != (int)j ||
		    x->size > 4 * LP_MIB || !strncmp(base, ".wh.", 4))
			continue;
		nb = realloc(buf, x->size + 1);
		assert_non_null(nb);
		buf = nb;
		r = read_path(a->fs, x->path, buf, x->size + 1, 0);
		a->files++;
		if (r == -EIO || r == -EBADMSG)
			a->eio++; /* refused: the lie, or the poison */
		else if (r < 0)
			a->other = r;
		else if ((size_t)r != x->size ||
			 memcmp(buf, a->f->tar + x->data_off, x->size))
			a->wrong++;
	}
	free(buf);
	return NULL;
}

/* mount @idx over a counting blob (background: the proving pass on too),
 * read every file from 4 threads; returns the readers' totals */
static void walk_all(const struct fixture *f, const uint8_t *idx,
		     bool window_rule, bool background, unsigned int delay_us,
		     struct count_blob *cb, struct walker_arg *tot,
		     struct lp_fs **ret_fs, struct lp_blob **ret_blob)
{
	struct lp_index *ix = NULL, *own = NULL;
	struct lp_layer *layer = NULL;
	struct lp_err err = { 0 };
	struct lp_fs_options opts;
	struct walker_arg a[4];
	struct lp_blob *blob;
	pthread_t t[4];
	int i;

	assert_int_equal(lp_index_parse(idx, f->idx_len, &ix, &err), 0);
	assert_int_equal(lp_index_parse(idx, f->idx_len, &own, &err), 0);
	count_init(cb, f, own); /* the spans as the mount's index has them */
	cb->delay_us = delay_us;
	blob = count_blob_new(cb, f);
	assert_int_equal(lp_layer_open_index(blob, ix, lp_index_check_header,
					     &layer, &err),
			 0);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = background;
	opts.background_quiet_ms = 0;
	opts.index_window_rule = window_rule;
	assert_int_equal(lp_fs_new(layer, &opts, ret_fs, &err), 0);
	assert_int_equal(lp_fs_start(*ret_fs), 0);
	memset(tot, 0, sizeof(*tot));
	for (i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].f = f;
		a[i].fs = *ret_fs;
		a[i].seed = (unsigned int)i;
		assert_int_equal(pthread_create(&t[i], NULL, walker, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		tot->files += a[i].files;
		tot->eio += a[i].eio;
		tot->wrong += a[i].wrong;
		if (a[i].other)
			tot->other = a[i].other;
	}
	*ret_blob = blob;
}

/* after lp_fs_free(): the blob, the counting index (walk_all's own) */
static void walk_release(struct count_blob *cb, struct lp_blob *blob)
{
	lp_blob_unref(blob);
	lp_index_free((struct lp_index *)cb->ix);
	count_destroy(cb);
}

static bool all_spans_read(struct count_blob *cb)
{
	size_t i;

	for (i = 0; i < lp_index_nr_checkpoints(cb->ix); i++)
		if (!count_reads(cb, i))
			return false;
	return true;
}

static void check_one_fetch_per_span(bool window_rule, bool background)
{
	struct fixture f = { 0 };
	struct walker_arg tot;
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	size_t i;

	build_vector(&f);
	walk_all(&f, f.idx, window_rule, background, 200, &cb, &tot, &fs,
		 &blob);
	assert_true(tot.files > 20);
	assert_int_equal(tot.wrong, 0);
	assert_int_equal(tot.eio, 0);
	assert_int_equal(tot.other, 0);
	/* with the proving pass: until it has read every span (30 s at most:
	 * a hang fails, not a speed) */
	for (i = 0; background && i < 3000 && !all_spans_read(&cb); i++)
		usleep(10000);
	lp_fs_free(fs); /* stops the pass */
	assert_int_equal(cb.odd, 0);
	for (i = 0; i < lp_index_nr_checkpoints(f.ix); i++) {
		/* readers and the pass together: each span once at most,
		 * and with the pass, once exactly */
		if (count_reads(&cb, i) > 1 ||
		    (background && count_reads(&cb, i) != 1))
			fail_msg("span #%zu fetched %u times", i,
				 count_reads(&cb, i));
	}
	walk_release(&cb, blob);
	release(&f);
}

static void test_one_fetch_per_span(void **state)
{
	(void)state;
	check_one_fetch_per_span(false, false); /* proven-only */
	check_one_fetch_per_span(true, false); /* the window rule */
	check_one_fetch_per_span(false, true); /* with the proving pass */
}

/* a span whose digest lies, read by many threads through the cache: never
 * a wrong byte, the mount poisoned, the span never held */
static void test_cached_lie_poisons(void **state)
{
	struct fixture f = { 0 };
	struct lp_index_span *sp = NULL;
	struct lp_err err = { 0 };
	struct walker_arg tot;
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	struct stat st;
	unsigned int before;
	uint8_t *idx;
	size_t k;

	(void)state;
	build_vector(&f);
	k = lp_index_nr_checkpoints(f.ix) / 2;
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	memcpy(idx, f.idx, f.idx_len);
	CP(idx, k)[40] ^= 1; /* span k's digest lies */
	walk_all(&f, idx, false, false, 0, &cb, &tot, &fs, &blob);
	assert_int_equal(tot.wrong, 0);
	assert_int_equal(tot.other, 0);
	assert_true(tot.eio > 0);
	/* the lie is known: the mount answers nothing more */
	assert_int_equal(lp_fs_getattr(fs, LP_FS_ROOT_INO, &st), -EIO);
	/* the lying span was not held: a get fetches it again, and refuses */
	before = count_reads(&cb, k);
	assert_true(before >= 1);
	assert_int_equal(lp_index_span_get(lp_layer_index(lp_fs_layer(fs)),
					   blob, k, &sp, NULL, &err),
			 -EBADMSG);
	assert_null(sp);
	assert_int_equal(count_reads(&cb, k), before + 1);
	lp_fs_free(fs);
	walk_release(&cb, blob);
	free(idx);
	release(&f);
}

/* ---- K: span memory is in the process's one memory budget --------- */

/* mount @f's layer over @blob with memory budget @b (NULL: its own) */
static struct lp_fs *mount_budget_ex(const struct fixture *f,
				     struct lp_blob *blob,
				     struct lp_fs_budget *b, bool background,
				     bool window_rule)
{
	struct lp_index *ix = NULL;
	struct lp_layer *layer = NULL;
	struct lp_err err = { 0 };
	struct lp_fs_options opts;
	struct lp_fs *fs = NULL;

	assert_int_equal(lp_index_parse(f->idx, f->idx_len, &ix, &err), 0);
	assert_int_equal(lp_layer_open_index(blob, ix, lp_index_check_header,
					     &layer, &err),
			 0);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = background;
	opts.background_quiet_ms = 0;
	opts.mem_budget = b;
	opts.index_window_rule = window_rule;
	assert_int_equal(lp_fs_new(layer, &opts, &fs, &err), 0);
	assert_int_equal(lp_fs_start(fs), 0);
	return fs;
}

static struct lp_fs *mount_budget(const struct fixture *f, struct lp_blob *blob,
				  struct lp_fs_budget *b, bool background)
{
	return mount_budget_ex(f, blob, b, background, false);
}

/* the span whose output holds layer offset @off */
static size_t span_of_out(const struct lp_index *ix, uint64_t off)
{
	size_t i = 0;

	while (i + 1 < lp_index_nr_checkpoints(ix) &&
	       lp_index_checkpoint(ix, i + 1)->out <= off)
		i++;
	return i;
}

/* a number after @key in @fs's stats JSON */
static uint64_t stats_num(struct lp_fs *fs, const char *key)
{
	struct lp_buf out;
	const char *p;
	uint64_t v;

	lp_buf_init(&out, LP_MIB);
	assert_int_equal(lp_fs_stats_json(fs, &out), 0);
	assert_int_equal(lp_buf_append(&out, "", 1), 0);
	p = strstr((const char *)out.data, key);
	assert_non_null(p);
	v = strtoull(p + strlen(key), NULL, 10);
	lp_buf_release(&out);
	return v;
}

static uint64_t held_bytes(struct lp_fs *fs)
{
	struct lp_index_span_cache_stats cs;

	lp_index_span_cache_stats(lp_layer_index(lp_fs_layer(fs)), &cs);
	return cs.held_bytes;
}

/* the proving pass of a layer nobody reads: once it ends, no span held */
static void test_pass_keeps_no_span(void **state)
{
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	size_t i;

	(void)state;
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	fs = mount_budget(&f, blob, NULL, true);
	/* the pass done (30 s at most: a hang fails, not a speed) */
	for (i = 0; i < 3000; i++) {
		struct lp_buf out;
		bool done;

		lp_buf_init(&out, LP_MIB);
		assert_int_equal(lp_fs_stats_json(fs, &out), 0);
		assert_int_equal(lp_buf_append(&out, "", 1), 0);
		done = strstr((const char *)out.data, "\"proof\": \"done\"");
		lp_buf_release(&out);
		if (done)
			break;
		usleep(10000);
	}
	assert_true(i < 3000);
	assert_true(all_spans_read(&cb));
	/* the pass read every span through the cache, and kept none */
	assert_int_equal(held_bytes(fs), 0);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

/*
 * Three index layers read whole, under one small budget: their spans and
 * chunks together stay within it (the spans are charged there, and leave
 * when it needs room like any chunk), and the budget is all given back
 * when they go.
 */
static void test_spans_in_budget(void **state)
{
	const size_t budget = 2 * LP_MIB;
	struct lp_fs_budget *b = NULL;
	struct fixture f = { 0 };
	struct walker_arg a[3];
	struct lp_blob *blob[3];
	static const struct lp_blob_ops ops = { .pread = count_pread,
						.close = slow_close };
	struct count_blob cb;
	struct lp_fs *fs[3];
	pthread_t t[3];
	uint64_t held = 0, chunks = 0;
	size_t used, peak;
	int i;

	(void)state;
	build_vector(&f);
	assert_true(f.gz_len > budget);
	count_init(&cb, &f, f.ix);
	assert_int_equal(lp_fs_budget_new(budget, &b), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(
			lp_blob_new(&ops, &cb, f.gz_len, "count", &blob[i]), 0);
		fs[i] = mount_budget(&f, blob[i], b, false);
		memset(&a[i], 0, sizeof(a[i]));
		a[i].f = &f;
		a[i].fs = fs[i];
		a[i].seed = (unsigned int)i;
		assert_int_equal(pthread_create(&t[i], NULL, walker, &a[i]), 0);
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_true(a[i].files > 20);
		assert_int_equal(a[i].wrong, 0);
		assert_int_equal(a[i].eio, 0);
		assert_int_equal(a[i].other, 0);
	}
	for (i = 0; i < 3; i++) {
		held += held_bytes(fs[i]);
		chunks += stats_num(fs[i], "\"memory_bytes\": ");
	}
	lp_fs_budget_usage(b, &used, &peak);
	/* some spans held, all of them charged with the chunks, the total
	 * within the budget (no reader holds anything now) */
	assert_true(held > 0);
	if (chunks + held > used || used > budget)
		fail_msg("chunks %llu + spans %llu bytes held, %zu charged, "
			 "budget %zu",
			 (unsigned long long)chunks, (unsigned long long)held,
			 used, budget);
	for (i = 0; i < 3; i++) {
		lp_fs_free(fs[i]);
		lp_blob_unref(blob[i]);
	}
	lp_fs_budget_usage(b, &used, &peak);
	assert_int_equal(used, 0);
	lp_fs_budget_free(b);
	count_destroy(&cb);
	release(&f);
}

/*
 * A span over the cache's limit (not held) read for a run of chunks in it:
 * fetched once for the run, not once a chunk. Budget 64 KiB: the span
 * cache's limit is 16 KiB, under any span of the vector; the window rule,
 * so that the file's header check reads its span once and the run once.
 */
static void test_run_keeps_span(void **state)
{
	struct lp_fs_budget *b = NULL;
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	size_t j, n, sp = SIZE_MAX, in_span = 0;
	const struct lp_index_file *x = NULL;
	uint8_t buf[4096];

	(void)state;
	build_vector(&f);
	n = lp_index_nr_files(f.ix);
	/* a small regular file with at least 3 more after it in its span */
	for (j = 0; j < n && sp == SIZE_MAX; j++) {
		size_t k, i, more = 0;

		x = lp_index_file(f.ix, j);
		if (x->type != '0' || !x->size || x->size > sizeof(buf) ||
		    lp_index_lookup(f.ix, x->path) != (int)j)
			continue;
		i = span_of_out(f.ix, x->data_off);
		if (span_of_out(f.ix, x->data_off + x->size - 1) != i)
			continue;
		for (k = j + 1; k < n && more < 3; k++) {
			const struct lp_index_file *y = lp_index_file(f.ix, k);

			if (y->type != '0' || !y->size)
				continue;
			if (span_of_out(f.ix, y->data_off + y->size - 1) != i)
				break;
			more++;
		}
		if (more >= 3) {
			sp = i;
			in_span = more + 1;
		}
	}
	assert_true(sp != SIZE_MAX);
	assert_non_null(x);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	assert_int_equal(lp_fs_budget_new(64 * LP_KIB, &b), 0);
	fs = mount_budget_ex(&f, blob, b, false, true);
	assert_int_equal(read_path(fs, x->path, buf, sizeof(buf), 0),
			 (int)x->size);
	assert_memory_equal(buf, f.tar + x->data_off, x->size);
	/* the header check's read, and the run's (whatever its length) */
	if (count_reads(&cb, sp) > 2)
		fail_msg("span #%zu (%zu files in it) read %u times", sp,
			 in_span, count_reads(&cb, sp));
	lp_fs_free(fs);
	lp_fs_budget_free(b);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

/* ---- J: a proven-only read waits for the proving pass ------------- */

struct pass_arg {
	const struct fixture *f;
	struct lp_blob *blob;
	int r;
};

static void *pass_main(void *arg)
{
	struct pass_arg *a = arg;
	struct lp_err err = { 0 };

	a->r = lp_index_prove(a->f->ix, a->blob, lp_index_check_header, NULL,
			      NULL, NULL, &err);
	return NULL;
}

struct wait_reader {
	const struct fixture *f;
	struct lp_blob *blob;
	uint64_t off;
	struct lp_index_stream_stats st;
	int r;
	bool bad;
};

static void *wait_reader_main(void *arg)
{
	struct wait_reader *a = arg;
	uint8_t buf[512];

	a->r = lp_index_read(a->f->ix, a->blob, a->off, buf, sizeof(buf), NULL,
			     0, true, &a->st, NULL);
	a->bad = a->r == 0 && memcmp(buf, a->f->tar + a->off, sizeof(buf));
	return NULL;
}

/*
 * The proving pass blocked in span 6's read; a proven-only read in span 9
 * waits for the pass instead of streaming from checkpoint 0 itself (with
 * a span cache of one span, its own stream would fetch spans 0..5 again).
 * @fail: the gated read then fails, the pass ends without proving span 9,
 * and the reader streams itself.
 */
static void check_wait_for_pass(bool fail)
{
	struct lp_index_span_cache_stats cs = { 0 };
	struct fixture f = { 0 };
	struct pass_arg pa = { 0 };
	struct wait_reader wr = { 0 };
	struct count_blob cb;
	uint64_t s0, s1;
	pthread_t tp, tr;
	unsigned int waiters;
	bool blocked;
	int tries;
	size_t i;

	build_vector(&f);
	assert_true(lp_index_nr_checkpoints(f.ix) > 11);
	count_init(&cb, &f, f.ix);
	cb.gate = 6;
	cb.gate_fail = fail;
	pa.f = wr.f = &f;
	pa.blob = wr.blob = count_blob_new(&cb, &f);
	lp_index_span_range(f.ix, 8, &s0, &s1);
	assert_int_equal(lp_index_span_cache_limit(f.ix, (size_t)(s1 - s0)), 0);
	assert_int_equal(pthread_create(&tp, NULL, pass_main, &pa), 0);
	pthread_mutex_lock(&cb.lock);
	blocked = count_wait(&cb, gated);
	pthread_mutex_unlock(&cb.lock);
	wr.off = lp_index_checkpoint(f.ix, 9)->out + 100;
	assert_int_equal(pthread_create(&tr, NULL, wait_reader_main, &wr), 0);
	for (tries = 0; tries < 3000 && cs.pass_waits < 1; tries++) {
		usleep(10000);
		lp_index_span_cache_stats(f.ix, &cs);
	}
	/* the pass sees it waiting (its pacing does not wait for it) */
	waiters = lp_index_prover_waiters(f.ix);
	pthread_mutex_lock(&cb.lock);
	cb.open = true;
	pthread_cond_broadcast(&cb.cond);
	pthread_mutex_unlock(&cb.lock);
	assert_int_equal(pthread_join(tp, NULL), 0);
	assert_int_equal(pthread_join(tr, NULL), 0);
	assert_true(blocked);
	assert_int_equal(cs.pass_waits, 1);
	assert_int_equal(waiters, 1);
	assert_int_equal(lp_index_prover_waiters(f.ix), 0);
	assert_int_equal(wr.r, 0);
	assert_false(wr.bad);
	assert_int_equal(cb.odd, 0);
	if (!fail) {
		/* the pass proved span 9: the reader decoded from
		 * checkpoint 9 alone. Had it streamed from checkpoint 6 (the
		 * last proven when it came) after waiting, it would have
		 * inflated spans 6..8 too, and with a cache of one span
		 * fetched some of them again */
		assert_int_equal(pa.r, 0);
		for (i = 0; i < 9; i++)
			if (count_reads(&cb, i) != 1)
				fail_msg("span #%zu read %u times", i,
					 count_reads(&cb, i));
		assert_true(wr.st.bytes_inflated <=
			    lp_index_checkpoint(f.ix, 11)->out -
				    lp_index_checkpoint(f.ix, 9)->out);
	} else {
		/* the pass failed at span 6 (a source's error), proving
		 * nothing past it: the reader streamed there itself */
		assert_int_equal(pa.r, -EIO);
		assert_true(wr.st.bytes_fetched > 0);
		assert_true(count_reads(&cb, 6) >= 2);
	}
	lp_blob_unref(pa.blob);
	count_destroy(&cb);
	release(&f);
}

static void test_wait_for_pass(void **state)
{
	(void)state;
	check_wait_for_pass(false);
	check_wait_for_pass(true);
}

/* ---- L: the spans' disk tier and the proving pass's read-ahead ---- */

/* mount @f's layer over @blob caching in @dir, under memory budget @b
 * (NULL: its own) */
/* mount_disk()'s disk bound (0: the default) */
static uint64_t disk_bound;

static struct lp_fs *mount_disk(const struct fixture *f, struct lp_blob *blob,
				const char *dir, struct lp_fs_budget *b,
				bool background)
{
	struct lp_index *ix = NULL;
	struct lp_layer *layer = NULL;
	struct lp_err err = { 0 };
	struct lp_fs_options opts;
	struct lp_fs *fs = NULL;

	assert_int_equal(lp_index_parse(f->idx, f->idx_len, &ix, &err), 0);
	assert_int_equal(lp_layer_open_index(blob, ix, lp_index_check_header,
					     &layer, &err),
			 0);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = background;
	opts.background_quiet_ms = 0;
	opts.mem_budget = b;
	opts.cache_dir = dir;
	opts.disk_cache_bytes = disk_bound;
	disk_bound = 0; /* for this mount only, whatever its asserts do */
	assert_int_equal(lp_fs_new(layer, &opts, &fs, &err), 0);
	assert_int_equal(lp_fs_start(fs), 0);
	return fs;
}

static unsigned int count_requests(struct count_blob *cb)
{
	unsigned int n;

	pthread_mutex_lock(&cb->lock);
	n = cb->requests;
	pthread_mutex_unlock(&cb->lock);
	return n;
}

/* read every file of @f through @fs (one thread): all right, none refused */
static void read_all(const struct fixture *f, struct lp_fs *fs,
		     unsigned int seed)
{
	struct walker_arg a = { .f = f, .fs = fs, .seed = seed };

	walker(&a);
	assert_true(a.files > 20);
	assert_int_equal(a.wrong, 0);
	assert_int_equal(a.eio, 0);
	assert_int_equal(a.other, 0);
}

/* until @fs's disk tier wrote every span the cache fetched (30 s at most:
 * a hang fails, not a speed) */
static void wait_written(struct lp_fs *fs)
{
	struct lp_index_span_cache_stats cs;
	int k;

	for (k = 0; k < 3000; k++) {
		lp_index_span_cache_stats(lp_layer_index(lp_fs_layer(fs)), &cs);
		if (stats_num(fs, "\"disk_writes\": ") >= cs.fetches)
			return;
		usleep(10000);
	}
	fail_msg("the disk tier wrote %llu of %llu spans",
		 (unsigned long long)stats_num(fs, "\"disk_writes\": "),
		 (unsigned long long)cs.fetches);
}

/* until @fs's proving pass is done (30 s at most) */
static void wait_proven(struct lp_fs *fs)
{
	int k;

	for (k = 0; k < 3000; k++) {
		struct lp_buf out;
		bool done;

		lp_buf_init(&out, LP_MIB);
		assert_int_equal(lp_fs_stats_json(fs, &out), 0);
		assert_int_equal(lp_buf_append(&out, "", 1), 0);
		done = strstr((const char *)out.data, "\"proof\": \"done\"");
		lp_buf_release(&out);
		if (done)
			return;
		usleep(10000);
	}
	fail_msg("the proving pass did not end");
}

static void rm_rf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * Spans the memory budget cannot hold are read back from disk: a layer
 * read whole under a 64 KiB budget (a span cache of 16 KiB, under any span
 * of the vector: nothing held), then read whole again, fetches nothing the
 * second time; its spans came from the disk tier, every byte right.
 */
static void test_span_disk_evicted(void **state)
{
	char dir[] = "/tmp/lp-spandisk-XXXXXX";
	struct lp_index_span_cache_stats cs;
	struct lp_fs_budget *b = NULL;
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	unsigned int before;

	(void)state;
	assert_non_null(mkdtemp(dir));
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	assert_int_equal(lp_fs_budget_new(64 * LP_KIB, &b), 0);
	fs = mount_disk(&f, blob, dir, b, false);
	read_all(&f, fs, 0);
	wait_written(fs);
	/* (a span or two may still be held: the 64 KiB budget is shared
	 * with the decoded spans, whose eviction order is the machine's) */
	before = count_requests(&cb);
	assert_true(before > 0);
	read_all(&f, fs, 1);
	/* not a byte from the network the second time */
	assert_int_equal(count_requests(&cb), before);
	lp_index_span_cache_stats(lp_layer_index(lp_fs_layer(fs)), &cs);
	assert_true(cs.disk_hits > 0);
	assert_int_equal(cs.disk_bad, 0);
	lp_fs_free(fs);
	lp_fs_budget_free(b);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
	rm_rf(dir);
}

/* the layer's span file in @dir */
static void span_file(const struct fixture *f, const char *dir, char *path,
		      size_t len)
{
	char dg[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(lp_index_blob_digest(f->ix), dg);
	snprintf(path, len, "%s/spans/%s", dir, dg + 7);
}

/*
 * A remount (a new lp_fs on the same cache directory, as after a restart
 * of the daemon) reads no span from the network: not its readers, not its
 * proving pass. Then a span corrupted in the file: fetched again, its
 * bytes right, counted as a bad disk read, the mount not poisoned.
 */
static void test_span_disk_remount(void **state)
{
	char dir[] = "/tmp/lp-spandisk-XXXXXX";
	struct lp_index_span_cache_stats cs;
	char path[4200];
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	unsigned int before;
	uint64_t s0, s1;
	size_t k;
	uint8_t c;
	int fd;
	const struct lp_index_file *x = NULL;
	uint8_t *buf;

	(void)state;
	assert_non_null(mkdtemp(dir));
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	/* the first mount: its proving pass fetches every span */
	fs = mount_disk(&f, blob, dir, NULL, true);
	wait_proven(fs);
	assert_true(all_spans_read(&cb));
	lp_fs_free(fs); /* writes what is queued */
	before = count_requests(&cb);

	/* the second: the pass and every file, from disk */
	fs = mount_disk(&f, blob, dir, NULL, true);
	read_all(&f, fs, 2);
	wait_proven(fs);
	assert_int_equal(count_requests(&cb), before);
	lp_index_span_cache_stats(lp_layer_index(lp_fs_layer(fs)), &cs);
	assert_true(cs.disk_hits >= lp_index_nr_checkpoints(f.ix));
	assert_int_equal(cs.fetches, 0);
	lp_fs_free(fs);

	/* a file wholly in one span, that span corrupted on disk */
	for (k = 0; k < lp_index_nr_files(f.ix) && !x; k++) {
		const struct lp_index_file *y = lp_index_file(f.ix, k);

		if (y->type == '0' && y->size > 1000 &&
		    lp_index_lookup(f.ix, y->path) == (int)k &&
		    span_of_out(f.ix, y->hdr_off) ==
			    span_of_out(f.ix, y->data_off + y->size) &&
		    span_of_out(f.ix, y->hdr_off) > 0)
			x = y;
	}
	assert_non_null(x);
	k = span_of_out(f.ix, x->data_off);
	lp_index_span_range(f.ix, k, &s0, &s1);
	span_file(&f, dir, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)(s0 + (s1 - s0) / 2)), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)(s0 + (s1 - s0) / 2)), 1);
	close(fd);
	before = count_reads(&cb, k);
	fs = mount_disk(&f, blob, dir, NULL, false);
	buf = malloc(x->size);
	assert_non_null(buf);
	assert_int_equal(read_path(fs, x->path, buf, x->size, 0), (int)x->size);
	assert_memory_equal(buf, f.tar + x->data_off, x->size);
	free(buf);
	/* fetched again from the blob, once, and the mount is sound */
	assert_int_equal(count_reads(&cb, k), before + 1);
	lp_index_span_cache_stats(lp_layer_index(lp_fs_layer(fs)), &cs);
	assert_true(cs.disk_bad >= 1);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 0);
	read_all(&f, fs, 3);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
	rm_rf(dir);
}

/*
 * The proving pass keeps the link full: a few big requests, not one per
 * span (the vector's ~100 spans of ~30 KiB in one or two), each span read
 * once, the pass through.
 */
static void test_pass_big_requests(void **state)
{
	struct lp_index_span_cache_stats cs;
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	size_t i, spans;

	(void)state;
	build_vector(&f);
	spans = lp_index_nr_checkpoints(f.ix);
	assert_true(spans > 20);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	fs = mount_budget(&f, blob, NULL, true);
	wait_proven(fs);
	if (count_requests(&cb) * 8 > spans)
		fail_msg("the pass made %u requests for %zu spans",
			 count_requests(&cb), spans);
	assert_int_equal(cb.odd, 0);
	for (i = 0; i < spans; i++)
		if (count_reads(&cb, i) != 1)
			fail_msg("span #%zu read %u times", i,
				 count_reads(&cb, i));
	lp_index_span_cache_stats(lp_layer_index(lp_fs_layer(fs)), &cs);
	assert_true(cs.pass_requests > 0 && cs.pass_requests * 8 <= spans);
	assert_int_equal(cs.pass_spans, spans);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

/*
 * Pieces of a proven span are copied from the span decoded whole, not each
 * inflated from the checkpoint: every file read in tar order after the
 * pass decodes each span once at most, and most pieces are copies.
 */
static void test_span_decoded_once(void **state)
{
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	uint64_t decodes, hits, pieces;
	size_t spans;

	(void)state;
	build_vector(&f);
	spans = lp_index_nr_checkpoints(f.ix);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	fs = mount_budget(&f, blob, NULL, true);
	wait_proven(fs);
	read_all(&f, fs, 0); /* seed 0: the tar's order */
	decodes = stats_num(fs, "\"span_decodes\": ");
	hits = stats_num(fs, "\"decoded_hits\": ");
	pieces = stats_num(fs, "\"fetched_chunks\": ");
	if (decodes > spans || hits == 0 || decodes + hits < pieces / 2)
		fail_msg("%llu spans decoded whole and %llu pieces copied "
			 "from them for %llu pieces (%zu spans)",
			 (unsigned long long)decodes, (unsigned long long)hits,
			 (unsigned long long)pieces, spans);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

/*
 * The same lies in a trusted index (lp_index_trust(): signed by a key the
 * node trusts, or proven once): its file table is the signer's word for
 * attributes, so the setuid file's lookup and getattr answer the record
 * at once, fetching nothing; its bytes are still served only after its
 * header check, which finds the lie (EIO, the mount poisoned: its lookup
 * is EIO from then on), and the symlink's target is checked before it is
 * answered. A file made empty is checked at its lookup (nothing of it
 * would be read); hardlinks and whiteouts: check_forged_hardlink(),
 * test_forged_whiteout().
 */
static void test_trusted_forged_metadata(void **state)
{
	struct fixture f = { 0 };
	uint32_t a, b = UINT32_MAX;
	const char *target = NULL;
	uint8_t *idx, buf[16];
	struct lp_fs *fs;
	struct stat st;
	uint64_t fetched;
	unsigned int seen_xattrs = 0, seen_devs = 0;
	size_t k;

	(void)state;
	build_vector(&f);
	a = pick(&f, '0', NULL);
	assert_true(a != UINT32_MAX && lp_index_file(f.ix, a)->size);
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	fs = mount_forged(&f, idx, a, 32, 4,
			  lp_index_file(f.ix, a)->mode | 04000, false, true);
	fetched = stats_num(fs, "\"fetched_bytes\": ");
	assert_int_equal(lookup(fs, lp_index_file(f.ix, a)->path, &st), 0);
	assert_true(st.st_mode & 04000);
	assert_int_equal(lp_fs_getattr(fs, st.st_ino, &st), 0);
	assert_true(st.st_mode & 04000);
	assert_int_equal(stats_num(fs, "\"header_checks\": "), 0);
	assert_int_equal(stats_num(fs, "\"fetched_bytes\": "), fetched);
	/* EBADMSG, which the FUSE reply makes EIO */
	assert_int_equal(
		lp_fs_reply_errno(read_path(fs, lp_index_file(f.ix, a)->path,
					    buf, sizeof(buf), 0)),
		EIO);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 1);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, a)->path, &st), -EIO);
	lp_fs_free(fs);
	/* a symlink given another one's target */
	a = pick(&f, '2', &b);
	assert_true(a != UINT32_MAX && b != UINT32_MAX);
	fs = mount_forged(&f, idx, a, 56, 4, link_field(&f, b), false, true);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, a)->path, &st), 0);
	assert_int_equal(lp_fs_readlink(fs, st.st_ino, &target), -EIO);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 1);
	lp_fs_free(fs);
	/* an entry with xattrs, and a device or fifo: checked at lookup */
	for (k = 0; k < lp_index_nr_files(f.ix); k++) {
		const struct lp_index_file *x = lp_index_file(f.ix, k);

		if (lp_index_lookup(f.ix, x->path) != (int)k ||
		    !(x->nr_xattrs || strchr("346", x->type)))
			continue;
		fs = mount_forged(&f, idx, k, 32, 4, x->mode ^ 0100, false,
				  true);
		assert_int_equal(lookup(fs, x->path, &st), -EIO);
		lp_fs_free(fs);
		seen_xattrs += x->nr_xattrs != 0;
		seen_devs += x->nr_xattrs == 0;
	}
	assert_true(seen_xattrs && seen_devs);
	/* a file made empty (the kernel would read nothing of it): its
	 * lookup checks it */
	a = pick(&f, '0', NULL);
	fs = mount_forged(&f, idx, a, 16, 8, 0, false, true);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, a)->path, &st), -EIO);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 1);
	lp_fs_free(fs);
	free(idx);
	release(&f);
}

/*
 * A header check reads its span through the mount's decoded spans: the
 * first read of a file checks its header and copies its bytes from the
 * span the check decoded, one decode for both (two when the check had its
 * own stream). A trusted index, no pass: every decode is a reader's, and
 * the file's lookup before it decodes nothing (its attributes are the
 * signer's word: test_trusted_forged_metadata).
 */
static void test_header_check_decoded(void **state)
{
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	const struct lp_index *ix;
	struct lp_fs *fs;
	struct stat st;
	uint8_t *buf;
	size_t k, n;
	uint64_t decodes, hits, trusted;
	bool found = false;

	(void)state;
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	fs = mount_budget(&f, blob, NULL, false);
	ix = lp_layer_index(lp_fs_layer(fs));
	lp_index_trust(ix);
	n = lp_index_nr_files(ix);
	for (k = 0; k < n && !found; k++) {
		const struct lp_index_file *x = lp_index_file(ix, k);
		size_t i = span_of_out(ix, x->hdr_off);

		/* a file past the first span, header and bytes in one */
		if (x->type != '0' || !x->size || i == 0 ||
		    lp_index_lookup(ix, x->path) != (int)k ||
		    span_of_out(ix, x->data_off + x->size - 1) != i)
			continue;
		found = true;
		decodes = stats_num(fs, "\"span_decodes\": ");
		hits = stats_num(fs, "\"decoded_hits\": ");
		trusted = lp_index_trusted_reads(ix);
		assert_int_equal(lookup(fs, x->path, &st), 0);
		assert_int_equal(stats_num(fs, "\"span_decodes\": "), decodes);
		assert_int_equal(stats_num(fs, "\"header_checks\": "), 0);
		buf = malloc(x->size);
		assert_non_null(buf);
		assert_int_equal(read_path(fs, x->path, buf, x->size, 0),
				 (int)x->size);
		assert_memory_equal(buf, f.tar + x->data_off, x->size);
		free(buf);
		assert_int_equal(stats_num(fs, "\"header_checks\": "), 1);
		/* span i decoded once, from its own checkpoint (unproven:
		 * a trusted read), the file's bytes copied from it */
		if (stats_num(fs, "\"span_decodes\": ") != decodes + 1 ||
		    lp_index_trusted_reads(ix) != trusted + 1 ||
		    stats_num(fs, "\"decoded_hits\": ") <= hits)
			fail_msg(
				"%s: its check and read decoded %llu spans "
				"(%llu trusted reads), copied %llu pieces",
				x->path,
				(unsigned long long)(stats_num(
							     fs,
							     "\"span_decodes\": ") -
						     decodes),
				(unsigned long long)(lp_index_trusted_reads(
							     ix) -
						     trusted),
				(unsigned long long)(stats_num(
							     fs,
							     "\"decoded_hits\": ") -
						     hits));
	}
	assert_true(found);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

/*
 * A check covers the header's span before the header too: a record lying
 * about the file just before another in the same span (a setuid bit) is
 * found by the other's lookup (EIO, the mount poisoned), and a lookup of
 * the file before needs no check of its own. No ancestor directory's
 * header may be in that span (its check would cover the pair anyway).
 */
static bool ancestors_before(const struct lp_index *ix, const char *path,
			     uint64_t start)
{
	char dir[4200];
	char *slash;
	int k;

	snprintf(dir, sizeof(dir), "%s", path);
	while ((slash = strrchr(dir, '/'))) {
		*slash = '\0';
		k = lp_index_lookup(ix, dir);
		if (k >= 0 && lp_index_file(ix, (size_t)k)->hdr_off >= start)
			return false;
	}
	return true;
}

static void test_check_covers_before(void **state)
{
	struct fixture f = { 0 };
	struct lp_err err = { 0 };
	uint8_t *idx;
	struct lp_fs *fs;
	struct stat st;
	size_t k, n, i = 0;
	uint64_t checks;

	(void)state;
	build_vector(&f);
	n = lp_index_nr_files(f.ix);
	for (k = 1; k < n; k++) {
		const struct lp_index_file *x = lp_index_file(f.ix, k);
		const struct lp_index_file *w = lp_index_file(f.ix, k - 1);

		i = span_of_out(f.ix, w->hdr_off);
		if (x->type == '0' && w->type == '0' &&
		    lp_index_lookup(f.ix, x->path) == (int)k &&
		    lp_index_lookup(f.ix, w->path) == (int)(k - 1) &&
		    span_of_out(f.ix, x->data_off) == i &&
		    ancestors_before(f.ix, x->path,
				     lp_index_checkpoint(f.ix, i)->out) &&
		    ancestors_before(f.ix, w->path,
				     lp_index_checkpoint(f.ix, i)->out))
			break;
	}
	assert_true(k < n);
	/* true records: the second lookup checks nothing */
	fs = mount_ix(f.blob, f.idx, f.idx_len, false, &err);
	assert_non_null(fs);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, k)->path, &st), 0);
	checks = stats_num(fs, "\"header_checks\": ");
	assert_int_equal(lookup(fs, lp_index_file(f.ix, k - 1)->path, &st), 0);
	assert_int_equal(stats_num(fs, "\"header_checks\": "), checks);
	lp_fs_free(fs);
	/* the file before made setuid: the other's lookup finds it */
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	fs = mount_forged(&f, idx, k - 1, 32, 4,
			  lp_index_file(f.ix, k - 1)->mode | 04000, false,
			  false);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, k)->path, &st), -EIO);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, k - 1)->path, &st),
			 -EIO);
	lp_fs_free(fs);
	free(idx);
	release(&f);
}

/*
 * A tar header that crosses a span boundary (layers of many gzip members
 * put checkpoints at member starts, anywhere in a header): its check reads
 * two spans (fs_index_read()'s loop; one stream through both when the
 * first is not proven). Every such entry's lookup and bytes are right,
 * proven-only, with the window rule, and trusted; the first mount's
 * checks proved the checkpoints they streamed past.
 */
static void check_straddling(const struct fixture *m, bool window_rule,
			     bool trusted, size_t *ret_n)
{
	struct lp_err err = { 0 };
	struct lp_fs *fs =
		mount_ix(m->blob, m->idx, m->idx_len, window_rule, &err);
	struct stat st;
	size_t k;

	assert_non_null(fs);
	if (trusted)
		lp_index_trust(lp_layer_index(lp_fs_layer(fs)));
	for (k = 0; k < lp_index_nr_files(m->ix); k++) {
		const struct lp_index_file *x = lp_index_file(m->ix, k);
		uint8_t *buf;

		if (span_of_out(m->ix, x->hdr_off) ==
			    span_of_out(m->ix, x->data_off - 1) ||
		    lp_index_lookup(m->ix, x->path) != (int)k)
			continue;
		(*ret_n)++;
		assert_int_equal(lookup(fs, x->path, &st), 0);
		if (x->type != '0' || !x->size || x->size > LP_MIB)
			continue;
		buf = malloc(x->size);
		assert_non_null(buf);
		assert_int_equal(read_path(fs, x->path, buf, x->size, 0),
				 (int)x->size);
		assert_memory_equal(buf, m->tar + x->data_off, x->size);
		free(buf);
	}
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 0);
	lp_fs_free(fs);
}

static void test_header_straddles_spans(void **state)
{
	static const size_t steps[] = { 65536 + 300, 100000 + 7 };
	struct fixture f = { 0 };
	size_t k, n = 0;

	(void)state;
	build_vector(&f);
	for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct fixture m = { 0 };
		size_t len;
		uint8_t *gz = gzip_members(f.tar, f.tar_len, steps[k], &len);

		build(&m, gz, len); /* takes gz */
		check_straddling(&m, false, false, &n);
		check_straddling(&m, true, false, &n);
		check_straddling(&m, false, true, &n);
		release(&m);
	}
	/* the vector's tar, cut this way, has such headers */
	assert_true(n >= 6);
	release(&f);
}

/*
 * The pass's unread outputs keep at most half the decoded spans' bytes for
 * the readers behind it: with them over half (a small budget, where the
 * bytes run out before half the slots do), two spans read in turn are
 * each decoded once, not once a read as they push each other out.
 */
static size_t out_len_of(const struct lp_index *ix, size_t i)
{
	return (size_t)(lp_index_span_out_end(ix, i) -
			lp_index_checkpoint(ix, i)->out);
}

static void test_cold_outputs_leave_room(void **state)
{
	struct fixture f = { 0 };
	struct lp_fs_budget *b = NULL;
	const struct lp_index *ix;
	struct lp_blob *blob;
	struct lp_fs *fs;
	uint8_t buf[512];
	size_t j, k, n = 0, nr, s[2] = { 0, 0 }, p[5], cap = 0, most;
	uint64_t d0;

	(void)state;
	build_vector(&f);
	nr = lp_index_nr_checkpoints(f.ix);
	/* two spans read in turn: the two smallest from span 10 on */
	for (j = 10; j + 1 < nr; j++) {
		if (!s[0] || out_len_of(f.ix, j) < out_len_of(f.ix, s[0])) {
			s[1] = s[0];
			s[0] = j;
		} else if (!s[1] ||
			   out_len_of(f.ix, j) < out_len_of(f.ix, s[1])) {
			s[1] = j;
		}
	}
	most = lp_max_u64(out_len_of(f.ix, s[0]), out_len_of(f.ix, s[1]));
	/* five spans before them, each at least as large, that the pass
	 * hands over: decoded spans may hold those (half the budget), in
	 * fewer than half the slots */
	for (j = 1; j < 10 && n < 5; j++)
		if (out_len_of(f.ix, j) >= most) {
			p[n++] = j;
			cap += out_len_of(f.ix, j);
		}
	assert_int_equal(n, 5);
	assert_int_equal(lp_fs_budget_new(2 * cap, &b), 0);
	assert_int_equal(lp_blob_new_mem(f.gz, f.gz_len, "layer", &blob), 0);
	fs = mount_budget(&f, blob, b, false);
	ix = lp_layer_index(lp_fs_layer(fs));
	lp_index_trust(ix);
	assert_int_equal(fs_index_out_max(fs), cap);
	for (k = 0; k < 5; k++)
		fs_index_span_decoded(
			fs, p[k], f.tar + lp_index_checkpoint(ix, p[k])->out,
			out_len_of(ix, p[k]));
	assert_int_equal(stats_num(fs, "\"pass_outs\": "), 5);
	d0 = stats_num(fs, "\"span_decodes\": ");
	for (k = 0; k < 6; k++) {
		struct lp_err err = { 0 };
		uint64_t o = lp_index_checkpoint(ix, s[k % 2])->out + 512 * k;

		assert_int_equal(fs_index_read(fs, o, buf, sizeof(buf), &err),
				 0);
		assert_memory_equal(buf, f.tar + o, sizeof(buf));
	}
	assert_int_equal(stats_num(fs, "\"span_decodes\": ") - d0, 2);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	lp_fs_budget_free(b);
	release(&f);
}

/*
 * The pass's outputs nobody read are not kept (nor charged) once it ends:
 * one layer nobody reads under the default budget holds nothing; twelve
 * under one 2 MiB budget stay within it, and hold nothing when proven.
 */
static void test_pass_keeps_no_output(void **state)
{
	enum { LAYERS = 12 };
	struct fixture f = { 0 };
	struct lp_fs_budget *b = NULL;
	struct lp_blob *blob[LAYERS];
	struct lp_fs *fs[LAYERS];
	size_t used, peak;
	int i;

	(void)state;
	build_vector(&f);
	assert_int_equal(lp_fs_budget_new(64 * LP_MIB, &b), 0);
	assert_int_equal(lp_blob_new_mem(f.gz, f.gz_len, "one", &blob[0]), 0);
	fs[0] = mount_budget(&f, blob[0], b, true);
	wait_proven(fs[0]);
	assert_true(stats_num(fs[0], "\"pass_outs\": ") > 0);
	assert_int_equal(held_bytes(fs[0]), 0);
	lp_fs_budget_usage(b, &used, &peak);
	assert_int_equal(used, 0);
	lp_fs_free(fs[0]);
	lp_blob_unref(blob[0]);
	lp_fs_budget_free(b);

	assert_int_equal(lp_fs_budget_new(2 * LP_MIB, &b), 0);
	for (i = 0; i < LAYERS; i++) {
		assert_int_equal(
			lp_blob_new_mem(f.gz, f.gz_len, "many", &blob[i]), 0);
		fs[i] = mount_budget(&f, blob[i], b, true);
	}
	for (i = 0; i < LAYERS; i++)
		wait_proven(fs[i]);
	lp_fs_budget_usage(b, &used, &peak);
	assert_int_equal(used, 0);
	for (i = 0; i < LAYERS; i++) {
		lp_fs_free(fs[i]);
		lp_blob_unref(blob[i]);
	}
	lp_fs_budget_free(b);
	release(&f);
}

/*
 * Spans decoded whole that readers used stay after the pass, and are in
 * the budget like the spans: twelve layers, each read in order, under one
 * 2 MiB budget (each could hold 1 MiB of outputs: 12 MiB in all) stay
 * within it; the outputs leave when another layer needs the room.
 */
static void test_outputs_in_budget(void **state)
{
	enum { LAYERS = 12 };
	const size_t budget = 2 * LP_MIB;
	struct fixture f = { 0 };
	struct lp_fs_budget *b = NULL;
	struct lp_blob *blob[LAYERS];
	struct lp_fs *fs[LAYERS];
	uint64_t hits = 0;
	size_t used, peak;
	int i;

	(void)state;
	build_vector(&f);
	assert_int_equal(lp_fs_budget_new(budget, &b), 0);
	for (i = 0; i < LAYERS; i++) {
		assert_int_equal(
			lp_blob_new_mem(f.gz, f.gz_len, "read", &blob[i]), 0);
		fs[i] = mount_budget(&f, blob[i], b, true);
		wait_proven(fs[i]);
		read_all(&f, fs[i], 0); /* the tar's order */
		hits += stats_num(fs[i], "\"decoded_hits\": ");
		lp_fs_budget_usage(b, &used, &peak);
		if (used > budget)
			fail_msg("%zu bytes charged after layer %d was read, "
				 "budget %zu",
				 used, i, budget);
	}
	assert_true(hits > 0);
	for (i = 0; i < LAYERS; i++) {
		lp_fs_free(fs[i]);
		lp_blob_unref(blob[i]);
	}
	lp_fs_budget_usage(b, &used, &peak);
	assert_int_equal(used, 0);
	lp_fs_budget_free(b);
	release(&f);
}

/* ---- the proving pass tells what it checked and decoded ----------- */

struct told {
	const struct fixture *f;
	uint8_t *records; /* [files] times told checked */
	size_t next_span, spans, bad, early;
};

static void told_checked(void *arg, size_t i)
{
	struct told *t = arg;

	if (i >= lp_index_nr_files(t->f->ix) || t->records[i]++)
		t->bad++;
}

static void told_decoded(void *arg, size_t i, const uint8_t *out, size_t len)
{
	struct told *t = arg;
	const struct lp_index *ix = t->f->ix;
	const uint64_t o0 = lp_index_checkpoint(ix, i)->out;
	const uint64_t o1 = i + 1 < lp_index_nr_checkpoints(ix) ?
				    lp_index_checkpoint(ix, i + 1)->out :
				    lp_index_uncompressed_size(ix);

	/* in order, each once, exactly the layer's bytes of the span */
	if (i != t->next_span || len != o1 - o0 ||
	    memcmp(out, t->f->tar + o0, len))
		t->bad++;
	/* told before the pass proves the checkpoint after it (a reader
	 * waiting for that proof finds the output) */
	if (i + 1 < lp_index_nr_checkpoints(ix) &&
	    lp_index_checkpoint_verified(ix, i + 1))
		t->early++;
	t->next_span = i + 1;
	t->spans++;
}

static void test_pass_tells(void **state)
{
	struct fixture f = { 0 };
	struct told t = { .f = &f };
	struct lp_index_prove_hooks h = { .checked = told_checked,
					  .decoded = told_decoded,
					  .decoded_max = 64 * LP_MIB,
					  .arg = &t };
	struct lp_err err = { 0 };
	size_t k, nf;
	int r;

	(void)state;
	build_vector(&f);
	nf = lp_index_nr_files(f.ix);
	t.records = calloc(nf, 1);
	assert_non_null(t.records);
	r = lp_index_prove_with(f.ix, f.blob, lp_index_check_header, &h, NULL,
				&err);
	if (r < 0)
		fail_msg("pass: %s", lp_err_str(&err, r));
	assert_int_equal(t.bad, 0);
	assert_int_equal(t.early, 0);
	assert_int_equal(t.spans, lp_index_nr_checkpoints(f.ix));
	for (k = 0; k < nf; k++)
		assert_int_equal(t.records[k], 1);
	/* spans over decoded_max are not told */
	free(t.records);
	release(&f);
	memset(&f, 0, sizeof(f));
	build_vector(&f);
	memset(&t, 0, sizeof(t));
	t.f = &f;
	t.records = calloc(lp_index_nr_files(f.ix), 1);
	assert_non_null(t.records);
	h.decoded_max = 1;
	h.arg = &t;
	assert_int_equal(lp_index_prove_with(f.ix, f.blob,
					     lp_index_check_header, &h, NULL,
					     &err),
			 0);
	assert_int_equal(t.spans, 0);
	free(t.records);
	release(&f);
}

/* after the pass, reading every file checks no header again (the pass
 * did) and copies the pieces from spans decoded whole, most of them by
 * the pass's thread (its outputs, or decoded ahead of the readers) */
static void test_pass_checks_for_readers(void **state)
{
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;

	(void)state;
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	fs = mount_budget(&f, blob, NULL, true);
	wait_proven(fs);
	assert_true(stats_num(fs, "\"pass_checked\": ") > 0);
	assert_true(stats_num(fs, "\"pass_outs\": ") > 0);
	read_all(&f, fs, 0); /* every file compared with the tar's */
	assert_int_equal(stats_num(fs, "\"header_checks\": "), 0);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
}

/* a listing waits for no header check: an entry not checked yet is
 * listed by name only (no type, no attributes, st_nlink 0: readdirplus
 * hands the kernel nothing of it), and its lookup checks it */
struct listed {
	const char *name;
	bool found;
	struct stat st;
};

static int listed_cb(void *opaque, const char *name, const struct stat *st,
		     uint64_t next_off)
{
	struct listed *l = opaque;

	(void)next_off;
	if (!strcmp(name, l->name)) {
		l->found = true;
		l->st = *st;
	}
	return 0;
}

/* the first entry listed with nothing but its name (not "." or "..") */
static int unchecked_cb(void *opaque, const char *name, const struct stat *st,
			uint64_t next_off)
{
	char *first = opaque;

	(void)next_off;
	if (!first[0] && !st->st_nlink && strcmp(name, ".") &&
	    strcmp(name, ".."))
		snprintf(first, 256, "%s", name);
	return 0;
}

static void test_listing_unchecked(void **state)
{
	struct fixture f = { 0 };
	uint32_t ncp, a;
	struct lp_err err = { 0 };
	char dir[4200], first[256], *slash;
	struct listed l = { 0 };
	uint8_t *idx, *files;
	struct lp_fs *fs;
	struct stat st, dst;
	size_t k;
	int r;

	(void)state;
	build_vector(&f);
	ncp = lp_get_le32(f.idx + 68);
	a = pick(&f, '0', NULL);
	assert_true(a != UINT32_MAX);
	snprintf(dir, sizeof(dir), "%s", lp_index_file(f.ix, a)->path);
	slash = strrchr(dir, '/');
	assert_non_null(slash);
	*slash = 0;
	/* a true index: the root listed, nothing checked nor fetched: names
	 * only; one looked up is then listed whole */
	fs = mount_ix(f.blob, f.idx, f.idx_len, false, &err);
	assert_non_null(fs);
	first[0] = 0;
	assert_int_equal(
		lp_fs_readdir(fs, LP_FS_ROOT_INO, 0, unchecked_cb, first), 0);
	assert_true(first[0]);
	assert_int_equal(stats_num(fs, "\"fetched_bytes\": "), 0);
	assert_int_equal(stats_num(fs, "\"header_checks\": "), 0);
	assert_int_equal(lookup(fs, first, &st), 0);
	l.name = first;
	assert_int_equal(lp_fs_readdir(fs, LP_FS_ROOT_INO, 0, listed_cb, &l),
			 0);
	assert_true(l.found && l.st.st_nlink > 0);
	assert_int_equal(l.st.st_mode, st.st_mode);
	/* and a file deeper in, after its directory's lookup */
	l.name = slash + 1;
	l.found = false;
	assert_int_equal(lookup(fs, dir, &dst), 0);
	assert_int_equal(lp_fs_readdir(fs, dst.st_ino, 0, listed_cb, &l), 0);
	assert_true(l.found);
	if (stats_num(fs, "\"header_checks\": ") == 1) {
		/* the directory's own check did not cover the file */
		assert_int_equal(l.st.st_nlink, 0);
		assert_int_equal(l.st.st_mode, 0);
	}
	assert_int_equal(lookup(fs, lp_index_file(f.ix, a)->path, &st), 0);
	l.found = false;
	assert_int_equal(lp_fs_readdir(fs, dst.st_ino, 0, listed_cb, &l), 0);
	assert_true(l.found);
	assert_true(l.st.st_nlink > 0);
	assert_int_equal(l.st.st_mode, st.st_mode);
	lp_fs_free(fs);
	/* a lying record (setuid): its listing says nothing of the mode,
	 * its lookup fails */
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	memcpy(idx, f.idx, f.idx_len);
	files = CP(idx, ncp);
	lp_put_le32(files + (size_t)a * LP_INDEX_FILE_SIZE + 32,
		    lp_index_file(f.ix, a)->mode | 04000);
	fs = mount_ix(f.blob, idx, f.idx_len, false, &err);
	assert_non_null(fs);
	l.found = false;
	/* the directory's own check may find the lie already (its batch
	 * runs on to the end of its span) */
	r = lookup(fs, dir, &dst);
	assert_true(r == 0 || r == -EIO);
	if (r == 0 && lp_fs_readdir(fs, dst.st_ino, 0, listed_cb, &l) == 0 &&
	    l.found)
		assert_false(l.st.st_mode & 04000);
	assert_int_equal(lookup(fs, lp_index_file(f.ix, a)->path, &st), -EIO);
	lp_fs_free(fs);
	/* the same lie in the record of an entry of the root (listed with no
	 * check at all): its listing has no attribute of the record, then
	 * its lookup finds the lie (the directory's check above already
	 * found the file's: no listing of it was left to look at) */
	memcpy(idx, f.idx, f.idx_len);
	for (k = 0; k < lp_index_nr_files(f.ix); k++) {
		const char *p = lp_index_file(f.ix, k)->path;
		size_t n = strlen(first);

		if (!strncmp(p, first, n) && (!p[n] || !strcmp(p + n, "/")))
			break;
	}
	assert_true(k < lp_index_nr_files(f.ix));
	lp_put_le32(files + k * LP_INDEX_FILE_SIZE + 32,
		    lp_index_file(f.ix, k)->mode | 04000);
	fs = mount_ix(f.blob, idx, f.idx_len, false, &err);
	assert_non_null(fs);
	l.name = first;
	l.found = false;
	assert_int_equal(lp_fs_readdir(fs, LP_FS_ROOT_INO, 0, listed_cb, &l),
			 0);
	assert_true(l.found);
	assert_int_equal(l.st.st_nlink, 0);
	assert_int_equal(l.st.st_mode, 0);
	assert_int_equal(lookup(fs, first, &st), -EIO);
	lp_fs_free(fs);
	free(idx);
	release(&f);
}

/* over its bound the spans tier deletes another layer's file that no
 * mount has open (least recently used first), never the mounted layer's */
static void test_span_disk_bound(void **state)
{
	char dir[] = "/tmp/lp-spandisk-XXXXXX", other[4200], own[4200];
	static char junk[256 * 1024];
	const struct timespec old[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(other, sizeof(other), "%s/spans", dir);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(other, sizeof(other), "%s/spans/%064x", dir, 0xa);
	memset(junk, 'j', sizeof(junk));
	fp = fopen(other, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	fclose(fp);
	assert_int_equal(utimensat(AT_FDCWD, other, old, 0), 0);
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	disk_bound = 64 * LP_KIB;
	fs = mount_disk(&f, blob, dir, NULL, false);
	read_all(&f, fs, 0);
	wait_written(fs);
	assert_int_equal(access(other, F_OK), -1);
	span_file(&f, dir, own, sizeof(own));
	assert_int_equal(access(own, F_OK), 0);
	assert_true(stats_num(fs, "\"disk_evicted_files\": ") >= 1);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
	rm_rf(dir);
}

/* a spans tier that cannot be opened (here "spans" is a file): the layer
 * mounts without it and every file reads right */
static void test_span_disk_unusable(void **state)
{
	char dir[] = "/tmp/lp-spandisk-XXXXXX", path[4200];
	struct fixture f = { 0 };
	struct count_blob cb;
	struct lp_blob *blob;
	struct lp_fs *fs;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spans", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	build_vector(&f);
	count_init(&cb, &f, f.ix);
	blob = count_blob_new(&cb, &f);
	fs = mount_disk(&f, blob, dir, NULL, false);
	read_all(&f, fs, 0);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	count_destroy(&cb);
	release(&f);
	rm_rf(dir);
}

/* ---- streamed spans: a trusted index with grain digests ------------ */

/*
 * A blob whose streamed read of [gate_off, gate_off + gate_len) hands over
 * its first @part bytes, then blocks until @open before the rest (@blocked
 * says it waits there); every other read is served at once. @requests
 * counts the reads of that range.
 */
struct drip_blob {
	const uint8_t *data;
	uint64_t gate_off;
	size_t gate_len, part;
	bool fail; /* the gated read fails (-EIO) once open, after @part */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int requests; /* protected by lock */
	bool blocked, open; /* protected by lock */
};

static void drip_count(struct drip_blob *db, size_t len, uint64_t off)
{
	pthread_mutex_lock(&db->lock);
	db->requests += off == db->gate_off && len == db->gate_len;
	pthread_mutex_unlock(&db->lock);
}

static int drip_pread(void *ctx, void *buf, size_t len, uint64_t off,
		      struct lp_err *err)
{
	struct drip_blob *db = ctx;

	(void)err;
	drip_count(db, len, off);
	memcpy(buf, db->data + off, len);
	return 0;
}

static int drip_stream(void *ctx, void *buf, size_t len, uint64_t off,
		       lp_blob_progress_fn fn, void *arg, struct lp_err *err)
{
	struct drip_blob *db = ctx;
	const bool gated = off == db->gate_off && len == db->gate_len;
	const size_t part = gated ? db->part : len;
	int r;

	(void)err;
	drip_count(db, len, off);
	memcpy(buf, db->data + off, part);
	if (part < len) { /* said before the part is handed over */
		pthread_mutex_lock(&db->lock);
		db->blocked = true;
		pthread_cond_broadcast(&db->cond);
		pthread_mutex_unlock(&db->lock);
	}
	r = fn(arg, part);
	if (r < 0 || part == len)
		return r;
	pthread_mutex_lock(&db->lock);
	while (!db->open)
		pthread_cond_wait(&db->cond, &db->lock);
	pthread_mutex_unlock(&db->lock);
	if (db->fail)
		return lp_err_set(err, -EIO, "the rest of the span failed");
	memcpy((uint8_t *)buf + part, db->data + off + part, len - part);
	return fn(arg, len);
}

static void drip_open(struct drip_blob *db)
{
	pthread_mutex_lock(&db->lock);
	db->open = true;
	pthread_cond_broadcast(&db->cond);
	pthread_mutex_unlock(&db->lock);
}

/* @db (its part set) over @f's layer, holding back the request of span
 * [@s0, @s1) after its part (and with @fail failing the rest): a blob
 * (one reference) */
static struct lp_blob *drip_blob_new(struct drip_blob *db,
				     const struct fixture *f, uint64_t s0,
				     uint64_t s1, bool fail)
{
	static const struct lp_blob_ops ops = { .pread = drip_pread,
						.pread_stream = drip_stream,
						.close = slow_close };
	struct lp_blob *blob = NULL;

	db->data = f->gz;
	db->fail = fail;
	db->gate_off = s0;
	db->gate_len = (size_t)(s1 - s0);
	pthread_mutex_init(&db->lock, NULL);
	pthread_cond_init(&db->cond, NULL);
	assert_int_equal(lp_blob_new(&ops, db, f->gz_len, "drip", &blob), 0);
	return blob;
}

static void drip_blob_free(struct drip_blob *db)
{
	pthread_cond_destroy(&db->cond);
	pthread_mutex_destroy(&db->lock);
	free(db);
}

struct drip_reader {
	struct lp_fs *fs;
	struct drip_blob *db;
	const char *path;
	uint8_t *buf;
	size_t len;
	int r;
	bool done; /* protected by db->lock */
};

static void *drip_reader_main(void *arg)
{
	struct drip_reader *a = arg;

	a->r = read_path(a->fs, a->path, a->buf, a->len, 0);
	pthread_mutex_lock(&a->db->lock);
	a->done = true;
	pthread_cond_broadcast(&a->db->cond);
	pthread_mutex_unlock(&a->db->lock);
	return NULL;
}

/* wait (30 s at most: a hang, not a speed, is what fails) until @flag */
static bool drip_wait(struct drip_blob *db, const bool *flag)
{
	struct timespec ts;
	bool r;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&db->lock);
	while (!*flag &&
	       pthread_cond_timedwait(&db->cond, &db->lock, &ts) != ETIMEDOUT)
		;
	r = *flag;
	pthread_mutex_unlock(&db->lock);
	return r;
}

/* the vectors' layer with an index of @grain byte grains */
static void build_vector_grains(struct fixture *f, uint32_t grain)
{
	size_t len;
	uint8_t *gz = slurp(LP_VECTORS_DIR "/v1.tar.gz", &len);

	assert_true(len > 0);
	build_grains(f, gz, len, grain);
}

/* the uncompressed bytes the first @in bytes of span @i inflate to */
static size_t out_of_prefix(const struct fixture *f, const struct lp_index *ix,
			    size_t i, size_t in)
{
	struct lp_index_span_inflater *inf = NULL;
	const size_t cap = (size_t)(lp_index_span_out_end(ix, i) -
				    lp_index_checkpoint(ix, i)->out);
	uint8_t *out = malloc(cap);
	uint64_t s0, s1;
	size_t done = 0;

	assert_non_null(out);
	lp_index_span_range(ix, i, &s0, &s1);
	assert_int_equal(lp_index_span_inflater_new(ix, i, &inf, NULL), 0);
	assert_int_equal(lp_index_span_inflater_feed(inf, f->gz + s0, in, out,
						     cap, &done, NULL),
			 0);
	lp_index_span_inflater_free(inf);
	free(out);
	return done;
}

/*
 * Span @i's regular files wholly in its output's first @out bytes (@early)
 * or wholly past them (@late), header and data in span @i; their paths
 * (the index's, found as themselves) or NULL
 */
static void pick_files(const struct lp_index *ix, size_t i, size_t out,
		       const struct lp_index_file **early,
		       const struct lp_index_file **late)
{
	const uint64_t o0 = lp_index_checkpoint(ix, i)->out;
	const uint64_t o1 = lp_index_span_out_end(ix, i);
	size_t k;

	*early = *late = NULL;
	for (k = 0; k < lp_index_nr_files(ix); k++) {
		const struct lp_index_file *x = lp_index_file(ix, k);

		if (x->type != '0' || !x->size || x->hdr_off < o0 ||
		    x->data_off + x->size > o1 ||
		    lp_index_lookup(ix, x->path) != (int)k)
			continue;
		if (!*early && x->data_off + x->size <= o0 + out)
			*early = x;
		if (x->hdr_off >= o0 + out)
			*late = x;
	}
}

/*
 * A span of a trusted index with grain digests is served as it comes: a
 * file in its first grains is read (lookup, header check, bytes) while the
 * blob still holds the rest of the span back, in the one request that
 * then brings the rest; a file past them after. With a grain digest that
 * lies past the early file: the early file is still right, the lie is
 * found when its grain comes (the mount poisoned, the late file EIO).
 * Unsigned, the same reads stream nothing (grains are the index's word).
 */
static void check_streamed(bool lie, bool trusted, bool fail)
{
	const uint32_t grain = LP_INDEX_GRAIN_MIN;
	struct fixture f = { 0 };
	/* on the heap, never freed: a failed assertion leaves its stream
	 * thread waiting on it */
	struct drip_blob *dbp = calloc(1, sizeof(*dbp));
	struct drip_reader rd = { 0 };
	const struct lp_index_file *early = NULL, *late = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	struct lp_fs *fs;
	uint8_t *idx, *buf;
	uint64_t s0 = 0, s1 = 0;
	size_t i, g, first_grain = 0, out = 0;
	pthread_t t;

	build_vector_grains(&f, grain);
	assert_int_equal(lp_index_grain_size(f.ix), grain);
	/* a span of 4 grains or more with a file in its first half and
	 * another past it */
	lp_index_trust(f.ix);
	for (i = 1; i < lp_index_nr_checkpoints(f.ix); i++) {
		first_grain += lp_index_nr_grains(f.ix, i - 1);
		lp_index_span_range(f.ix, i, &s0, &s1);
		if (lp_index_nr_grains(f.ix, i) < 4)
			continue;
		dbp->part = (size_t)(s1 - s0) / 2 / grain * grain;
		out = out_of_prefix(&f, f.ix, i, dbp->part);
		pick_files(f.ix, i, out, &early, &late);
		if (early && late)
			break;
	}
	if (!early || !late)
		fail_msg("no span with a file in its first half and another "
			 "past it");
	idx = malloc(f.idx_len);
	assert_non_null(idx);
	memcpy(idx, f.idx, f.idx_len);
	if (lie) {
		/* the last grain digest of span i (the grains section is
		 * the index's last) */
		size_t all = 0, k;

		for (k = 0; k < lp_index_nr_checkpoints(f.ix); k++)
			all += lp_index_nr_grains(f.ix, k);
		g = first_grain + lp_index_nr_grains(f.ix, i) - 1;
		idx[f.idx_len - all * 32 + g * 32] ^= 1;
	}
	blob = drip_blob_new(dbp, &f, s0, s1, fail);
	fs = mount_ix(blob, idx, f.idx_len, false, &err);
	assert_non_null(fs);
	if (trusted)
		lp_index_trust(lp_layer_index(lp_fs_layer(fs)));
	else
		dbp->open = true; /* nothing streamed: nothing to hold back */

	rd.fs = fs;
	rd.db = dbp;
	rd.path = early->path;
	rd.len = early->size;
	rd.buf = buf = malloc(early->size);
	assert_non_null(buf);
	assert_int_equal(pthread_create(&t, NULL, drip_reader_main, &rd), 0);
	if (trusted) {
		/* served while the blob holds the rest of the span back */
		if (!drip_wait(dbp, &rd.done))
			fail_msg("%s (in the first %zu bytes of span #%zu's "
				 "%zu) not served before the span's last "
				 "%zu compressed bytes came",
				 early->path, out, i,
				 (size_t)(lp_index_span_out_end(f.ix, i) -
					  lp_index_checkpoint(f.ix, i)->out),
				 dbp->gate_len - dbp->part);
		pthread_mutex_lock(&dbp->lock);
		assert_false(dbp->open);
		assert_true(dbp->blocked);
		pthread_mutex_unlock(&dbp->lock);
		assert_true(stats_num(fs, "\"span_streams\": ") >= 1);
		assert_true(stats_num(fs, "\"early_reads\": ") >= 1);
	}
	drip_open(dbp);
	pthread_join(t, NULL);
	assert_int_equal(rd.r, (int)early->size);
	assert_memory_equal(buf, f.tar + early->data_off, early->size);
	free(buf);

	buf = malloc(late->size);
	assert_non_null(buf);
	if (lie) {
		struct stat st;
		unsigned int ms;

		/* the stream finds the lie once the last grain came */
		for (ms = 0;
		     ms < 30000 && !stats_num(fs, "\"verify_failures\": ");
		     ms++)
			usleep(1000);
		assert_true(stats_num(fs, "\"verify_failures\": ") >= 1);
		assert_int_equal(read_path(fs, late->path, buf, late->size, 0),
				 -EIO);
		assert_int_equal(lookup(fs, early->path, &st), -EIO);
	} else {
		assert_int_equal(read_path(fs, late->path, buf, late->size, 0),
				 (int)late->size);
		assert_memory_equal(buf, f.tar + late->data_off, late->size);
		/* the span came in one request; a source that failed mid-span
		 * is no lie: the span read again, nothing poisoned */
		if (!fail)
			assert_int_equal(dbp->requests, 1);
		assert_int_equal(stats_num(fs, "\"verify_failures\": "), 0);
	}
	if (!trusted)
		assert_int_equal(stats_num(fs, "\"span_streams\": "), 0);
	free(buf);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	free(idx);
	drip_blob_free(dbp);
	release(&f);
}

static void test_streamed_span(void **state)
{
	(void)state;
	check_streamed(false, true, false);
}

static void test_streamed_source_fails(void **state)
{
	(void)state;
	check_streamed(false, true, true);
}

static void test_streamed_grain_lie(void **state)
{
	(void)state;
	check_streamed(true, true, false);
}

static void test_unsigned_not_streamed(void **state)
{
	(void)state;
	check_streamed(false, false, false);
}

/*
 * A mount that streams its spans, with the proving pass on: span 0 is
 * streamed at the mount (fs_index_stream_first()), reserved before the
 * pass's read-ahead plans its first request, which then leaves it out:
 * span 0 is asked for alone (the request the blob holds back half of),
 * once, and a file in its first half is served while the rest is held
 * back. Without it the read-ahead's first request (spans 0-1 whole) brings
 * span 0 and nothing is held back.
 */
static void test_stream_first(void **state)
{
	const uint32_t grain = LP_INDEX_GRAIN_MIN;
	struct fixture f = { 0 };
	/* on the heap, never freed: a failed assertion leaves the stream
	 * thread waiting on it */
	struct drip_blob *dbp = calloc(1, sizeof(*dbp));
	struct drip_reader rd = { 0 };
	const struct lp_index_file *early = NULL, *late = NULL;
	struct lp_index *ix = NULL;
	struct lp_layer *layer = NULL;
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	struct lp_fs_options opts;
	struct lp_fs *fs = NULL;
	uint64_t s0 = 0, s1 = 0;
	uint8_t *buf;
	size_t out;
	pthread_t t;

	(void)state;
	assert_non_null(dbp);
	build_vector_grains(&f, grain);
	lp_index_trust(f.ix);
	lp_index_span_range(f.ix, 0, &s0, &s1);
	assert_true(lp_index_nr_grains(f.ix, 0) >= 4);
	dbp->part = (size_t)(s1 - s0) / 2 / grain * grain;
	out = out_of_prefix(&f, f.ix, 0, dbp->part);
	pick_files(f.ix, 0, out, &early, &late);
	if (!early)
		fail_msg("no file in span 0's first %zu bytes", out);
	blob = drip_blob_new(dbp, &f, s0, s1, false);
	assert_int_equal(lp_index_parse(f.idx, f.idx_len, &ix, &err), 0);
	lp_index_trust(ix);
	assert_int_equal(lp_layer_open_index(blob, ix, lp_index_check_header,
					     &layer, &err),
			 0);
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = true; /* the pass and its read-ahead */
	opts.background_quiet_ms = 0;
	assert_int_equal(lp_fs_new(layer, &opts, &fs, &err), 0);
	assert_int_equal(lp_fs_start(fs), 0);

	rd.fs = fs;
	rd.db = dbp;
	rd.path = early->path;
	rd.len = early->size;
	rd.buf = buf = malloc(early->size);
	assert_non_null(buf);
	assert_int_equal(pthread_create(&t, NULL, drip_reader_main, &rd), 0);
	if (!drip_wait(dbp, &rd.done))
		fail_msg("%s (in span 0's first %zu bytes) not served",
			 early->path, out);
	pthread_mutex_lock(&dbp->lock);
	/* served from span 0's own request, while its rest is held back */
	assert_true(dbp->blocked);
	assert_false(dbp->open);
	pthread_mutex_unlock(&dbp->lock);
	assert_true(stats_num(fs, "\"span_streams\": ") >= 1);
	drip_open(dbp);
	pthread_join(t, NULL);
	assert_int_equal(rd.r, (int)early->size);
	assert_memory_equal(buf, f.tar + early->data_off, early->size);
	free(buf);
	/* the pass gets span 0 from that fetch: it was asked for once */
	wait_proven(fs);
	pthread_mutex_lock(&dbp->lock);
	assert_int_equal(dbp->requests, 1);
	pthread_mutex_unlock(&dbp->lock);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 0);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	drip_blob_free(dbp);
	release(&f);
}

/*
 * The proving pass compares every grain digest too (a "proven" index is
 * trusted on this node from then on, grains and all): an unsigned index
 * whose blob and span digests are right but one grain digest lies fails
 * its pass (the mount poisoned), where without grains it is proven.
 */
static void test_pass_checks_grains(void **state)
{
	struct fixture f = { 0 };
	struct lp_fs *fs;
	size_t all = 0, k;
	unsigned int ms;

	(void)state;
	build_vector_grains(&f, LP_INDEX_GRAIN_MIN);
	/* the control: the same index as built is proven */
	fs = mount_budget_ex(&f, f.blob, NULL, true, false);
	wait_proven(fs);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 0);
	lp_fs_free(fs);
	for (k = 0; k < lp_index_nr_checkpoints(f.ix); k++)
		all += lp_index_nr_grains(f.ix, k);
	/* a grain digest in the middle of the layer */
	f.idx[f.idx_len - all * 32 + all / 2 * 32 + 7] ^= 0x40;
	fs = mount_budget_ex(&f, f.blob, NULL, true, false);
	for (ms = 0; ms < 30000 && !stats_num(fs, "\"verify_failures\": ");
	     ms++)
		usleep(1000);
	assert_int_equal(stats_num(fs, "\"verify_failures\": "), 1);
	assert_int_equal(stats_num(fs, "\"proven\": ") <
				 lp_index_nr_checkpoints(f.ix),
			 true);
	lp_fs_free(fs);
	release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hardlink_shadowed),
		cmocka_unit_test(test_forged_hardlink),
		cmocka_unit_test(test_shifted_checkpoints),
		cmocka_unit_test(test_read_lie_poisons),
		cmocka_unit_test(test_forged_metadata),
		cmocka_unit_test(test_trusted_forged_metadata),
		cmocka_unit_test(test_read_bounded),
		cmocka_unit_test(test_stream_holds_no_slot),
		cmocka_unit_test(test_forged_whiteout),
		cmocka_unit_test(test_forged_opaque_marker),
		cmocka_unit_test(test_hardlink_chain_refused),
		cmocka_unit_test(test_source_badmsg),
		cmocka_unit_test(test_span_cache),
		cmocka_unit_test(test_span_single_flight),
		cmocka_unit_test(test_one_fetch_per_span),
		cmocka_unit_test(test_cached_lie_poisons),
		cmocka_unit_test(test_wait_for_pass),
		cmocka_unit_test(test_pass_keeps_no_span),
		cmocka_unit_test(test_spans_in_budget),
		cmocka_unit_test(test_run_keeps_span),
		cmocka_unit_test(test_span_disk_evicted),
		cmocka_unit_test(test_span_disk_remount),
		cmocka_unit_test(test_pass_big_requests),
		cmocka_unit_test(test_span_decoded_once),
		cmocka_unit_test(test_header_check_decoded),
		cmocka_unit_test(test_check_covers_before),
		cmocka_unit_test(test_cold_outputs_leave_room),
		cmocka_unit_test(test_header_straddles_spans),
		cmocka_unit_test(test_pass_keeps_no_output),
		cmocka_unit_test(test_outputs_in_budget),
		cmocka_unit_test(test_pass_tells),
		cmocka_unit_test(test_pass_checks_for_readers),
		cmocka_unit_test(test_listing_unchecked),
		cmocka_unit_test(test_span_disk_unusable),
		cmocka_unit_test(test_span_disk_bound),
		cmocka_unit_test(test_streamed_span),
		cmocka_unit_test(test_streamed_source_fails),
		cmocka_unit_test(test_streamed_grain_lie),
		cmocka_unit_test(test_unsigned_not_streamed),
		cmocka_unit_test(test_pass_checks_grains),
		cmocka_unit_test(test_stream_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
