// SPDX-License-Identifier: Apache-2.0
/*
 * The pieces of a grpc core server on a unix socket that the Snapshots
 * service (grpc_server.c) and the CRI proxy (cri_proxy.c) share: the
 * message-size arguments, listening with mode 0600 from the bind on, worker
 * threads that take no signals, and draining a completion queue at stop.
 */
#include <errno.h>
#include <grpc/grpc_security.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grpc_unix.h"
#include "snap_int.h"

void lp_grpc_msg_args(grpc_arg args[2], int max)
{
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = max;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = max;
}

int lp_grpc_listen_unix(grpc_server *server, const char *path,
			struct lp_err *err)
{
	grpc_server_credentials *creds;
	char addr[LP_SNAP_PATH_MAX + 8];
	mode_t old_mask;
	bool bound;

	if (snprintf(addr, sizeof(addr), "unix:%s", path) >= (int)sizeof(addr))
		return lp_err_set(err, -ENAMETOOLONG,
				  "socket path too long: %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
	/* nobody but root may talk to either socket, not even in the moment
	 * between bind() and chmod() */
	creds = grpc_insecure_server_credentials_create();
	old_mask = umask(0177);
	bound = grpc_server_add_http2_port(server, addr, creds) != 0;
	umask(old_mask);
	grpc_server_credentials_release(creds);
	if (!bound)
		return lp_err_set(err, -EADDRINUSE, "cannot listen on %s",
				  addr);
	grpc_server_start(server);
	if (chmod(path, 0600) < 0)
		return lp_err_set(err, -errno, "chmod 0600 %s: %s", path,
				  strerror(errno));
	return 0;
}

int lp_grpc_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

void lp_grpc_drain(grpc_completion_queue *cq)
{
	grpc_event ev;

	if (!cq)
		return;
	grpc_completion_queue_shutdown(cq);
	do {
		ev = grpc_completion_queue_next(
			cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
}

void lp_grpc_drop_pluck(grpc_completion_queue *cq)
{
	if (!cq)
		return;
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
}
