/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small file-descriptor helpers shared by the modules that write files
 * (converter output and spool, image layouts, the disk cache).
 */
#ifndef LP_IO_H
#define LP_IO_H

#include <stddef.h>

/*
 * lp_write_all() - write all @len bytes of @data to @fd, retrying short
 * writes and EINTR. Returns 0, or -errno (-EIO if write(2) makes no
 * progress).
 */
int lp_write_all(int fd, const void *data, size_t len);

#endif /* LP_IO_H */
