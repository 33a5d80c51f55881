/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr with a level. The level is the one process-wide setting
 * lazypull keeps (house rule 7 allows it: it is written once at start-up,
 * before any thread exists, and read-only afterwards).
 */
#ifndef LP_LOG_H
#define LP_LOG_H

enum lp_log_level {
	LP_LOG_QUIET = -1,
	LP_LOG_ERR = 0,
	LP_LOG_WARN,
	LP_LOG_INFO,
	LP_LOG_DEBUG,
};

/* lp_log_init() - set the level; call once before starting threads. */
void lp_log_init(enum lp_log_level level);

/* lp_log_enabled() - whether messages at @level are printed. */
int lp_log_enabled(enum lp_log_level level);

void lp_log(enum lp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define lp_log_err(...) lp_log(LP_LOG_ERR, __VA_ARGS__)
#define lp_log_warn(...) lp_log(LP_LOG_WARN, __VA_ARGS__)
#define lp_log_info(...) lp_log(LP_LOG_INFO, __VA_ARGS__)
#define lp_log_debug(...) lp_log(LP_LOG_DEBUG, __VA_ARGS__)

#endif /* LP_LOG_H */
