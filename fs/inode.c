// SPDX-License-Identifier: Apache-2.0
/*
 * The inode view of a TOC: attributes, lookup, directory listing, symlink
 * targets and xattrs, with the overlayfs conventions of a lower layer
 * (whiteouts shown as 0/0 character devices, opaque markers turned into an
 * xattr, landmarks hidden) and the hidden control directory `/.lazypull`.
 * Everything here reads the immutable TOC: no locks, no allocation (but
 * for a lookup of the stats file, which makes its snapshot: stats.c).
 *
 * Inode numbers: entry index + 1 (root = 1); nr_entries + 1 and + 2 are the
 * control directory and its stats file.
 */
#include <errno.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "fs_int.h"

#define FS_BLKSIZE 4096
#define WH_PREFIX_LEN (sizeof(LP_WHITEOUT_PREFIX) - 1)
#define OPAQUE_XATTR "trusted.overlay.opaque"

enum visibility {
	VIS_HIDDEN,
	VIS_SHOWN,
	VIS_WHITEOUT, /* shown as a 0/0 char device without the prefix */
};

static bool is_whiteout_name(const char *name)
{
	return !strncmp(name, LP_WHITEOUT_PREFIX, WH_PREFIX_LEN);
}

static enum visibility visibility(const struct lp_toc *toc, uint32_t idx)
{
	const struct lp_toc_entry *e = lp_toc_entry(toc, idx);
	const char *name = lp_toc_entry_name(toc, e);

	if (idx == 0)
		return VIS_SHOWN;
	if (e->parent == 0 && (!strcmp(name, LP_PREFETCH_LANDMARK) ||
			       !strcmp(name, LP_NO_PREFETCH_LANDMARK)))
		return VIS_HIDDEN;
	if (!is_whiteout_name(name))
		return VIS_SHOWN;
	if (!strcmp(name, LP_WHITEOUT_OPAQUE))
		return VIS_HIDDEN;
	return VIS_WHITEOUT;
}

/* directory @idx's opaque marker entry, or LP_TOC_NO_INDEX (none, or no
 * directory) */
static uint32_t opaque_marker(const struct lp_toc *toc, uint32_t idx)
{
	if (lp_toc_entry(toc, idx)->type != LP_TOC_DIR)
		return LP_TOC_NO_INDEX;
	return lp_toc_lookup(toc, idx, LP_WHITEOUT_OPAQUE,
			     strlen(LP_WHITEOUT_OPAQUE));
}

static bool is_opaque_dir(const struct lp_toc *toc, uint32_t idx)
{
	return opaque_marker(toc, idx) != LP_TOC_NO_INDEX;
}

/* entry index of inode @ino, or LP_TOC_NO_INDEX for control inodes/bad */
static uint32_t entry_index(const struct lp_fs *fs, uint64_t ino)
{
	if (ino < 1 || ino > lp_toc_nr_entries(fs->toc))
		return LP_TOC_NO_INDEX;
	return (uint32_t)(ino - 1);
}

/*
 * A mount whose gzip index was found lying answers nothing more of the
 * layer's entries (their metadata came from the index too); the control
 * directory and stats file stay, to say so.
 */
static bool entry_poisoned(struct lp_fs *fs, uint64_t ino)
{
	return entry_index(fs, ino) != LP_TOC_NO_INDEX &&
	       fs_poisoned(fs, NULL) < 0;
}

/*
 * A gzip index layer: entry @idx's own tar header checked (once; batched:
 * the headers around it in its span come with it, fs_check_file()) before
 * anything of it is answered, its metadata being the index's word until
 * then: a hardlink's own (the answer is its target's inode, whose read
 * checks only the target's header), then the inode's entry it reports.
 * Not the root's (docs/format.md: the mount itself asks for its
 * attributes, and no read should fetch before the first read). 0, or -EIO
 * (a lie poisons the mount) or the blob's error.
 */
static int check_entry(struct lp_fs *fs, uint32_t idx)
{
	struct lp_err err = { 0 }; /* a lie is logged by the poison */
	uint32_t ino;
	int r;

	if (!fs->ix || idx == 0)
		return 0; /* the root: the mount's own getattr would fetch */
	r = fs_check_file(fs, idx, &err);
	ino = lp_toc_entry_ino(fs->toc, lp_toc_entry(fs->toc, idx));
	if (r == 0 && ino != idx)
		r = fs_check_file(fs, ino, &err);
	return r == -EBADMSG ? -EIO : r;
}

/*
 * Whether entry @idx's attributes (lookup, getattr, a listing's, xattrs)
 * may be answered from the file table before its header is checked: for
 * a trusted index (signed by a key the node trusts, or proven once on
 * this node), whose file table is the signer's word like its windows
 * (docs/format.md, "What trusted changes"), and an entry whose answer is
 * attributes only, its content being checked before it is served: a
 * directory, a regular file with bytes (fs_check_file() before its first
 * read), a symlink (check_entry() before its target). Not a hardlink (its
 * answer is another entry's inode, whose read checks only that entry), a
 * whiteout (it hides a lower layer's file), an empty file (the kernel
 * reads nothing of it: its emptiness is its content), a device or fifo,
 * nor an entry with xattrs (overlayfs takes trusted.overlay.* ones for
 * content). The proving pass checks every header all the same and
 * poisons the mount on a lie.
 */
static bool attrs_trusted(const struct lp_fs *fs, uint32_t idx)
{
	const struct lp_toc_entry *e;
	uint32_t nr = 0;

	if (!fs->ix || !lp_index_trusted(fs->ix))
		return false;
	e = lp_toc_entry(fs->toc, idx);
	if (lp_toc_entry_ino(fs->toc, e) != idx ||
	    visibility(fs->toc, idx) != VIS_SHOWN)
		return false;
	(void)lp_toc_entry_xattrs(fs->toc, e, &nr);
	if (nr)
		return false;
	switch (e->type) {
	case LP_TOC_DIR: /* an opaque one's marker: xattr_owner() */
	case LP_TOC_SYMLINK:
		return true;
	case LP_TOC_REG:
		return e->size > 0;
	default:
		return false;
	}
}

/* check_entry() unless attrs_trusted(): before an entry's attributes */
static int check_meta(struct lp_fs *fs, uint32_t idx)
{
	return attrs_trusted(fs, idx) ? 0 : check_entry(fs, idx);
}

/*
 * Whether check_meta(@idx) has nothing left to check: not a gzip index
 * layer, the root, an entry attrs_trusted(), an entry the TOC made up, or
 * its header (and its inode's) checked already, by a reader or the
 * proving pass.
 */
static bool meta_checked(struct lp_fs *fs, uint32_t idx)
{
	const struct lp_toc_entry *e;

	if (!fs->ix || idx == 0 || attrs_trusted(fs, idx))
		return true;
	e = lp_toc_entry(fs->toc, idx);
	return (e->flags & LP_TOC_IMPLIED) ||
	       (atomic_load(&fs->hdr_checked[idx]) &&
		atomic_load(&fs->hdr_checked[lp_toc_entry_ino(fs->toc, e)]));
}

static mode_t type_bits(uint16_t type)
{
	switch (type) {
	case LP_TOC_DIR:
		return S_IFDIR;
	case LP_TOC_SYMLINK:
		return S_IFLNK;
	case LP_TOC_CHAR:
		return S_IFCHR;
	case LP_TOC_BLOCK:
		return S_IFBLK;
	case LP_TOC_FIFO:
		return S_IFIFO;
	default:
		return S_IFREG; /* reg, and hardlinks (resolved) */
	}
}

static void set_times(const struct lp_toc *toc, struct stat *st,
		      const struct lp_toc_entry *e)
{
	int64_t sec;
	uint32_t nsec;

	lp_toc_entry_mtime(toc, e, &sec, &nsec);
	st->st_mtim.tv_sec = (time_t)sec;
	st->st_mtim.tv_nsec = nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/*
 * What a listing gives of entry @idx of a gzip index layer before its
 * header is checked: its inode number and, for a whiteout (which its name
 * makes one, overlayfs asks DT_CHR entries whether they are), the type;
 * nothing else (no type: DT_UNKNOWN). st_nlink 0 says so (lp_fs_dirent_fn):
 * readdirplus then hands the kernel no attributes, and it looks the entry
 * up, which checks it.
 */
static void fill_unchecked(const struct lp_fs *fs, uint32_t idx,
			   struct stat *st)
{
	const struct lp_toc_entry *e = lp_toc_entry(fs->toc, idx);

	memset(st, 0, sizeof(*st));
	if (visibility(fs->toc, idx) == VIS_WHITEOUT) {
		st->st_ino = (ino_t)idx + 1;
		st->st_mode = S_IFCHR;
		return;
	}
	st->st_ino = (ino_t)lp_toc_entry_ino(fs->toc, e) + 1;
}

static void fill_entry(const struct lp_fs *fs, uint32_t idx, struct stat *st)
{
	const struct lp_toc_entry *e = lp_toc_entry(fs->toc, idx);
	const struct lp_toc_entry *ie =
		lp_toc_entry(fs->toc, lp_toc_entry_ino(fs->toc, e));
	uint32_t maj, min;

	memset(st, 0, sizeof(*st));
	st->st_blksize = FS_BLKSIZE;
	if (visibility(fs->toc, idx) == VIS_WHITEOUT) {
		/* as the reference: mode S_IFCHR, 0/0, owned by root */
		st->st_ino = (ino_t)idx + 1;
		st->st_mode = S_IFCHR;
		st->st_nlink = 1;
		st->st_rdev = makedev(0, 0);
		set_times(fs->toc, st, e);
		return;
	}
	st->st_ino = (ino_t)lp_toc_entry_ino(fs->toc, e) + 1;
	st->st_mode = type_bits(ie->type) | (ie->mode & 07777);
	st->st_nlink = lp_toc_entry_nlink(fs->toc, ie);
	st->st_uid = lp_toc_entry_uid(fs->toc, ie);
	st->st_gid = lp_toc_entry_gid(fs->toc, ie);
	if (ie->type == LP_TOC_CHAR || ie->type == LP_TOC_BLOCK) {
		lp_toc_entry_dev(fs->toc, ie, &maj, &min);
		st->st_rdev = makedev(maj, min);
	}
	switch (ie->type) {
	case LP_TOC_REG:
		st->st_size = (off_t)ie->size;
		break;
	case LP_TOC_SYMLINK:
		st->st_size =
			(off_t)strlen(lp_toc_entry_link_name(fs->toc, ie));
		break;
	case LP_TOC_DIR:
		st->st_size = FS_BLKSIZE;
		break;
	default:
		break;
	}
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	set_times(fs->toc, st, ie);
}

static void fill_control(struct lp_fs *fs, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_blksize = FS_BLKSIZE;
	set_times(fs->toc, st, lp_toc_entry(fs->toc, 0));
	if (ino == fs->ctl_dir_ino) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		/* the size and mtime of the last lookup's snapshot */
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		fs_stats_file_attr(fs, st);
	}
}

int lp_fs_getattr(struct lp_fs *fs, uint64_t ino, struct stat *st)
{
	uint32_t idx = entry_index(fs, ino);
	int r = 0;

	if (entry_poisoned(fs, ino))
		r = -EIO;
	else if (idx != LP_TOC_NO_INDEX) {
		r = check_meta(fs, idx);
		if (r == 0)
			fill_entry(fs, idx, st);
	} else if (ino == fs->ctl_dir_ino || ino == fs->stats_ino)
		fill_control(fs, ino, st);
	else
		r = -ENOENT;
	return r;
}

int lp_fs_lookup(struct lp_fs *fs, uint64_t parent, const char *name,
		 struct stat *st)
{
	char wh[WH_PREFIX_LEN + LP_TOC_MAX_NAME + 1];
	uint32_t pidx = entry_index(fs, parent), idx;
	size_t len = strlen(name);
	int r = 0;

	if (len > LP_TOC_MAX_NAME) {
		r = -ENAMETOOLONG;
		goto out;
	}
	if (parent == fs->ctl_dir_ino) {
		if (strcmp(name, LP_FS_STATS_FILE))
			r = -ENOENT;
		else if ((r = fs_stats_refresh(fs)) == 0) /* opens look up */
			fill_control(fs, fs->stats_ino, st);
		goto out;
	}
	if (pidx == LP_TOC_NO_INDEX) {
		r = parent == fs->stats_ino ? -ENOTDIR : -ENOENT;
		goto out;
	}
	if (entry_poisoned(fs, parent)) {
		if (pidx == 0 && !strcmp(name, LP_FS_CONTROL_DIR))
			fill_control(fs, fs->ctl_dir_ino, st);
		else
			r = -EIO;
		goto out;
	}
	if (lp_toc_entry(fs->toc, pidx)->type != LP_TOC_DIR) {
		r = -ENOTDIR;
		goto out;
	}
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		idx = name[1] ? lp_toc_entry(fs->toc, pidx)->parent : pidx;
		fill_entry(fs, idx, st);
		goto out;
	}
	if (is_whiteout_name(name)) {
		r = -ENOENT; /* shown without the prefix, or hidden */
		goto out;
	}
	idx = lp_toc_lookup(fs->toc, pidx, name, len);
	if (idx != LP_TOC_NO_INDEX) {
		if (visibility(fs->toc, idx) == VIS_HIDDEN)
			r = -ENOENT;
		else if ((r = check_meta(fs, idx)) == 0)
			fill_entry(fs, idx, st);
		goto out;
	}
	memcpy(wh, LP_WHITEOUT_PREFIX, WH_PREFIX_LEN);
	memcpy(wh + WH_PREFIX_LEN, name, len);
	idx = lp_toc_lookup(fs->toc, pidx, wh, WH_PREFIX_LEN + len);
	if (idx != LP_TOC_NO_INDEX) {
		/* a whiteout whose check fails is an error, never "absent":
		 * overlayfs would show the lower layer's deleted file */
		r = check_meta(fs, idx);
		if (r == 0)
			fill_entry(fs, idx, st);
		goto out;
	}
	if (pidx == 0 && !strcmp(name, LP_FS_CONTROL_DIR))
		fill_control(fs, fs->ctl_dir_ino, st);
	else
		r = -ENOENT;
out:
	return r;
}

/* the name child @idx of @dir is listed under, or NULL when hidden */
static const char *listed_name(const struct lp_toc *toc, uint32_t dir,
			       uint32_t idx)
{
	const char *name = lp_toc_entry_name(toc, lp_toc_entry(toc, idx));
	const char *shown = name + WH_PREFIX_LEN;

	switch (visibility(toc, idx)) {
	case VIS_SHOWN:
		return name;
	case VIS_WHITEOUT:
		/* a real sibling of that name wins over the whiteout */
		if (lp_toc_lookup(toc, dir, shown, strlen(shown)) !=
		    LP_TOC_NO_INDEX)
			return NULL;
		return shown;
	default:
		return NULL;
	}
}

int lp_fs_readdir(struct lp_fs *fs, uint64_t ino, uint64_t off,
		  lp_fs_dirent_fn fn, void *opaque)
{
	uint32_t idx = entry_index(fs, ino);
	const struct lp_toc_entry *d;
	struct stat st;
	uint64_t i;
	int r = 0;

	if (entry_poisoned(fs, ino)) {
		r = -EIO;
		goto out;
	}
	if (ino == fs->ctl_dir_ino) {
		for (i = off; i < 3; i++) {
			const char *name = i == 0 ? "." :
					   i == 1 ? ".." :
						    "stats";

			if (i == 0)
				fill_control(fs, ino, &st);
			else if (i == 1)
				fill_entry(fs, 0, &st);
			else
				fill_control(fs, fs->stats_ino, &st);
			if (fn(opaque, name, &st, i + 1))
				break;
		}
		goto out;
	}
	if (idx == LP_TOC_NO_INDEX) {
		r = ino == fs->stats_ino ? -ENOTDIR : -ENOENT;
		goto out;
	}
	d = lp_toc_entry(fs->toc, idx);
	if (d->type != LP_TOC_DIR) {
		r = -ENOTDIR;
		goto out;
	}
	for (i = off; i < 2 + (uint64_t)d->nr_children; i++) {
		uint32_t child;
		const char *name;

		if (i < 2) {
			fill_entry(fs, i == 0 ? idx : d->parent, &st);
			name = i == 0 ? "." : "..";
		} else {
			child = lp_toc_child(
				fs->toc, d->first_child + (uint32_t)(i - 2));
			name = listed_name(fs->toc, idx, child);
			if (!name)
				continue;
			if (meta_checked(fs, child)) {
				/* readdirplus hands the kernel the inode too */
				r = check_meta(fs, child);
				if (r < 0)
					break;
				fill_entry(fs, child, &st);
			} else {
				/* not checked yet: its name only (a listing
				 * does not wait for the header check, which
				 * proven-only waits for the pass to reach
				 * the entry: listing / waited for the pass
				 * to reach /var, near the layer's end) */
				fill_unchecked(fs, child, &st);
			}
		}
		if (fn(opaque, name, &st, i + 1))
			break;
	}
out:
	return r;
}

int lp_fs_readlink(struct lp_fs *fs, uint64_t ino, const char **ret_target)
{
	uint32_t idx = entry_index(fs, ino);
	const struct lp_toc_entry *e;
	int r = 0;

	if (idx == LP_TOC_NO_INDEX) {
		r = ino == fs->ctl_dir_ino || ino == fs->stats_ino ? -EINVAL :
								     -ENOENT;
		goto out;
	}
	if (entry_poisoned(fs, ino)) {
		r = -EIO;
		goto out;
	}
	r = check_entry(fs, idx); /* the target is the entry's content */
	if (r < 0)
		goto out;
	e = lp_toc_entry(fs->toc, idx);
	if (e->type != LP_TOC_SYMLINK) {
		r = -EINVAL;
		goto out;
	}
	*ret_target = lp_toc_entry_link_name(fs->toc, e);
	fs_record_access(fs, idx);
out:
	return r;
}

/* copy @len bytes of @value out as getxattr(2)/listxattr(2) do */
static int copy_out(void *buf, size_t size, const void *value, size_t len)
{
	if (!size)
		return (int)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, value, len);
	return (int)len;
}

/*
 * the inode entry whose xattrs @ino reports; LP_TOC_NO_INDEX for inodes
 * without any (control files, whiteouts)
 */
static int xattr_owner(struct lp_fs *fs, uint64_t ino, uint32_t *ret_idx)
{
	uint32_t idx = entry_index(fs, ino), marker;
	int r;

	if (idx == LP_TOC_NO_INDEX) {
		if (ino != fs->ctl_dir_ino && ino != fs->stats_ino)
			return -ENOENT;
		*ret_idx = LP_TOC_NO_INDEX;
		return 0;
	}
	if (entry_poisoned(fs, ino))
		return -EIO;
	r = check_meta(fs, idx);
	/* an opaque directory's xattr is its marker entry's word: checked
	 * like the directory (a made-up marker hides a lower directory) */
	marker = opaque_marker(fs->toc, idx);
	if (r == 0 && marker != LP_TOC_NO_INDEX)
		r = check_entry(fs, marker);
	if (r < 0)
		return r;
	if (visibility(fs->toc, idx) == VIS_WHITEOUT)
		*ret_idx = LP_TOC_NO_INDEX;
	else
		*ret_idx =
			lp_toc_entry_ino(fs->toc, lp_toc_entry(fs->toc, idx));
	return 0;
}

int lp_fs_getxattr(struct lp_fs *fs, uint64_t ino, const char *name, void *buf,
		   size_t size)
{
	const struct lp_toc_xattr *xs;
	uint32_t idx, i, nr;
	int r;

	r = xattr_owner(fs, ino, &idx);
	if (r < 0)
		goto out;
	r = -ENODATA;
	if (idx == LP_TOC_NO_INDEX)
		goto out;
	xs = lp_toc_entry_xattrs(fs->toc, lp_toc_entry(fs->toc, idx), &nr);
	for (i = 0; i < nr; i++) {
		if (!strcmp(xs[i].name, name)) {
			r = copy_out(buf, size, xs[i].value, xs[i].len);
			goto out;
		}
	}
	if (!strcmp(name, OPAQUE_XATTR) && is_opaque_dir(fs->toc, idx))
		r = copy_out(buf, size, "y", 1);
out:
	return r;
}

int lp_fs_listxattr(struct lp_fs *fs, uint64_t ino, char *buf, size_t size)
{
	const struct lp_toc_xattr *xs;
	bool has_opaque = false;
	size_t len = 0;
	uint32_t idx, i, nr;
	int r;

	r = xattr_owner(fs, ino, &idx);
	if (r < 0 || idx == LP_TOC_NO_INDEX)
		goto out;
	xs = lp_toc_entry_xattrs(fs->toc, lp_toc_entry(fs->toc, idx), &nr);
	for (i = 0; i <= nr; i++) {
		const char *name;
		size_t n;

		if (i < nr) {
			name = xs[i].name;
			has_opaque |= !strcmp(name, OPAQUE_XATTR);
		} else if (!has_opaque && is_opaque_dir(fs->toc, idx)) {
			name = OPAQUE_XATTR;
		} else {
			break;
		}
		n = strlen(name) + 1;
		if (size && len + n > size) {
			r = -ERANGE;
			goto out;
		}
		if (size)
			memcpy(buf + len, name, n);
		len += n;
	}
	r = (int)len;
out:
	return r;
}
