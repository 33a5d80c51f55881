/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FUSE adapter: serves a struct lp_fs through the libfuse3 low-level API
 * on a multithreaded session loop. The only part of lazypull that includes
 * libfuse headers (fs/fuse_ops.c); callers see an opaque session.
 *
 * Mounting and serving are separate steps so that a daemon can mount, fork
 * (no threads exist yet), start its fetch threads, and only then serve.
 */
#ifndef LP_FUSE_H
#define LP_FUSE_H

#include <stdint.h>

#include "lp_err.h"
#include "lp_fs.h"

/*
 * Worker threads per session. One mount alone (`lazypull mount`) gets 16;
 * a process serving many layers at once (the snapshotter) 8 per layer,
 * since a container's reads spread over its layers and idle workers end
 * (LP_FUSE_IDLE_THREADS).
 */
#define LP_FUSE_MAX_THREADS 64
#define LP_FUSE_DEFAULT_THREADS 16
#define LP_FUSE_POOL_THREADS 8
/*
 * Idle workers a session keeps (libfuse's default keeps every worker it ever
 * started, each with its stack and receive buffer). Two, not one: libfuse
 * starts a worker whenever none is left waiting for a request, so with one
 * kept a lone request would start a thread and end another every time.
 */
#define LP_FUSE_IDLE_THREADS 2
#define LP_FUSE_FSNAME_MAX 256
#define LP_FUSE_STATE_MAX 256 /* bytes of a connection's saved state */
/*
 * How this build serves a connection, as far as the kernel remembers it
 * across a change of server: node ids (a layer's TOC entry index + 1, in
 * the order lp_toc_parse() gives entries, implied directories appended;
 * the control directory and file after them) and what a reply means. The
 * kernel caches lookups for a day, so a server that numbers nodes
 * differently would serve another file under a cached node id: a resume
 * across builds of different schemes is refused. Bump it with any change
 * to that numbering (format/toc_*.c entry order, fs/inode.c).
 */
#define LP_FUSE_SERVE_SCHEME 1

struct lp_fuse;

struct lp_fuse_options {
	const char *fsname; /* shown in /proc/mounts; NULL: "lazypull" */
	unsigned int max_threads; /* 0: LP_FUSE_DEFAULT_THREADS */
	bool allow_other; /* let other users (containers) read the mount */
	/* answer every FUSE_OPEN with a handle (off: the kernel is asked to
	 * stop sending them, see fs/fuse_ops.c); needed when access recording
	 * may start after the first open, as opens are what it counts */
	bool keep_open;
};

/*
 * lp_fuse_mount() - mount @fs read-only at @mountpoint (which must exist)
 * and return the session in *@ret_fuse. @fs stays the caller's and must
 * outlive the session. Returns 0, -EINVAL (bad options), -EIO (the mount
 * failed: @err says why; libfuse prints its own reason to stderr).
 */
int lp_fuse_mount(struct lp_fs *fs, const char *mountpoint,
		  const struct lp_fuse_options *opts, struct lp_fuse **ret_fuse,
		  struct lp_err *err);

/*
 * What a process needs, besides the connection's fd, to serve a connection
 * another process mounted, opaque to whoever keeps it: a versioned head
 * (LP_FUSE_SERVE_SCHEME of the build that mounted it, whether its file
 * handles may be in the kernel's open files) and the kernel's FUSE_INIT
 * request as it was read.
 */
struct lp_fuse_state {
	size_t len;
	uint8_t bytes[LP_FUSE_STATE_MAX];
};

/* lp_fuse_fd() - the connection's /dev/fuse fd (borrowed: dup it). */
int lp_fuse_fd(const struct lp_fuse *fuse);

/* lp_fuse_get_state() - what lp_fuse_resume() needs besides the fd. */
void lp_fuse_get_state(const struct lp_fuse *fuse,
		       struct lp_fuse_state *ret_state);

/*
 * lp_fuse_resume() - serve the existing connection @fd (a dup of another
 * session's lp_fuse_fd(), mounted at @mountpoint) with @fs: a new session
 * that processes the saved INIT @state again, then asks the kernel to send
 * again the requests read but not answered by the previous server
 * (FUSE_NOTIFY_RESEND, kernel 6.9+). @fs must be the same layer (inode
 * numbers are TOC indexes). Takes @fd (closed by lp_fuse_free(), also on
 * failure). lp_fuse_unmount() works as for a mount. Returns 0, -EPROTO
 * (@state is not one of this build's: another serving scheme, an unknown
 * head, no INIT; @err names the versions), -EBADF, -EOPNOTSUPP (the
 * connection keeps opens: its file handles were the old process's
 * pointers), -EINVAL (resend refused: a kernel before 6.9).
 */
int lp_fuse_resume(struct lp_fs *fs, int fd, const char *mountpoint,
		   const struct lp_fuse_state *state,
		   const struct lp_fuse_options *opts,
		   struct lp_fuse **ret_fuse, struct lp_err *err);

/*
 * lp_fuse_resend() - ask the kernel to queue again the requests of
 * connection @fd that were read and not answered. 0 or -errno.
 */
int lp_fuse_resend(int fd);

/*
 * lp_fuse_fail_pending() - for a process that holds connection @fd while no
 * server runs: read one request and answer it with @error (forgets and
 * interrupts get no answer). Never blocks: it reads through a non-blocking
 * clone of @fd (FUSE_DEV_IOC_CLONE; @fd's own flags are left alone).
 * Returns 1 answered, 0 nothing to answer, -errno (-ENODEV: the connection
 * is gone).
 */
int lp_fuse_fail_pending(int fd, int error);

/*
 * lp_fuse_run() - serve requests until the filesystem is unmounted
 * (fusermount3 -u, umount) or SIGTERM/SIGINT/SIGHUP arrive. Returns 0 or
 * -errno from the session loop.
 */
int lp_fuse_run(struct lp_fuse *fuse);

/*
 * lp_fuse_serve() - like lp_fuse_run() but installs no signal handlers: for
 * a process that serves several mounts on threads of its own and handles
 * signals itself. Returns when the filesystem is unmounted (for instance by
 * lp_fuse_unmount() from another thread): 0 or -errno from the session loop.
 */
int lp_fuse_serve(struct lp_fuse *fuse);

/*
 * lp_fuse_unmount() - unmount now, from any thread, so that a running
 * lp_fuse_serve()/lp_fuse_run() returns. When the mount is busy it is
 * detached and its FUSE connection aborted (open files then fail with
 * ENOTCONN). Call lp_fuse_free() after the serving thread returned. Returns
 * 0, or -errno when the mount could not be removed.
 */
int lp_fuse_unmount(struct lp_fuse *fuse);

/* lp_fuse_free() - unmount if still mounted, free. NULL allowed. */
void lp_fuse_free(struct lp_fuse *fuse);

#endif /* LP_FUSE_H */
