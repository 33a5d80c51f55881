// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull convert [OPTIONS] SRC DST`: convert a whole image (registry
 * reference or OCI layout "oci:DIR[:TAG]", either side) to eStargz or
 * zstd:chunked. A thin adapter over image/ (lp_image_convert): option
 * parsing, progress display (a bar per layer on a terminal, log lines
 * otherwise) and the summary. Machine-readable key=value results go to
 * stdout; progress and the human summary to stderr.
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
#include "lp_image.h"
#include "lp_log.h"

#define INSECURE_HOSTS_MAX 32 /* --insecure-registry and --plain-http */
#define BAR_WIDTH 20
#define TTY_ROWS_MAX 40 /* layer rows drawn; the rest are summed up */

static const char convert_usage[] =
	"Usage: lazypull convert [OPTIONS] SRC DST\n"
	"\n"
	"Convert every layer of an image to eStargz (or zstd:chunked), rewrite\n"
	"the config's diff_ids and write OCI manifests whose layers carry the\n"
	"TOC digest annotations lazy pulling needs. SRC and DST are registry\n"
	"references (host[:port]/repo[:tag]) or OCI image layouts\n"
	"(oci:DIR[:TAG]). Layers already in the wanted format are copied.\n"
	"Nothing is tagged unless every layer converted.\n"
	"\n"
	"Options:\n"
	"  --format F            estargz (default) or zstd-chunked\n"
	"  --chunk-size N        chunk size (K/M suffixes; default 4M)\n"
	"  --level L             compression level (default 9 gzip, 3 zstd)\n"
	"  --prioritize FILE     files to put first: paths, or JSON lines\n"
	"                        {\"path\":P[,\"layer_digest\":D|\"layer_index\":N]}\n"
	"                        (without a layer: applied to every layer)\n"
	"  --platform P          os/arch[/variant] from an index (default: the\n"
	"                        host's)\n"
	"  --all-platforms       every platform; the output is an index\n"
	"  --jobs N              layers converted at once (default 2)\n"
	"  --threads N           compression threads per layer (default: CPUs)\n"
	"  --plain-http          talk HTTP, not HTTPS, to SRC's and DST's hosts\n"
	"  --insecure-registry H plain HTTP for host H (repeatable)\n"
	"  --ca-file FILE        trust the CAs in FILE (PEM)\n"
	"  --registry-config-dir DIR\n"
	"                        containerd's hosts.toml directory: mirrors,\n"
	"                        TLS and headers for pulls (default\n"
	"                        " LP_REG_CONFIG_DIR_DEFAULT "; \"\": none)\n"
	"  --tmpdir DIR          where converted layers are staged\n"
	"                        (default $TMPDIR or /var/tmp)\n"
	"  -q, --quiet           no progress or summary on stderr\n"
	"  -h, --help            this help\n"
	"\n"
	"Prints digest=, media-type=, layers=, converted=, reused=,\n"
	"size-before=, size-after=, seconds= on success.\n";

struct progress_ui {
	bool tty;
	int rows_drawn; /* lines to move up before redrawing */
	enum lp_image_layer_state *prev; /* per layer, for log lines */
	size_t n_prev;
	enum lp_image_phase prev_phase;
	bool phase_seen;
	const char *src, *dst;
};

static double mib(uint64_t b)
{
	return (double)b / (double)LP_MIB;
}

static const char *state_name(enum lp_image_layer_state s)
{
	switch (s) {
	case LP_IMAGE_LAYER_WAITING:
		return "waiting";
	case LP_IMAGE_LAYER_RUNNING:
		return "converting";
	case LP_IMAGE_LAYER_CONVERTED:
		return "done";
	case LP_IMAGE_LAYER_REUSED:
		return "reused";
	case LP_IMAGE_LAYER_FAILED:
		return "FAILED";
	}
	return "?";
}

static const char *phase_name(enum lp_image_phase p)
{
	switch (p) {
	case LP_IMAGE_PHASE_RESOLVE:
		return "resolving";
	case LP_IMAGE_PHASE_CONVERT:
		return "converting";
	case LP_IMAGE_PHASE_PUSH:
		return "writing";
	case LP_IMAGE_PHASE_DONE:
		return "done";
	}
	return "?";
}

static void draw_tty(struct progress_ui *ui, const struct lp_image_progress *p)
{
	uint64_t in = 0, out = 0, size = 0;
	size_t i, done = 0, shown = 0;
	char bar[BAR_WIDTH + 1];
	int rows = 0;

	if (ui->rows_drawn)
		fprintf(stderr, "\033[%dA", ui->rows_drawn);
	for (i = 0; i < p->n_layers; i++) {
		const struct lp_image_layer_progress *l = &p->layers[i];
		double frac = l->size_in ?
				      (double)l->bytes_in / (double)l->size_in :
				      1.0;
		int k, fill = (int)(frac * BAR_WIDTH);

		in += l->bytes_in;
		out += l->bytes_out;
		size += l->size_in;
		if (l->state >= LP_IMAGE_LAYER_CONVERTED)
			done++;
		if (shown >= TTY_ROWS_MAX)
			continue;
		shown++;
		for (k = 0; k < BAR_WIDTH; k++)
			bar[k] = k < fill ? '#' : '.';
		bar[BAR_WIDTH] = '\0';
		fprintf(stderr,
			"\033[K %3zu %.19s [%s] %7.1f/%.1f MiB in %7.1f MiB out "
			"%6.1f MiB/s %s\n",
			i + 1, l->digest, bar, mib(l->bytes_in),
			mib(l->size_in), mib(l->bytes_out),
			l->seconds > 0 ? mib(l->bytes_in) / l->seconds : 0.0,
			state_name(l->state));
		rows++;
	}
	fprintf(stderr,
		"\033[K %s: %zu/%zu layers, %.1f/%.1f MiB in, %.1f MiB out, "
		"%.1f MiB/s, %.1f s\n",
		phase_name(p->phase), done, p->n_layers, mib(in), mib(size),
		mib(out), p->seconds > 0 ? mib(in) / p->seconds : 0.0,
		p->seconds);
	rows++;
	ui->rows_drawn = rows;
}

static void log_lines(struct progress_ui *ui, const struct lp_image_progress *p)
{
	size_t i;

	if (!ui->phase_seen || ui->prev_phase != p->phase) {
		if (p->phase == LP_IMAGE_PHASE_RESOLVE)
			fprintf(stderr, "lazypull convert: reading %s\n",
				ui->src);
		else if (p->phase == LP_IMAGE_PHASE_CONVERT)
			fprintf(stderr,
				"lazypull convert: converting %zu layers\n",
				p->n_layers);
		else if (p->phase == LP_IMAGE_PHASE_PUSH)
			fprintf(stderr, "lazypull convert: writing %s\n",
				ui->dst);
		ui->prev_phase = p->phase;
		ui->phase_seen = true;
	}
	for (i = 0; i < p->n_layers && i < ui->n_prev; i++) {
		const struct lp_image_layer_progress *l = &p->layers[i];

		if (l->state == ui->prev[i])
			continue;
		ui->prev[i] = l->state;
		if (l->state == LP_IMAGE_LAYER_RUNNING)
			fprintf(stderr,
				"lazypull convert: layer %zu/%zu %s (%.1f MiB) "
				"started\n",
				i + 1, p->n_layers, l->digest, mib(l->size_in));
		else if (l->state != LP_IMAGE_LAYER_WAITING)
			fprintf(stderr,
				"lazypull convert: layer %zu/%zu %s %s: "
				"%.1f MiB -> %.1f MiB in %.1f s\n",
				i + 1, p->n_layers, l->digest,
				state_name(l->state), mib(l->size_in),
				mib(l->bytes_out), l->seconds);
	}
}

static void on_progress(void *ctx, const struct lp_image_progress *p)
{
	struct progress_ui *ui = ctx;
	size_t i;

	if (p->n_layers && !ui->prev) {
		ui->prev = calloc(p->n_layers, sizeof(*ui->prev));
		ui->n_prev = ui->prev ? p->n_layers : 0;
		for (i = 0; i < ui->n_prev; i++)
			ui->prev[i] = LP_IMAGE_LAYER_WAITING;
	}
	if (ui->tty && p->n_layers)
		draw_tty(ui, p);
	else if (!ui->tty)
		log_lines(ui, p);
	fflush(stderr);
}

/* the host of a registry reference (not an oci: spec), or NULL */
static const char *ref_host(const char *spec, struct lp_reg_ref *ref)
{
	if (!strncmp(spec, "oci:", 4) || lp_reg_ref_parse(spec, ref) < 0)
		return NULL;
	return ref->host;
}

static const struct option convert_opts[] = {
	{ "format", required_argument, NULL, 'f' },
	{ "chunk-size", required_argument, NULL, 'c' },
	{ "level", required_argument, NULL, 'l' },
	{ "prioritize", required_argument, NULL, 'p' },
	{ "platform", required_argument, NULL, 'P' },
	{ "all-platforms", no_argument, NULL, 'A' },
	{ "jobs", required_argument, NULL, 'j' },
	{ "threads", required_argument, NULL, 't' },
	{ "plain-http", no_argument, NULL, 'H' },
	{ "insecure-registry", required_argument, NULL, 'i' },
	{ "ca-file", required_argument, NULL, 'C' },
	{ "registry-config-dir", required_argument, NULL, 'R' },
	{ "tmpdir", required_argument, NULL, 'T' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{}
};

/* a command line being taken apart */
struct convert_args {
	struct lp_image_opts o;
	/* --insecure-registry hosts, and SRC's and DST's with --plain-http;
	   NULL-terminated */
	const char *insecure[INSECURE_HOSTS_MAX + 3];
	size_t n_insecure;
	bool plain_http, quiet;
	const char *prio_path;
	const char *hosts_arg; /* --registry-config-dir; NULL: not given */
	struct lp_reg_ref sref, dref; /* own the hosts in insecure[] */
};

/* returned by the parsing steps when the command is to go on */
#define ARGS_OK (-1)

/* option @c (getopt_long's; @name its long name) with @arg */
static int convert_option(int c, const char *name, const char *arg,
			  struct convert_args *a)
{
	long v;
	int r;

	switch (c) {
	case 'f':
	case 'c':
	case 'l':
	case 't':
		r = lp_cmd_convert_opt("convert", name, arg, &a->o.convert);
		if (r)
			return r;
		break;
	case 'p':
		a->prio_path = arg;
		break;
	case 'P':
		a->o.platform = arg;
		break;
	case 'A':
		a->o.all_platforms = true;
		break;
	case 'j':
		if (lp_cmd_parse_int(arg, 1, LP_IMAGE_JOBS_MAX, &v) < 0)
			return lp_cmd_usage_error("convert",
						  "--jobs must be 1..%d",
						  LP_IMAGE_JOBS_MAX);
		a->o.jobs = (unsigned int)v;
		break;
	case 'H':
		a->plain_http = true;
		break;
	case 'i':
		if (a->n_insecure >= INSECURE_HOSTS_MAX)
			return lp_cmd_usage_error(
				"convert", "at most %d --insecure-registry",
				INSECURE_HOSTS_MAX);
		a->insecure[a->n_insecure++] = arg;
		break;
	case 'C':
		a->o.reg.ca_file = arg;
		break;
	case 'R':
		a->hosts_arg = arg;
		break;
	case 'T':
		a->o.tmpdir = arg;
		break;
	case 'q':
		a->quiet = true;
		break;
	case 'h':
		fputs(convert_usage, stdout);
		return LP_EXIT_OK;
	default:
		return lp_cmd_usage_error("convert", "bad option");
	}
	return ARGS_OK;
}

/* options and SRC DST into @a, checked; the insecure hosts set */
static int convert_parse(int argc, char **argv, struct convert_args *a)
{
	const char *h;
	int c, idx = 0, r;

	lp_image_opts_init(&a->o);
	a->quiet = !lp_log_enabled(LP_LOG_WARN);
	while ((c = getopt_long(argc, argv, "qh", convert_opts, &idx)) != -1) {
		r = convert_option(c, convert_opts[idx].name, optarg, a);
		if (r != ARGS_OK)
			return r;
	}
	if (argc - optind != 2)
		return lp_cmd_usage_error("convert", "needs SRC and DST");
	a->o.src = argv[optind];
	a->o.dst = argv[optind + 1];
	r = lp_cmd_convert_check("convert", &a->o.convert);
	if (r)
		return r;
	if (a->o.platform && a->o.all_platforms)
		return lp_cmd_usage_error(
			"convert", "--platform and --all-platforms conflict");
	if (a->plain_http) {
		if ((h = ref_host(a->o.src, &a->sref)))
			a->insecure[a->n_insecure++] = h;
		if ((h = ref_host(a->o.dst, &a->dref)))
			a->insecure[a->n_insecure++] = h;
	}
	a->o.reg.insecure_hosts = a->insecure;
	if (lp_cmd_registry_config_dir("convert", a->hosts_arg,
				       &a->o.reg.registry_config_dir))
		return LP_EXIT_USAGE;
	return ARGS_OK;
}

/* the summary on stderr (unless @quiet), the key=value results on stdout */
static int print_result(const struct lp_image_opts *o,
			const struct lp_image_result *res, bool quiet)
{
	char ds[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(&res->digest, ds);
	if (!quiet)
		fprintf(stderr,
			"lazypull convert: %s -> %s: %zu platform%s, %zu "
			"layers (%zu converted, %zu reused), %.1f MiB -> "
			"%.1f MiB (%.1f MiB uncompressed) in %.2f s\n",
			o->src, o->dst, res->n_platforms,
			res->n_platforms == 1 ? "" : "s", res->n_layers,
			res->n_converted, res->n_reused, mib(res->bytes_before),
			mib(res->bytes_after), mib(res->bytes_uncompressed),
			res->seconds);
	printf("digest=%s\nmedia-type=%s\nplatforms=%zu\nlayers=%zu\n"
	       "converted=%zu\nreused=%zu\nsize-before=%llu\nsize-after=%llu\n"
	       "seconds=%.3f\n",
	       ds, res->media_type, res->n_platforms, res->n_layers,
	       res->n_converted, res->n_reused,
	       (unsigned long long)res->bytes_before,
	       (unsigned long long)res->bytes_after, res->seconds);
	return fflush(stdout) == 0 ? LP_EXIT_OK : LP_EXIT_FAIL;
}

int lp_cmd_convert(int argc, char **argv)
{
	struct convert_args a = { 0 };
	struct lp_prio_list prio = { 0 };
	struct progress_ui ui = { 0 };
	struct lp_image_result res;
	struct lp_err err = { 0 };
	char what[LP_REG_REF_MAX * 2 + 32];
	int r, ret;

	ret = convert_parse(argc, argv, &a);
	if (ret != ARGS_OK)
		return ret;
	if (a.prio_path) {
		r = lp_prio_load(a.prio_path, &prio, &err);
		if (r < 0)
			return lp_cmd_fail(a.prio_path, &err, r);
		a.o.prio = &prio;
	}
	/* a registry or a closed pipe must not kill us mid-push */
	signal(SIGPIPE, SIG_IGN);
	if (!a.quiet) {
		ui.tty = isatty(STDERR_FILENO);
		ui.src = a.o.src;
		ui.dst = a.o.dst;
		a.o.progress = on_progress;
		a.o.progress_ctx = &ui;
	}
	r = lp_image_convert(&a.o, &res, &err);
	if (r < 0) {
		snprintf(what, sizeof(what), "converting %s to %s", a.o.src,
			 a.o.dst);
		ret = lp_cmd_fail(what, &err, r);
	} else {
		ret = print_result(&a.o, &res, a.quiet);
	}
	free(ui.prev);
	lp_prio_release(&prio);
	return ret;
}
