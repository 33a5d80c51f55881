// SPDX-License-Identifier: Apache-2.0
/*
 * Error message buffer: see lp_err.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lp_err.h"

static int set_v(struct lp_err *err, int code, bool retryable, long http_status,
		 const char *fmt, va_list ap)
{
	if (!err || err->msg[0])
		return code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (!err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "%s",
			 strerror(code < 0 ? -code : code));
	err->code = code;
	err->retryable = retryable;
	err->http_status = http_status;
	return code;
}

int lp_err_set(struct lp_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_v(err, code, false, 0, fmt, ap);
	va_end(ap);
	return code;
}

int lp_err_set_ex(struct lp_err *err, int code, unsigned int flags,
		  long http_status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_v(err, code, (flags & LP_ERR_RETRYABLE) != 0, http_status, fmt, ap);
	va_end(ap);
	return code;
}

int lp_err_set_from(struct lp_err *err, const struct lp_err *cause, int code,
		    const char *fmt, ...)
{
	bool retryable = cause && cause->msg[0] && cause->retryable;
	long status = cause && cause->msg[0] ? cause->http_status : 0;
	va_list ap;

	va_start(ap, fmt);
	set_v(err, code, retryable, status, fmt, ap);
	va_end(ap);
	return code;
}

bool lp_err_retryable(const struct lp_err *err, int code)
{
	return err && err->msg[0] && err->code == code && err->retryable;
}

void lp_err_clear(struct lp_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->retryable = false;
	err->http_status = 0;
	err->msg[0] = '\0';
}

const char *lp_err_str(const struct lp_err *err, int code)
{
	if (err && err->msg[0])
		return err->msg;
	return strerror(code < 0 ? -code : code);
}
