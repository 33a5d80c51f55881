/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subcommands of the lazypull binary and the helpers they share: exit codes,
 * size parsing, error printing. Private to cmd/.
 */
#ifndef LP_CMD_H
#define LP_CMD_H

#include <stdint.h>

#include "lp_convert.h"
#include "lp_err.h"

/* Exit codes (documented in docs/cli.md). */
enum {
	LP_EXIT_OK = 0,
	LP_EXIT_FAIL = 1, /* the operation failed or verification failed */
	LP_EXIT_USAGE = 2, /* bad command line */
};

int lp_cmd_layer(int argc, char **argv);
int lp_cmd_convert(int argc, char **argv);
int lp_cmd_mount(int argc, char **argv);
int lp_cmd_snapshotter(int argc, char **argv);
int lp_cmd_fdholder(int argc, char **argv);
int lp_cmd_optimize(int argc, char **argv);
int lp_cmd_index(int argc, char **argv);

/*
 * lp_cmd_parse_size() - parse a byte count with an optional K/M/G suffix
 * (binary units). Returns 0 or -EINVAL.
 */
int lp_cmd_parse_size(const char *s, uint64_t *ret);

/* lp_cmd_parse_int() - a decimal int in [min, max]. 0 or -EINVAL. */
int lp_cmd_parse_int(const char *s, long min, long max, long *ret);

/*
 * lp_cmd_convert_opt() - apply the converter option @name ("format",
 * "chunk-size", "level" or "threads") with argument @arg to @co, for the
 * commands that convert (layer convert, convert, optimize). Returns 0, or
 * LP_EXIT_USAGE after printing a usage error for @cmd.
 */
int lp_cmd_convert_opt(const char *cmd, const char *name, const char *arg,
		       struct lp_convert_opts *co);

/*
 * lp_cmd_convert_check() - the checks that need every converter option:
 * a gzip level above 12. Returns 0 or LP_EXIT_USAGE (printed).
 */
int lp_cmd_convert_check(const char *cmd, const struct lp_convert_opts *co);

/*
 * lp_cmd_registry_config_dir() - the registry config directory for the
 * client (lp_reg_opts.registry_config_dir) from --registry-config-dir @arg:
 * NULL (not given) is LP_REG_CONFIG_DIR_DEFAULT, where a directory that
 * does not exist means no configuration; "" turns hosts.toml off; any
 * other value must be a directory. Returns 0, or LP_EXIT_USAGE (printed).
 */
int lp_cmd_registry_config_dir(const char *cmd, const char *arg,
			       const char **ret);

/*
 * lp_cmd_load_file() - the whole of file @path (at most @limit bytes) into
 * *@ret (malloc'ed, *@ret_len bytes). Returns 0, -EFBIG, or -errno.
 */
int lp_cmd_load_file(const char *path, size_t limit, uint8_t **ret,
		     size_t *ret_len);

/* lp_cmd_fail() - print "lazypull: WHAT: reason" once; returns LP_EXIT_FAIL. */
int lp_cmd_fail(const char *what, const struct lp_err *err, int code);

/* lp_cmd_usage_error() - print a usage error and a hint; LP_EXIT_USAGE. */
int lp_cmd_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* LP_CMD_H */
