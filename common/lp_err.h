/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An error message buffer that library calls fill in and the caller prints
 * once (house rule 9: errors are reported in exactly one place). Library code
 * never prints; it returns -errno and, when given a struct lp_err, says what
 * failed and where (file, entry, offset, reason).
 *
 * The error also carries what the code where it arose knew about it (house
 * rule 15: retryability is decided where an error arises, carried in the
 * error): whether another try later may succeed (a registry answering 503 or
 * 429, a timeout, a connection reset) and the HTTP status it came from. The
 * default is permanent: only the code that saw the cause marks an error
 * retryable. Who retries reads the mark (lp_err_retryable) instead of
 * guessing from the errno.
 */
#ifndef LP_ERR_H
#define LP_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define LP_ERR_MSG_MAX 512

/* lp_err_set_ex() flags */
#define LP_ERR_RETRYABLE 1u /* another try later may succeed */

struct lp_err {
	int code; /* the -errno returned with the message */
	bool retryable; /* LP_ERR_RETRYABLE was given with the message */
	long http_status; /* the HTTP status it came from; 0: none */
	char msg[LP_ERR_MSG_MAX]; /* "" when nothing was set */
};

/*
 * lp_err_set() - record a message (printf format) and the code it goes with,
 * as a permanent error. @err may be NULL (the message is dropped). Returns
 * @code so that callers can write "return lp_err_set(err, -EBADMSG, ...)".
 * The first message set wins: it is the root cause; later calls up the stack
 * do not overwrite it (nor its marks).
 */
int lp_err_set(struct lp_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * lp_err_set_ex() - lp_err_set() with @flags (LP_ERR_RETRYABLE) and the
 * HTTP status @http_status (0: none) the error came from.
 */
int lp_err_set_ex(struct lp_err *err, int code, unsigned int flags,
		  long http_status, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * lp_err_set_from() - lp_err_set() for an error caused by @cause (NULL:
 * none): the new message (which usually quotes @cause's) keeps @cause's
 * retryable mark and HTTP status, so context added on the way up does not
 * lose what was decided where the error arose.
 */
int lp_err_set_from(struct lp_err *err, const struct lp_err *cause, int code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * lp_err_retryable() - whether the error @code that came with @err was
 * marked retryable where it arose. False when @err is NULL, holds no
 * message, or holds another code's message (then nobody decided).
 */
bool lp_err_retryable(const struct lp_err *err, int code);

/* lp_err_clear() - reset @err (NULL allowed). */
void lp_err_clear(struct lp_err *err);

/*
 * lp_err_str() - the message, or strerror(-code) when none was set.
 * The string lives in @err (or is static).
 */
const char *lp_err_str(const struct lp_err *err, int code);

#endif /* LP_ERR_H */
