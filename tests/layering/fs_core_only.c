// SPDX-License-Identifier: Apache-2.0
/*
 * The layering check: this program links the fs core (lp_fs_core: fs/
 * without fuse_ops.c), format/ and common/ and nothing else -- no libfuse,
 * no libcurl (tests/CMakeLists.txt refuses to configure when either is in
 * the link interface, and test layering/fs-core-needed checks the binary's
 * DT_NEEDED). To prove the core works alone, not just links, it serves the
 * vector layer given on the command line through the core's own API and
 * checks every regular file it lists (LAYER.files: "path sha256:..." per
 * line) against its digest. Exit 0 when every file matches, 1 otherwise.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lp_blob.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_fs.h"
#include "lp_layer.h"

#define READ_BUF (256 * 1024)

/* landmarks and whiteouts: in the listing, not in the tree (see lp_fs.h) */
static bool hidden(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return !strcmp(b, ".prefetch.landmark") ||
	       !strcmp(b, ".no.prefetch.landmark") || !strncmp(b, ".wh.", 4);
}

/* walk @path ("a/b/c") from the root; 0 with *ret_st, or -errno */
static int lookup_path(struct lp_fs *fs, const char *path, struct stat *ret_st)
{
	char comp[4096];
	uint64_t ino = LP_FS_ROOT_INO;
	const char *p = path;
	int r = -ENOENT;

	while (*p) {
		size_t n = strcspn(p, "/");

		if (n >= sizeof(comp))
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = '\0';
		r = lp_fs_lookup(fs, ino, comp, ret_st);
		if (r < 0)
			return r;
		ino = ret_st->st_ino;
		p += n;
		while (*p == '/')
			p++;
	}
	return r;
}

/* digest of regular file @ino read through the core; 0 or -errno */
static int read_digest(struct lp_fs *fs, uint64_t ino, uint8_t *buf,
		       struct lp_digest *ret)
{
	struct lp_sha256 *ctx = NULL;
	struct lp_err err = { 0 };
	uint64_t off = 0;
	int r;

	r = lp_sha256_new(&ctx);
	if (r < 0)
		return r;
	for (;;) {
		r = lp_fs_read(fs, ino, NULL, buf, READ_BUF, off, &err);
		if (r <= 0)
			break;
		lp_sha256_update(ctx, buf, (size_t)r);
		off += (uint64_t)r;
	}
	if (r == 0)
		lp_sha256_final(ctx, ret);
	else
		fprintf(stderr, "read: %s\n", lp_err_str(&err, r));
	lp_sha256_free(ctx);
	lp_err_clear(&err);
	return r;
}

int main(int argc, char **argv)
{
	char path[4096], line[8192], *sp;
	struct lp_digest toc, want, got;
	struct lp_err err = { 0 };
	struct lp_fs_options opts;
	struct lp_blob *blob = NULL;
	struct lp_layer *layer = NULL;
	struct lp_fs *fs = NULL;
	uint8_t *buf = NULL;
	size_t checked = 0;
	FILE *f = NULL;
	int r, rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s VECTORS_DIR/NAME\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s.toc-digest", argv[1]);
	f = fopen(path, "re");
	if (!f || !fgets(line, sizeof(line), f)) {
		fprintf(stderr, "%s: cannot read\n", path);
		goto out;
	}
	fclose(f);
	f = NULL;
	line[strcspn(line, "\n")] = '\0';
	if (lp_digest_parse(line, &toc) < 0) {
		fprintf(stderr, "%s: not a digest\n", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s.esgz", argv[1]);
	r = lp_blob_open_file(path, &blob);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
		goto out;
	}
	r = lp_layer_open(blob, &toc, &layer, &err);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, lp_err_str(&err, r));
		goto out;
	}
	lp_fs_options_init(&opts);
	opts.prefetch = false;
	opts.background_fetch = false;
	r = lp_fs_new(layer, &opts, &fs, &err);
	layer = NULL;
	if (r < 0) {
		fprintf(stderr, "lp_fs_new: %s\n", lp_err_str(&err, r));
		goto out;
	}
	buf = malloc(READ_BUF);
	snprintf(path, sizeof(path), "%s.files", argv[1]);
	f = fopen(path, "re");
	if (!buf || !f) {
		fprintf(stderr, "%s: cannot read\n", path);
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		struct stat st;

		line[strcspn(line, "\n")] = '\0';
		sp = strrchr(line, ' ');
		if (!sp || lp_digest_parse(sp + 1, &want) < 0) {
			fprintf(stderr, "%s: bad line \"%s\"\n", path, line);
			goto out;
		}
		*sp = '\0';
		if (hidden(line))
			continue;
		r = lookup_path(fs, line, &st);
		if (r < 0 || !S_ISREG(st.st_mode)) {
			fprintf(stderr, "%s: lookup: %s\n", line,
				r < 0 ? strerror(-r) : "not a regular file");
			goto out;
		}
		r = read_digest(fs, st.st_ino, buf, &got);
		if (r < 0)
			goto out;
		if (!lp_digest_equal(&want, &got)) {
			fprintf(stderr, "%s: digest mismatch\n", line);
			goto out;
		}
		checked++;
	}
	if (!checked) {
		fprintf(stderr, "%s: no files listed\n", path);
		goto out;
	}
	printf("fs core alone served %zu files, all digests match\n", checked);
	rc = 0;
out:
	if (f)
		fclose(f);
	free(buf);
	lp_fs_free(fs);
	lp_blob_unref(blob);
	lp_err_clear(&err);
	return rc;
}
