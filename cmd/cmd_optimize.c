// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull optimize [OPTIONS] SRC DST [-- CMD ARGS...]`: profile-guided
 * prefetch. Runs the image's workload on lazily mounted layers with access
 * recording, then converts SRC to DST with each layer's accessed files
 * first; `lazypull optimize --profile-only [--output DIR] SRC` publishes the
 * record as SRC's prefetch profile instead (a referrer artifact, or a file
 * in DIR), SRC unchanged. A thin adapter over optimize/ (lp_optimize): option parsing and
 * the summary. The workload's output goes to stderr; key=value results to
 * stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "lp_common.h"
#include "lp_log.h"
#include "lp_optimize.h"

#define OPT_INSECURE_MAX 32 /* --insecure-registry and --plain-http */

static const char optimize_usage[] =
	"Usage: lazypull optimize [OPTIONS] SRC DST [-- CMD [ARGS...]]\n"
	"       lazypull optimize --profile-only [--output DIR] [OPTIONS] SRC\n"
	"                         [-- CMD [ARGS...]]\n"
	"\n"
	"Run the image's workload (its Entrypoint and Cmd, or CMD) in a\n"
	"container on lazily mounted layers, record which files each layer\n"
	"served, in first-access order, and convert SRC to DST with those\n"
	"files first in their layers, before .prefetch.landmark (layers the\n"
	"workload did not read get .no.prefetch.landmark). SRC and DST are\n"
	"registry references or oci:DIR[:TAG]. Needs root, FUSE, overlayfs\n"
	"and runc. The workload's stdout and stderr are copied to stderr.\n"
	"\n"
	"With --profile-only nothing is converted: the record is published as\n"
	"SRC's prefetch profile, an OCI artifact (artifactType\n"
	"application/vnd.lazypull.profile.v1) whose subject is SRC's manifest\n"
	"(the referrers API, else the referrers tag sha256-<hex>), or with\n"
	"--output DIR the file DIR/<manifest hex>.profile. SRC's manifest and\n"
	"digest do not change; the snapshotter prefetches each layer's listed\n"
	"files in order when it mounts them lazily.\n"
	"\n"
	"Options:\n"
	"  --period S            stop the workload after S seconds (default 10)\n"
	"  --wait-line REGEX     stop it once an output line matches REGEX\n"
	"                        (POSIX extended)\n"
	"  --record-out FILE     keep the record (JSON lines {\"path\",\n"
	"                        \"layer_digest\",\"layer_index\"}) in FILE\n"
	"  --net-host            the host's network (default: none)\n"
	"  --runc PATH           the runc binary (default: runc in PATH)\n"
	"  --platform P          os/arch[/variant] from an index\n"
	"  --plain-http          talk HTTP, not HTTPS, to SRC's and DST's hosts\n"
	"  --insecure-registry H plain HTTP for host H (repeatable)\n"
	"  --ca-file FILE        trust the CAs in FILE (PEM)\n"
	"  --registry-config-dir DIR\n"
	"                        containerd's hosts.toml directory: mirrors,\n"
	"                        TLS and headers for SRC's pulls (default\n"
	"                        " LP_REG_CONFIG_DIR_DEFAULT "; \"\": none)\n"
	"  --format F            estargz (default) or zstd-chunked\n"
	"  --chunk-size N        chunk size (K/M suffixes; default 4M)\n"
	"  --level L             compression level (default 9 gzip, 3 zstd)\n"
	"  --jobs N              layers converted at once (default 2)\n"
	"  --threads N           compression threads per layer (default: CPUs)\n"
	"  --tmpdir DIR          mounts, converted layers and the container's\n"
	"                        writable layer (default $TMPDIR or /var/tmp)\n"
	"  --profile-only        publish the profile, do not convert (no DST)\n"
	"  --output DIR          with --profile-only: write it into DIR\n"
	"  -h, --help            this help\n"
	"\n"
	"Prints stop=, exit-status=, recorded=, layers=, layers-accessed=,\n"
	"run-seconds=, digest=, size-before=, size-after=, seconds= on\n"
	"success. Nothing is written to DST on failure. With --profile-only:\n"
	"stop=, exit-status=, recorded=, layers=, layers-accessed=,\n"
	"run-seconds=, manifest=, profile=, profile-size=, then referrer= and\n"
	"via=referrers-api|referrers-tag, or path=.\n";

static const char *stop_name(enum lp_opt_stop s)
{
	switch (s) {
	case LP_OPT_STOP_EXITED:
		return "exited";
	case LP_OPT_STOP_PERIOD:
		return "period";
	case LP_OPT_STOP_WAIT_LINE:
		return "wait-line";
	case LP_OPT_STOP_SIGNAL:
		return "signal";
	}
	return "?";
}

/* the host of a registry reference (not an oci: spec), or NULL */
static const char *ref_host(const char *spec, struct lp_reg_ref *ref)
{
	if (!strncmp(spec, "oci:", 4) || lp_reg_ref_parse(spec, ref) < 0)
		return NULL;
	return ref->host;
}

enum {
	O_PERIOD = 256,
	O_WAIT_LINE,
	O_RECORD_OUT,
	O_NET_HOST,
	O_RUNC,
	O_PLATFORM,
	O_PLAIN_HTTP,
	O_INSECURE,
	O_CA_FILE,
	O_FORMAT,
	O_CHUNK_SIZE,
	O_LEVEL,
	O_JOBS,
	O_THREADS,
	O_TMPDIR,
	O_PROFILE_ONLY,
	O_OUTPUT,
	O_HOSTS,
};

static const struct option optimize_opts[] = {
	{ "period", required_argument, NULL, O_PERIOD },
	{ "wait-line", required_argument, NULL, O_WAIT_LINE },
	{ "record-out", required_argument, NULL, O_RECORD_OUT },
	{ "net-host", no_argument, NULL, O_NET_HOST },
	{ "runc", required_argument, NULL, O_RUNC },
	{ "platform", required_argument, NULL, O_PLATFORM },
	{ "plain-http", no_argument, NULL, O_PLAIN_HTTP },
	{ "insecure-registry", required_argument, NULL, O_INSECURE },
	{ "ca-file", required_argument, NULL, O_CA_FILE },
	{ "format", required_argument, NULL, O_FORMAT },
	{ "chunk-size", required_argument, NULL, O_CHUNK_SIZE },
	{ "level", required_argument, NULL, O_LEVEL },
	{ "jobs", required_argument, NULL, O_JOBS },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "tmpdir", required_argument, NULL, O_TMPDIR },
	{ "profile-only", no_argument, NULL, O_PROFILE_ONLY },
	{ "output", required_argument, NULL, O_OUTPUT },
	{ "registry-config-dir", required_argument, NULL, O_HOSTS },
	{ "help", no_argument, NULL, 'h' },
	{}
};

/* a command line being taken apart */
struct optimize_args {
	struct lp_optimize_opts o;
	/* --insecure-registry hosts, and SRC's and DST's with --plain-http;
	   NULL-terminated */
	const char *insecure[OPT_INSECURE_MAX + 3];
	size_t n_insecure;
	bool plain_http;
	const char *hosts_arg; /* --registry-config-dir; NULL: not given */
	struct lp_reg_ref sref, dref; /* own the hosts in insecure[] */
};

/* returned by the parsing steps when the command is to go on */
#define ARGS_OK (-1)

/* option @c (getopt_long's; @name its long name) with @arg */
static int optimize_option(int c, const char *name, const char *arg,
			   struct optimize_args *a)
{
	struct lp_optimize_opts *o = &a->o;
	long v;
	int r;

	switch (c) {
	case O_PERIOD:
		if (lp_cmd_parse_int(arg, 1, LP_OPT_MAX_PERIOD, &v) < 0)
			return lp_cmd_usage_error("optimize",
						  "--period must be 1..%d "
						  "seconds, not '%s'",
						  LP_OPT_MAX_PERIOD, arg);
		o->period_s = v;
		break;
	case O_WAIT_LINE:
		o->wait_line = arg;
		break;
	case O_RECORD_OUT:
		o->record_out = arg;
		break;
	case O_NET_HOST:
		o->net_host = true;
		break;
	case O_RUNC:
		o->runc = arg;
		break;
	case O_PLATFORM:
		o->image.platform = arg;
		break;
	case O_PLAIN_HTTP:
		a->plain_http = true;
		break;
	case O_INSECURE:
		if (a->n_insecure >= OPT_INSECURE_MAX)
			return lp_cmd_usage_error(
				"optimize", "at most %d --insecure-registry",
				OPT_INSECURE_MAX);
		a->insecure[a->n_insecure++] = arg;
		break;
	case O_CA_FILE:
		o->image.reg.ca_file = arg;
		break;
	case O_FORMAT:
	case O_CHUNK_SIZE:
	case O_LEVEL:
	case O_THREADS:
		r = lp_cmd_convert_opt("optimize", name, arg,
				       &o->image.convert);
		if (r)
			return r;
		break;
	case O_JOBS:
		if (lp_cmd_parse_int(arg, 1, LP_IMAGE_JOBS_MAX, &v) < 0)
			return lp_cmd_usage_error("optimize",
						  "--jobs must be 1..%d",
						  LP_IMAGE_JOBS_MAX);
		o->image.jobs = (unsigned int)v;
		break;
	case O_TMPDIR:
		o->image.tmpdir = arg;
		break;
	case O_PROFILE_ONLY:
		o->profile_only = true;
		break;
	case O_OUTPUT:
		o->profile_output = arg;
		break;
	case O_HOSTS:
		a->hosts_arg = arg;
		break;
	case 'h':
		fputs(optimize_usage, stdout);
		return LP_EXIT_OK;
	default:
		return lp_cmd_usage_error("optimize", "bad option");
	}
	return ARGS_OK;
}

/* options, SRC DST, and the workload after "--" into @a */
static int optimize_parse(int argc, char **argv, struct optimize_args *a)
{
	int c, idx = 0, r, nargs = argc, i;

	lp_optimize_opts_init(&a->o);
	/* CMD after "--" is the workload's: options are parsed before it */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			nargs = i;
			break;
		}
	}
	optind = 1;
	while ((c = getopt_long(nargs, argv, "h", optimize_opts, &idx)) != -1) {
		r = optimize_option(c, optimize_opts[idx].name, optarg, a);
		if (r != ARGS_OK)
			return r;
	}
	if (a->o.profile_output && !a->o.profile_only)
		return lp_cmd_usage_error("optimize",
					  "--output goes with --profile-only");
	if (a->o.profile_only) {
		if (nargs - optind != 1)
			return lp_cmd_usage_error(
				"optimize", "--profile-only needs SRC only");
		a->o.image.src = argv[optind];
	} else {
		if (nargs - optind != 2)
			return lp_cmd_usage_error("optimize",
						  "needs SRC and DST");
		a->o.image.src = argv[optind];
		a->o.image.dst = argv[optind + 1];
	}
	if (nargs < argc) {
		if (nargs + 1 >= argc)
			return lp_cmd_usage_error("optimize",
						  "no command after '--'");
		a->o.argv = (const char *const *)argv + nargs + 1;
	}
	r = lp_cmd_convert_check("optimize", &a->o.image.convert);
	if (r)
		return r;
	if (lp_cmd_registry_config_dir("optimize", a->hosts_arg,
				       &a->o.image.reg.registry_config_dir))
		return LP_EXIT_USAGE;
	return ARGS_OK;
}

/* --plain-http: SRC's and DST's registry hosts join the insecure ones */
static void add_plain_hosts(struct optimize_args *a)
{
	const char *h;

	if (a->plain_http) {
		if ((h = ref_host(a->o.image.src, &a->sref)))
			a->insecure[a->n_insecure++] = h;
		if (a->o.image.dst && (h = ref_host(a->o.image.dst, &a->dref)))
			a->insecure[a->n_insecure++] = h;
	}
	a->o.image.reg.insecure_hosts = a->insecure;
}

/* the summary on stderr, the key=value results on stdout */
static int print_result(const struct lp_optimize_opts *o,
			const struct lp_optimize_result *res)
{
	char ds[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(&res->image.digest, ds);
	if (lp_log_enabled(LP_LOG_WARN))
		fprintf(stderr,
			"lazypull optimize: workload %s after %.1f s; %zu "
			"files recorded in %zu of %zu layers; %s -> %s in "
			"%.1f s\n",
			stop_name(res->stop), res->run_seconds, res->n_recorded,
			res->n_layers_accessed, res->n_layers, o->image.src,
			o->image.dst, res->image.seconds);
	printf("stop=%s\nexit-status=%d\nrecorded=%zu\nlayers=%zu\n"
	       "layers-accessed=%zu\nrun-seconds=%.3f\ndigest=%s\n"
	       "size-before=%llu\nsize-after=%llu\nseconds=%.3f\n",
	       stop_name(res->stop), res->exit_status, res->n_recorded,
	       res->n_layers, res->n_layers_accessed, res->run_seconds, ds,
	       (unsigned long long)res->image.bytes_before,
	       (unsigned long long)res->image.bytes_after, res->image.seconds);
	return fflush(stdout) == 0 ? LP_EXIT_OK : LP_EXIT_FAIL;
}

/* --profile-only: the summary and the key=value results */
static int print_profile(const struct lp_optimize_opts *o,
			 const struct lp_optimize_result *res)
{
	const struct lp_optimize_profile *p = &res->profile;
	char ms[LP_DIGEST_STR_LEN + 1], bs[LP_DIGEST_STR_LEN + 1];
	char as[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(&p->manifest, ms);
	lp_digest_format(&p->blob, bs);
	lp_digest_format(&p->artifact, as);
	if (lp_log_enabled(LP_LOG_WARN))
		fprintf(stderr,
			"lazypull optimize: workload %s after %.1f s; %zu "
			"files recorded in %zu of %zu layers; profile of %s "
			"(%s) %s %s\n",
			stop_name(res->stop), res->run_seconds, res->n_recorded,
			res->n_layers_accessed, res->n_layers, o->image.src, ms,
			o->profile_output ? "written to" : "pushed as",
			o->profile_output ? p->path : as);
	printf("stop=%s\nexit-status=%d\nrecorded=%zu\nlayers=%zu\n"
	       "layers-accessed=%zu\nrun-seconds=%.3f\nmanifest=%s\n"
	       "profile=%s\nprofile-size=%zu\n",
	       stop_name(res->stop), res->exit_status, res->n_recorded,
	       res->n_layers, res->n_layers_accessed, res->run_seconds, ms, bs,
	       p->bytes);
	if (o->profile_output)
		printf("path=%s\n", p->path);
	else
		printf("referrer=%s\nvia=%s\n", as,
		       p->via_api ? "referrers-api" : "referrers-tag");
	return fflush(stdout) == 0 ? LP_EXIT_OK : LP_EXIT_FAIL;
}

int lp_cmd_optimize(int argc, char **argv)
{
	struct optimize_args a = { 0 };
	struct lp_optimize_result res;
	struct lp_err err = { 0 };
	int r;

	r = optimize_parse(argc, argv, &a);
	if (r != ARGS_OK)
		return r;
	add_plain_hosts(&a);
	a.o.errout = stderr;
	a.o.out = stderr; /* stdout carries the results */
	signal(SIGPIPE, SIG_IGN);
	r = lp_optimize(&a.o, &res, &err);
	if (r < 0)
		return lp_cmd_fail("optimize", &err, r);
	if (a.o.profile_only)
		return print_profile(&a.o, &res);
	return print_result(&a.o, &res);
}
