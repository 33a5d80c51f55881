// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of the snapshotter's fd holder (snapshot/fdholder.c): a real
 * holder process (lp_snap_fdholder_serve() in a child) and the daemon's
 * client side over its socket. What a restart relies on: an fd put is
 * handed back as the same open file with its key and state; one claimant
 * at a time (a second daemon is refused with the first one's pid, the next
 * one gets it once the first is gone); STOP is refused while another
 * daemon claims it; a holder of another protocol version is told apart;
 * garbage on the socket is refused without harm.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
