/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small file and directory helpers shared by the modules that write files
 * (converter output and spool, image layouts, the disk cache, the
 * snapshotter's directories).
 */
#ifndef LP_IO_H
#define LP_IO_H

#include <stddef.h>
#include <sys/types.h>

/*
 * lp_write_all() - write all @len bytes of @data to @fd, retrying short
 * writes and EINTR. Returns 0, or -errno (-EIO if write(2) makes no
 * progress).
 */
int lp_write_all(int fd, const void *data, size_t len);

/*
 * lp_mkdir_p() - create directory @path and any missing parents (as
 * `mkdir -p`): the parents with @parents_mode, @path itself with @mode;
 * existing ones are left as they are. Returns 0 or -errno.
 */
int lp_mkdir_p(const char *path, mode_t parents_mode, mode_t mode);

#endif /* LP_IO_H */
