// SPDX-License-Identifier: Apache-2.0
/*
 * File and directory helpers: see lp_io.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int lp_mkdir_p(const char *path, mode_t parents_mode, mode_t mode)
{
	char *tmp = strdup(path), *p;
	int r = 0;

	if (!tmp)
		return -ENOMEM;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, parents_mode) < 0 && errno != EEXIST) {
			r = -errno;
			goto out;
		}
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		r = -errno;
out:
	free(tmp);
	return r;
}

int lp_file_open_unlinked(const char *dir, const char *prefix)
{
	char path[PATH_MAX];
	int fd, r;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* EISDIR, EINVAL: a kernel without O_TMPFILE; EOPNOTSUPP: a file
	 * system without it */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	if (snprintf(path, sizeof(path), "%s/%s.XXXXXX", dir, prefix) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int lp_file_read_bounded(const char *path, size_t limit, int flags, void **ret,
			 size_t *ret_len)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | flags);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > limit) {
		r = -EFBIG;
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO; /* shrank meanwhile */
			goto out;
		}
		got += (size_t)n;
	}
	data[got] = '\0';
	*ret = data;
	*ret_len = got;
	data = NULL;
out:
	free(data);
	close(fd);
	return r;
}

int lp_file_write_atomic(const char *path, const void *data, size_t len,
			 mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = lp_write_all(fd, data, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
