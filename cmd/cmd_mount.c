// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull mount`: mount one layer lazily with FUSE. Opens SOURCE as a blob
 * (open_source(): a local file today; registry references plug in there),
 * opens the layer and checks its TOC digest, mounts, then - unless
 * --foreground - forks into the background before any thread exists. The
 * child starts prefetch and background fetch, optionally waits for the
 * prefetch, tells the parent the mount is ready, and serves until
 * fusermount3 -u, umount or SIGTERM; then it unmounts and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "lp_fuse.h"
#include "lp_log.h"

#define MOUNT_MAX_PREFETCH_WAIT 3600 /* seconds */

static const char mount_usage[] =
	"Usage: lazypull mount [OPTIONS] SOURCE MOUNTPOINT\n"
	"\n"
	"Mount an eStargz / zstd:chunked layer read-only at MOUNTPOINT, fetching\n"
	"file contents on demand. SOURCE is a local blob file.\n"
	"\n"
	"Options:\n"
	"  --toc-digest D          the layer's TOC digest (annotation\n"
	"                          containerd.io/snapshot/stargz/toc.digest);\n"
	"                          the mount is refused when it does not match\n"
	"  --insecure-skip-toc-verify\n"
	"                          mount without a TOC digest: the TOC, and so\n"
	"                          every chunk digest, is trusted unchecked\n"
	"  --cache-dir DIR         keep verified chunks in DIR across mounts\n"
	"  --cache-max SIZE        bound of the disk cache (default 8G)\n"
	"  --mem-cache SIZE        memory cache budget (default 256M)\n"
	"  --no-prefetch           do not prefetch the prioritised files\n"
	"  --prefetch-wait SECS    wait up to SECS for the prefetch before\n"
	"                          returning (default 0)\n"
	"  --no-background-fetch   do not fetch the rest of the layer\n"
	"  --threads N             FUSE worker threads (default 16)\n"
	"  --foreground            stay in the foreground\n"
	"  --log-file FILE         append the daemon's log to FILE\n"
	"  -h, --help              this help\n"
	"\n"
	"Unmount with 'fusermount3 -u MOUNTPOINT' or SIGTERM to the daemon.\n";

enum {
	OPT_TOC_DIGEST = 256,
	OPT_SKIP_VERIFY,
	OPT_CACHE_DIR,
	OPT_CACHE_MAX,
	OPT_MEM_CACHE,
	OPT_NO_PREFETCH,
	OPT_PREFETCH_WAIT,
	OPT_NO_BACKGROUND,
	OPT_THREADS,
	OPT_FOREGROUND,
	OPT_LOG_FILE,
};

static const struct option mount_options[] = {
	{ "toc-digest", required_argument, NULL, OPT_TOC_DIGEST },
	{ "insecure-skip-toc-verify", no_argument, NULL, OPT_SKIP_VERIFY },
	{ "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
	{ "cache-max", required_argument, NULL, OPT_CACHE_MAX },
	{ "mem-cache", required_argument, NULL, OPT_MEM_CACHE },
	{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
	{ "prefetch-wait", required_argument, NULL, OPT_PREFETCH_WAIT },
	{ "no-background-fetch", no_argument, NULL, OPT_NO_BACKGROUND },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "foreground", no_argument, NULL, OPT_FOREGROUND },
	{ "log-file", required_argument, NULL, OPT_LOG_FILE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct mount_args {
	const char *source, *mountpoint;
	bool have_digest, skip_verify, foreground;
	struct lp_digest toc_digest;
	struct lp_fs_options fs;
	long prefetch_wait, threads;
	const char *log_file;
};

/*
 * open_source() - the blob SOURCE names. The hook for other sources: a
 * registry reference becomes an lp_registry blob here, and nothing after
 * this function knows the difference.
 */
static int open_source(const char *source, struct lp_blob **ret_blob,
		       struct lp_err *err)
{
	int r = lp_blob_open_file(source, ret_blob);

	if (r < 0)
		lp_err_set(err, r, "%s: %s", source, strerror(-r));
	return r;
}

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	uint64_t size;
	int c;

	lp_fs_options_init(&a->fs);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", mount_options, NULL)) != -1) {
		switch (c) {
		case OPT_TOC_DIGEST:
			if (lp_digest_parse(optarg, &a->toc_digest) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --toc-digest '%s'",
					optarg);
			a->have_digest = true;
			break;
		case OPT_SKIP_VERIFY:
			a->skip_verify = true;
			break;
		case OPT_CACHE_DIR:
			a->fs.cache_dir = optarg;
			break;
		case OPT_CACHE_MAX:
		case OPT_MEM_CACHE:
			if (lp_cmd_parse_size(optarg, &size) < 0 || !size ||
			    size > SIZE_MAX)
				return lp_cmd_usage_error(
					"mount", "bad size '%s'", optarg);
			if (c == OPT_CACHE_MAX)
				a->fs.disk_cache_bytes = size;
			else
				a->fs.mem_cache_bytes = (size_t)size;
			break;
		case OPT_NO_PREFETCH:
			a->fs.prefetch = false;
			break;
		case OPT_PREFETCH_WAIT:
			if (lp_cmd_parse_int(optarg, 0, MOUNT_MAX_PREFETCH_WAIT,
					     &a->prefetch_wait) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --prefetch-wait '%s'",
					optarg);
			break;
		case OPT_NO_BACKGROUND:
			a->fs.background_fetch = false;
			break;
		case OPT_THREADS:
			if (lp_cmd_parse_int(optarg, 1, LP_FUSE_MAX_THREADS,
					     &a->threads) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --threads '%s'", optarg);
			break;
		case OPT_FOREGROUND:
			a->foreground = true;
			break;
		case OPT_LOG_FILE:
			a->log_file = optarg;
			break;
		case 'h':
			fputs(mount_usage, stdout);
			return -1;
		default:
			return lp_cmd_usage_error("mount", "bad option");
		}
	}
	if (argc - optind != 2)
		return lp_cmd_usage_error("mount",
					  "need SOURCE and MOUNTPOINT");
	a->source = argv[optind];
	a->mountpoint = argv[optind + 1];
	if (!a->have_digest && !a->skip_verify)
		return lp_cmd_usage_error(
			"mount",
			"no --toc-digest: give the layer's TOC digest, or "
			"--insecure-skip-toc-verify to trust the blob as is");
	if (a->have_digest && a->skip_verify)
		return lp_cmd_usage_error(
			"mount", "--toc-digest and --insecure-skip-toc-verify "
				 "contradict each other");
	return 0;
}

/* the daemon's side of the start-up pipe: 0 ready, 1 failed */
static void tell_parent(int fd, char status)
{
	if (fd < 0)
		return;
	if (write(fd, &status, 1) != 1)
		lp_log_warn("cannot report to the parent: %s", strerror(errno));
	close(fd);
}

/* fork; the parent waits for the child's verdict and exits with it */
static int daemonize(int *ret_fd)
{
	int p[2];
	pid_t pid;
	char status = 1;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = 1; /* the child died before the mount */
		_exit(status ? LP_EXIT_FAIL : LP_EXIT_OK);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		lp_log_warn("chdir /: %s", strerror(errno));
	*ret_fd = p[1];
	return 0;
}

/* stdin/stdout to /dev/null, stderr (the log) to @log_fd or /dev/null */
static void detach_stdio(int log_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(log_fd >= 0 ? log_fd : null, STDERR_FILENO);
		close(null);
	}
}

int lp_cmd_mount(int argc, char **argv)
{
	struct lp_fuse_options fopts = { 0 };
	char fsname[LP_FUSE_FSNAME_MAX + 1];
	struct mount_args a = { 0 };
	struct lp_blob *blob = NULL;
	struct lp_layer *layer = NULL;
	struct lp_fs *fs = NULL;
	struct lp_fuse *fuse = NULL;
	struct lp_err err = { 0 };
	int ready_fd = -1, log_fd = -1, r, ret = LP_EXIT_FAIL;

	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? LP_EXIT_OK : r;
	if (a.skip_verify)
		lp_log_warn("--insecure-skip-toc-verify: the TOC of %s is "
			    "not verified; chunk digests come from it",
			    a.source);

	r = open_source(a.source, &blob, &err);
	if (r < 0) {
		ret = lp_cmd_fail("mount", &err, r);
		goto out;
	}
	r = lp_layer_open(blob, a.have_digest ? &a.toc_digest : NULL, &layer,
			  &err);
	if (r < 0) {
		ret = lp_cmd_fail("mount", &err, r);
		goto out;
	}
	r = lp_fs_new(layer, &a.fs, &fs, &err); /* takes the layer */
	layer = NULL;
	if (r < 0) {
		ret = lp_cmd_fail("mount", &err, r);
		goto out;
	}

	/* fsname: the source without commas (they separate mount options) */
	snprintf(fsname, sizeof(fsname), "lazypull:%s", a.source);
	for (char *p = fsname; *p; p++)
		if (*p == ',' || *p == ' ')
			*p = '_';
	fopts.fsname = fsname;
	fopts.max_threads = (unsigned int)a.threads;
	fopts.allow_other = getuid() == 0;
	r = lp_fuse_mount(fs, a.mountpoint, &fopts, &fuse, &err);
	if (r < 0) {
		ret = lp_cmd_fail(a.mountpoint, &err, r);
		goto out;
	}

	/* fork now: no thread exists yet */
	if (!a.foreground) {
		/* opened before the daemon leaves the working directory */
		if (a.log_file) {
			log_fd = open(a.log_file,
				      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				      0644);
			if (log_fd < 0) {
				ret = lp_cmd_fail(a.log_file, NULL, -errno);
				goto out;
			}
		}
		r = daemonize(&ready_fd);
		if (r < 0) {
			ret = lp_cmd_fail("fork", NULL, r);
			goto out;
		}
	}
	r = lp_fs_start(fs);
	if (r < 0) {
		ret = lp_cmd_fail("starting fetch threads", NULL, r);
		goto out;
	}
	if (a.prefetch_wait) {
		r = lp_fs_wait_prefetch(fs,
					(unsigned int)a.prefetch_wait * 1000);
		if (r == -ETIMEDOUT)
			lp_log_info("prefetch still running after %lds",
				    a.prefetch_wait);
		else if (r < 0)
			lp_log_warn("prefetch failed: %s", strerror(-r));
	}
	lp_log_info("mounted %s on %s", a.source, a.mountpoint);
	if (!a.foreground) {
		detach_stdio(log_fd);
		tell_parent(ready_fd, 0);
		ready_fd = -1;
	}
	r = lp_fuse_run(fuse);
	if (r < 0)
		lp_log_err("FUSE session: %s", strerror(-r));
	ret = r < 0 ? LP_EXIT_FAIL : LP_EXIT_OK;
out:
	tell_parent(ready_fd, 1);
	if (log_fd >= 0)
		close(log_fd);
	lp_fuse_free(fuse); /* unmounts before the threads stop */
	lp_fs_free(fs);
	lp_layer_free(layer);
	lp_blob_unref(blob);
	return ret;
}
