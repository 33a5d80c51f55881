/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An error message buffer that library calls fill in and the caller prints
 * once (house rule 9: errors are reported in exactly one place). Library code
 * never prints; it returns -errno and, when given a struct lp_err, says what
 * failed and where (file, entry, offset, reason).
 */
#ifndef LP_ERR_H
#define LP_ERR_H

#include <stddef.h>

#define LP_ERR_MSG_MAX 512

struct lp_err {
	int code; /* the -errno returned with the message */
	char msg[LP_ERR_MSG_MAX]; /* "" when nothing was set */
};

/*
 * lp_err_set() - record a message (printf format) and the code it goes with.
 * @err may be NULL (the message is dropped). Returns @code so that callers can
 * write "return lp_err_set(err, -EBADMSG, ...)". The first message set wins:
 * it is the root cause; later calls up the stack do not overwrite it.
 */
int lp_err_set(struct lp_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* lp_err_clear() - reset @err (NULL allowed). */
void lp_err_clear(struct lp_err *err);

/*
 * lp_err_str() - the message, or strerror(-code) when none was set.
 * The string lives in @err (or is static).
 */
const char *lp_err_str(const struct lp_err *err, int code);

#endif /* LP_ERR_H */
