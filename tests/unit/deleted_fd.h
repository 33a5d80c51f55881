/* SPDX-License-Identifier: Apache-2.0 */
/*
 * For unit tests of files that have no name (a spilled digest table, a
 * spool): find such a file among this process's descriptors. Include after
 * cmocka.h, stdio.h, string.h and unistd.h.
 */
#ifndef LP_DELETED_FD_H
#define LP_DELETED_FD_H

/* the descriptor of this process's one deleted file under @dir */
static int deleted_fd_in(const char *dir)
{
	char fdp[64], target[4096];
	int fd, found = -1;
	ssize_t len;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(fdp, sizeof(fdp), "/proc/self/fd/%d", fd);
		len = readlink(fdp, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (!strncmp(target, dir, strlen(dir)) &&
		    strstr(target, "(deleted)")) {
			assert_int_equal(found, -1);
			found = fd;
		}
	}
	assert_true(found >= 0);
	return found;
}

#endif
