// SPDX-License-Identifier: Apache-2.0
/*
 * File-descriptor helpers: see lp_io.h.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "lp_io.h"

int lp_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
