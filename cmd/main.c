// SPDX-License-Identifier: Apache-2.0
/*
 * lazypull: the entry point. Parses global options (-v, -q, --help,
 * --version) and dispatches to a subcommand; shared command-line helpers.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "lp_registry.h"
#include "lp_log.h"

#ifndef LP_VERSION
#define LP_VERSION "0.1.0"
#endif

static const char usage[] =
	"Usage: lazypull [-v|-q] COMMAND [ARGS]\n"
	"\n"
	"Lazy-pulling container images: eStargz and zstd:chunked layers.\n"
	"\n"
	"Commands:\n"
	"  layer convert   convert a tar / tar.gz / tar.zst layer to eStargz\n"
	"  layer inspect   show a layer's format, TOC and sizes\n"
	"  layer verify    check a layer's TOC digest and every chunk\n"
	"  layer extract   unpack a layer into a directory\n"
	"  convert         convert a whole image (registry or oci:DIR) to eStargz\n"
	"  index           seekable indexes of unconverted gzip layers: build,\n"
	"                  push as referrers, read layers through them\n"
	"  mount           mount a layer lazily with FUSE\n"
	"  snapshotter     containerd remote snapshotter (gRPC proxy plugin)\n"
	"  fdholder        holds the snapshotter's FUSE connections across its\n"
	"                  restarts (started by the snapshotter, or systemd)\n"
	"  optimize        run an image's workload, put the files it reads first\n"
	"\n"
	"Options:\n"
	"  -v, --verbose   more log output (repeat for debug)\n"
	"  -q, --quiet     errors only\n"
	"  -h, --help      this help; 'lazypull COMMAND --help' for a command\n"
	"  --version       print the version\n"
	"\n"
	"Exit status: 0 success, 1 failure (including failed verification),\n"
	"2 usage error.\n";

int lp_cmd_parse_int(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int lp_cmd_parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

int lp_cmd_convert_opt(const char *cmd, const char *name, const char *arg,
		       struct lp_convert_opts *co)
{
	long v;

	if (!strcmp(name, "format")) {
		if (!strcmp(arg, "estargz"))
			co->format = LP_FMT_ESTARGZ;
		else if (!strcmp(arg, "zstd-chunked") ||
			 !strcmp(arg, "zstd:chunked"))
			co->format = LP_FMT_ZSTD_CHUNKED;
		else
			return lp_cmd_usage_error(
				cmd,
				"unknown format '%s' (estargz, zstd-chunked)",
				arg);
	} else if (!strcmp(name, "chunk-size")) {
		if (lp_cmd_parse_size(arg, &co->chunk_size) < 0 ||
		    co->chunk_size < 4096 || co->chunk_size > LP_CHUNK_MAX_SIZE)
			return lp_cmd_usage_error(
				cmd, "--chunk-size must be 4K..%lluM",
				(unsigned long long)(LP_CHUNK_MAX_SIZE /
						     LP_MIB));
	} else if (!strcmp(name, "level")) {
		if (lp_cmd_parse_int(arg, 0, 22, &v) < 0)
			return lp_cmd_usage_error(cmd, "bad --level '%s'", arg);
		co->level = (int)v;
	} else if (!strcmp(name, "threads")) {
		if (lp_cmd_parse_int(arg, 1, 256, &v) < 0)
			return lp_cmd_usage_error(cmd, "bad --threads '%s'",
						  arg);
		co->threads = (unsigned int)v;
	} else {
		return lp_cmd_usage_error(cmd, "bad option --%s", name);
	}
	return 0;
}

int lp_cmd_convert_check(const char *cmd, const struct lp_convert_opts *co)
{
	if (co->format == LP_FMT_ESTARGZ && co->level > 12)
		return lp_cmd_usage_error(cmd, "gzip --level must be 0..12");
	return 0;
}

int lp_cmd_registry_config_dir(const char *cmd, const char *arg,
			       const char **ret)
{
	struct stat st;

	*ret = NULL;
	if (!arg) {
		*ret = LP_REG_CONFIG_DIR_DEFAULT;
		return 0;
	}
	if (!*arg)
		return 0;
	if (stat(arg, &st) < 0)
		return lp_cmd_usage_error(cmd, "--registry-config-dir %s: %s",
					  arg, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lp_cmd_usage_error(
			cmd, "--registry-config-dir %s: not a directory", arg);
	/* absolute: the files are looked at again later, maybe after a
	 * daemon's chdir("/") */
	if (arg[0] != '/') {
		static char abs_dir[PATH_MAX];

		if (!realpath(arg, abs_dir))
			return lp_cmd_usage_error(
				cmd, "--registry-config-dir %s: %s", arg,
				strerror(errno));
		arg = abs_dir;
	}
	*ret = arg;
	return 0;
}

int lp_cmd_fail(const char *what, const struct lp_err *err, int code)
{
	fprintf(stderr, "lazypull: %s: %s\n", what, lp_err_str(err, code));
	return LP_EXIT_FAIL;
}

int lp_cmd_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "lazypull %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'lazypull %s --help'.\n", cmd);
	return LP_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	int verbosity = LP_LOG_WARN;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			verbosity++;
		} else if (!strcmp(a, "-vv")) {
			verbosity += 2;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			verbosity = LP_LOG_ERR;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return LP_EXIT_OK;
		} else if (!strcmp(a, "--version")) {
			printf("lazypull %s\n", LP_VERSION);
			return LP_EXIT_OK;
		} else {
			fprintf(stderr, "lazypull: unknown option '%s'\n%s", a,
				usage);
			return LP_EXIT_USAGE;
		}
	}
	if (verbosity > LP_LOG_DEBUG)
		verbosity = LP_LOG_DEBUG;
	lp_log_init((enum lp_log_level)verbosity);

	if (i >= argc) {
		fputs(usage, stderr);
		return LP_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "layer"))
		return lp_cmd_layer(argc - i, argv + i);
	if (!strcmp(argv[i], "convert"))
		return lp_cmd_convert(argc - i, argv + i);
	if (!strcmp(argv[i], "index"))
		return lp_cmd_index(argc - i, argv + i);
	if (!strcmp(argv[i], "mount"))
		return lp_cmd_mount(argc - i, argv + i);
	if (!strcmp(argv[i], "snapshotter"))
		return lp_cmd_snapshotter(argc - i, argv + i);
	if (!strcmp(argv[i], "fdholder"))
		return lp_cmd_fdholder(argc - i, argv + i);
	if (!strcmp(argv[i], "optimize"))
		return lp_cmd_optimize(argc - i, argv + i);
	if (!strcmp(argv[i], "help")) {
		fputs(usage, stdout);
		return LP_EXIT_OK;
	}
	fprintf(stderr, "lazypull: unknown command '%s'\n%s", argv[i], usage);
	return LP_EXIT_USAGE;
}
