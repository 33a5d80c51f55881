// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull layer ...`: convert, inspect, verify and extract single layer
 * blobs. Thin adapters over converter/ and format/: option parsing, output
 * formatting, and the file-level loops (hashing every file, writing files
 * to disk through libarchive) that sit on top of lp_layer_read_file(), the
 * whole-file reader of the digest policy (lp_chunk.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "cmd.h"
#include "lp_convert.h"
#include "lp_layer.h"
#include "lp_log.h"

#define VERIFY_MAX_THREADS 16
/* names tried for a file's temporary file before extract gives up */
#define EXTRACT_TMP_TRIES 16

/* --- shared --- */

static int open_layer(const char *path, const struct lp_digest *want,
		      struct lp_layer **ret_layer)
{
	struct lp_blob *blob = NULL;
	struct lp_err err = { 0 };
	int r;

	r = lp_blob_open_file(path, &blob);
	if (r < 0) {
		fprintf(stderr, "lazypull: %s: %s\n", path, strerror(-r));
		return r;
	}
	r = lp_layer_open(blob, want, ret_layer, &err);
	if (r < 0)
		lp_cmd_fail(path, &err, r);
	lp_blob_unref(blob);
	return r;
}

static const char *format_option_name(enum lp_layer_format f)
{
	return lp_format_name(f);
}

/* --- convert --- */

static const char convert_usage[] =
	"Usage: lazypull layer convert [OPTIONS] IN OUT\n"
	"\n"
	"Convert a tar, tar.gz or tar.zst layer (IN, or - for stdin) into an\n"
	"eStargz or zstd:chunked blob OUT. Prints the values a manifest needs:\n"
	"  toc-digest=sha256:...      (annotation containerd.io/snapshot/stargz/toc.digest)\n"
	"  diff-id=sha256:...         (the config's rootfs.diff_ids entry)\n"
	"  uncompressed-size=N        (io.containers.estargz.uncompressed-size)\n"
	"  size=N, digest=sha256:...  (the layer descriptor)\n"
	"\n"
	"Options:\n"
	"  --format F        estargz (default) or zstd-chunked\n"
	"  --chunk-size N    split files into chunks of N bytes (K/M suffixes;\n"
	"                    default 4M)\n"
	"  --level L         compression level (default 9 for gzip, 3 for zstd)\n"
	"  --prioritize FILE files to put first, before .prefetch.landmark: one\n"
	"                    path per line, or JSON lines with a \"path\" member\n"
	"  --threads N       compression threads (default: all CPUs)\n"
	"  --json            print one JSON object instead of key=value lines\n"
	"  -h, --help        this help\n";

static int cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "prioritize", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct lp_convert_opts co;
	struct lp_convert_result res;
	struct lp_err err = { 0 };
	const char *prio_path = NULL, *in, *out;
	char **prio = NULL;
	char toc[LP_DIGEST_STR_LEN + 1], diff[LP_DIGEST_STR_LEN + 1];
	char dig[LP_DIGEST_STR_LEN + 1], mck[LP_DIGEST_STR_LEN + 1];
	bool json = false;
	int c, idx = 0, fd = -1, r, ret = LP_EXIT_FAIL;

	lp_convert_opts_init(&co);
	while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		switch (c) {
		case 'f':
		case 'c':
		case 'l':
		case 't':
			r = lp_cmd_convert_opt("layer convert", opts[idx].name,
					       optarg, &co);
			if (r)
				return r;
			break;
		case 'p':
			prio_path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(convert_usage, stdout);
			return LP_EXIT_OK;
		default:
			return lp_cmd_usage_error("layer convert",
						  "bad option");
		}
	}
	if (argc - optind != 2)
		return lp_cmd_usage_error("layer convert", "needs IN and OUT");
	in = argv[optind];
	out = argv[optind + 1];
	r = lp_cmd_convert_check("layer convert", &co);
	if (r)
		return r;

	if (prio_path) {
		r = lp_prio_list_load(prio_path, &prio, &err);
		if (r < 0)
			return lp_cmd_fail(prio_path, &err, r);
		co.prioritized = (const char *const *)prio;
		co.nr_prioritized = (size_t)r;
	}

	if (!strcmp(in, "-")) {
		fd = STDIN_FILENO;
	} else {
		fd = open(in, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "lazypull: %s: %s\n", in,
				strerror(errno));
			goto out;
		}
	}

	r = lp_convert_layer(fd, out, &co, &res, &err);
	if (r < 0) {
		char what[4200];

		snprintf(what, sizeof(what), "converting %s", in);
		ret = lp_cmd_fail(what, &err, r);
		goto out;
	}

	lp_digest_format(&res.toc_digest, toc);
	lp_digest_format(&res.diff_id, diff);
	lp_digest_format(&res.blob_digest, dig);
	lp_digest_format(&res.manifest_checksum, mck);
	if (json) {
		printf("{\"format\":\"%s\",\"toc-digest\":\"%s\","
		       "\"diff-id\":\"%s\",\"uncompressed-size\":%llu,"
		       "\"size\":%llu,\"digest\":\"%s\"",
		       format_option_name(co.format), toc, diff,
		       (unsigned long long)res.uncompressed_size,
		       (unsigned long long)res.size, dig);
		if (co.format == LP_FMT_ZSTD_CHUNKED)
			printf(",\"manifest-checksum\":\"%s\","
			       "\"manifest-position\":\"%llu:%llu:%llu:1\"",
			       mck, (unsigned long long)res.toc_offset,
			       (unsigned long long)res.toc_compressed_size,
			       (unsigned long long)res.toc_uncompressed_size);
		printf("}\n");
	} else {
		printf("toc-digest=%s\ndiff-id=%s\nuncompressed-size=%llu\n"
		       "size=%llu\ndigest=%s\n",
		       toc, diff, (unsigned long long)res.uncompressed_size,
		       (unsigned long long)res.size, dig);
		if (co.format == LP_FMT_ZSTD_CHUNKED)
			printf("manifest-checksum=%s\n"
			       "manifest-position=%llu:%llu:%llu:1\n",
			       mck, (unsigned long long)res.toc_offset,
			       (unsigned long long)res.toc_compressed_size,
			       (unsigned long long)res.toc_uncompressed_size);
	}
	ret = fflush(stdout) == 0 ? LP_EXIT_OK : LP_EXIT_FAIL;
out:
	if (fd > STDIN_FILENO)
		close(fd);
	lp_prio_list_free(prio);
	return ret;
}

/* --- inspect --- */

static const char inspect_usage[] =
	"Usage: lazypull layer inspect [--toc] BLOB\n"
	"\n"
	"Print a layer's format, TOC digest, entry/file/chunk counts and sizes\n"
	"as key=value lines. The TOC digest printed is computed, not checked:\n"
	"use 'layer verify' to check a layer against its annotation.\n"
	"\n"
	"  --toc       print the TOC JSON instead\n"
	"  -h, --help  this help\n";

static int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = { { "toc", no_argument, NULL, 't' },
					      { "help", no_argument, NULL,
						'h' },
					      {} };
	uint64_t files = 0, dirs = 0, links = 0, other = 0, file_bytes = 0;
	struct lp_layer *layer = NULL;
	const struct lp_footer *ft;
	const struct lp_toc *toc;
	char dig[LP_DIGEST_STR_LEN + 1];
	bool want_toc = false;
	size_t json_len;
	const void *json;
	uint32_t i, n;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			want_toc = true;
			break;
		case 'h':
			fputs(inspect_usage, stdout);
			return LP_EXIT_OK;
		default:
			return lp_cmd_usage_error("layer inspect",
						  "bad option");
		}
	}
	if (argc - optind != 1)
		return lp_cmd_usage_error("layer inspect", "needs one BLOB");
	r = open_layer(argv[optind], NULL, &layer);
	if (r < 0)
		return LP_EXIT_FAIL;

	json = lp_layer_toc_json(layer, &json_len);
	if (want_toc) {
		fwrite(json, 1, json_len, stdout);
		if (json_len && ((const char *)json)[json_len - 1] != '\n')
			putchar('\n');
		goto out;
	}
	toc = lp_layer_toc(layer);
	ft = lp_layer_footer(layer);
	n = lp_toc_nr_entries(toc);
	for (i = 0; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);

		switch (e->type) {
		case LP_TOC_REG:
			files++;
			file_bytes += e->size;
			break;
		case LP_TOC_DIR:
			dirs++;
			break;
		case LP_TOC_HARDLINK:
		case LP_TOC_SYMLINK:
			links++;
			break;
		default:
			other++;
		}
	}
	lp_digest_format(lp_layer_toc_digest(layer), dig);
	printf("format=%s\n", lp_format_name(lp_layer_format(layer)));
	printf("size=%llu\n",
	       (unsigned long long)lp_blob_size(lp_layer_blob(layer)));
	printf("toc-digest=%s\n", dig);
	printf("toc-offset=%llu\n", (unsigned long long)ft->toc_offset);
	printf("toc-size=%llu\n", (unsigned long long)json_len);
	printf("entries=%u\n", n);
	printf("files=%llu\ndirs=%llu\nlinks=%llu\nother=%llu\n",
	       (unsigned long long)files, (unsigned long long)dirs,
	       (unsigned long long)links, (unsigned long long)other);
	printf("chunks=%u\n", lp_toc_nr_chunks(toc));
	printf("file-bytes=%llu\n", (unsigned long long)file_bytes);
	printf("prefetch-size=%llu\n",
	       (unsigned long long)lp_toc_prefetch_end(toc));
out:
	lp_layer_free(layer);
	return fflush(stdout) == 0 ? LP_EXIT_OK : LP_EXIT_FAIL;
}

/* --- verify --- */

struct verify_file {
	uint32_t ino;
	int result; /* 0, or -errno */
	struct lp_digest digest;
	struct lp_err err;
};

struct verify_job {
	struct lp_layer *layer;
	struct verify_file *files;
	uint32_t nr_files;
	atomic_uint next; /* next index into files to take */
};

/* verify reads to check, and keeps nothing */
static int drop_sink(void *opaque, const void *data, size_t len)
{
	(void)opaque;
	(void)data;
	(void)len;
	return 0;
}

static void *verify_worker(void *arg)
{
	struct verify_job *job = arg;
	struct lp_chunk_decoder *dec = NULL;
	int setup;
	uint32_t i;

	setup = lp_chunk_decoder_new(
		lp_format_compression(lp_layer_format(job->layer)), &dec);
	while ((i = atomic_fetch_add(&job->next, 1)) < job->nr_files) {
		struct verify_file *f = &job->files[i];

		if (setup < 0) {
			f->result = setup;
			continue;
		}
		/* every chunk, and the file digest over the whole file */
		f->result =
			lp_layer_read_file(job->layer, dec, f->ino, drop_sink,
					   NULL, &f->digest, &f->err);
	}
	lp_chunk_decoder_free(dec);
	return NULL;
}

struct list_line {
	char *path; /* owned */
	const struct lp_digest *digest;
};

static int cmp_list_line(const void *a, const void *b)
{
	return strcmp(((const struct list_line *)a)->path,
		      ((const struct list_line *)b)->path);
}

static const char verify_usage[] =
	"Usage: lazypull layer verify --toc-digest D [--list] BLOB\n"
	"\n"
	"Check that the TOC's sha256 is D (the layer's\n"
	"containerd.io/snapshot/stargz/toc.digest annotation), then decompress\n"
	"every chunk of every file and check it against its chunkDigest (a\n"
	"single-chunk file without one: its file digest), and every file against\n"
	"its digest. A file nothing vouches for fails. Exit 0 only when\n"
	"everything matches.\n"
	"\n"
	"  --toc-digest D  the expected TOC digest (sha256:...)\n"
	"  --list          print every regular file (hardlinks resolved) as\n"
	"                  'path sha256:hex', sorted bytewise\n"
	"  --threads N     verify with N threads (default: all CPUs)\n"
	"  -h, --help      this help\n";

/* a `layer verify` command line */
struct verify_args {
	const char *path;
	struct lp_digest want;
	bool list;
	long nthreads; /* 0: all CPUs */
};

/* returned by verify_parse() when the command is to go on */
#define VERIFY_ARGS_OK (-1)

static int verify_parse(int argc, char **argv, struct verify_args *a)
{
	static const struct option opts[] = {
		{ "toc-digest", required_argument, NULL, 'd' },
		{ "list", no_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *toc_digest = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			toc_digest = optarg;
			break;
		case 'l':
			a->list = true;
			break;
		case 't':
			if (lp_cmd_parse_int(optarg, 1, VERIFY_MAX_THREADS,
					     &a->nthreads) < 0)
				return lp_cmd_usage_error("layer verify",
							  "bad --threads '%s'",
							  optarg);
			break;
		case 'h':
			fputs(verify_usage, stdout);
			return LP_EXIT_OK;
		default:
			return lp_cmd_usage_error("layer verify", "bad option");
		}
	}
	if (argc - optind != 1)
		return lp_cmd_usage_error("layer verify", "needs one BLOB");
	if (!toc_digest)
		return lp_cmd_usage_error(
			"layer verify",
			"needs --toc-digest (the layer's containerd.io/snapshot/stargz/toc.digest annotation)");
	if (lp_digest_parse(toc_digest, &a->want) < 0)
		return lp_cmd_usage_error("layer verify",
					  "bad --toc-digest '%s'", toc_digest);
	a->path = argv[optind];
	return VERIFY_ARGS_OK;
}

/* job->files: one per regular file (inode); *ret_file_of_ino maps every
 * entry to its file's index, UINT32_MAX for entries that are no file */
static int verify_index_files(const struct lp_toc *toc, struct verify_job *job,
			      uint32_t **ret_file_of_ino)
{
	uint32_t i, n = lp_toc_nr_entries(toc), *file_of_ino;

	job->files = calloc(n, sizeof(*job->files));
	file_of_ino = malloc((size_t)n * sizeof(*file_of_ino));
	if (!job->files || !file_of_ino) {
		free(file_of_ino);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);

		file_of_ino[i] = UINT32_MAX;
		if (e->type == LP_TOC_REG) {
			file_of_ino[i] = job->nr_files;
			job->files[job->nr_files++].ino = i;
		}
	}
	*ret_file_of_ino = file_of_ino;
	return 0;
}

/* verify every file of @job on @nthreads threads (0: one per CPU) */
static int verify_run(struct verify_job *job, long nthreads)
{
	pthread_t tids[VERIFY_MAX_THREADS];
	int r, started;

	if (!nthreads) {
		nthreads = sysconf(_SC_NPROCESSORS_ONLN);
		if (nthreads < 1)
			nthreads = 1;
		if (nthreads > VERIFY_MAX_THREADS)
			nthreads = VERIFY_MAX_THREADS;
	}
	atomic_init(&job->next, 0);
	for (started = 0; started < nthreads; started++) {
		r = pthread_create(&tids[started], NULL, verify_worker, job);
		if (r) {
			if (!started)
				return -r;
			break;
		}
	}
	while (started > 0)
		pthread_join(tids[--started], NULL);
	return 0;
}

/* each file's failure printed (lp_layer_read_file() checked its chunks and
 * its file digest). Returns how many failed. */
static uint32_t verify_report(const struct lp_toc *toc, struct verify_job *job,
			      const char *path)
{
	uint32_t i, bad = 0;

	for (i = 0; i < job->nr_files; i++) {
		struct verify_file *f = &job->files[i];
		char epath[LP_TOC_MAX_PATH + 1];

		if (f->result < 0) {
			lp_toc_entry_path(toc, f->ino, epath, sizeof(epath));
			fprintf(stderr, "lazypull: %s: %s: %s\n", path, epath,
				lp_err_str(&f->err, f->result));
			bad++;
		}
	}
	return bad;
}

/* --list: every regular file and hardlink as "path sha256:hex", sorted */
static int verify_list(const struct lp_toc *toc, const struct verify_job *job,
		       const uint32_t *file_of_ino)
{
	uint32_t i, n = lp_toc_nr_entries(toc), nr_lines = 0;
	struct list_line *lines;
	int r = 0;

	lines = calloc(n, sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		uint32_t fi = file_of_ino[lp_toc_entry_ino(toc, e)];
		char epath[LP_TOC_MAX_PATH + 1];

		if (e->type != LP_TOC_REG && e->type != LP_TOC_HARDLINK)
			continue;
		if (fi == UINT32_MAX)
			continue;
		lp_toc_entry_path(toc, i, epath, sizeof(epath));
		lines[nr_lines].path = strdup(epath);
		if (!lines[nr_lines].path) {
			r = -ENOMEM;
			goto out;
		}
		lines[nr_lines].digest = &job->files[fi].digest;
		nr_lines++;
	}
	qsort(lines, nr_lines, sizeof(*lines), cmp_list_line);
	for (i = 0; i < nr_lines; i++) {
		char d[LP_DIGEST_STR_LEN + 1];

		lp_digest_format(lines[i].digest, d);
		printf("%s %s\n", lines[i].path, d);
	}
out:
	for (i = 0; i < nr_lines; i++)
		free(lines[i].path);
	free(lines);
	return r;
}

static int cmd_verify(int argc, char **argv)
{
	struct verify_args a = { 0 };
	struct verify_job job = { 0 };
	struct lp_layer *layer = NULL;
	const struct lp_toc *toc;
	uint32_t *file_of_ino = NULL; /* inode entry -> index in files */
	uint32_t bad;
	int r, ret;

	ret = verify_parse(argc, argv, &a);
	if (ret != VERIFY_ARGS_OK)
		return ret;
	ret = LP_EXIT_FAIL;
	if (open_layer(a.path, &a.want, &layer) < 0)
		return LP_EXIT_FAIL;
	toc = lp_layer_toc(layer);
	job.layer = layer;
	if (verify_index_files(toc, &job, &file_of_ino) < 0) {
		fprintf(stderr, "lazypull: %s: out of memory\n", a.path);
		goto out;
	}
	r = verify_run(&job, a.nthreads);
	if (r < 0) {
		fprintf(stderr, "lazypull: %s\n", strerror(-r));
		goto out;
	}
	bad = verify_report(toc, &job, a.path);
	if (bad) {
		fprintf(stderr,
			"lazypull: %s: %u of %u files failed verification\n",
			a.path, bad, job.nr_files);
		goto out;
	}
	if (a.list) {
		if (verify_list(toc, &job, file_of_ino) < 0) {
			fprintf(stderr, "lazypull: out of memory\n");
			goto out;
		}
	} else {
		lp_log_info("%s: TOC digest and %u files verified", a.path,
			    job.nr_files);
	}
	ret = fflush(stdout) == 0 ? LP_EXIT_OK : LP_EXIT_FAIL;
out:
	free(file_of_ino);
	free(job.files);
	lp_layer_free(layer);
	return ret;
}

/* --- extract --- */

/*
 * fill_archive_entry() - describe TOC entry @e (at @path) for
 * archive_write_disk. Attributes come from the inode entry (a hardlink's
 * target).
 */
static void fill_archive_entry(struct archive_entry *ae,
			       const struct lp_toc *toc,
			       const struct lp_toc_entry *e, const char *path)
{
	const struct lp_toc_entry *ino =
		lp_toc_entry(toc, lp_toc_entry_ino(toc, e));
	char ino_path[LP_TOC_MAX_PATH + 1];
	const struct lp_toc_xattr *xs;
	uint32_t i, nr, maj, min, mtime_nsec;
	int64_t mtime_sec;

	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, path);
	archive_entry_set_uid(ae, lp_toc_entry_uid(toc, ino));
	archive_entry_set_gid(ae, lp_toc_entry_gid(toc, ino));
	archive_entry_set_perm(ae, ino->mode & 07777);
	lp_toc_entry_mtime(toc, ino, &mtime_sec, &mtime_nsec);
	archive_entry_set_mtime(ae, (time_t)mtime_sec, mtime_nsec);
	if (e->type == LP_TOC_HARDLINK) {
		archive_entry_set_filetype(ae, AE_IFREG);
		lp_toc_entry_path(toc, lp_toc_entry_ino(toc, e), ino_path,
				  sizeof(ino_path));
		archive_entry_set_hardlink(ae, ino_path);
		archive_entry_set_size(ae, 0);
		return;
	}
	switch (e->type) {
	case LP_TOC_DIR:
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case LP_TOC_REG:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_size(ae, (la_int64_t)e->size);
		break;
	case LP_TOC_SYMLINK:
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, lp_toc_entry_link_name(toc, e));
		break;
	case LP_TOC_CHAR:
	case LP_TOC_BLOCK:
		archive_entry_set_filetype(
			ae, e->type == LP_TOC_CHAR ? AE_IFCHR : AE_IFBLK);
		lp_toc_entry_dev(toc, e, &maj, &min);
		archive_entry_set_rdevmajor(ae, maj);
		archive_entry_set_rdevminor(ae, min);
		break;
	case LP_TOC_FIFO:
		archive_entry_set_filetype(ae, AE_IFIFO);
		break;
	}
	xs = lp_toc_entry_xattrs(toc, e, &nr);
	for (i = 0; i < nr; i++)
		archive_entry_xattr_add_entry(ae, xs[i].name, xs[i].value,
					      xs[i].len);
}

/*
 * Extraction writes in place into DIR, as tar -x does (DIR may exist and
 * hold files; entries of the layer replace what is at their names). A
 * regular file goes to a temporary file beside its name first (created
 * with O_EXCL, mode 0600) and is renamed onto its name only after all its
 * bytes were verified (lp_layer_read_file() returned 0): no name ever shows
 * unverified bytes. On a failure the temporary file is removed; files
 * extracted before it stay (they were verified).
 */
struct extract {
	struct lp_layer *layer;
	struct lp_chunk_decoder *dec;
	struct archive *disk;
	struct archive_entry *ae;
	const char *blob;
	int flags; /* archive_write_disk options for every other entry */
};

/*
 * The temporary file being written, for the signal handler: tmp_armed is
 * set only while tmp_path holds a complete name (relative to DIR, our
 * working directory while extracting).
 */
static char tmp_path[LP_TOC_MAX_PATH + NAME_MAX + 2];
static volatile sig_atomic_t tmp_armed;

static void extract_on_signal(int sig)
{
	if (tmp_armed)
		unlink(tmp_path); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int extract_signals[] = { SIGHUP, SIGINT, SIGTERM };

static void extract_signals_set(bool on)
{
	struct sigaction sa = { 0 };
	size_t i;

	sa.sa_handler = on ? extract_on_signal : SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < LP_ARRAY_SIZE(extract_signals); i++)
		sigaction(extract_signals[i], &sa, NULL);
}

/* tmp_path := "DIRNAME/.NAME.lazypull-XXXXXX" for @path (random X) */
static int make_tmp_name(const char *path)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	int dlen = slash ? (int)(slash - path + 1) : 0;
	unsigned char rnd[6];
	char sfx[sizeof(rnd) + 1];
	size_t i;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -errno;
	for (i = 0; i < sizeof(rnd); i++)
		sfx[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
	sfx[sizeof(rnd)] = '\0';
	tmp_armed = 0;
	/* a name too long to carry along is left out */
	if (strlen(name) + sizeof(".lazypull-XXXXXX") + 1 > NAME_MAX)
		snprintf(tmp_path, sizeof(tmp_path), "%.*s.lazypull-%s", dlen,
			 path, sfx);
	else
		snprintf(tmp_path, sizeof(tmp_path), "%.*s.%s.lazypull-%s",
			 dlen, path, name, sfx);
	return 0;
}

static void tmp_remove(void)
{
	if (tmp_armed && unlink(tmp_path) < 0 && errno != ENOENT)
		lp_log_warn("cannot remove %s: %s", tmp_path, strerror(errno));
	tmp_armed = 0;
}

struct extract_sink {
	struct archive *disk;
	struct lp_err *err;
};

static int disk_sink(void *opaque, const void *data, size_t len)
{
	struct extract_sink *s = opaque;
	la_ssize_t n;

	n = archive_write_data(s->disk, data, len);
	if (n < 0 || (size_t)n != len)
		return lp_err_set(s->err, -EIO, "writing %s: %s", tmp_path,
				  archive_error_string(s->disk));
	return 0;
}

/*
 * extract_file() - regular file entry @ino at @path: write it to a new
 * temporary file (owner, xattrs and mtime as the layer says, mode 0600),
 * verify it, rename it onto @path and give it its mode. Prints its error;
 * the temporary file is gone on return. 0 or -errno.
 */
static int extract_file(struct extract *x, uint32_t ino, const char *path)
{
	const struct lp_toc *toc = lp_layer_toc(x->layer);
	const struct lp_toc_entry *e = lp_toc_entry(toc, ino);
	struct lp_err err = { 0 };
	struct extract_sink sink = { x->disk, &err };
	char what[LP_TOC_MAX_PATH + PATH_MAX + 4];
	mode_t mode = e->mode & 07777;
	struct stat st;
	int r, tries;

	snprintf(what, sizeof(what), "%s: %s", x->blob, path);
	/* a fresh name, never one that exists (O_EXCL) */
	archive_write_disk_set_options(x->disk,
				       (x->flags & ~ARCHIVE_EXTRACT_UNLINK) |
					       ARCHIVE_EXTRACT_NO_OVERWRITE);
	for (tries = 0;; tries++) {
		r = make_tmp_name(path);
		if (r < 0) {
			lp_err_set(&err, r, "no random name: %s", strerror(-r));
			goto fail;
		}
		fill_archive_entry(x->ae, toc, e, tmp_path);
		archive_entry_set_perm(x->ae, 0600);
		/*
		 * armed before the file exists, so that a signal never
		 * finds it unarmed (a name taken already - EEXIST, a random
		 * collision - could only be another extract's temporary)
		 */
		tmp_armed = 1;
		r = archive_write_header(x->disk, x->ae);
		if (r >= ARCHIVE_WARN)
			break;
		tmp_armed = 0;
		if (archive_errno(x->disk) != EEXIST ||
		    tries + 1 == EXTRACT_TMP_TRIES) {
			r = lp_err_set(&err, -EIO, "%s",
				       archive_error_string(x->disk));
			goto fail;
		}
	}
	if (r == ARCHIVE_WARN)
		lp_log_warn("%s: %s", what, archive_error_string(x->disk));
	/* nothing of the file is published before this returned 0 */
	r = lp_layer_read_file(x->layer, x->dec, ino, disk_sink, &sink, NULL,
			       &err);
	if (r < 0)
		goto fail;
	r = archive_write_finish_entry(x->disk);
	if (r < ARCHIVE_WARN) {
		r = lp_err_set(&err, -EIO, "%s", archive_error_string(x->disk));
		goto fail;
	}
	if (r == ARCHIVE_WARN)
		lp_log_warn("%s: %s", what, archive_error_string(x->disk));
	/* verified: publish it; an (empty) directory gives way, as in tar */
	if (rename(tmp_path, path) < 0 && (errno != EISDIR || rmdir(path) < 0 ||
					   rename(tmp_path, path) < 0)) {
		r = lp_err_set(&err, -errno, "renaming %s onto it: %s",
			       tmp_path, strerror(errno));
		goto fail;
	}
	tmp_armed = 0;
	/* the owner is set: a set-id bit stays only with the owner it is for */
	if (lstat(path, &st) == 0) {
		if (st.st_uid != lp_toc_entry_uid(toc, e))
			mode &= ~(mode_t)S_ISUID;
		if (st.st_gid != lp_toc_entry_gid(toc, e))
			mode &= ~(mode_t)S_ISGID;
	}
	if (chmod(path, mode) < 0) {
		r = -errno;
		fprintf(stderr, "lazypull: %s: setting mode %04o: %s\n", what,
			(unsigned int)mode, strerror(-r));
		goto out;
	}
	r = 0;
	goto out;
fail:
	tmp_remove();
	lp_cmd_fail(what, &err, r);
out:
	archive_write_disk_set_options(x->disk, x->flags);
	return r;
}

static const char extract_usage[] =
	"Usage: lazypull layer extract BLOB DIR\n"
	"\n"
	"Verify and unpack a layer into DIR (created if missing; files already\n"
	"in it stay unless the layer has an entry of the same name, as with\n"
	"tar -x): file contents, modes, numeric owners (as container runtimes\n"
	"apply layers), xattrs, mtimes, symlinks, hardlinks, devices and fifos.\n"
	"Whiteout files (.wh.*) are written as the plain files they are in the\n"
	"layer. A file's bytes are verified before it appears under its name:\n"
	"every chunk against its chunkDigest, else (a single-chunk file) against\n"
	"the file digest; a file of several chunks without chunkDigests against\n"
	"its file digest over the whole file. A file nothing vouches for is\n"
	"refused. On a failure extract exits 1 naming the file; files extracted\n"
	"before it stay (they were verified), the failed one is not written.\n"
	"\n"
	"  --toc-digest D  also require the TOC digest to be D\n"
	"  -h, --help      this help\n";

/* write entry @e (no regular file) at @path; prints its error */
static int extract_other(struct extract *x, const struct lp_toc_entry *e,
			 const char *path)
{
	int r;

	fill_archive_entry(x->ae, lp_layer_toc(x->layer), e, path);
	r = archive_write_header(x->disk, x->ae);
	if (r == ARCHIVE_WARN)
		lp_log_warn("%s: %s: %s", x->blob, path,
			    archive_error_string(x->disk));
	if (r >= ARCHIVE_WARN)
		r = archive_write_finish_entry(x->disk);
	if (r < ARCHIVE_WARN) {
		fprintf(stderr, "lazypull: %s: %s: %s\n", x->blob, path,
			archive_error_string(x->disk));
		return -EIO;
	}
	return 0;
}

/*
 * extract_entries() - write every entry of the layer but its root into the
 * working directory (DIR). Prints its error; 0 or -errno.
 */
static int extract_entries(struct extract *x)
{
	const struct lp_toc *toc = lp_layer_toc(x->layer);
	uint32_t i, n = lp_toc_nr_entries(toc);
	int r;

	/* the root (entry 0) is DIR itself: extract_root() */
	for (i = 1; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		char path[LP_TOC_MAX_PATH + 1];

		/* parents missing from the TOC are made by libarchive */
		if (e->flags & LP_TOC_IMPLIED)
			continue;
		lp_toc_entry_path(toc, i, path, sizeof(path));
		if (e->type == LP_TOC_REG) {
			r = extract_file(x, i, path);
			if (r < 0)
				return r;
			continue;
		}
		r = extract_other(x, e, path);
		if (r < 0)
			return r;
	}
	/*
	 * libarchive gives a directory that existed before its entry (in a
	 * non-empty DIR) its times at once, and the entries written into it
	 * afterwards change its mtime; GNU tar defers them. Writing every
	 * directory entry again after the last entry makes them as the layer
	 * says (new directories get theirs on close, the same again).
	 */
	for (i = 1; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		char path[LP_TOC_MAX_PATH + 1];

		if (e->type != LP_TOC_DIR || (e->flags & LP_TOC_IMPLIED))
			continue;
		lp_toc_entry_path(toc, i, path, sizeof(path));
		r = extract_other(x, e, path);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * extract_root() - the layer's own root entry ("./", when it has one) gives
 * the working directory (DIR) its owner, mode, xattrs and mtime, as with
 * tar -x; called after the last entry was written (its mtime stays). Only
 * root may give a directory away. What cannot be set (DIR is another
 * user's, a trusted.* xattr without privilege) is a warning, as libarchive
 * makes it for every other entry.
 */
static void extract_root(const struct lp_toc *toc, const char *dir)
{
	const struct lp_toc_entry *e = lp_toc_entry(toc, 0);
	const struct lp_toc_xattr *xs;
	struct timespec ts[2];
	uint32_t i, nr, mtime_nsec;
	int64_t mtime_sec;

	if (e->flags & LP_TOC_IMPLIED)
		return;
	if (getuid() == 0 &&
	    chown(".", lp_toc_entry_uid(toc, e), lp_toc_entry_gid(toc, e)) < 0)
		lp_log_warn("%s: cannot give it the layer's owner: %s", dir,
			    strerror(errno));
	if (chmod(".", e->mode & 07777) < 0)
		lp_log_warn("%s: cannot give it the layer's mode: %s", dir,
			    strerror(errno));
	xs = lp_toc_entry_xattrs(toc, e, &nr);
	for (i = 0; i < nr; i++)
		if (lsetxattr(".", xs[i].name, xs[i].value, xs[i].len, 0) < 0)
			lp_log_warn("%s: cannot set xattr %s: %s", dir,
				    xs[i].name, strerror(errno));
	lp_toc_entry_mtime(toc, e, &mtime_sec, &mtime_nsec);
	ts[0].tv_sec = ts[1].tv_sec = (time_t)mtime_sec;
	ts[0].tv_nsec = ts[1].tv_nsec = mtime_nsec;
	if (utimensat(AT_FDCWD, ".", ts, 0) < 0)
		lp_log_warn("%s: cannot give it the layer's mtime: %s", dir,
			    strerror(errno));
}

static int cmd_extract(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "toc-digest", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct extract x = { 0 };
	struct lp_digest want, *wantp = NULL;
	const char *dir;
	int c, r, cwd = -1, ret = LP_EXIT_FAIL;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (lp_digest_parse(optarg, &want) < 0)
				return lp_cmd_usage_error(
					"layer extract",
					"bad --toc-digest '%s'", optarg);
			wantp = &want;
			break;
		case 'h':
			fputs(extract_usage, stdout);
			return LP_EXIT_OK;
		default:
			return lp_cmd_usage_error("layer extract",
						  "bad option");
		}
	}
	if (argc - optind != 2)
		return lp_cmd_usage_error("layer extract",
					  "needs BLOB and DIR");
	x.blob = argv[optind];
	dir = argv[optind + 1];
	if (open_layer(x.blob, wantp, &x.layer) < 0)
		return LP_EXIT_FAIL;

	r = lp_chunk_decoder_new(
		lp_format_compression(lp_layer_format(x.layer)), &x.dec);
	if (r < 0) {
		lp_cmd_fail(x.blob, NULL, r);
		goto out;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "lazypull: %s: %s\n", dir, strerror(errno));
		goto out;
	}
	/*
	 * archive_write_disk resolves relative paths against the working
	 * directory; with SECURE_* flags it refuses "..", absolute paths and
	 * writes through symlinks, so entries cannot escape DIR.
	 */
	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(dir) < 0) {
		fprintf(stderr, "lazypull: %s: %s\n", dir, strerror(errno));
		goto out;
	}
	x.disk = archive_write_disk_new();
	x.ae = archive_entry_new();
	if (!x.disk || !x.ae) {
		fprintf(stderr, "lazypull: out of memory\n");
		goto out;
	}
	x.flags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
		  ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
		  ARCHIVE_EXTRACT_UNLINK | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
	archive_write_disk_set_options(x.disk, x.flags);
	extract_signals_set(true);
	r = extract_entries(&x);
	extract_signals_set(false);
	if (r < 0)
		goto out;
	/* directory modes and times are fixed up on close */
	if (archive_write_close(x.disk) != ARCHIVE_OK) {
		fprintf(stderr, "lazypull: %s: %s\n", dir,
			archive_error_string(x.disk));
		goto out;
	}
	extract_root(lp_layer_toc(x.layer), dir);
	ret = LP_EXIT_OK;
out:
	archive_entry_free(x.ae);
	/* after a failure this still fixes up the directories made so far */
	archive_write_free(x.disk);
	if (cwd >= 0) {
		if (fchdir(cwd) < 0)
			lp_log_warn("cannot return to the working directory");
		close(cwd);
	}
	lp_chunk_decoder_free(x.dec);
	lp_layer_free(x.layer);
	return ret;
}

/* --- dispatch --- */

static const char layer_usage[] =
	"Usage: lazypull layer COMMAND [OPTIONS] ARGS\n"
	"\n"
	"  convert [--format F] [--chunk-size N] [--level L] [--prioritize FILE]\n"
	"          [--json] IN OUT\n"
	"  inspect [--toc] BLOB\n"
	"  verify --toc-digest D [--list] BLOB\n"
	"  extract BLOB DIR\n"
	"\n"
	"'lazypull layer COMMAND --help' describes a command.\n";

int lp_cmd_layer(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "convert", cmd_convert },
		{ "inspect", cmd_inspect },
		{ "verify", cmd_verify },
		{ "extract", cmd_extract },
	};
	size_t i;

	if (argc < 2) {
		fputs(layer_usage, stderr);
		return LP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(layer_usage, stdout);
		return LP_EXIT_OK;
	}
	for (i = 0; i < LP_ARRAY_SIZE(cmds); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "lazypull layer: unknown command '%s'\n%s", argv[1],
		layer_usage);
	return LP_EXIT_USAGE;
}
