/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Module-private: what the two gRPC servers of snapshot/ (the Snapshots
 * service, grpc_server.c, and the CRI image-service proxy, cri_proxy.c)
 * share to listen on a unix socket, run their worker threads and tear their
 * completion queues down. Only the .c files of snapshot/ include this.
 */
#ifndef LP_GRPC_UNIX_H
#define LP_GRPC_UNIX_H

#include <grpc/grpc.h>
#include <pthread.h>

#include "lp_err.h"

/* lp_grpc_msg_args() - fill @args with both message-size limits at @max */
void lp_grpc_msg_args(grpc_arg args[2], int max);

/*
 * lp_grpc_listen_unix() - make @server serve the unix socket @path (an old
 * socket file there is removed) and start it. The socket is mode 0600 from
 * its bind on (umask around the bind: umask is per process, so call this
 * before other threads of the daemon create files). Returns 0 or -errno.
 */
int lp_grpc_listen_unix(grpc_server *server, const char *path,
			struct lp_err *err);

/*
 * lp_grpc_thread() - start @fn(@arg) on *@t with every signal blocked (the
 * daemon's main thread takes SIGTERM and friends). Returns 0 or -errno.
 */
int lp_grpc_thread(pthread_t *t, void *(*fn)(void *), void *arg);

/* lp_grpc_drain() - shut the "next" queue @cq down, take its last events,
 * destroy it (NULL allowed) */
void lp_grpc_drain(grpc_completion_queue *cq);

/* lp_grpc_drop_pluck() - shut down and destroy the "pluck" queue @cq whose
 * events were all plucked (the server's shutdown queue; NULL allowed): a
 * pluck queue has no next(), which would call through a NULL pointer */
void lp_grpc_drop_pluck(grpc_completion_queue *cq);

/*
 * A server's workers (grpc_pool.c): each runs @fn(args[i]) and serves one
 * call at a time; the pool starts another when the last idle one takes a
 * call, up to @max. The caller registers a completion queue for each of
 * the @max before its server starts.
 */
struct lp_grpc_pool;

/* lp_grpc_pool_new() - a pool of up to @max workers (args[0..max) their
 * arguments; @name for the log), none started. Returns 0 or -errno. */
int lp_grpc_pool_new(const char *name, unsigned int max, void *(*fn)(void *),
		     void *const args[], struct lp_grpc_pool **ret_pool);

/* lp_grpc_pool_grow() - start up to @n more workers (fewer once the pool
 * has its maximum or is closed). Returns 0 or the -errno of a thread that
 * did not start (those started before it run on). */
int lp_grpc_pool_grow(struct lp_grpc_pool *p, unsigned int n);

/* lp_grpc_pool_took() - a worker has taken a call: if no other is idle,
 * start another (logged) */
void lp_grpc_pool_took(struct lp_grpc_pool *p);

/* lp_grpc_pool_back() - a worker has finished its call and waits again */
void lp_grpc_pool_back(struct lp_grpc_pool *p);

/* lp_grpc_pool_close() - no worker starts from now on (call before the
 * server shuts down) */
void lp_grpc_pool_close(struct lp_grpc_pool *p);

/* lp_grpc_pool_free() - close, join every started worker (their server has
 * shut down: they have returned or will), free (NULL allowed) */
void lp_grpc_pool_free(struct lp_grpc_pool *p);

#endif
