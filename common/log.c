// SPDX-License-Identifier: Apache-2.0
/*
 * Logging: one line per message on stderr, prefixed with "lazypull: " and the
 * level for warnings and debug output.
 */
#include <stdarg.h>
#include <stdio.h>

#include "lp_log.h"

/* Written once by lp_log_init() before threads start; see lp_log.h. */
static enum lp_log_level log_level = LP_LOG_WARN;

void lp_log_init(enum lp_log_level level)
{
	log_level = level;
}

int lp_log_enabled(enum lp_log_level level)
{
	return level <= log_level;
}

void lp_log(enum lp_log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = { "error: ", "warning: ", "",
					      "debug: " };
	char line[2048];
	va_list ap;

	if (!lp_log_enabled(level) || level < LP_LOG_ERR)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one fputs per line so that lines from threads do not interleave */
	fprintf(stderr, "lazypull: %s%s\n", prefix[level], line);
}
