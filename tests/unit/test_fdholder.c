// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of the snapshotter's fd holder (snapshot/fdholder.c): a real
 * holder process (lp_snap_fdholder_serve() in a child) and the daemon's
 * client side over its socket. What a restart relies on: an fd put is
 * handed back as the same open file with its key and state; one claimant
 * at a time (a second daemon is refused with the first one's pid, the next
 * one gets it once the first is gone); STOP is refused while another
 * daemon claims it; a holder of another protocol version is told apart;
 * garbage on the socket is refused without harm; a message with more than
 * one fd, or whose fd did not arrive (the holder at its fd limit), is
 * answered with an error, leaks no fd and keeps the connection; a live
 * claimant with a request queued is not evicted by a second claim; only
 * the claimant puts, deletes and lists; one holder per root.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../snapshot/snap_int.h"

struct fx {
	char root[64];
	pid_t holder;
};

/* a holder of protocol @version for @f->root, listening when this returns */
static void start_holder(struct fx *f, uint32_t version)
{
	struct lp_fdh *h = NULL;
	uint32_t v;
	pid_t pid;
	int i, r = -1;

	f->holder = fork();
	assert_true(f->holder >= 0);
	if (f->holder == 0)
		_exit(lp_snap_fdholder_serve(f->root, 60, version, false) ? 1 :
									    0);
	assert_int_equal(lp_fdh_new(&h), 0);
	for (i = 0; i < 200 && r != 0 && r != -EPROTO; i++) {
		r = lp_fdh_dial(h, f->root, &v, &pid, NULL);
		if (r != 0 && r != -EPROTO)
			usleep(10 * 1000);
	}
	assert_int_equal(v, version);
	assert_int_equal(pid, f->holder);
	lp_fdh_free(h);
}

static void stop_holder(struct fx *f)
{
	int st;

	if (f->holder > 0) {
		kill(f->holder, SIGTERM);
		waitpid(f->holder, &st, 0);
		f->holder = 0;
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/lp-fdh.XXXXXX");
	if (!mkdtemp(f->root)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char path[128];

	stop_holder(f);
	snprintf(path, sizeof(path), "%s/" LP_FDH_SOCKET, f->root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/fdholder.lock", f->root);
	unlink(path);
	rmdir(f->root);
	free(f);
	return 0;
}

static struct lp_fdh *dial(struct fx *f)
{
	struct lp_fdh *h = NULL;
	uint32_t v;
	pid_t pid;

	assert_int_equal(lp_fdh_new(&h), 0);
	assert_int_equal(lp_fdh_dial(h, f->root, &v, &pid, NULL), 0);
	assert_int_equal(v, LP_SNAP_FDH_PROTO);
	return h;
}

struct got {
	int n;
	char key[LP_FDH_KEY_MAX];
	struct lp_fuse_state st;
	int fd;
};

static void take(void *opaque, const char *key, const struct lp_fuse_state *st,
		 int fd)
{
	struct got *g = opaque;

	if (g->n++ == 0) {
		snprintf(g->key, sizeof(g->key), "%s", key);
		g->st = *st;
		g->fd = fd;
	} else {
		close(fd);
	}
}

static void test_put_list_del(void **state)
{
	struct fx *f = *state;
	struct lp_fuse_state st = { .len = 5, .bytes = "INIT" };
	struct lp_fdh *h;
	struct got g = { 0 };
	pid_t other = 0;
	int p[2];
	char c;

	start_holder(f, LP_SNAP_FDH_PROTO);
	h = dial(f);
	assert_int_equal(lp_fdh_claim(h, 60, &other, NULL), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(lp_fdh_put(h, "sha256:aa", &st, p[0]), 0);
	close(p[0]); /* the holder keeps the pipe's read end open */
	assert_int_equal(lp_fdh_list(h, take, &g, NULL), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.key, "sha256:aa");
	assert_int_equal(g.st.len, 5);
	assert_memory_equal(g.st.bytes, "INIT", 5);
	/* the same open file: what is written to the pipe comes out of it */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(read(g.fd, &c, 1), 1);
	assert_int_equal(c, 'x');
	close(g.fd);
	/* a put under the same key replaces */
	assert_int_equal(lp_fdh_put(h, "sha256:aa", &st, p[1]), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(lp_fdh_list(h, take, &g, NULL), 0);
	assert_int_equal(g.n, 1);
	close(g.fd);
	assert_int_equal(lp_fdh_del(h, "sha256:aa"), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(lp_fdh_list(h, take, &g, NULL), 0);
	assert_int_equal(g.n, 0);
	close(p[1]);
	assert_true(lp_fdh_alive(h));
	lp_fdh_free(h);
}

static void test_one_claimant(void **state)
{
	struct fx *f = *state;
	struct lp_fdh *a, *b;
	struct lp_err err = { 0 };
	pid_t other = 0;
	int st;

	start_holder(f, LP_SNAP_FDH_PROTO);
	a = dial(f);
	b = dial(f);
	assert_int_equal(lp_fdh_claim(a, 60, &other, NULL), 0);
	assert_int_equal(lp_fdh_claim(b, 60, &other, &err), -EBUSY);
	assert_int_equal(other, getpid());
	assert_non_null(strstr(err.msg, "another snapshotter"));
	assert_int_equal(lp_fdh_stop(b, NULL), -EBUSY);
	/* the claimant gone (its connection closed), the next one claims */
	lp_fdh_free(a);
	assert_int_equal(lp_fdh_claim(b, 60, &other, NULL), 0);
	assert_int_equal(lp_fdh_stop(b, NULL), 0);
	assert_int_equal(waitpid(f->holder, &st, 0), f->holder);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	f->holder = 0;
	lp_fdh_free(b);
}

static void test_other_version(void **state)
{
	struct fx *f = *state;
	struct lp_fdh *h = NULL;
	struct lp_err err = { 0 };
	uint32_t v = 0;
	pid_t pid = 0;

	start_holder(f, 99);
	assert_int_equal(lp_fdh_new(&h), 0);
	assert_int_equal(lp_fdh_dial(h, f->root, &v, &pid, &err), -EPROTO);
	assert_int_equal(v, 99);
	assert_int_equal(pid, f->holder);
	assert_non_null(strstr(err.msg, "speaks protocol 99"));
	lp_fdh_free(h);
	assert_int_equal(lp_fdh_kill(f->holder), 0);
	waitpid(f->holder, NULL, 0);
	f->holder = 0;
}

static void test_garbage(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char junk[300], ans[600];
	struct lp_fdh *h;
	size_t i, k;
	int s;

	start_holder(f, LP_SNAP_FDH_PROTO);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" LP_FDH_SOCKET,
		 f->root);
	for (k = 0; k < 4; k++) {
		s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		assert_true(s >= 0);
		assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		for (i = 0; i < sizeof(junk); i++)
			junk[i] = (char)(i * 7 + k);
		if (k == 1)
			memcpy(junk, "LPFH", 4); /* our magic, wrong size */
		assert_true(send(s, junk, k == 3 ? 3 : sizeof(junk), 0) > 0);
		/* refused (an ERR, or just closed), never crashing it */
		(void)recv(s, ans, sizeof(ans), 0);
		close(s);
	}
	h = dial(f); /* still serving */
	assert_true(lp_fdh_alive(h));
	lp_fdh_free(h);
}

/* the holder's open fds */
static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* the lowest fd number the holder has free */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	int k;

	for (k = 0;; k++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, k);
		if (access(path, F_OK) < 0)
			return k;
	}
}

/*
 * a raw request on @s: a message of this protocol of type 0 (unknown)
 * with @nfds fds; returns the answer's status. The wire's layout: magic,
 * version, type, status (4 bytes each) lead every message.
 */
static int32_t raw_request(int s, int nfds)
{
	char buf[8192], cbuf[CMSG_SPACE(sizeof(int) * 4)];
	uint32_t v = LP_SNAP_FDH_PROTO;
	struct iovec iov = { .iov_base = buf, .iov_len = lp_fdh_msg_size() };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int fds[4], p[2], i;
	int32_t status;

	assert_true(lp_fdh_msg_size() <= sizeof(buf));
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "LPFH", 4);
	memcpy(buf + 4, &v, 4);
	for (i = 0; i < nfds; i += 2) {
		assert_int_equal(pipe(p), 0);
		fds[i] = p[0];
		fds[i + 1] = p[1];
	}
	if (nfds) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	assert_int_equal(sendmsg(s, &mh, 0), (ssize_t)lp_fdh_msg_size());
	for (i = 0; i < nfds + (nfds & 1); i++)
		close(fds[i]);
	assert_int_equal(recv(s, buf, sizeof(buf), 0),
			 (ssize_t)lp_fdh_msg_size());
	memcpy(&status, buf + 12, 4);
	return status;
}

static void test_fds_per_message(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct lp_fuse_state st = { .len = 1, .bytes = "x" };
	char key[LP_FDH_KEY_MAX];
	struct lp_fdh *h;
	struct rlimit rl;
	int s, before, i, p[2];
	pid_t other = 0;

	start_holder(f, LP_SNAP_FDH_PROTO);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" LP_FDH_SOCKET,
		 f->root);
	s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(raw_request(s, 0), -EOPNOTSUPP);
	before = count_fds(f->holder);
	/* two fds (what the old control buffer had room for) and three */
	assert_int_equal(raw_request(s, 2), -EBADMSG);
	assert_int_equal(raw_request(s, 3), -EBADMSG);
	assert_int_equal(count_fds(f->holder), before);
	/* the holder at its fd limit: the fd does not arrive (MSG_CTRUNC),
	 * an error answers it, the connection stays */
	h = dial(f);
	assert_int_equal(lp_fdh_claim(h, 60, &other, NULL), 0);
	for (i = 0; i < 20; i++) {
		/* fds 0..k-1 all taken, k above poll's count of entries */
		snprintf(key, sizeof(key), "sha256:%02d", i);
		assert_int_equal(pipe(p), 0);
		assert_int_equal(lp_fdh_put(h, key, &st, p[0]), 0);
		close(p[0]);
		close(p[1]);
	}
	before = count_fds(f->holder);
	assert_int_equal(prlimit(f->holder, RLIMIT_NOFILE, NULL, &rl), 0);
	rl.rlim_cur = (rlim_t)lowest_free_fd(f->holder);
	assert_true(rl.rlim_cur >= 2 + 16 + 1);
	assert_int_equal(prlimit(f->holder, RLIMIT_NOFILE, &rl, NULL), 0);
	assert_int_equal(raw_request(s, 1), -EMFILE);
	assert_int_equal(count_fds(f->holder), before);
	assert_int_equal(raw_request(s, 0), -EOPNOTSUPP);
	close(s);
	lp_fdh_free(h);
}

struct put_arg {
	struct lp_fdh *h;
	int fd;
	int r;
};

static void *put_thread(void *opaque)
{
	struct put_arg *a = opaque;
	struct lp_fuse_state st = { .len = 1, .bytes = "x" };

	a->r = lp_fdh_put(a->h, "sha256:bb", &st, a->fd);
	return NULL;
}

static void *claim_thread(void *opaque)
{
	struct put_arg *a = opaque;
	pid_t other = 0;

	a->r = lp_fdh_claim(a->h, 60, &other, NULL);
	return NULL;
}

static void test_claimant_busy(void **state)
{
	struct fx *f = *state;
	struct put_arg pa = { 0 }, ca = { 0 };
	struct lp_fuse_state st = { .len = 1, .bytes = "x" };
	struct lp_fdh *a, *b;
	pthread_t t1, t2;
	pid_t other = 0;
	int p[2];

	start_holder(f, LP_SNAP_FDH_PROTO);
	b = dial(f); /* served first in a poll round */
	a = dial(f);
	assert_int_equal(lp_fdh_claim(a, 60, &other, NULL), 0);
	assert_int_equal(pipe(p), 0);
	/* not the claimant: no put, no del, no list */
	assert_int_equal(lp_fdh_put(b, "sha256:bb", &st, p[0]), -EPERM);
	assert_int_equal(lp_fdh_del(b, "sha256:bb"), -EPERM);
	assert_true(lp_fdh_list(b, take, NULL, NULL) == -EPERM);
	assert_true(lp_fdh_alive(b));
	/* the claimant's PUT and b's CLAIM queued in the same poll round:
	 * the claimant's readable connection is not its end */
	assert_int_equal(kill(f->holder, SIGSTOP), 0);
	pa.h = a;
	pa.fd = p[0];
	assert_int_equal(pthread_create(&t1, NULL, put_thread, &pa), 0);
	usleep(200 * 1000);
	ca.h = b;
	assert_int_equal(pthread_create(&t2, NULL, claim_thread, &ca), 0);
	usleep(200 * 1000);
	assert_int_equal(kill(f->holder, SIGCONT), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(pa.r, 0);
	assert_int_equal(ca.r, -EBUSY);
	assert_true(lp_fdh_alive(a));
	assert_int_equal(lp_fdh_del(a, "sha256:bb"), 0);
	close(p[0]);
	close(p[1]);
	lp_fdh_free(a);
	lp_fdh_free(b);
}

static void test_one_holder_per_root(void **state)
{
	struct fx *f = *state;
	pid_t second;
	int st;

	start_holder(f, LP_SNAP_FDH_PROTO);
	second = fork();
	assert_true(second >= 0);
	if (second == 0)
		_exit(lp_snap_fdholder_serve(f->root, 60, LP_SNAP_FDH_PROTO,
					     false) == -EADDRINUSE ?
			      3 :
			      1);
	assert_int_equal(waitpid(second, &st, 0), second);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	/* the first one still serves */
	lp_fdh_free(dial(f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_list_del, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_one_claimant, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_other_version, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_per_message, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_claimant_busy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_one_holder_per_root, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
