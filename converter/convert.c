// SPDX-License-Identifier: Apache-2.0
/*
 * lp_convert_layer(): tar in, eStargz or zstd:chunked out, laid out as the
 * reference converter (estargz.Build) lays it out: a landmark first, each
 * regular file's payload starting a new member and split into chunks, tar
 * headers at the end of the previous member, then the TOC (estargz: a
 * "stargz.index.json" tar entry plus the tar end in one gzip member; zstd:
 * skippable frames) and the footer.
 *
 * Without prioritised files the input is streamed: entries are re-encoded
 * and compressed as they are read. With prioritised files the reference's
 * reordering needs the whole entry list first, so pass 1 reads every header
 * into memory and spools payloads to an unlinked temporary file next to the
 * output; pass 2 emits them in the final order.
 *
 * TOC offsets are blob offsets of members, known only once the members
 * before them are compressed; records hold member indexes, resolved when the
 * TOC is written at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "lp_io.h"
#include "convert_int.h"
#include "lp_footer.h"
#include "lp_hashmap.h"
#include "lp_toc.h"

#define LP_CV_SPOOL_BUF (1 * LP_MIB)
#define LP_CV_MAX_MOVE_DEPTH 8192 /* moveRec recursion (paths, hardlinks) */
#define LP_CV_TAR_EOF 1024
#define LP_CV_NONE UINT32_MAX

struct lp_cv_rec {
	char *name;
	char *link_name;
	char *user_name, *group_name; /* NULL: unchanged, omitted */
	struct lp_toc_xattr *xattrs; /* names and values owned */
	uint32_t nr_xattrs;
	uint64_t size, member, chunk_offset, chunk_size;
	int64_t mtime;
	uint32_t mtime_ns;
	uint32_t mode, uid, gid, dev_major, dev_minor;
	uint8_t type;
	bool has_modtime, has_member, has_digest, has_chunk_digest;
	bool single_chunk, dead;
	struct lp_digest digest, chunk_digest;
};

enum lp_src_kind { LP_SRC_READER, LP_SRC_SPOOL, LP_SRC_MEM };

struct lp_cv {
	enum lp_layer_format format;
	uint64_t chunk_size;
	uint64_t max_usize;
	int level;
	unsigned int threads;
	struct lp_err *err;

	struct lp_cv_pool *pool;
	struct lp_cv_reader *rd;
	int spool_fd;
	uint64_t spool_len;

	struct lp_cv_rec *recs;
	size_t nr_recs, cap_recs;
	uint64_t *member_off;
	size_t cap_members;
	struct lp_strmap names; /* clean name -> first rec (stream mode) */
	struct lp_hashmap unames, gnames; /* id -> last name (char *, owned) */

	struct lp_buf hdr;
	struct lp_sha256 *diff_sha, *file_sha;
	uint64_t usize;
};

/* ---- small maps ---- */

/* the index stored for @key, or LP_CV_NONE */
static uint32_t lp_names_get(const struct lp_strmap *m, const char *key)
{
	uint64_t v;

	return lp_strmap_get(m, key, &v) == 0 ? (uint32_t)v : LP_CV_NONE;
}

/* free the names of an id -> name map, then the map */
static void lp_idmap_free(struct lp_hashmap *m)
{
	size_t pos = 0;
	uint64_t v;

	while (lp_hashmap_next(m, &pos, NULL, &v))
		free((char *)(uintptr_t)v);
	lp_hashmap_release(m);
}

/*
 * The reference's nameIfChanged: @name when it differs from the last name
 * recorded for @id (and record it), else NULL. *ret is a new string or NULL.
 */
static int lp_idmap_changed(struct lp_hashmap *m, int64_t id, const char *name,
			    char **ret)
{
	char *prev = NULL, *rec = NULL;
	uint64_t v;
	int r = 0;

	*ret = NULL;
	if (!*name)
		goto out;
	if (lp_hashmap_get(m, (uint64_t)id, &v) == 0)
		prev = (char *)(uintptr_t)v;
	if (prev && !strcmp(prev, name))
		goto out;
	rec = strdup(name);
	*ret = strdup(name);
	if (!rec || !*ret) {
		r = -ENOMEM;
		goto out;
	}
	r = lp_hashmap_put(m, (uint64_t)id, (uint64_t)(uintptr_t)rec);
	if (r < 0)
		goto out;
	free(prev);
	rec = NULL;
out:
	if (r < 0) {
		free(*ret);
		*ret = NULL;
	}
	free(rec);
	return r;
}

/* ---- records ---- */

static void lp_rec_clear(struct lp_cv_rec *rec)
{
	uint32_t i;

	free(rec->name);
	free(rec->link_name);
	free(rec->user_name);
	free(rec->group_name);
	for (i = 0; i < rec->nr_xattrs; i++) {
		free((char *)rec->xattrs[i].name);
		free((uint8_t *)rec->xattrs[i].value);
	}
	free(rec->xattrs);
}

static int lp_rec_new(struct lp_cv *cv, const char *name, size_t *ret_idx)
{
	struct lp_cv_rec *rec;

	if (lp_grow_array((void **)&cv->recs, &cv->cap_recs, cv->nr_recs + 1,
			  sizeof(*cv->recs)) < 0)
		return -ENOMEM;
	rec = &cv->recs[cv->nr_recs];
	memset(rec, 0, sizeof(*rec));
	rec->name = strdup(name);
	if (!rec->name)
		return -ENOMEM;
	*ret_idx = cv->nr_recs++;
	return 0;
}

static void lp_on_digest(void *ctx, size_t idx, const struct lp_digest *d)
{
	struct lp_cv *cv = ctx;
	struct lp_cv_rec *rec = &cv->recs[idx];

	rec->chunk_digest = *d;
	rec->has_chunk_digest = true;
	if (rec->single_chunk) {
		rec->digest = *d;
		rec->has_digest = true;
	}
}

static void lp_on_member(void *ctx, uint64_t member, uint64_t off,
			 uint64_t csize)
{
	struct lp_cv *cv = ctx;

	/* lp_cv_cut() made room */
	cv->member_off[member] = off;
}

/* ---- output helpers ---- */

static int lp_cv_append(struct lp_cv *cv, const void *data, size_t len)
{
	lp_sha256_update(cv->diff_sha, data, len);
	cv->usize += len;
	return lp_cv_pool_append(cv->pool, data, len);
}

static int lp_cv_pad(struct lp_cv *cv, uint64_t size)
{
	static const uint8_t zero[512];

	return lp_cv_append(cv, zero, (512 - size % 512) % 512);
}

static int lp_cv_cut(struct lp_cv *cv, uint64_t *ret_member)
{
	int r = lp_cv_pool_cut(cv->pool, ret_member);

	if (r == 0)
		r = lp_grow_array((void **)&cv->member_off, &cv->cap_members,
				  *ret_member + 1, sizeof(*cv->member_off));
	return r;
}

static int lp_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

struct lp_src {
	enum lp_src_kind kind;
	const uint8_t *mem;
};

static int lp_src_read(struct lp_cv *cv, const struct lp_src *src,
		       const struct lp_cv_entry *e, uint64_t at, void *buf,
		       size_t len)
{
	int r;

	switch (src->kind) {
	case LP_SRC_MEM:
		memcpy(buf, src->mem + at, len);
		return 0;
	case LP_SRC_SPOOL:
		r = lp_pread_all(cv->spool_fd, buf, len, e->spool_off + at);
		if (r < 0)
			lp_err_set(cv->err, r, "entry %s: reading spool: %s",
				   e->name, strerror(-r));
		return r;
	case LP_SRC_READER:
		break;
	}
	return lp_cv_reader_read(cv->rd, buf, len, e, cv->err);
}

/* Copy what the TOC needs from @e into @rec (xattrs are moved). */
static int lp_rec_fill(struct lp_cv *cv, struct lp_cv_rec *rec,
		       struct lp_cv_entry *e)
{
	uint32_t i;
	int r;

	rec->mode = (uint32_t)e->mode;
	rec->uid = (uint32_t)e->uid;
	rec->gid = (uint32_t)e->gid;
	rec->mtime = e->mtime;
	rec->mtime_ns = e->mtime_ns;
	rec->has_modtime = e->mtime != 0;
	r = lp_idmap_changed(&cv->unames, e->uid, e->uname, &rec->user_name);
	if (r == 0)
		r = lp_idmap_changed(&cv->gnames, e->gid, e->gname,
				     &rec->group_name);
	if (r < 0)
		return r;
	switch (e->typeflag) {
	case '1':
		rec->type = LP_TOC_HARDLINK;
		break;
	case '2':
		rec->type = LP_TOC_SYMLINK;
		break;
	case '3':
		rec->type = LP_TOC_CHAR;
		break;
	case '4':
		rec->type = LP_TOC_BLOCK;
		break;
	case '5':
		rec->type = LP_TOC_DIR;
		break;
	case '6':
		rec->type = LP_TOC_FIFO;
		break;
	default:
		rec->type = LP_TOC_REG;
		rec->size = (uint64_t)e->size;
	}
	if (rec->type == LP_TOC_HARDLINK || rec->type == LP_TOC_SYMLINK) {
		rec->link_name = strdup(e->link_name);
		if (!rec->link_name)
			return -ENOMEM;
	}
	if (rec->type == LP_TOC_CHAR || rec->type == LP_TOC_BLOCK) {
		rec->dev_major = (uint32_t)e->dev_major;
		rec->dev_minor = (uint32_t)e->dev_minor;
	}
	if (e->nr_xattrs) {
		rec->xattrs = calloc(e->nr_xattrs, sizeof(*rec->xattrs));
		if (!rec->xattrs)
			return -ENOMEM;
		for (i = 0; i < e->nr_xattrs; i++) {
			rec->xattrs[i].name = e->xattrs[i].name;
			rec->xattrs[i].value = e->xattrs[i].value;
			rec->xattrs[i].len = (uint32_t)e->xattrs[i].len;
			e->xattrs[i].name = NULL;
			e->xattrs[i].value = NULL;
		}
		rec->nr_xattrs = e->nr_xattrs;
	}
	return 0;
}

/* Re-encode one entry: header, TOC record(s), payload in chunk members. */
static int lp_cv_emit(struct lp_cv *cv, struct lp_cv_entry *e,
		      const struct lp_src *src, size_t *ret_first)
{
	uint64_t size = (uint64_t)(e->typeflag == '0' ? e->size : 0);
	uint64_t written = 0, member;
	size_t first = 0, idx;
	bool single;
	int r;

	if (size > cv->max_usize || cv->usize > cv->max_usize - size)
		return lp_err_set(cv->err, -EFBIG,
				  "entry %s: output over %llu bytes", e->name,
				  (unsigned long long)cv->max_usize);
	lp_buf_reset(&cv->hdr);
	r = lp_cv_tar_header(e, &cv->hdr, cv->err);
	if (r == 0)
		r = lp_cv_append(cv, cv->hdr.data, cv->hdr.len);
	if (r == 0)
		r = lp_rec_new(cv, e->name, &first);
	if (r == 0)
		r = lp_rec_fill(cv, &cv->recs[first], e);
	if (r < 0)
		return r;
	*ret_first = first;
	if (e->typeflag != '0')
		return 0;
	if (size == 0) {
		lp_sha256("", 0, &cv->recs[first].digest);
		cv->recs[first].has_digest = true;
		return 0;
	}

	single = size <= cv->chunk_size;
	cv->recs[first].single_chunk = single;
	idx = first;
	while (r == 0 && written < size) {
		uint64_t remain = size - written;
		size_t n = (size_t)lp_min_u64(remain, cv->chunk_size);
		struct lp_cv_rec *rec;
		uint8_t *dst;

		if (written) {
			r = lp_rec_new(cv, e->name, &idx);
			if (r < 0)
				break;
			cv->recs[idx].type = LP_TOC_CHUNK;
		}
		r = lp_cv_cut(cv, &member);
		if (r < 0)
			break;
		rec = &cv->recs[idx];
		rec->member = member;
		rec->has_member = true;
		rec->chunk_offset = written;
		if (remain >= cv->chunk_size)
			rec->chunk_size = cv->chunk_size;
		r = lp_cv_pool_reserve(cv->pool, n, &dst);
		if (r == 0)
			r = lp_src_read(cv, src, e, written, dst, n);
		if (r < 0)
			break;
		lp_sha256_update(cv->diff_sha, dst, n);
		if (!single)
			lp_sha256_update(cv->file_sha, dst, n);
		cv->usize += n;
		lp_cv_pool_commit(cv->pool, n);
		r = lp_cv_pool_digest(cv->pool, n, idx);
		written += n;
	}
	if (r == 0 && !single) {
		lp_sha256_final(cv->file_sha, &cv->recs[first].digest);
		cv->recs[first].has_digest = true;
	}
	if (r == 0)
		r = lp_cv_pad(cv, size);
	return r;
}

static int lp_cv_landmark(struct lp_cv *cv, const char *name)
{
	static const uint8_t content[1] = { LP_LANDMARK_CONTENT };
	struct lp_cv_entry e = { 0 };
	struct lp_src src = { .kind = LP_SRC_MEM, .mem = content };
	size_t first;

	e.name = (char *)name;
	e.link_name = e.uname = e.gname = (char *)"";
	e.typeflag = '0';
	e.size = 1;
	e.format = LP_CV_FMT_UNKNOWN;
	return lp_cv_emit(cv, &e, &src, &first);
}

/* Entries the reference drops from its input. */
static bool lp_cv_skip_name(const char *clean)
{
	return !strcmp(clean, LP_TOC_NAME) ||
	       !strcmp(clean, LP_PREFETCH_LANDMARK) ||
	       !strcmp(clean, LP_NO_PREFETCH_LANDMARK);
}

/* Stream mode: landmark, then the input in order. */
static int lp_cv_stream(struct lp_cv *cv)
{
	struct lp_cv_entry e = { 0 };
	struct lp_src src = { .kind = LP_SRC_READER };
	char *clean = NULL;
	int r;

	r = lp_cv_landmark(cv, LP_NO_PREFETCH_LANDMARK);
	while (r == 0 && (r = lp_cv_reader_next(cv->rd, &e, cv->err)) == 1) {
		uint32_t old;
		size_t first, i;

		free(clean);
		clean = lp_cv_clean_name(e.name);
		if (!clean) {
			r = -ENOMEM;
			break;
		}
		if (lp_cv_skip_name(clean)) {
			r = 0;
			continue;
		}
		/* a later entry of the same name replaces the earlier one in
		 * the TOC (its bytes stay in the stream, unreferenced) */
		old = lp_names_get(&cv->names, clean);
		if (old != LP_CV_NONE) {
			cv->recs[old].dead = true;
			for (i = old + 1; i < cv->nr_recs &&
					  cv->recs[i].type == LP_TOC_CHUNK;
			     i++)
				cv->recs[i].dead = true;
		}
		r = lp_cv_emit(cv, &e, &src, &first);
		if (r == 0)
			r = lp_strmap_put(&cv->names, clean, (uint32_t)first);
	}
	free(clean);
	lp_cv_entry_clear(&e);
	return r;
}

/* ---- prioritised mode ---- */

struct cv_prio {
	struct lp_cv_entry *ents;
	size_t nr, cap;
	bool *in; /* still in the input list */
	bool *out; /* moved to the front */
	uint32_t *order; /* moved entries, in order */
	size_t nr_order;
	struct lp_strmap map; /* clean name -> entry */
};

static int prio_spool(struct lp_cv *cv, struct cv_prio *p)
{
	uint8_t *buf = NULL;
	char *clean = NULL;
	int r;

	buf = malloc(LP_CV_SPOOL_BUF);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct lp_cv_entry *e;
		uint64_t done = 0;
		uint32_t old;

		r = lp_grow_array((void **)&p->ents, &p->cap, p->nr + 1,
				  sizeof(*p->ents));
		if (r < 0)
			break;
		e = &p->ents[p->nr];
		memset(e, 0, sizeof(*e));
		r = lp_cv_reader_next(cv->rd, e, cv->err);
		if (r <= 0) {
			lp_cv_entry_clear(e);
			break;
		}
		free(clean);
		clean = lp_cv_clean_name(e->name);
		if (!clean) {
			lp_cv_entry_clear(e);
			r = -ENOMEM;
			break;
		}
		if (lp_cv_skip_name(clean)) {
			lp_cv_entry_clear(e);
			continue;
		}
		e->spool_off = cv->spool_len;
		if (e->typeflag == '0' &&
		    (uint64_t)e->size > cv->max_usize - cv->spool_len) {
			r = lp_err_set(cv->err, -EFBIG,
				       "entry %s: input over %llu bytes",
				       e->name,
				       (unsigned long long)cv->max_usize);
			lp_cv_entry_clear(e);
			break;
		}
		while (e->typeflag == '0' && done < (uint64_t)e->size) {
			size_t n = (size_t)lp_min_u64((uint64_t)e->size - done,
						      LP_CV_SPOOL_BUF);

			r = lp_cv_reader_read(cv->rd, buf, n, e, cv->err);
			if (r == 0)
				r = lp_write_all(cv->spool_fd, buf, n);
			if (r < 0)
				break;
			done += n;
		}
		p->nr++;
		if (r < 0) {
			lp_err_set(cv->err, r, "entry %s: spooling: %s",
				   e->name, strerror(-r));
			break;
		}
		cv->spool_len += done;
		old = lp_names_get(&p->map, clean);
		if (old != LP_CV_NONE)
			p->ents[old].typeflag = 0; /* removed */
		r = lp_strmap_put(&p->map, clean, (uint32_t)(p->nr - 1));
		if (r < 0)
			break;
	}
	free(clean);
	free(buf);
	return r;
}

/* The reference's moveRec. Returns 0, -ENOENT (not found), -ELOOP. */
static int prio_move(struct cv_prio *p, const char *path, unsigned depth)
{
	char *name = NULL, *parent = NULL, *slash;
	uint32_t i;
	int r = 0;

	if (depth > LP_CV_MAX_MOVE_DEPTH)
		return -ELOOP;
	name = lp_cv_clean_name(path);
	if (!name)
		return -ENOMEM;
	i = lp_names_get(&p->map, name);
	if (!*name) {
		if (i != LP_CV_NONE && p->in[i])
			goto move;
		goto out;
	}
	if (i == LP_CV_NONE || (!p->in[i] && !p->out[i])) {
		r = -ENOENT;
		goto out;
	}
	parent = strdup(name);
	if (!parent) {
		r = -ENOMEM;
		goto out;
	}
	slash = strrchr(parent, '/');
	if (slash)
		slash[1] = 0;
	else
		parent[0] = 0;
	r = prio_move(p, parent, depth + 1);
	if (r == 0 && p->in[i] && p->ents[i].typeflag == '1')
		r = prio_move(p, p->ents[i].link_name, depth + 1);
	if (r < 0 || !p->in[i])
		goto out;
move:
	p->in[i] = false;
	p->out[i] = true;
	p->order[p->nr_order++] = i;
out:
	free(name);
	free(parent);
	return r;
}

static int lp_cv_prioritized(struct lp_cv *cv, const char *dir,
			     const char *const *paths, size_t nr_paths)
{
	struct cv_prio p = { 0 };
	struct lp_src src = { .kind = LP_SRC_SPOOL };
	size_t i, first;
	int r;

	r = lp_file_open_unlinked(dir, ".lp-spool");
	if (r >= 0) {
		cv->spool_fd = r;
		r = 0;
	}
	if (r < 0) {
		lp_err_set(cv->err, r, "%s: cannot create a spool file: %s",
			   dir, strerror(-r));
		goto out;
	}
	r = prio_spool(cv, &p);
	if (r < 0)
		goto out;
	p.in = calloc(p.nr + 1, sizeof(*p.in));
	p.out = calloc(p.nr + 1, sizeof(*p.out));
	p.order = calloc(p.nr + 1, sizeof(*p.order));
	if (!p.in || !p.out || !p.order) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < p.nr; i++)
		p.in[i] = p.ents[i].typeflag != 0;
	for (i = 0; i < nr_paths; i++) {
		r = prio_move(&p, paths[i], 0);
		if (r == -ENOENT || r == -ELOOP)
			r = 0; /* not in the layer: skipped */
		if (r < 0)
			goto out;
	}
	for (i = 0; r == 0 && i < p.nr_order; i++)
		r = lp_cv_emit(cv, &p.ents[p.order[i]], &src, &first);
	if (r == 0)
		r = lp_cv_landmark(cv, nr_paths ? LP_PREFETCH_LANDMARK :
						  LP_NO_PREFETCH_LANDMARK);
	for (i = 0; r == 0 && i < p.nr; i++)
		if (p.in[i])
			r = lp_cv_emit(cv, &p.ents[i], &src, &first);
out:
	for (i = 0; i < p.nr; i++)
		lp_cv_entry_clear(&p.ents[i]);
	free(p.ents);
	free(p.in);
	free(p.out);
	free(p.order);
	lp_strmap_release(&p.map);
	return r;
}

/* ---- the end: TOC and footer ---- */

static int lp_cv_toc_json(struct lp_cv *cv, struct lp_buf *json)
{
	struct lp_toc_writer *w = NULL;
	size_t i;
	int r;

	r = lp_toc_writer_new(LP_TOC_MAX_JSON, &w);
	for (i = 0; r == 0 && i < cv->nr_recs; i++) {
		const struct lp_cv_rec *c = &cv->recs[i];
		struct lp_toc_record t = { 0 };

		if (c->dead)
			continue;
		t.name = c->name;
		t.type = (enum lp_toc_type)c->type;
		t.size = c->size;
		t.mtime_sec = c->mtime;
		t.mtime_nsec = c->mtime_ns;
		t.has_modtime = c->has_modtime;
		t.link_name = c->link_name;
		t.mode = c->mode;
		t.uid = c->uid;
		t.gid = c->gid;
		t.user_name = c->user_name;
		t.group_name = c->group_name;
		t.offset = c->has_member ? cv->member_off[c->member] : 0;
		t.dev_major = c->dev_major;
		t.dev_minor = c->dev_minor;
		t.xattrs = c->xattrs;
		t.nr_xattrs = c->nr_xattrs;
		t.digest = c->has_digest ? &c->digest : NULL;
		t.chunk_offset = c->chunk_offset;
		t.chunk_size = c->chunk_size;
		t.chunk_digest = c->has_chunk_digest ? &c->chunk_digest : NULL;
		r = lp_toc_writer_add(w, &t);
	}
	if (r == 0)
		r = lp_toc_writer_finish(w, json);
	if (r == -EFBIG)
		lp_err_set(cv->err, r, "TOC JSON over %llu bytes",
			   (unsigned long long)LP_TOC_MAX_JSON);
	lp_toc_writer_free(w);
	return r;
}

static int lp_cv_finish(struct lp_cv *cv, struct lp_convert_result *res)
{
	static const uint8_t zero[LP_CV_TAR_EOF];
	struct lp_buf json, tar, comp;
	uint8_t footer[LP_FOOTER_MAX_SIZE];
	uint64_t toc_off;
	int r;

	lp_buf_init(&json, LP_TOC_MAX_JSON);
	lp_buf_init(&tar, LP_TOC_MAX_JSON + 2 * LP_CV_TAR_EOF);
	lp_buf_init(&comp, 2 * LP_TOC_MAX_JSON);
	r = lp_cv_pool_flush(cv->pool);
	if (r == 0)
		r = lp_cv_toc_json(cv, &json);
	if (r < 0)
		goto out;
	lp_sha256(json.data, json.len, &res->toc_digest);
	toc_off = lp_cv_pool_offset(cv->pool);
	if (cv->format == LP_FMT_ZSTD_CHUNKED) {
		uint8_t skip[8];

		r = lp_cv_compress(LP_COMP_ZSTD, cv->level, json.data, json.len,
				   &comp);
		if (r == 0 && comp.len > LP_TOC_MAX_COMPRESSED)
			r = -EFBIG;
		if (r < 0)
			goto out;
		lp_put_le32(skip, LP_ZSTD_SKIPPABLE_MAGIC);
		lp_put_le32(skip + 4, (uint32_t)comp.len);
		lp_sha256(comp.data, comp.len, &res->manifest_checksum);
		res->toc_offset = toc_off + sizeof(skip);
		res->toc_compressed_size = comp.len;
		res->toc_uncompressed_size = json.len;
		lp_footer_write_zstd(res->toc_offset, comp.len, json.len,
				     footer);
		r = lp_cv_pool_write_raw(cv->pool, skip, sizeof(skip));
		if (r == 0)
			r = lp_cv_pool_write_raw(cv->pool, comp.data, comp.len);
		if (r == 0)
			r = lp_cv_pool_write_raw(cv->pool, footer,
						 LP_FOOTER_ZSTD_SIZE);
	} else {
		r = lp_cv_tar_simple_header(LP_TOC_NAME, json.len, &tar);
		if (r == 0)
			r = lp_buf_append(&tar, json.data, json.len);
		if (r == 0)
			r = lp_buf_append(&tar, zero,
					  (512 - json.len % 512) % 512);
		if (r == 0)
			r = lp_buf_append(&tar, zero, LP_CV_TAR_EOF);
		if (r == 0)
			r = lp_cv_compress(LP_COMP_GZIP, cv->level, tar.data,
					   tar.len, &comp);
		if (r < 0)
			goto out;
		lp_sha256_update(cv->diff_sha, tar.data, tar.len);
		cv->usize += tar.len;
		res->toc_offset = toc_off;
		lp_footer_write_estargz(toc_off, footer);
		r = lp_cv_pool_write_raw(cv->pool, comp.data, comp.len);
		if (r == 0)
			r = lp_cv_pool_write_raw(cv->pool, footer,
						 LP_FOOTER_ESTARGZ_SIZE);
	}
	if (r < 0)
		goto out;
	lp_sha256_final(cv->diff_sha, &res->diff_id);
	lp_sha256_final(lp_cv_pool_blob_sha(cv->pool), &res->blob_digest);
	res->uncompressed_size = cv->usize;
	res->size = lp_cv_pool_offset(cv->pool);
out:
	lp_buf_release(&json);
	lp_buf_release(&tar);
	lp_buf_release(&comp);
	return r;
}

void lp_convert_opts_init(struct lp_convert_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->format = LP_FMT_ESTARGZ;
	opts->chunk_size = 0;
	opts->level = -1;
	opts->threads = 0;
}

static int lp_cv_resolve_opts(struct lp_cv *cv, const struct lp_convert_opts *o)
{
	long n;

	if (o->format != LP_FMT_ESTARGZ && o->format != LP_FMT_ZSTD_CHUNKED)
		return lp_err_set(cv->err, -EINVAL,
				  "output format must be estargz or "
				  "zstd:chunked");
	cv->format = o->format;
	cv->chunk_size = o->chunk_size ? o->chunk_size : LP_DEFAULT_CHUNK_SIZE;
	if (cv->chunk_size < LP_CV_MIN_CHUNK_SIZE ||
	    cv->chunk_size > LP_CV_MAX_CHUNK_SIZE)
		return lp_err_set(cv->err, -EINVAL,
				  "chunk size %llu outside [%llu, %llu]",
				  (unsigned long long)cv->chunk_size,
				  (unsigned long long)LP_CV_MIN_CHUNK_SIZE,
				  (unsigned long long)LP_CV_MAX_CHUNK_SIZE);
	cv->max_usize = o->max_uncompressed ? o->max_uncompressed :
					      LP_CONVERT_MAX_UNCOMPRESSED;
	cv->level = o->level;
	if (cv->level < 0)
		cv->level = o->format == LP_FMT_ZSTD_CHUNKED ?
				    LP_DEFAULT_ZSTD_LEVEL :
				    LP_DEFAULT_GZIP_LEVEL;
	if (o->format == LP_FMT_ESTARGZ && cv->level > 12)
		return lp_err_set(cv->err, -EINVAL,
				  "gzip level %d outside [0, 12]", cv->level);
	if (o->format == LP_FMT_ZSTD_CHUNKED &&
	    (cv->level < 1 || cv->level > ZSTD_maxCLevel()))
		return lp_err_set(cv->err, -EINVAL,
				  "zstd level %d outside [1, %d]", cv->level,
				  ZSTD_maxCLevel());
	cv->threads = o->threads;
	if (!cv->threads) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		cv->threads = n > 0 ? (unsigned int)n : 1;
	}
	if (cv->threads > LP_CV_MAX_THREADS)
		cv->threads = LP_CV_MAX_THREADS;
	if (o->nr_prioritized > LP_PRIO_MAX_PATHS)
		return lp_err_set(cv->err, -EFBIG,
				  "%zu prioritised files (max %u)",
				  o->nr_prioritized, LP_PRIO_MAX_PATHS);
	if (o->nr_prioritized && !o->prioritized)
		return -EINVAL;
	return 0;
}

static void lp_cv_free(struct lp_cv *cv)
{
	size_t i;

	lp_cv_pool_free(cv->pool);
	lp_cv_reader_free(cv->rd);
	if (cv->spool_fd >= 0)
		close(cv->spool_fd);
	for (i = 0; i < cv->nr_recs; i++)
		lp_rec_clear(&cv->recs[i]);
	free(cv->recs);
	free(cv->member_off);
	lp_strmap_release(&cv->names);
	lp_idmap_free(&cv->unames);
	lp_idmap_free(&cv->gnames);
	lp_buf_release(&cv->hdr);
	lp_sha256_free(cv->diff_sha);
	lp_sha256_free(cv->file_sha);
}

int lp_convert_layer(int in_fd, const char *out_path,
		     const struct lp_convert_opts *opts,
		     struct lp_convert_result *res, struct lp_err *err)
{
	struct lp_cv cv = { .spool_fd = -1, .err = err };
	struct lp_cv_pool_opts po = { 0 };
	struct lp_convert_result result = { 0 };
	char *tmp = NULL, *dir_copy = NULL;
	const char *dir;
	int out_fd = -1, r;

	lp_buf_init(&cv.hdr, 2 * LP_CV_MAX_PAX_DATA);
	r = lp_cv_resolve_opts(&cv, opts);
	if (r < 0)
		goto out;
	dir_copy = strdup(out_path);
	r = asprintf(&tmp, "%s.tmp.XXXXXX", out_path) < 0 ? -ENOMEM : 0;
	if (!dir_copy || r < 0) {
		r = -ENOMEM;
		tmp = NULL;
		goto out;
	}
	dir = dirname(dir_copy);
	out_fd = mkostemp(tmp, O_CLOEXEC);
	if (out_fd < 0) {
		r = lp_err_set(err, -errno, "%s: cannot create: %s", tmp,
			       strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	r = lp_sha256_new(&cv.diff_sha);
	if (r == 0)
		r = lp_sha256_new(&cv.file_sha);
	if (r < 0)
		goto out;
	po.comp = lp_format_compression(cv.format);
	po.level = cv.level;
	po.threads = cv.threads;
	po.out_fd = out_fd;
	po.on_digest = lp_on_digest;
	po.on_member = lp_on_member;
	po.cb_ctx = &cv;
	r = lp_cv_pool_new(&po, &cv.pool);
	if (r == 0)
		r = lp_cv_reader_new(in_fd, &cv.rd, err);
	if (r < 0)
		goto out;
	if (opts->nr_prioritized)
		r = lp_cv_prioritized(&cv, dir, opts->prioritized,
				      opts->nr_prioritized);
	else
		r = lp_cv_stream(&cv);
	if (r == 0)
		r = lp_cv_finish(&cv, &result);
	if (r < 0)
		goto out;
	if (fchmod(out_fd, 0644) < 0 || close(out_fd) < 0) {
		out_fd = -1;
		r = lp_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	out_fd = -1;
	if (rename(tmp, out_path) < 0) {
		r = lp_err_set(err, -errno, "rename to %s: %s", out_path,
			       strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if (res)
		*res = result;
out:
	if (r < 0 && err && !err->msg[0])
		lp_err_set(err, r, "converting to %s: %s", out_path,
			   strerror(-r));
	lp_cv_free(&cv);
	if (out_fd >= 0)
		close(out_fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dir_copy);
	return r;
}
