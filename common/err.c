// SPDX-License-Identifier: Apache-2.0
/*
 * Error message buffer: see lp_err.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lp_err.h"

int lp_err_set(struct lp_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err || err->msg[0])
		return code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

void lp_err_clear(struct lp_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

const char *lp_err_str(const struct lp_err *err, int code)
{
	if (err && err->msg[0])
		return err->msg;
	return strerror(code < 0 ? -code : code);
}
