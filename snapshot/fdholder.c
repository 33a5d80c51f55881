// SPDX-License-Identifier: Apache-2.0
/*
 * The fd holder: a small process that keeps each lazily mounted layer's
 * /dev/fuse connection open while no snapshotter runs, so that a FUSE
 * connection outlives a crash (kill -9), a stop (SIGTERM) or an upgrade of
 * the daemon, and hands the connections to the next one. Its server side
 * (lp_snap_fdholder_serve(), `lazypull fdholder`) and the daemon's client side
 * (lp_fdh_*) are both here, so the wire format has one owner.
 *
 * Wire: SOCK_SEQPACKET on ROOT/fdholder.sock (0600, root only); every
 * message is one struct fdh_msg, an fd travels with it as SCM_RIGHTS (at
 * most one per message: a message with more is answered -EBADMSG, one
 * whose fd did not arrive because the holder is at its fd limit -EMFILE;
 * the connection goes on). One holder per root: it holds an flock on
 * ROOT/fdholder.lock for its lifetime.
 * The first 8 bytes (magic "LPFH", protocol version) never change: a side
 * that gets another version answers ERR carrying its own version and
 * closes, so a daemon and a holder of different builds always tell each
 * other apart, and nothing is handed over between versions that do not
 * know each other's format.
 *
 * Requests (a daemon to the holder), each answered by OK or ERR:
 *   CLAIM  (arg: unserved timeout, s) this connection is the serving
 *          daemon's, until it closes; -EBUSY (arg: its pid) when another
 *          live daemon claimed it. OK carries the holder's pid.
 *   LIST   one ITEM (key, state, fd) per held connection, then END
 *   PUT    hold the fd sent for key (replacing one held for it)
 *   DEL    drop key's fd (a DEL of no key is a no-op anybody may send:
 *          lp_fdh_dial() learns the holder's version with it)
 *   LIST, PUT and DEL are the claimant's: -EPERM to any other connection.
 *   STOP   close every fd and exit; -EBUSY while a daemon claims
 *
 * While no daemon claims the holder, the kernel queues the requests of its
 * connections and readers wait. After the unserved timeout (the last
 * claimant's setting) the holder asks each connection to queue again what
 * the dead daemon had read (FUSE_NOTIFY_RESEND) and answers every request
 * with EIO, until a daemon claims it again: readers fail rather than hang
 * forever, and the connections stay usable.
 *
 * The holder is single-threaded (poll). The client side is used by many
 * threads of the daemon: one mutex serialises its request/answer pairs;
 * after a timeout or an error the client closes its connection (a late
 * answer must never be read as the next request's) and lp_fdh_alive()
 * says false, so that the daemon dials and claims again.
 * Lock order: the client's lock only, taken after the layer pool's is
 * released.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lp_common.h"
#include "lp_io.h"
#include "lp_log.h"
#include "snap_int.h"

#define FDH_MAGIC "LPFH"
#define FDH_CLIENTS_MAX 16 /* connections the holder serves at once */
#define FDH_IO_TIMEOUT_MS 5000 /* the holder's send to a client */
/* the daemon's wait for an answer: longer than the holder's send timeout,
 * so that an answer the holder still sends is never left queued */
#define FDH_ANSWER_WAIT_MS (3 * FDH_IO_TIMEOUT_MS)
#define FDH_RECV_FDS_MAX 8 /* fds a receive takes in (then refuses) */
#define FDH_LOCK "fdholder.lock" /* under the root: one holder per root */
#define FDH_STOP_WAIT_MS 5000 /* a stopped holder's exit */

enum fdh_type {
	FDH_OK = 1,
	FDH_ERR,
	FDH_CLAIM,
	FDH_LIST,
	FDH_ITEM,
	FDH_END,
	FDH_PUT,
	FDH_DEL,
	FDH_STOP,
};

struct fdh_msg {
	char magic[4];
	uint32_t version; /* the sender's protocol */
	uint32_t type;
	int32_t status; /* answers: 0 or -errno */
	uint32_t arg; /* CLAIM: timeout (s); OK: holder pid; ERR: a pid */
	char key[LP_FDH_KEY_MAX]; /* NUL-terminated */
	uint32_t state_len;
	uint8_t state[LP_FUSE_STATE_MAX];
};

/* ---- messages ---------------------------------------------------------- */

static void msg_init(struct fdh_msg *m, uint32_t version, enum fdh_type type)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->magic, FDH_MAGIC, 4);
	m->version = version;
	m->type = type;
}

/* send @m, with @fd (>= 0) attached */
static int msg_send(int sock, const struct fdh_msg *m, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(*m))
		return errno ? -errno : -EIO;
	return 0;
}

/*
 * receive one message into @m and the fd it carries into *@ret_fd (-1:
 * none). Returns 0, -ECONNRESET (the peer closed), -EPROTO (not our magic
 * or a short message), -errno. A message of another version is returned
 * as is: the caller checks m->version. A message carries 0 or 1 fd: with
 * more it is -EBADMSG, and when the fds did not all arrive (MSG_CTRUNC:
 * this process at its RLIMIT_NOFILE) -EMFILE; both leave @m valid (the
 * connection can go on) and every fd that did arrive closed.
 */
static int msg_recv(int sock, struct fdh_msg *m, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * FDH_RECV_FDS_MAX)];
	int fds[FDH_RECV_FDS_MAX];
	size_t nfds = 0, k, len;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n;
	int r;

	*ret_fd = -1;
	memset(m, 0, sizeof(*m));
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	/* every fd that arrived, whatever else is wrong, so none leaks */
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
			continue;
		len = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < len && nfds < FDH_RECV_FDS_MAX; k++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + k * sizeof(int),
			       sizeof(int));
	}
	r = mh.msg_flags & MSG_TRUNC ? -EPROTO :
				       lp_fdh_msg_check(m, (size_t)n, NULL);
	if (r == 0 && (mh.msg_flags & MSG_CTRUNC))
		r = nfds >= FDH_RECV_FDS_MAX ? -EBADMSG : -EMFILE;
	if (r == 0 && nfds > 1)
		r = -EBADMSG;
	if (r == 0 && nfds == 1) {
		*ret_fd = fds[0];
		nfds = 0;
	}
	for (k = 0; k < nfds; k++)
		close(fds[k]);
	return r;
}

size_t lp_fdh_msg_size(void)
{
	return sizeof(struct fdh_msg);
}

int lp_fdh_msg_check(void *msg, size_t n, uint32_t *ret_version)
{
	struct fdh_msg *m = msg;

	/* the fixed head (magic, version) is all that is read of a message
	 * of another version: its answer names the version */
	if (n < 8 || n > sizeof(*m) || memcmp(m->magic, FDH_MAGIC, 4))
		return -EPROTO;
	if (ret_version)
		*ret_version = m->version;
	if (m->version != LP_SNAP_FDH_PROTO)
		return 0;
	if (n != sizeof(*m) || m->state_len > sizeof(m->state) ||
	    !memchr(m->key, '\0', sizeof(m->key)))
		return -EPROTO;
	return 0;
}

static int sock_path(const char *root, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/" LP_FDH_SOCKET,
		     root) >= (int)sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the holder ------------------------------------------------------- */

struct held {
	char key[LP_FDH_KEY_MAX];
	struct lp_fuse_state state;
	int fd;
};

struct holder {
	uint32_t version; /* what this holder speaks (tests may change it) */
	struct held *held;
	size_t n_held;
	int clients[FDH_CLIENTS_MAX]; /* -1: free */
	int claimant; /* index into clients, -1: none */
	pid_t claimant_pid;
	unsigned int timeout_s;
	uint64_t unclaimed_ns; /* when the claimant left (mono) */
	bool failing; /* answering requests with EIO */
	bool ever_claimed;
	bool stop;
};

static struct held *find_held(struct holder *h, const char *key)
{
	size_t i;

	for (i = 0; i < h->n_held; i++)
		if (!strcmp(h->held[i].key, key))
			return &h->held[i];
	return NULL;
}

static void drop_held(struct holder *h, struct held *e)
{
	close(e->fd);
	*e = h->held[--h->n_held];
}

static int answer(struct holder *h, int sock, int status, uint32_t arg)
{
	struct fdh_msg m;

	msg_init(&m, h->version, status ? FDH_ERR : FDH_OK);
	m.status = status;
	m.arg = arg;
	return msg_send(sock, &m, -1);
}

/*
 * a claimant whose connection is gone (its HUP maybe not seen yet). Its
 * connection may be readable while it lives (a request queued in this poll
 * round): only an end of file (a peek of 0 bytes) or an error is death.
 */
static bool claimant_alive(struct holder *h)
{
	char c;
	ssize_t n;

	if (h->claimant < 0)
		return false;
	n = recv(h->clients[h->claimant], &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		return true;
	return n < 0 &&
	       (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

static void unclaim(struct holder *h)
{
	if (h->claimant < 0)
		return;
	lp_log_warn("fdholder: snapshotter (pid %d) gone; holding %zu "
		    "connection(s), readers wait up to %u s for the next one",
		    (int)h->claimant_pid, h->n_held, h->timeout_s);
	h->claimant = -1;
	h->claimant_pid = 0;
	h->unclaimed_ns = lp_mono_ns();
}

static void close_client(struct holder *h, int i)
{
	if (h->claimant == i)
		unclaim(h);
	close(h->clients[i]);
	h->clients[i] = -1;
}

static pid_t peer_pid(int sock)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	return cr.pid;
}

static uid_t peer_uid(int sock)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return (uid_t)-1;
	return cr.uid;
}

static int do_list(struct holder *h, int sock)
{
	struct fdh_msg m;
	size_t i;
	int r;

	for (i = 0; i < h->n_held; i++) {
		msg_init(&m, h->version, FDH_ITEM);
		snprintf(m.key, sizeof(m.key), "%s", h->held[i].key);
		m.state_len = (uint32_t)h->held[i].state.len;
		memcpy(m.state, h->held[i].state.bytes, h->held[i].state.len);
		r = msg_send(sock, &m, h->held[i].fd);
		if (r < 0)
			return r;
	}
	msg_init(&m, h->version, FDH_END);
	return msg_send(sock, &m, -1);
}

static int do_put(struct holder *h, const struct fdh_msg *m, int fd)
{
	struct held *e, *n;

	if (fd < 0 || !m->key[0])
		return -EINVAL;
	e = find_held(h, m->key);
	if (e) {
		close(e->fd);
	} else {
		if (h->n_held >= LP_FDH_ENTRIES_MAX)
			return -E2BIG;
		n = realloc(h->held, (h->n_held + 1) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		h->held = n;
		e = &h->held[h->n_held++];
		snprintf(e->key, sizeof(e->key), "%s", m->key);
	}
	e->fd = fd;
	e->state.len = m->state_len;
	memcpy(e->state.bytes, m->state, m->state_len);
	return 0;
}

/* one request from client @i; false when the connection should close */
static bool handle(struct holder *h, int i)
{
	int sock = h->clients[i], fd = -1, r;
	struct held *e;
	struct fdh_msg m;

	r = msg_recv(sock, &m, &fd);
	if ((r == -EMFILE || r == -EBADMSG) && m.version == h->version) {
		/* its fds refused (closed), the connection goes on */
		lp_log_warn("fdholder: a request of pid %d: %s",
			    (int)peer_pid(sock),
			    r == -EMFILE ? "its fd did not arrive (this "
					   "holder is at its fd limit)" :
					   "more than one fd");
		return answer(h, sock, r, 0) == 0;
	}
	if (r == -EMFILE || r == -EBADMSG)
		r = -EPROTO;
	if (r == -EPROTO || (r == 0 && m.version != h->version)) {
		lp_log_warn("fdholder: a client (pid %d) speaks protocol %u, "
			    "this holder %u: refused",
			    (int)peer_pid(sock), r == 0 ? m.version : 0,
			    h->version);
		if (fd >= 0)
			close(fd);
		answer(h, sock, -EPROTO, (uint32_t)getpid());
		return false;
	}
	if (r < 0)
		return false;
	/* the held connections are the claimant's alone; a DEL of no key
	 * (what lp_fdh_dial() sends to learn the version) is anybody's */
	if (h->claimant != i && (m.type == FDH_PUT || m.type == FDH_LIST ||
				 (m.type == FDH_DEL && m.key[0]))) {
		r = answer(h, sock, -EPERM, (uint32_t)h->claimant_pid);
		if (fd >= 0)
			close(fd);
		return r == 0;
	}
	switch (m.type) {
	case FDH_CLAIM:
		if (h->claimant >= 0 && h->claimant != i && claimant_alive(h)) {
			r = answer(h, sock, -EBUSY, (uint32_t)h->claimant_pid);
			break;
		}
		if (h->claimant >= 0 && h->claimant != i)
			close_client(h, h->claimant);
		h->claimant = i;
		h->ever_claimed = true;
		h->claimant_pid = peer_pid(sock);
		h->timeout_s = m.arg;
		if (h->failing)
			lp_log_warn("fdholder: snapshotter (pid %d) serves "
				    "again; no more EIO answers",
				    (int)h->claimant_pid);
		h->failing = false;
		r = answer(h, sock, 0, (uint32_t)getpid());
		break;
	case FDH_LIST:
		r = do_list(h, sock);
		break;
	case FDH_PUT:
		r = do_put(h, &m, fd);
		if (r == 0)
			fd = -1;
		r = answer(h, sock, r, 0);
		break;
	case FDH_DEL:
		e = find_held(h, m.key);
		if (e)
			drop_held(h, e);
		r = answer(h, sock, 0, 0);
		break;
	case FDH_STOP:
		if (h->claimant >= 0 && h->claimant != i && claimant_alive(h)) {
			r = answer(h, sock, -EBUSY, (uint32_t)h->claimant_pid);
			break;
		}
		h->stop = true;
		r = answer(h, sock, 0, (uint32_t)getpid());
		break;
	default:
		r = answer(h, sock, -EOPNOTSUPP, 0);
		break;
	}
	if (fd >= 0)
		close(fd);
	return r == 0;
}

/* the unserved timeout passed: from now on requests are answered EIO */
static void start_failing(struct holder *h)
{
	size_t i;

	h->failing = true;
	lp_log_warn("fdholder: no snapshotter for %u s: answering the "
		    "requests to its %zu layer(s) with EIO until one starts",
		    h->timeout_s, h->n_held);
	for (i = 0; i < h->n_held; i++)
		lp_fuse_resend(h->held[i].fd); /* what the dead one had read */
}

/*
 * tell systemd the holder listens (Type=notify): the daemon's unit, ordered
 * after the holder's, then finds it. The protocol is one datagram
 * "READY=1" to $NOTIFY_SOCKET (a path, or @ for the abstract namespace).
 */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	size_t n;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   len) < 0)
		lp_log_warn("fdholder: telling systemd: %s", strerror(errno));
	close(fd);
}

/* it holds up to LP_FDH_ENTRIES_MAX fds: the soft limit up to the hard one */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			lp_log_warn("fdholder: raising RLIMIT_NOFILE: %s",
				    strerror(errno));
	}
}

/*
 * one holder per root, for its lifetime: an flock on ROOT/fdholder.lock
 * (two holders starting together would both find the socket unanswered,
 * and the second one's bind would take the path from the first).
 */
static int lock_root(const char *root, int *ret_fd)
{
	char path[LP_SNAP_PATH_MAX];
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/" FDH_LOCK, root) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		lp_log_err("fdholder: %s: %s", path, strerror(-r));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
		lp_log_err("fdholder: another holder runs for %s (it holds "
			   "%s): %s",
			   root, path, strerror(errno));
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int listen_on(const char *root, int *ret_fd)
{
	struct sockaddr_un sa;
	int fd, r;

	r = sock_path(root, &sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* one holder per root: a second one would take the path from the
	 * first, and with it the connections of the next daemon */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		lp_log_err("fdholder: another holder (pid %d) answers on %s",
			   (int)peer_pid(fd), sa.sun_path);
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path); /* nobody answered on it: a dead holder's */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(sa.sun_path, 0600) < 0 || listen(fd, FDH_CLIENTS_MAX) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int lp_snap_fdholder_serve(const char *root, unsigned int timeout_s,
			   uint32_t version, bool exit_when_idle)
{
	struct pollfd p[2 + FDH_CLIENTS_MAX + LP_FDH_ENTRIES_MAX];
	struct holder h = { .version = version,
			    .claimant = -1,
			    .timeout_s = timeout_s };
	struct timeval io_timeout = { .tv_sec = FDH_IO_TIMEOUT_MS / 1000 };
	struct sockaddr_un sa;
	uint64_t now, deadline;
	int lfd = -1, sfd = -1, lockfd = -1, timeout, fd, r;
	size_t i, n, base;
	sigset_t sigs;

	for (i = 0; i < FDH_CLIENTS_MAX; i++)
		h.clients[i] = -1;
	h.unclaimed_ns = lp_mono_ns();
	signal(SIGPIPE, SIG_IGN);
	/* a holder started from a terminal outlives the session: the end of
	 * it must not drop every container's layers */
	signal(SIGHUP, SIG_IGN);
	raise_fd_limit();
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		r = -errno;
		goto out;
	}
	r = lp_mkdir_p(root, 0755, 0700);
	if (r < 0) {
		lp_log_err("fdholder: %s: %s", root, strerror(-r));
		goto out;
	}
	r = lock_root(root, &lockfd);
	if (r < 0)
		goto out;
	r = listen_on(root, &lfd);
	if (r < 0) {
		lp_log_err("fdholder: cannot listen under %s: %s", root,
			   strerror(-r));
		goto out;
	}
	notify_ready();
	lp_log_warn("fdholder: holding FUSE connections for %s (pid %d, "
		    "protocol %u)",
		    root, (int)getpid(), version);
	while (!h.stop) {
		n = 0;
		p[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (i = 0; i < FDH_CLIENTS_MAX; i++)
			p[n++] = (struct pollfd){ .fd = h.clients[i],
						  .events = POLLIN };
		base = n;
		if (h.failing)
			for (i = 0; i < h.n_held; i++)
				p[n++] = (struct pollfd){ .fd = h.held[i].fd,
							  .events = POLLIN };
		timeout = -1;
		if (h.claimant < 0 && !h.failing && h.n_held) {
			now = lp_mono_ns();
			deadline = h.unclaimed_ns +
				   (uint64_t)h.timeout_s * 1000000000ull;
			if (now >= deadline) {
				start_failing(&h);
				continue;
			}
			timeout = (int)((deadline - now) / 1000000) + 1;
		}
		if (poll(p, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (p[0].revents) {
			lp_log_warn("fdholder: signal: closing %zu "
				    "connection(s) and exiting",
				    h.n_held);
			break;
		}
		/* existing clients first: a dead claimant's hangup before
		 * the next daemon's claim */
		for (i = 0; i < FDH_CLIENTS_MAX; i++) {
			if (h.clients[i] < 0 || !p[2 + i].revents)
				continue;
			if (!handle(&h, (int)i))
				close_client(&h, (int)i);
			if (h.stop)
				break;
		}
		if (h.failing && !h.stop) {
			/* entries may have moved: match by fd */
			for (i = base; i < n; i++) {
				if (!p[i].revents)
					continue;
				r = p[i].revents & (POLLERR | POLLHUP) ?
					    -ENODEV :
					    lp_fuse_fail_pending(p[i].fd, EIO);
				if (r == -ENODEV)
					for (size_t k = 0; k < h.n_held; k++)
						if (h.held[k].fd == p[i].fd) {
							drop_held(&h,
								  &h.held[k]);
							break;
						}
			}
		}
		/* started by a daemon: nothing held, nobody to hold it for */
		if (exit_when_idle && h.ever_claimed && h.claimant < 0 &&
		    !h.n_held && !h.stop) {
			lp_log_info("fdholder: nothing to hold; exiting");
			break;
		}
		if (p[1].revents && !h.stop) {
			/* accept4(2) takes NULL for an address we do not
			 * want; cppcheck's gnu.cfg says it may not */
			/* cppcheck-suppress nullPointer */
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			/* the socket is 0600 in a 0700 root; still, only
			 * this user's processes may hand fds over or take
			 * them */
			if (fd >= 0 && peer_uid(fd) != geteuid()) {
				close(fd);
				fd = -1;
			}
			/* a client that stops reading must not stall the
			 * holder (it answers every other one) */
			if (fd >= 0 &&
			    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io_timeout,
				       sizeof(io_timeout)) < 0) {
				close(fd);
				fd = -1;
			}
			for (i = 0; fd >= 0 && i < FDH_CLIENTS_MAX; i++)
				if (h.clients[i] < 0)
					break;
			if (fd >= 0 && i == FDH_CLIENTS_MAX)
				close(fd);
			else if (fd >= 0)
				h.clients[i] = fd;
		}
	}
	r = 0;
out:
	for (i = 0; i < h.n_held; i++)
		close(h.held[i].fd);
	free(h.held);
	for (i = 0; i < FDH_CLIENTS_MAX; i++)
		if (h.clients[i] >= 0)
			close(h.clients[i]);
	if (lfd >= 0) {
		close(lfd);
		if (sock_path(root, &sa) == 0)
			unlink(sa.sun_path);
	}
	if (sfd >= 0)
		close(sfd);
	if (lockfd >= 0)
		close(lockfd); /* last: the socket is gone before the next */
	return r;
}

/* ---- the daemon's side -------------------------------------------------- */

struct lp_fdh {
	pthread_mutex_t lock; /* one request/answer at a time */
	int sock; /* protected by lock */
	pid_t pid; /* the holder's */
};

pid_t lp_fdh_pid(const struct lp_fdh *h)
{
	return h->pid;
}

void lp_fdh_free(struct lp_fdh *h)
{
	if (!h)
		return;
	if (h->sock >= 0)
		close(h->sock);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* wait up to FDH_ANSWER_WAIT_MS for an answer on @sock */
static int wait_answer(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int n;

	if (sock < 0)
		return -ENOTCONN;
	n = poll(&p, 1, FDH_ANSWER_WAIT_MS);

	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/*
 * after a timeout or an error on the connection, an answer may still come
 * and would be read as the next request's: the connection is closed, and
 * lp_fdh_alive() says false so that the daemon dials and claims again.
 * Lock held.
 */
static void broken(struct lp_fdh *h, int r)
{
	if (h->sock < 0)
		return;
	lp_log_warn("fd holder (pid %d): %s; closing the connection",
		    (int)h->pid, strerror(-r));
	close(h->sock);
	h->sock = -1;
}

/* send @req (with @fd) and read the answer into @ans; -EPROTO on a
 * version mismatch, the answer's status otherwise. Lock held. */
static int call(struct lp_fdh *h, struct fdh_msg *req, int fd,
		struct fdh_msg *ans)
{
	int r, afd;

	memset(ans, 0, sizeof(*ans));
	if (h->sock < 0)
		return -ENOTCONN;
	r = msg_send(h->sock, req, fd);
	if (r == 0)
		r = wait_answer(h->sock);
	if (r == 0) {
		r = msg_recv(h->sock, ans, &afd);
		if (afd >= 0)
			close(afd);
	}
	if (r < 0) {
		broken(h, r);
		return r;
	}
	if (ans->version != LP_SNAP_FDH_PROTO)
		return -EPROTO;
	return ans->type == FDH_OK ? 0 : ans->status ? ans->status : -EPROTO;
}

int lp_fdh_new(struct lp_fdh **ret_h)
{
	struct lp_fdh *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->sock = -1;
	*ret_h = h;
	return 0;
}

int lp_fdh_dial(struct lp_fdh *h, const char *root, uint32_t *ret_version,
		pid_t *ret_pid, struct lp_err *err)
{
	struct sockaddr_un sa;
	struct fdh_msg m, a;
	int sock = -1, r, afd;

	*ret_version = 0;
	*ret_pid = 0;
	r = sock_path(root, &sa);
	if (r < 0)
		return lp_err_set(err, r, "%s: path too long", root);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return lp_err_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		lp_err_set(err, r, "no fd holder answers on %s: %s",
			   sa.sun_path, strerror(-r));
		goto out;
	}
	*ret_pid = peer_pid(sock);
	/* a request any version of the holder answers (a DEL of nothing),
	 * to learn its version */
	msg_init(&m, LP_SNAP_FDH_PROTO, FDH_DEL);
	r = msg_send(sock, &m, -1);
	if (r == 0)
		r = wait_answer(sock);
	if (r == 0)
		r = msg_recv(sock, &a, &afd);
	if (r == 0 && afd >= 0)
		close(afd);
	if (r == 0 && a.version != LP_SNAP_FDH_PROTO) {
		*ret_version = a.version;
		r = lp_err_set(err, -EPROTO,
			       "the fd holder (pid %d) on %s speaks protocol "
			       "%u, this build speaks %u",
			       (int)*ret_pid, sa.sun_path, a.version,
			       LP_SNAP_FDH_PROTO);
		goto out;
	}
	if (r < 0) {
		lp_err_set(err, r, "the fd holder on %s: %s", sa.sun_path,
			   strerror(-r));
		goto out;
	}
	*ret_version = a.version;
	pthread_mutex_lock(&h->lock);
	if (h->sock >= 0)
		close(h->sock);
	h->sock = sock;
	h->pid = *ret_pid;
	pthread_mutex_unlock(&h->lock);
	sock = -1;
out:
	if (sock >= 0)
		close(sock);
	return r;
}

int lp_fdh_claim(struct lp_fdh *h, unsigned int timeout_s, pid_t *ret_other,
		 struct lp_err *err)
{
	struct fdh_msg m, a;
	int r;

	msg_init(&m, LP_SNAP_FDH_PROTO, FDH_CLAIM);
	m.arg = timeout_s;
	pthread_mutex_lock(&h->lock);
	r = call(h, &m, -1, &a);
	pthread_mutex_unlock(&h->lock);
	if (r == -EBUSY) {
		*ret_other = (pid_t)a.arg;
		return lp_err_set(err, r,
				  "another snapshotter (pid %d) is serving "
				  "this root",
				  (int)a.arg);
	}
	if (r < 0)
		return lp_err_set(err, r, "claiming the fd holder: %s",
				  strerror(-r));
	return 0;
}

int lp_fdh_list(struct lp_fdh *h, lp_fdh_item_fn fn, void *opaque,
		struct lp_err *err)
{
	struct lp_fuse_state st;
	struct fdh_msg m, a;
	int r, fd = -1;

	msg_init(&m, LP_SNAP_FDH_PROTO, FDH_LIST);
	memset(&a, 0, sizeof(a));
	pthread_mutex_lock(&h->lock);
	r = h->sock < 0 ? -ENOTCONN : msg_send(h->sock, &m, -1);
	while (r == 0) {
		r = wait_answer(h->sock);
		if (r == 0)
			r = msg_recv(h->sock, &a, &fd);
		if (r == 0 && a.version != LP_SNAP_FDH_PROTO)
			r = -EPROTO;
		if (r < 0 || a.type == FDH_END)
			break;
		if (a.type == FDH_ERR) {
			r = a.status ? a.status : -EPROTO;
			break;
		}
		if (a.type != FDH_ITEM || fd < 0) {
			r = -EPROTO;
			break;
		}
		st.len = a.state_len;
		memcpy(st.bytes, a.state, a.state_len);
		fn(opaque, a.key, &st, fd); /* takes @fd */
		fd = -1;
	}
	/* a list cut short leaves its rest queued: a new connection */
	if (r < 0 && !(r == a.status && a.type == FDH_ERR))
		broken(h, r);
	pthread_mutex_unlock(&h->lock);
	if (fd >= 0)
		close(fd);
	return r < 0 ? lp_err_set(err, r, "listing the fd holder: %s",
				  strerror(-r)) :
		       0;
}

int lp_fdh_put(struct lp_fdh *h, const char *key,
	       const struct lp_fuse_state *st, int fd)
{
	struct fdh_msg m, a;
	int r;

	if (strlen(key) >= sizeof(m.key) || st->len > sizeof(m.state))
		return -ENAMETOOLONG;
	msg_init(&m, LP_SNAP_FDH_PROTO, FDH_PUT);
	snprintf(m.key, sizeof(m.key), "%s", key);
	m.state_len = (uint32_t)st->len;
	memcpy(m.state, st->bytes, st->len);
	pthread_mutex_lock(&h->lock);
	r = call(h, &m, fd, &a);
	pthread_mutex_unlock(&h->lock);
	return r;
}

int lp_fdh_del(struct lp_fdh *h, const char *key)
{
	struct fdh_msg m, a;
	int r;

	if (strlen(key) >= sizeof(m.key))
		return -ENAMETOOLONG;
	msg_init(&m, LP_SNAP_FDH_PROTO, FDH_DEL);
	snprintf(m.key, sizeof(m.key), "%s", key);
	pthread_mutex_lock(&h->lock);
	r = call(h, &m, -1, &a);
	pthread_mutex_unlock(&h->lock);
	return r;
}

bool lp_fdh_alive(struct lp_fdh *h)
{
	struct pollfd p;
	int n;

	pthread_mutex_lock(&h->lock);
	p.fd = h->sock;
	p.events = POLLIN;
	p.revents = 0;
	n = h->sock < 0 ? -1 : poll(&p, 1, 0);
	pthread_mutex_unlock(&h->lock);
	/* the holder never sends unasked: readable means closed (and a
	 * connection closed as broken() is no holder either) */
	return n == 0;
}

/* has process @pid ended (gone, or a zombie: its fds are closed)? */
static bool ended(pid_t pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* "PID (COMM) STATE ..." */
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* wait up to FDH_STOP_WAIT_MS for process @pid to end */
static bool wait_gone(pid_t pid)
{
	int i;

	for (i = 0; i < FDH_STOP_WAIT_MS / 20; i++) {
		if (ended(pid))
			return true;
		usleep(20 * 1000);
	}
	return false;
}

int lp_fdh_stop(struct lp_fdh *h, struct lp_err *err)
{
	struct fdh_msg m, a;
	int r;

	msg_init(&m, LP_SNAP_FDH_PROTO, FDH_STOP);
	pthread_mutex_lock(&h->lock);
	r = call(h, &m, -1, &a);
	pthread_mutex_unlock(&h->lock);
	if (r == -EBUSY)
		return lp_err_set(err, r,
				  "a snapshotter (pid %d) is serving this "
				  "root: stop it first (SIGTERM)",
				  (int)a.arg);
	if (r < 0)
		return lp_err_set(err, r, "stopping the fd holder: %s",
				  strerror(-r));
	if (h->pid > 0 && !wait_gone(h->pid))
		return lp_err_set(err, -ETIMEDOUT,
				  "the fd holder (pid %d) did not exit",
				  (int)h->pid);
	return 0;
}

int lp_fdh_kill(pid_t pid)
{
	if (pid <= 0)
		return -ESRCH;
	if (kill(pid, SIGTERM) < 0)
		return -errno;
	if (wait_gone(pid))
		return 0;
	kill(pid, SIGKILL);
	return wait_gone(pid) ? 0 : -ETIMEDOUT;
}

int lp_fdh_spawn(const char *root, unsigned int timeout_s, struct lp_err *err)
{
	char tbuf[16], log[LP_SNAP_PATH_MAX];
	pid_t pid;
	int st, fd;

	snprintf(tbuf, sizeof(tbuf), "%u", timeout_s);
	if (snprintf(log, sizeof(log), "%s/" LP_FDH_LOG, root) >=
	    (int)sizeof(log))
		return lp_err_set(err, -ENAMETOOLONG, "%s: path too long",
				  root);
	pid = fork();
	if (pid < 0)
		return lp_err_set(err, -errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* a session of its own, then a grandchild: nobody's child,
		 * no controlling terminal, outliving whoever started it */
		setsid();
		if (fork() != 0)
			_exit(0);
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		/* its own log: the daemon's stderr may be a pipe whose reader
		 * waits for its end, and the holder outlives the daemon */
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		close_range(3, ~0u, 0);
		if (chdir("/") < 0)
			_exit(127);
		execl("/proc/self/exe", "lazypull", "fdholder", "--root", root,
		      "--unserved-timeout", tbuf, "--exit-when-idle",
		      (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}
