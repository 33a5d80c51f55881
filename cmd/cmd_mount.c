// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull mount`: mount one layer lazily with FUSE. Opens SOURCE as a blob
 * (open_source(): a local file, or with --layer one layer of an image in a
 * registry, read by HTTP Range requests; its TOC digest comes from the
 * layer's annotation), opens the layer and checks its TOC digest and mounts.
 * Unless --foreground, it forks into the background first, before any thread
 * exists, and the parent waits for the child's verdict. The child starts
 * prefetch and background fetch, optionally waits for the prefetch, tells
 * the parent the mount is ready, and serves until fusermount3 -u, umount or
 * SIGTERM; then it unmounts and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "lp_fuse.h"
#include "lp_index.h"
#include "lp_index_sig.h"
#include "lp_log.h"
#include "lp_mount.h"
#include "lp_registry.h"

#define MOUNT_MAX_PREFETCH_WAIT 3600 /* seconds */
#define MOUNT_MAX_INSECURE 16 /* --insecure-registry options */
#define MOUNT_MAX_RETRIES 100
#define MOUNT_MAX_TIMEOUT 3600 /* seconds */
#define MOUNT_MAX_CONNECT_MS 10000 /* connect timeout, at most */

static const char mount_usage[] =
	"Usage: lazypull mount [OPTIONS] SOURCE MOUNTPOINT\n"
	"       lazypull mount [OPTIONS] --layer DIGEST|INDEX IMAGE-REF MOUNTPOINT\n"
	"\n"
	"Mount an eStargz / zstd:chunked layer read-only at MOUNTPOINT, fetching\n"
	"file contents on demand. SOURCE is a local blob file; with --layer, the\n"
	"layer is read from a registry: IMAGE-REF's manifest for this host's\n"
	"platform is fetched and the layer picked by digest or index (from 0).\n"
	"\n"
	"Options:\n"
	"  --toc-digest D          the layer's TOC digest (annotation\n"
	"                          containerd.io/snapshot/stargz/toc.digest);\n"
	"                          the mount is refused when it does not match.\n"
	"                          For a registry layer it defaults to the\n"
	"                          annotation and must agree with it\n"
	"  --index FILE            SOURCE is a plain tar+gzip layer: mount it\n"
	"                          through its gzip index FILE (`lazypull\n"
	"                          index --output`); no TOC digest then\n"
	"  --index-proven-only     with --index: the default: read only from\n"
	"                          checkpoints a stream from the layer's first\n"
	"                          byte proved (a cold read deep in the layer\n"
	"                          fetches the layer up to it; what is not yet\n"
	"                          verified: docs/format.md)\n"
	"  --index-trusted-key FILE\n"
	"                          with --index: an Ed25519 public key (PEM)\n"
	"                          whose signed indexes are trusted: reads\n"
	"                          start at any checkpoint (repeatable)\n"
	"  --index-signature FILE  the index's signature: the sidecar\n"
	"                          `lazypull index --output --sign-key` wrote\n"
	"                          (DIR/<manifest hex>.gzidx.sig)\n"
	"  --index-window-rule     with --index: reads may also start at\n"
	"                          checkpoints nobody proved (fewer bytes\n"
	"                          fetched), believing their position until\n"
	"                          the proving pass passes them: a forged\n"
	"                          index can then serve other bytes of the\n"
	"                          layer (docs/format.md)\n"
	"  --insecure-skip-toc-verify\n"
	"                          mount without a TOC digest: the TOC, and so\n"
	"                          every chunk digest, is trusted unchecked\n"
	"  --cache-dir DIR         keep verified chunks in DIR across mounts\n"
	"  --cache-max SIZE        bound of the disk cache (default 8G)\n"
	"  --mem-cache SIZE        memory for verified chunks, the whole\n"
	"                          process (default 256M)\n"
	"  --no-prefetch           do not prefetch the prioritised files\n"
	"  --prefetch-wait SECS    wait up to SECS for the prefetch before\n"
	"                          returning (default 0)\n"
	"  --no-background-fetch   do not fetch the rest of the layer\n"
	"  --background-quiet MS   start the background fetch only after MS\n"
	"                          without prefetch or on-demand fetches\n"
	"                          (default 1000)\n"
	"  --threads N             FUSE worker threads (default 16)\n"
	"  --foreground            stay in the foreground\n"
	"\n"
	"Registry options (with --layer):\n"
	"  --layer DIGEST|INDEX    the layer of IMAGE-REF to mount\n"
	"  --plain-http            speak HTTP, not HTTPS, to IMAGE-REF's registry\n"
	"                          (always so for loopback addresses)\n"
	"  --insecure-registry H   plain HTTP for host H (repeatable)\n"
	"  --ca-file FILE          trust the CAs in FILE instead of the system's\n"
	"  --registry-config-dir DIR\n"
	"                          containerd's hosts.toml directory: mirrors,\n"
	"                          TLS and headers per registry (default\n"
	"                          " LP_REG_CONFIG_DIR_DEFAULT "; \"\": none)\n"
	"  --retries N             retries of a failed request (default 4)\n"
	"  --timeout SECS          give up on a blob read after about SECS,\n"
	"                          retries included (default 30); the read\n"
	"                          fails with EIO, cached data keeps working\n"
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
	OPT_BACKGROUND_QUIET,
	OPT_THREADS,
	OPT_FOREGROUND,
	OPT_LOG_FILE,
	OPT_LAYER,
	OPT_PLAIN_HTTP,
	OPT_INSECURE_REGISTRY,
	OPT_CA_FILE,
	OPT_REGISTRY_CONFIG_DIR,
	OPT_RETRIES,
	OPT_TIMEOUT,
	OPT_INDEX,
	OPT_INDEX_PROVEN_ONLY,
	OPT_INDEX_WINDOW_RULE,
	OPT_INDEX_TRUSTED_KEY,
	OPT_INDEX_SIGNATURE,
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
	{ "background-quiet", required_argument, NULL, OPT_BACKGROUND_QUIET },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "foreground", no_argument, NULL, OPT_FOREGROUND },
	{ "log-file", required_argument, NULL, OPT_LOG_FILE },
	{ "layer", required_argument, NULL, OPT_LAYER },
	{ "plain-http", no_argument, NULL, OPT_PLAIN_HTTP },
	{ "insecure-registry", required_argument, NULL, OPT_INSECURE_REGISTRY },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "registry-config-dir", required_argument, NULL,
	  OPT_REGISTRY_CONFIG_DIR },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "index", required_argument, NULL, OPT_INDEX },
	{ "index-proven-only", no_argument, NULL, OPT_INDEX_PROVEN_ONLY },
	{ "index-window-rule", no_argument, NULL, OPT_INDEX_WINDOW_RULE },
	{ "index-trusted-key", required_argument, NULL, OPT_INDEX_TRUSTED_KEY },
	{ "index-signature", required_argument, NULL, OPT_INDEX_SIGNATURE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct mount_args {
	const char *source, *mountpoint;
	bool have_digest, skip_verify, foreground;
	struct lp_digest toc_digest;
	struct lp_mount_opts mo; /* .fs from the options */
	long prefetch_wait, threads;
	const char *log_file;
	const char *index_path; /* --index; NULL: an eStargz layer */
	bool index_proven_only; /* --index-proven-only (the default) */
	struct lp_digest index_layer; /* the --layer descriptor's digest */
	struct lp_digest index_manifest; /* --layer: the image manifest's */
	bool have_index_manifest;
	const char
		*trusted_keys[LP_INDEX_SIG_MAX_KEYS]; /* --index-trusted-key */
	size_t nr_trusted_keys;
	const char *index_sig_path; /* --index-signature */
	/* registry sources (--layer) */
	const char *layer; /* NULL: SOURCE is a local file */
	bool plain_http;
	const char *insecure[MOUNT_MAX_INSECURE];
	size_t nr_insecure;
	const char *ca_file;
	const char *hosts_arg; /* --registry-config-dir; NULL: not given */
	const char *hosts_dir; /* what the client gets */
	long retries, timeout_s; /* -1: the registry client's defaults */
};

/* the descriptor --layer names in image manifest @m: a digest or an index */
static int pick_layer(const struct lp_reg_manifest *m, const char *layer,
		      const struct lp_reg_desc **ret_desc, struct lp_err *err)
{
	size_t i, n = lp_reg_manifest_count(m);
	struct lp_digest dg;
	long idx;

	if (lp_digest_parse(layer, &dg) == 0) {
		for (i = 0; i < n; i++) {
			if (lp_digest_equal(
				    &lp_reg_manifest_layer(m, i)->digest,
				    &dg)) {
				*ret_desc = lp_reg_manifest_layer(m, i);
				return 0;
			}
		}
		return lp_err_set(err, -ENOENT, "the image has no layer %s",
				  layer);
	}
	if (lp_cmd_parse_int(layer, 0, LP_REG_LAYERS_MAX - 1, &idx) < 0)
		return lp_err_set(err, -EINVAL,
				  "--layer %s: neither a digest nor an index",
				  layer);
	if ((size_t)idx >= n)
		return lp_err_set(err, -ENOENT,
				  "--layer %ld: the image has %zu layers", idx,
				  n);
	*ret_desc = lp_reg_manifest_layer(m, (size_t)idx);
	return 0;
}

/*
 * The TOC digest to verify against: the layer's annotation, which an
 * explicit --toc-digest must agree with. No annotation and no --toc-digest
 * refuses the mount unless --insecure-skip-toc-verify.
 */
static int layer_toc_digest(struct mount_args *a, const struct lp_reg_desc *d,
			    struct lp_err *err)
{
	const char *ann = lp_reg_desc_annotation(d, LP_MOUNT_ANN_TOC_DIGEST);
	char dgs[LP_DIGEST_STR_LEN + 1];
	struct lp_digest dg;

	lp_digest_format(&d->digest, dgs);
	if (ann && lp_digest_parse(ann, &dg) < 0)
		return lp_err_set(err, -EPROTO,
				  "layer %s: bad %s annotation '%.80s'", dgs,
				  LP_MOUNT_ANN_TOC_DIGEST, ann);
	if (ann && a->have_digest && !lp_digest_equal(&dg, &a->toc_digest))
		return lp_err_set(err, -EBADMSG,
				  "layer %s: --toc-digest does not match its "
				  "%s annotation %s",
				  dgs, LP_MOUNT_ANN_TOC_DIGEST, ann);
	if (ann && !a->skip_verify) {
		a->toc_digest = dg;
		a->have_digest = true;
	}
	if (!a->have_digest && !a->skip_verify)
		return lp_err_set(err, -EINVAL,
				  "layer %s has no %s annotation (not an "
				  "eStargz layer?): give --toc-digest, or "
				  "--insecure-skip-toc-verify",
				  dgs, LP_MOUNT_ANN_TOC_DIGEST);
	return 0;
}

/* client options; @hosts has room for the plain-HTTP hosts and a NULL */
static void registry_opts(const struct mount_args *a,
			  const struct lp_reg_ref *ref, const char **hosts,
			  struct lp_reg_opts *o)
{
	size_t n = 0, i;

	for (i = 0; i < a->nr_insecure; i++)
		hosts[n++] = a->insecure[i];
	if (a->plain_http)
		hosts[n++] = ref->host;
	hosts[n] = NULL;
	lp_reg_opts_init(o);
	o->insecure_hosts = hosts;
	o->ca_file = a->ca_file;
	o->spool_dir = a->mo.fs.cache_dir; /* NULL: $TMPDIR or /var/tmp */
	o->registry_config_dir = a->hosts_dir;
	if (a->retries >= 0)
		o->max_attempts = (unsigned int)a->retries + 1;
	if (a->timeout_s > 0) {
		/* a blob read, retries and back-off included, ends about then */
		o->retry_budget_ms = a->timeout_s * 1000;
		o->low_speed_time_s = a->timeout_s;
		o->connect_timeout_ms =
			a->timeout_s * 1000 < MOUNT_MAX_CONNECT_MS ?
				a->timeout_s * 1000 :
				MOUNT_MAX_CONNECT_MS;
		o->request_timeout_ms = a->timeout_s * 1000;
	}
}

/*
 * open_registry_layer() - the layer --layer names in image @a->source,
 * as a blob read by HTTP Range requests (it keeps the client alive), and
 * its last LP_MOUNT_TAIL_BYTES (footer and usually the TOC) read with one
 * request into *ret_tail (malloc'ed, *ret_tail_len bytes). Fills in the TOC
 * digest from the layer's annotation.
 */
static int open_registry_layer(struct mount_args *a, struct lp_blob **ret_blob,
			       uint8_t **ret_tail, size_t *ret_tail_len,
			       struct lp_err *err)
{
	const char *hosts[MOUNT_MAX_INSECURE + 2];
	const struct lp_reg_desc *d = NULL;
	struct lp_reg_manifest *m = NULL;
	struct lp_reg *reg = NULL;
	struct lp_reg_opts o;
	struct lp_reg_ref ref;
	int r;

	r = lp_reg_ref_parse(a->source, &ref);
	if (r < 0) {
		lp_err_set(err, r, "%s: not an image reference", a->source);
		goto out;
	}
	registry_opts(a, &ref, hosts, &o);
	r = lp_reg_new(&o, &reg);
	if (r < 0) {
		lp_err_set(err, r, "cannot set up the registry client");
		goto out;
	}
	r = lp_reg_manifest_fetch(reg, &ref, NULL, &m, err);
	if (r < 0)
		goto out;
	r = pick_layer(m, a->layer, &d, err);
	if (r < 0)
		goto out;
	if (a->index_path) {
		/* a plain gzip layer: no footer or TOC in a tail to read */
		struct lp_reg_blob *rb = NULL;

		a->index_layer = d->digest;
		a->mo.index_layer = &a->index_layer;
		a->index_manifest = *lp_reg_manifest_digest(m);
		a->have_index_manifest = true;
		r = lp_reg_blob_open(reg, &ref, &d->digest, d->size, &rb);
		if (r == 0)
			r = lp_reg_blob_as_blob(rb, ret_blob);
		lp_reg_blob_unref(rb);
		if (r < 0)
			lp_err_set(err, r, "%s: cannot open the layer blob: %s",
				   a->source, strerror(-r));
		goto out;
	}
	r = layer_toc_digest(a, d, err);
	if (r < 0)
		goto out;
	r = lp_mount_open_registry(reg, &ref, &d->digest, d->size, ret_blob,
				   ret_tail, ret_tail_len, err);
	if (r < 0)
		lp_err_set(err, r, "%s: cannot open the layer blob: %s",
			   a->source, lp_err_str(err, r));
out:
	lp_reg_manifest_free(m);
	lp_reg_free(reg); /* the blob holds its own reference */
	return r;
}

/*
 * open_source() - the blob SOURCE names: a local file, or with --layer a
 * registry blob. Nothing after this function knows the difference.
 */
static int open_source(struct mount_args *a, struct lp_blob **ret_blob,
		       uint8_t **ret_tail, size_t *ret_tail_len,
		       struct lp_err *err)
{
	int r;

	if (a->layer)
		return open_registry_layer(a, ret_blob, ret_tail, ret_tail_len,
					   err);
	r = lp_blob_open_file(a->source, ret_blob);
	if (r < 0)
		lp_err_set(err, r, "%s: %s", a->source, strerror(-r));
	return r;
}

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	uint64_t size;
	long v;
	int c;

	lp_mount_opts_init(&a->mo);
	a->retries = -1;
	a->timeout_s = -1;
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
			a->mo.fs.cache_dir = optarg;
			break;
		case OPT_CACHE_MAX:
		case OPT_MEM_CACHE:
			if (lp_cmd_parse_size(optarg, &size) < 0 || !size ||
			    size > SIZE_MAX)
				return lp_cmd_usage_error(
					"mount", "bad size '%s'", optarg);
			if (c == OPT_CACHE_MAX)
				a->mo.fs.disk_cache_bytes = size;
			else
				a->mo.fs.mem_cache_bytes = (size_t)size;
			break;
		case OPT_NO_PREFETCH:
			a->mo.fs.prefetch = false;
			break;
		case OPT_PREFETCH_WAIT:
			if (lp_cmd_parse_int(optarg, 0, MOUNT_MAX_PREFETCH_WAIT,
					     &a->prefetch_wait) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --prefetch-wait '%s'",
					optarg);
			break;
		case OPT_NO_BACKGROUND:
			a->mo.fs.background_fetch = false;
			break;
		case OPT_BACKGROUND_QUIET:
			if (lp_cmd_parse_int(optarg, 0,
					     LP_FS_MAX_BACKGROUND_QUIET_MS,
					     &v) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --background-quiet '%s'",
					optarg);
			a->mo.fs.background_quiet_ms = (unsigned int)v;
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
		case OPT_LAYER:
			a->layer = optarg;
			break;
		case OPT_PLAIN_HTTP:
			a->plain_http = true;
			break;
		case OPT_INSECURE_REGISTRY:
			if (a->nr_insecure >= MOUNT_MAX_INSECURE)
				return lp_cmd_usage_error(
					"mount",
					"more than %d --insecure-registry",
					MOUNT_MAX_INSECURE);
			a->insecure[a->nr_insecure++] = optarg;
			break;
		case OPT_CA_FILE:
			a->ca_file = optarg;
			break;
		case OPT_REGISTRY_CONFIG_DIR:
			a->hosts_arg = optarg;
			break;
		case OPT_RETRIES:
			if (lp_cmd_parse_int(optarg, 0, MOUNT_MAX_RETRIES,
					     &a->retries) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --retries '%s'", optarg);
			break;
		case OPT_TIMEOUT:
			if (lp_cmd_parse_int(optarg, 1, MOUNT_MAX_TIMEOUT,
					     &a->timeout_s) < 0)
				return lp_cmd_usage_error(
					"mount", "bad --timeout '%s'", optarg);
			break;
		case 'h':
			fputs(mount_usage, stdout);
			return -1;
		case OPT_INDEX:
			a->index_path = optarg;
			break;
		case OPT_INDEX_PROVEN_ONLY:
			a->index_proven_only = true; /* the default */
			break;
		case OPT_INDEX_WINDOW_RULE:
			a->mo.fs.index_window_rule = true;
			break;
		case OPT_INDEX_TRUSTED_KEY:
			if (a->nr_trusted_keys >= LP_INDEX_SIG_MAX_KEYS)
				return lp_cmd_usage_error(
					"mount",
					"at most %d --index-trusted-key",
					LP_INDEX_SIG_MAX_KEYS);
			a->trusted_keys[a->nr_trusted_keys++] = optarg;
			break;
		case OPT_INDEX_SIGNATURE:
			a->index_sig_path = optarg;
			break;
		default:
			return lp_cmd_usage_error("mount", "bad option");
		}
	}
	if (argc - optind != 2)
		return lp_cmd_usage_error("mount",
					  "need SOURCE and MOUNTPOINT");
	a->source = argv[optind];
	a->mountpoint = argv[optind + 1];
	if (!a->layer && (a->plain_http || a->nr_insecure || a->ca_file ||
			  a->hosts_arg || a->retries >= 0 || a->timeout_s >= 0))
		return lp_cmd_usage_error(
			"mount", "registry options need --layer and an image "
				 "reference");
	if (a->layer &&
	    lp_cmd_registry_config_dir("mount", a->hosts_arg, &a->hosts_dir))
		return LP_EXIT_USAGE;
	if ((a->index_proven_only || a->mo.fs.index_window_rule) &&
	    !a->index_path)
		return lp_cmd_usage_error(
			"mount", "--index-proven-only and --index-window-rule "
				 "need --index");
	if ((a->nr_trusted_keys || a->index_sig_path) && !a->index_path)
		return lp_cmd_usage_error("mount",
					  "--index-trusted-key and "
					  "--index-signature need --index");
	if (a->index_proven_only && a->mo.fs.index_window_rule)
		return lp_cmd_usage_error(
			"mount", "--index-proven-only and --index-window-rule "
				 "exclude each other");
	if (a->index_path && (a->have_digest || a->skip_verify))
		return lp_cmd_usage_error(
			"mount", "--index mounts a plain gzip layer, which has "
				 "no TOC digest to give or skip");
	/* a registry layer's TOC digest may come from its annotation */
	if (!a->layer && !a->have_digest && !a->skip_verify && !a->index_path)
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

/* the daemon's side of the start-up pipe: 0 ready, 1 failed. Returns 0,
 * or -errno when the parent is not there to hear it (-EPIPE: it is gone) */
static int tell_parent(int fd, char status)
{
	int r = 0;

	if (fd < 0)
		return 0;
	if (write(fd, &status, 1) != 1)
		r = -errno;
	close(fd);
	return r;
}

/* the caller's process, which waits for the daemon's verdict */
static pid_t waiting_parent;

/* whether the parent that waits for the verdict is gone (killed, ^C) */
static bool parent_gone(void)
{
	return waiting_parent && getppid() != waiting_parent;
}

/* the number of threads of this process (its /proc task entries), or -errno */
static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * fork; the parent waits for the child's verdict and exits with it. Only
 * while no other thread exists: the child would inherit its pthread_t
 * dangling (and, were it running, lose it with whatever it holds).
 */
static int daemonize(int *ret_fd)
{
	int p[2], n;
	pid_t pid;
	char status = 1;

	n = count_threads();
	if (n > 1) {
		lp_log_err("%d threads before the fork (a bug)", n);
		return -EDEADLK;
	}
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
	/* a parent gone is seen at the verdict (EPIPE), not a signal */
	signal(SIGPIPE, SIG_IGN);
	waiting_parent = getppid();
	setsid();
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

/*
 * index_trust() - whether --index-signature makes the --index bytes
 * (@index, @len) trusted under the --index-trusted-key keys: the statement
 * must name the layer (--layer's descriptor digest, else the digest the
 * index names) and this index blob, and with --layer the image manifest.
 * Logged once with the reason; anything but a good signature is the
 * proven-only default, never a failed mount (a key or a signature file
 * that cannot be read is the caller's error: LP_EXIT_FAIL).
 */
static int index_trust(const struct mount_args *a, const uint8_t *index,
		       size_t len, bool *ret_trusted)
{
	struct lp_index_keys *keys = NULL;
	struct lp_index_sig *sig = NULL;
	struct lp_index *ix = NULL;
	struct lp_err err = { 0 }, why = { 0 };
	struct lp_digest id, layer;
	enum lp_index_trust t = LP_INDEX_TRUST_UNSIGNED;
	uint8_t *data = NULL;
	size_t n = 0, i;
	int r;

	*ret_trusted = false;
	if (!a->nr_trusted_keys && !a->index_sig_path)
		return 0;
	r = lp_index_keys_new(&keys);
	for (i = 0; r == 0 && i < a->nr_trusted_keys; i++)
		r = lp_index_keys_load(keys, a->trusted_keys[i], &err);
	if (r < 0) {
		r = lp_cmd_fail("--index-trusted-key", &err, r);
		goto out;
	}
	if (!a->index_sig_path) {
		lp_err_set(&why, -ENOENT, "no --index-signature");
		goto verdict;
	}
	r = lp_cmd_load_file(a->index_sig_path, LP_INDEX_SIG_MAX_JSON, &data,
			     &n);
	if (r < 0) {
		r = lp_cmd_fail(a->index_sig_path, NULL, r);
		goto out;
	}
	t = LP_INDEX_TRUST_BAD_SIGNATURE;
	r = lp_index_sig_parse_json(data, n, &sig, &why);
	if (r == -ENOENT)
		t = LP_INDEX_TRUST_UNSIGNED;
	if (r < 0)
		goto verdict;
	if (a->layer) {
		layer = a->index_layer;
	} else {
		/* a local layer: the digest its index names (the proving
		 * pass checks the blob against it) */
		if (lp_index_parse(index, len, &ix, &why) < 0)
			goto verdict;
		layer = *lp_index_blob_digest(ix);
	}
	lp_sha256(index, len, &id);
	t = lp_index_sig_check(
		sig, keys, a->have_index_manifest ? &a->index_manifest : NULL,
		&layer, &id, &why);
verdict:
	if (t == LP_INDEX_TRUST_SIGNED)
		lp_log_info("%s: gzip index trusted: signed by a trusted key; "
			    "reads start at any checkpoint",
			    a->index_path);
	else
		lp_log_warn("%s: gzip index %s: %s; proven-only reads",
			    a->index_path, lp_index_trust_name(t),
			    lp_err_str(&why, -EINVAL));
	*ret_trusted = t == LP_INDEX_TRUST_SIGNED;
	r = 0;
out:
	lp_index_free(ix);
	lp_index_sig_free(sig);
	lp_index_keys_free(keys);
	free(data);
	return r;
}

int lp_cmd_mount(int argc, char **argv)
{
	char fsname[LP_FUSE_FSNAME_MAX + 1];
	struct mount_args a = { 0 };
	struct lp_blob *blob = NULL;
	struct lp_fs *fs = NULL;
	struct lp_fuse *fuse = NULL;
	struct lp_err err = { 0 };
	int ready_fd = -1, log_fd = -1, r, ret = LP_EXIT_FAIL;
	uint8_t *tail = NULL; /* a registry layer's last bytes */
	size_t tail_len = 0;
	uint8_t *index = NULL; /* --index FILE's bytes */
	size_t index_len = 0;

	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? LP_EXIT_OK : r;
	lp_mount_tune_malloc();
	if (a.skip_verify)
		lp_log_warn("--insecure-skip-toc-verify: the TOC of %s is "
			    "not verified; chunk digests come from it",
			    a.source);

	if (a.index_path) {
		r = lp_cmd_load_file(a.index_path, LP_INDEX_MAX_SIZE, &index,
				     &index_len);
		if (r < 0) {
			ret = lp_cmd_fail(a.index_path, NULL, r);
			goto out;
		}
		a.mo.index = index;
		a.mo.index_len = index_len;
	}
	/*
	 * Fork first, before anything can start a thread: opening the source
	 * may (a range-less host's spool feeds from a thread of its own), and
	 * a thread of the parent's is a dangling pthread_t in the child,
	 * joined at the end. The parent waits for the child's verdict; until
	 * then the child's messages go to the caller's stderr.
	 */
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
	r = open_source(&a, &blob, &tail, &tail_len, &err);
	if (r < 0) {
		ret = lp_cmd_fail("mount", &err, r);
		goto out;
	}
	/* fsname: the source without commas (they separate mount options) */
	snprintf(fsname, sizeof(fsname), "lazypull:%s", a.source);
	for (char *p = fsname; *p; p++)
		if (*p == ',' || *p == ' ')
			*p = '_';
	a.mo.toc_digest = a.have_digest ? &a.toc_digest : NULL;
	a.mo.tail = tail;
	a.mo.tail_len = tail_len;
	a.mo.fuse.fsname = fsname;
	a.mo.fuse.max_threads = (unsigned int)a.threads;
	a.mo.fuse.allow_other = getuid() == 0;
	if (a.index_path) {
		r = index_trust(&a, index, index_len, &a.mo.index_trusted);
		if (r) {
			ret = r;
			goto out;
		}
	}
	if (parent_gone()) {
		/* the caller gave up while the layer was opened: no mount */
		ret = lp_cmd_fail("mount", NULL, -ECANCELED);
		goto out;
	}
	r = lp_mount_layer(blob, a.mountpoint, &a.mo, &fs, &fuse, NULL, &err);
	free(tail);
	tail = NULL;
	free(index); /* parsed: the layer keeps its own copy */
	index = NULL;
	a.mo.index = NULL;
	if (r < 0) {
		ret = lp_cmd_fail("mount", &err, r);
		goto out;
	}

	/* the daemon's paths were taken: it may leave the directory */
	if (!a.foreground && chdir("/") < 0)
		lp_log_warn("chdir /: %s", strerror(errno));
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
		r = tell_parent(ready_fd, 0);
		ready_fd = -1;
		if (r < 0) {
			/* nobody took the verdict: the mount it asked for goes
			 * (lp_fuse_free unmounts) */
			lp_log_err("the caller of lazypull mount is gone (%s): "
				   "unmounting %s",
				   strerror(-r), a.mountpoint);
			ret = LP_EXIT_FAIL;
			goto out;
		}
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
	lp_blob_unref(blob);
	free(index);
	return ret;
}
