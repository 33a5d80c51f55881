/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small file and directory helpers shared by the modules that read and
 * write files (converter output and spool, image layouts, the disk cache,
 * the snapshotter's directories and kept indexes).
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

/*
 * lp_file_open_unlinked() - a new, empty, read-write file in directory @dir
 * that has no name: O_TMPFILE, or where the file system or kernel has no
 * O_TMPFILE, a file made as @dir/@prefix.XXXXXX and unlinked at once (if
 * that unlink fails, the file is closed and the error returned: a named
 * file is never handed out). It goes when its last descriptor is closed
 * or the process dies. Returns the descriptor (close-on-exec) or -errno.
 */
int lp_file_open_unlinked(const char *dir, const char *prefix);

/*
 * lp_file_read_bounded() - the whole of regular file @path into *@ret
 * (malloc'ed, NUL-ended; the NUL is not in *@ret_len), @flags added to the
 * open (e.g. O_NOFOLLOW). Returns 0; -EFBIG over @limit bytes; -EINVAL not a
 * regular file; -EIO when it shrank while read; -errno.
 */
int lp_file_read_bounded(const char *path, size_t limit, int flags, void **ret,
			 size_t *ret_len);

/*
 * lp_file_write_atomic() - replace @path with @len bytes of @data, mode
 * @mode: a temporary file beside it (@path.tmp.XXXXXX), fsync, rename; the
 * temporary file removed on any error. Returns 0 or -errno.
 */
int lp_file_write_atomic(const char *path, const void *data, size_t len,
			 mode_t mode);

#endif /* LP_IO_H */
