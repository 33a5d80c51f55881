// SPDX-License-Identifier: Apache-2.0
/*
 * The FUSE adapter (libfuse3 low-level API): each operation unpacks the
 * request, calls the fs core, and replies. Errors become FUSE replies in one
 * place, reply_error(): the reply's errno comes from the error code alone
 * (lp_fs_reply_errno: a chunk that failed verification, a blob read that
 * failed are EIO; ENOMEM stays ENOMEM; ENOENT, ENOTDIR, ERANGE, EROFS...
 * pass through), and failures of the data path, which come with a struct
 * lp_err message, are logged once, naming layer, file and offset.
 *
 * The layer is immutable, so the kernel may cache everything for long:
 * entries, attributes, negative lookups, directory listings and file pages
 * (keep_cache). Only the control file changes: its entry and attributes are
 * never cached, and each lookup (every open by path does one) reports the
 * size and a new mtime of a fresh snapshot, so that the kernel, asked to
 * compare mtimes (FUSE_CAP_AUTO_INVAL_DATA), drops the previous pages.
 *
 * No open: when the kernel supports it, the first FUSE_OPEN (and the first
 * FUSE_OPENDIR) is answered ENOSYS; the kernel then opens files and
 * directories by itself, with keep_cache, and sends neither OPEN nor
 * RELEASE again: a warm open-read-close costs no request at all. Reads then
 * come without a handle (fh 0), and the core reads by inode. Opens are kept
 * (answered with a handle, the control file with direct I/O) when the
 * caller asks (keep_open, LAZYPULL_FUSE_OPEN=1 in the environment) or once
 * access recording is on, since recording counts opens: the kernel's choice
 * is for the whole connection and never undone.
 *
 * Every request is counted by operation (lp_fs_count_op: a relaxed atomic
 * increment in the layer's stats) before it is served, so the counts show
 * what the kernel asked for, whatever the answer was.
 *
 * Resuming a connection (lp_fuse_resume()): the connection of a mount
 * outlives the process that served it as long as some process holds its
 * /dev/fuse fd (the snapshotter's fd holder). libfuse 3.14 answers nothing
 * before it processed an INIT, and the kernel sends INIT once per
 * connection; so lp_fuse_mount() reads the kernel's INIT itself, keeps its
 * bytes (lp_fuse_get_state()) and hands it to libfuse, and a new process
 * feeds the same bytes to a new session over the held fd: libfuse then
 * negotiates what it negotiated the first time, and its reply, whose
 * request is long gone, fails with ENOENT, which libfuse ignores. Then a
 * FUSE_NOTIFY_RESEND (kernel 6.9) puts back on the queue what the dead
 * process had read and not answered. Nothing else is per connection: node
 * ids are TOC indexes + 1, and without open there are no file handles.
 * The saved state says both (a head before the INIT bytes: the serving
 * scheme of the build that mounted, whether it gave out file handles), so
 * that a build that would serve the connection differently refuses it.
 *
 * State comes from the request's userdata (the struct lp_fuse), never a
 * global. No locks here: the core is thread-safe.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lp_fuse.h"
#include "lp_log.h"

#define FUSE_CACHE_TIMEOUT 86400.0 /* seconds: nothing ever changes */
#define FUSE_CONNECTIONS "/sys/fs/fuse/connections"
/* enum fuse_notify_code in kernel 6.9 (protocol 7.40); Debian 12's
 * <linux/fuse.h> (7.38) predates it */
#define FUSE_NOTIFY_RESEND_CODE 7
/*
 * A read from /dev/fuse must have room for the largest request the
 * connection may send: a header, a write header and max_write bytes
 * (libfuse negotiates at most 256 pages).
 */
#define FUSE_READ_BUF (1024 * 1024 + 64 * 1024)

/* the head of a saved state (lp_fuse_get_state()), then the INIT bytes */
struct state_head {
	uint32_t magic; /* STATE_MAGIC */
	uint32_t scheme; /* LP_FUSE_SERVE_SCHEME of the build that mounted */
	uint32_t flags; /* STATE_* */
};
#define STATE_MAGIC 0x7366706cu /* "lpfs" */
#define STATE_HANDLES 1u /* opens were answered with file handles */
#define INIT_MAX (LP_FUSE_STATE_MAX - sizeof(struct state_head))

struct lp_fuse {
	struct fuse_session *se;
	struct lp_fs *fs; /* borrowed */
	unsigned int max_threads;
	bool keep_open; /* never answer ENOSYS to an open */
	atomic_bool no_open, no_opendir; /* set once, by op_init() */
	bool mounted;
	char *mountpoint; /* for lp_fuse_unmount() */
	struct lp_fuse_state init; /* the kernel's INIT, as read */
};

static struct lp_fuse *req_fuse(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct lp_fs *req_fs(fuse_req_t req)
{
	return req_fuse(req)->fs;
}

/* how long the kernel may keep an entry or attributes of @ino */
static double cache_timeout(fuse_req_t req, uint64_t ino)
{
	return lp_fs_volatile(req_fs(req), ino) ? 0.0 : FUSE_CACHE_TIMEOUT;
}

/*
 * The one place an error turns into a reply: the errno by the error itself
 * (lp_fs_reply_errno: bad-medium codes become EIO, ENOMEM stays ENOMEM),
 * and the message of a data-path failure logged once, here.
 */
static void reply_error(fuse_req_t req, int r, const struct lp_err *err)
{
	if (err && err->msg[0])
		lp_log_err("%s", err->msg);
	fuse_reply_err(req, lp_fs_reply_errno(r));
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lp_fuse *f = userdata;

	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	/*
	 * Pages are dropped when a file's mtime changes: only the control
	 * file's does. For the others the check costs nothing: their
	 * attributes never expire, so no request is made for it.
	 */
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	else
		conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (!f->keep_open) {
		atomic_store(&f->no_open,
			     (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0);
		atomic_store(&f->no_opendir,
			     (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) !=
				     0);
	}
}

static void fill_entry(fuse_req_t req, struct fuse_entry_param *e,
		       const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->attr = *st;
	e->attr_timeout = cache_timeout(req, st->st_ino);
	e->entry_timeout = e->attr_timeout;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct stat st;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_LOOKUP);
	r = lp_fs_lookup(req_fs(req), parent, name, &st);
	if (r == -ENOENT) {
		/* a cached negative entry: the name never appears later */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FUSE_CACHE_TIMEOUT;
		fuse_reply_entry(req, &e);
	} else if (r < 0) {
		reply_error(req, r, NULL);
	} else {
		fill_entry(req, &e, &st);
		fuse_reply_entry(req, &e);
	}
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_GETATTR);
	r = lp_fs_getattr(req_fs(req), ino, &st);
	if (r < 0)
		reply_error(req, r, NULL);
	else
		fuse_reply_attr(req, &st, cache_timeout(req, ino));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	const char *target;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_READLINK);
	r = lp_fs_readlink(req_fs(req), ino, &target);
	if (r < 0)
		reply_error(req, r, NULL);
	else
		fuse_reply_readlink(req, target);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_OPENDIR);
	r = lp_fs_getattr(req_fs(req), ino, &st);
	if (r == 0 && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r < 0) {
		reply_error(req, r, NULL);
		return;
	}
	if (atomic_load(&req_fuse(req)->no_opendir)) {
		/* the kernel opens directories itself from now on, with
		 * keep_cache and cache_readdir; readdir needs no handle */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

struct dir_buf {
	fuse_req_t req;
	char *buf;
	size_t size, len;
	bool plus;
};

static int add_dirent(void *opaque, const char *name, const struct stat *st,
		      uint64_t next_off)
{
	struct dir_buf *d = opaque;
	size_t left = d->size - d->len, n;

	if (d->plus) {
		struct fuse_entry_param e;

		fill_entry(d->req, &e, st);
		if (!st->st_nlink)
			e.ino = 0; /* no attributes: the kernel looks it up */
		n = fuse_add_direntry_plus(d->req, d->buf + d->len, left, name,
					   &e, (off_t)next_off);
	} else {
		n = fuse_add_direntry(d->req, d->buf + d->len, left, name, st,
				      (off_t)next_off);
	}
	if (n > left)
		return 1; /* full: offered again from its offset */
	d->len += n;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct dir_buf d = { .req = req, .size = size, .plus = plus };
	int r;

	lp_fs_count_op(req_fs(req),
		       plus ? LP_FS_OP_READDIRPLUS : LP_FS_OP_READDIR);
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		reply_error(req, -ENOMEM, NULL);
		return;
	}
	r = lp_fs_readdir(req_fs(req), ino, (uint64_t)off, add_dirent, &d);
	if (r < 0)
		reply_error(req, r, NULL);
	else
		fuse_reply_buf(req, d.buf, d.len);
	free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lp_fs_file *file = NULL;
	bool direct = false;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_OPEN);
	r = lp_fs_open(req_fs(req), ino, fi->flags, &file, &direct);
	if (r < 0) {
		reply_error(req, r, NULL);
		return;
	}
	if (atomic_load(&req_fuse(req)->no_open) &&
	    !lp_fs_recording(req_fs(req))) {
		/* checked like any open, then no handle: from now on the
		 * kernel opens files itself (keep_cache) and reads by inode */
		lp_fs_release(req_fs(req), file);
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->fh = (uintptr_t)file;
	fi->direct_io = direct;
	fi->keep_cache = !direct;
	if (fuse_reply_open(req, fi) == -ENOENT)
		lp_fs_release(req_fs(req), file); /* interrupted open */
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct lp_fs_file *file = (struct lp_fs_file *)(uintptr_t)fi->fh;
	struct lp_fs *fs = req_fs(req);
	struct lp_err err = { 0 };
	struct lp_fs_segs segs;
	char *buf;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_READ);
	/* reply straight from the pinned chunks: no buffer, no copy (the
	 * reply frees @req: unpin through @fs) */
	r = lp_fs_read_pin(fs, ino, file, size, (uint64_t)off, &segs, &err);
	if (r != -E2BIG) {
		if (r < 0)
			reply_error(req, r, &err);
		else
			fuse_reply_iov(req, segs.iov, (int)segs.nr);
		lp_fs_read_unpin(fs, &segs);
		return;
	}
	/* more chunks than segments (tiny chunks): copy them out */
	buf = malloc(size ? size : 1);
	if (!buf) {
		reply_error(req, -ENOMEM, NULL);
		return;
	}
	r = lp_fs_read(fs, ino, file, buf, size, (uint64_t)off, &err);
	if (r < 0)
		reply_error(req, r, &err);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	lp_fs_count_op(req_fs(req), LP_FS_OP_RELEASE);
	lp_fs_release(req_fs(req), (struct lp_fs_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char *buf = NULL;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_GETXATTR);
	if (size && !(buf = malloc(size))) {
		reply_error(req, -ENOMEM, NULL);
		return;
	}
	r = lp_fs_getxattr(req_fs(req), ino, name, buf, size);
	if (r < 0)
		reply_error(req, r, NULL);
	else if (!size)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = NULL;
	int r;

	lp_fs_count_op(req_fs(req), LP_FS_OP_LISTXATTR);
	if (size && !(buf = malloc(size))) {
		reply_error(req, -ENOMEM, NULL);
		return;
	}
	r = lp_fs_listxattr(req_fs(req), ino, buf, size);
	if (r < 0)
		reply_error(req, r, NULL);
	else if (!size)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	lp_fs_count_op(req_fs(req), LP_FS_OP_STATFS);
	lp_fs_statfs(req_fs(req), &st);
	fuse_reply_statfs(req, &st);
}

static const struct fuse_lowlevel_ops lp_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
};

/* LAZYPULL_FUSE_OPEN=1: keep FUSE_OPEN requests (to compare, or debug) */
static bool env_keep_open(void)
{
	const char *v = getenv("LAZYPULL_FUSE_OPEN");

	return v && !strcmp(v, "1");
}

/* is @b a FUSE_INIT request as the kernel sends it? */
static bool valid_init(const uint8_t *b, size_t len)
{
	struct fuse_in_header h;

	if (len < sizeof(h) + 2 * sizeof(uint32_t) || len > INIT_MAX)
		return false;
	memcpy(&h, b, sizeof(h));
	return h.opcode == FUSE_INIT && h.len == len;
}

/*
 * take_init() - read the kernel's INIT (the first request of a new
 * connection, queued by the mount itself), keep its bytes for a resume,
 * and let libfuse process it (op_init() runs now, in this thread).
 */
static int take_init(struct lp_fuse *f, struct lp_err *err)
{
	struct fuse_buf buf = { 0 };
	int r;

	r = fuse_session_receive_buf(f->se, &buf);
	if (r <= 0) {
		r = lp_err_set(err, r < 0 ? r : -EIO,
			       "%s: reading the FUSE INIT: %s", f->mountpoint,
			       strerror(r < 0 ? -r : EIO));
		goto out;
	}
	if (buf.flags & FUSE_BUF_IS_FD || !valid_init(buf.mem, buf.size)) {
		r = lp_err_set(err, -EPROTO,
			       "%s: the first FUSE request is not an INIT",
			       f->mountpoint);
		goto out;
	}
	memcpy(f->init.bytes, buf.mem, buf.size);
	f->init.len = buf.size;
	fuse_session_process_buf(f->se, &buf);
	r = 0;
out:
	free(buf.mem);
	return r;
}

/* the session, its options and @f's fields common to a mount and a resume */
static int new_session(struct lp_fs *fs, const struct lp_fuse_options *opts,
		       struct lp_fuse **ret_f, struct lp_err *err)
{
	char mopts[LP_FUSE_FSNAME_MAX + 128];
	const char *fsname = opts->fsname ? opts->fsname : "lazypull";
	char *argv[] = { "lazypull", "-o", mopts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct lp_fuse *f = NULL;
	int r = 0;

	/* fsname is a mount option: no commas (they separate options) */
	if (strlen(fsname) > LP_FUSE_FSNAME_MAX || strchr(fsname, ',')) {
		r = lp_err_set(err, -EINVAL, "bad fsname '%s'", fsname);
		goto out;
	}
	snprintf(mopts, sizeof(mopts),
		 "ro,default_permissions,fsname=%s,subtype=lazypull%s", fsname,
		 opts->allow_other ? ",allow_other" : "");
	f = calloc(1, sizeof(*f));
	if (!f) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	f->fs = fs;
	f->keep_open = opts->keep_open || env_keep_open();
	f->max_threads =
		opts->max_threads ? opts->max_threads : LP_FUSE_DEFAULT_THREADS;
	if (f->max_threads > LP_FUSE_MAX_THREADS)
		f->max_threads = LP_FUSE_MAX_THREADS;
	f->se = fuse_session_new(&args, &lp_fuse_ops, sizeof(lp_fuse_ops), f);
	if (!f->se) {
		r = lp_err_set(err, -EINVAL, "cannot create a FUSE session");
		goto out;
	}
	*ret_f = f;
	f = NULL;
out:
	fuse_opt_free_args(&args);
	lp_fuse_free(f);
	return r;
}

int lp_fuse_mount(struct lp_fs *fs, const char *mountpoint,
		  const struct lp_fuse_options *opts, struct lp_fuse **ret_fuse,
		  struct lp_err *err)
{
	struct lp_fuse *f = NULL;
	int r;

	r = new_session(fs, opts, &f, err);
	if (r < 0)
		goto out;
	if (fuse_session_mount(f->se, mountpoint) != 0) {
		r = lp_err_set(err, -EIO, "cannot mount on %s", mountpoint);
		goto out;
	}
	f->mounted = true;
	f->mountpoint = strdup(mountpoint);
	if (!f->mountpoint) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = take_init(f, err);
	if (r < 0)
		goto out;
	*ret_fuse = f;
	f = NULL;
out:
	lp_fuse_free(f);
	return r;
}

int lp_fuse_fd(const struct lp_fuse *fuse)
{
	return fuse_session_fd(fuse->se);
}

void lp_fuse_get_state(const struct lp_fuse *fuse,
		       struct lp_fuse_state *ret_state)
{
	struct state_head h = { .magic = STATE_MAGIC,
				.scheme = LP_FUSE_SERVE_SCHEME };

	if (fuse->keep_open || !atomic_load(&fuse->no_open))
		h.flags |= STATE_HANDLES;
	memcpy(ret_state->bytes, &h, sizeof(h));
	memcpy(ret_state->bytes + sizeof(h), fuse->init.bytes, fuse->init.len);
	ret_state->len = sizeof(h) + fuse->init.len;
}

/* the INIT of a saved @state of this build's scheme into @f->init */
static int take_state(struct lp_fuse *f, const struct lp_fuse_state *state,
		      const char *mountpoint, struct lp_err *err)
{
	struct state_head h;

	if (!state || state->len < sizeof(h) || state->len > LP_FUSE_STATE_MAX)
		return lp_err_set(err, -EPROTO,
				  "%s: the saved FUSE state is not lazypull's",
				  mountpoint);
	memcpy(&h, state->bytes, sizeof(h));
	if (h.magic != STATE_MAGIC)
		return lp_err_set(err, -EPROTO,
				  "%s: the saved FUSE state is not lazypull's "
				  "(an unknown head 0x%08x)",
				  mountpoint, h.magic);
	if (h.scheme != LP_FUSE_SERVE_SCHEME)
		return lp_err_set(err, -EPROTO,
				  "%s: mounted by a build that serves by "
				  "scheme %u, this build serves by scheme %u "
				  "(node ids would name other files): refused",
				  mountpoint, h.scheme, LP_FUSE_SERVE_SCHEME);
	if (h.flags & STATE_HANDLES)
		return lp_err_set(
			err, -EOPNOTSUPP,
			"%s: opens were kept on this connection (old "
			"kernel or LAZYPULL_FUSE_OPEN=1): its file "
			"handles died with the process that made them",
			mountpoint);
	if (h.flags & ~STATE_HANDLES)
		return lp_err_set(err, -EPROTO,
				  "%s: the saved FUSE state has unknown flags "
				  "0x%x: refused",
				  mountpoint, h.flags);
	f->init.len = state->len - sizeof(h);
	memcpy(f->init.bytes, state->bytes + sizeof(h), f->init.len);
	if (!valid_init(f->init.bytes, f->init.len))
		return lp_err_set(err, -EPROTO,
				  "%s: the saved FUSE state holds no INIT",
				  mountpoint);
	return 0;
}

int lp_fuse_resend(int fd)
{
	struct fuse_out_header h = { .len = sizeof(h),
				     .error = FUSE_NOTIFY_RESEND_CODE,
				     .unique = 0 };

	if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
		return -errno;
	return 0;
}

int lp_fuse_resume(struct lp_fs *fs, int fd, const char *mountpoint,
		   const struct lp_fuse_state *state,
		   const struct lp_fuse_options *opts,
		   struct lp_fuse **ret_fuse, struct lp_err *err)
{
	char devfd[32];
	struct fuse_buf buf = { 0 };
	struct lp_fuse *f = NULL;
	int r;

	r = new_session(fs, opts, &f, err);
	if (r < 0)
		goto out;
	r = take_state(f, state, mountpoint, err);
	if (r < 0)
		goto out;
	snprintf(devfd, sizeof(devfd), "/dev/fd/%d", fd);
	if (fuse_session_mount(f->se, devfd) != 0) {
		r = lp_err_set(err, -EBADF, "%s: cannot use fd %d", mountpoint,
			       fd);
		goto out;
	}
	fd = -1; /* the session's now */
	f->mountpoint = strdup(mountpoint);
	if (!f->mountpoint) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* the INIT of the first session again: libfuse negotiates as then;
	 * its reply finds no request (ENOENT) and is dropped */
	buf.mem = f->init.bytes;
	buf.size = f->init.len;
	fuse_session_process_buf(f->se, &buf);
	/* a file handle is a pointer of the process that answered the open:
	 * only a connection that never got one can change hands (the old
	 * process's side: take_state(); this one's: here) */
	if (f->keep_open || !atomic_load(&f->no_open)) {
		r = lp_err_set(err, -EOPNOTSUPP,
			       "%s: this process keeps opens "
			       "(LAZYPULL_FUSE_OPEN=1): it cannot take a "
			       "connection served without file handles",
			       mountpoint);
		goto out;
	}
	r = lp_fuse_resend(fuse_session_fd(f->se));
	if (r < 0) {
		lp_err_set(err, r,
			   "%s: FUSE_NOTIFY_RESEND: %s (a kernel before 6.9?)",
			   mountpoint, strerror(-r));
		goto out;
	}
	*ret_fuse = f;
	f = NULL;
out:
	if (fd >= 0)
		close(fd);
	lp_fuse_free(f);
	return r;
}

/*
 * a non-blocking fd on connection @fd's queue: a clone (FUSE_DEV_IOC_CLONE)
 * opened O_NONBLOCK. O_NONBLOCK is never set on @fd itself: its open file
 * is shared with the dups of the daemons that serve it.
 */
static int nonblocking_clone(int fd)
{
	uint32_t src = (uint32_t)fd;
	int c, r;

	c = open("/dev/fuse", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (c < 0)
		return -errno;
	if (ioctl(c, FUSE_DEV_IOC_CLONE, &src) < 0) {
		r = -errno;
		close(c);
		return r;
	}
	return c;
}

int lp_fuse_fail_pending(int fd, int error)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct fuse_out_header out;
	struct fuse_in_header in;
	uint8_t *buf;
	ssize_t n;
	int r = 0, c, rfd;

	/* a request seen by poll can vanish (interrupted) before the read:
	 * read through a non-blocking clone, and answer through it (a
	 * request is answered on the device it was read from) */
	c = nonblocking_clone(fd);
	rfd = c >= 0 ? c : fd;
	if (c < 0) {
		/* no clone (at the fd limit, say): @fd itself, if a poll
		 * still sees a request (a small window remains) */
		if (poll(&p, 1, 0) != 1)
			return 0;
		if (p.revents & (POLLERR | POLLHUP))
			return -ENODEV;
	}
	buf = malloc(FUSE_READ_BUF);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	n = read(rfd, buf, FUSE_READ_BUF);
	if (n < 0) {
		r = errno == EAGAIN ? 0 : -errno;
		goto out;
	}
	if ((size_t)n < sizeof(in)) {
		r = -EPROTO;
		goto out;
	}
	memcpy(&in, buf, sizeof(in));
	/* these are never answered */
	if (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET ||
	    in.opcode == FUSE_INTERRUPT)
		goto out;
	out.len = sizeof(out);
	out.error = -error;
	out.unique = in.unique;
	if (write(rfd, &out, sizeof(out)) < 0 && errno != ENOENT)
		r = -errno;
	else
		r = 1;
out:
	free(buf);
	if (c >= 0)
		close(c);
	return r;
}

/*
 * the session loop: the caller's thread waits while up to max_threads workers
 * serve, started as requests come and ended past LP_FUSE_IDLE_THREADS idle
 */
static int serve(struct lp_fuse *fuse)
{
	struct fuse_loop_config *cfg = NULL;
	int r;

	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		r = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_max_threads(cfg, fuse->max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, LP_FUSE_IDLE_THREADS);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	r = fuse_session_loop_mt(fuse->se, cfg);
	/* a signal ends the loop with its number; that is a clean stop */
	if (r > 0)
		r = 0;
out:
	fuse_loop_cfg_destroy(cfg);
	return r;
}

int lp_fuse_run(struct lp_fuse *fuse)
{
	int r;

	if (fuse_set_signal_handlers(fuse->se) != 0)
		return -EIO;
	r = serve(fuse);
	fuse_remove_signal_handlers(fuse->se);
	return r;
}

int lp_fuse_serve(struct lp_fuse *fuse)
{
	return serve(fuse);
}

/* abort the FUSE connection of the filesystem on device @dev */
static int abort_connection(dev_t dev)
{
	char path[128];
	int fd, r = 0;

	/* the directory is named after the kernel's device number */
	snprintf(path, sizeof(path), FUSE_CONNECTIONS "/%u/abort",
		 (major(dev) << 20) | minor(dev));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "1", 1) != 1)
		r = -errno;
	close(fd);
	return r;
}

int lp_fuse_unmount(struct lp_fuse *fuse)
{
	struct stat st;
	bool have_dev;
	int r = 0;

	if (!fuse->mountpoint)
		return -EINVAL;
	/* the session still serves: stat does not hang */
	have_dev = stat(fuse->mountpoint, &st) == 0;
	if (umount2(fuse->mountpoint, UMOUNT_NOFOLLOW) == 0)
		goto out;
	r = -errno;
	if (r != -EBUSY)
		goto out;
	/* busy: detach it, and cut the connection so the loop ends now */
	r = umount2(fuse->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) ? -errno :
								      0;
	if (r == 0 && have_dev)
		r = abort_connection(st.st_dev);
	if (r < 0)
		lp_log_warn("%s: busy; detached, connection abort: %s",
			    fuse->mountpoint, strerror(-r));
out:
	return r;
}

void lp_fuse_free(struct lp_fuse *fuse)
{
	if (!fuse)
		return;
	if (fuse->mounted)
		fuse_session_unmount(fuse->se);
	if (fuse->se)
		fuse_session_destroy(fuse->se);
	free(fuse->mountpoint);
	free(fuse);
}
