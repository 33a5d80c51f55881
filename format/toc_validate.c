// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC checks that need every entry: implied parent directories,
 * hardlink targets (one inode, nlink), chunk lists that tile each file
 * exactly, and each chunk's compressed size. Run in that order by
 * lp_toc_parse() after the last entry. Part of the TOC parser (toc_parse.c
 * says how the files divide the work).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lp_buf.h"
#include "toc_int.h"

static int add_implied(struct builder *b, size_t len, uint32_t h,
		       uint32_t *ret_idx)
{
	uint32_t i;
	int r = toc_add_entry(b, len, LP_TOC_DIR, h, &i);

	if (r < 0)
		goto out;
	b->ents[i].mode = 0755;
	b->ents[i].flags = LP_TOC_IMPLIED;
	r = toc_hash_insert(b, i);
	if (r < 0)
		goto out;
	*ret_idx = i;
out:
	return r;
}

/*
 * parent of every entry, creating implied directories as needed (the
 * decoder already found those of entries that came after their parent)
 */
int toc_resolve_parents(struct builder *b)
{
	uint32_t i, parent;
	int r = 0;

	for (i = 1; i < b->nr_ents; i++) {
		parent = b->ents[i].parent;
		b->json_idx = i;
		b->cur_name = NULL;
		b->cur_len = 0;
		if (parent == LP_TOC_NO_INDEX) {
			const char *p = b->pool + b->strs[i].path;
			/* the name follows the parent's path and a '/' */
			size_t len = b->strs[i].name - b->strs[i].path;
			uint32_t h;

			len = len ? len - 1 : 0;
			h = toc_path_hash(b, p, len);
			parent = len ? toc_hash_lookup(b, p, len, h) : 0;
			if (parent == LP_TOC_NO_INDEX) {
				memcpy(b->path, p, len);
				b->path[len] = '\0';
				r = add_implied(b, len, h, &parent);
				if (r < 0)
					goto out;
			}
		}
		if (b->ents[parent].type != LP_TOC_DIR) {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC entry \"%.*s\": parent is not a "
				       "directory",
				       ERR_NAME_MAX, b->pool + b->strs[i].path);
			goto out;
		}
		b->ents[i].parent = parent;
		if (b->ents[i].type == LP_TOC_DIR)
			b->ents[parent].nlink++;
	}
out:
	return r;
}

/* the entry hardlink @i names, or LP_TOC_NO_INDEX */
static uint32_t link_target(const struct builder *b, uint32_t i)
{
	const char *lp = b->pool + b->strs[i].link;
	size_t len = strlen(lp);

	return toc_hash_lookup(b, lp, len, toc_path_hash(b, lp, len));
}

/*
 * Hardlinks to their (regular file) targets, following links to links.
 * Each hardlink is resolved once: a walk stops at a link resolved before
 * (ino no longer itself) and resolves every link it passed, so a chain of
 * n links costs O(n), not O(n^2) (a hostile TOC could chain millions).
 */
int toc_resolve_hardlinks(struct builder *b)
{
	uint32_t i, t, u, steps;
	int r = 0;

	for (i = 1; i < b->nr_ents; i++) {
		if (b->ents[i].type != LP_TOC_HARDLINK || b->ents[i].ino != i)
			continue;
		t = i;
		for (steps = 0; b->ents[t].type == LP_TOC_HARDLINK; steps++) {
			if (b->ents[t].ino != t) { /* resolved: a file */
				t = b->ents[t].ino;
				break;
			}
			if (steps > b->nr_ents) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC entry \"%.*s\": hardlink "
					       "cycle",
					       ERR_NAME_MAX,
					       b->pool + b->strs[i].path);
				goto out;
			}
			t = link_target(b, t);
			if (t == LP_TOC_NO_INDEX)
				break;
		}
		if (t == LP_TOC_NO_INDEX || b->ents[t].type != LP_TOC_REG) {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC entry \"%.*s\": hardlink to a "
				       "missing or non-regular target \"%.*s\"",
				       ERR_NAME_MAX, b->pool + b->strs[i].path,
				       ERR_NAME_MAX, b->pool + b->strs[i].link);
			goto out;
		}
		/* the same walk again, resolving each link on it */
		for (u = i; u != LP_TOC_NO_INDEX &&
			    b->ents[u].type == LP_TOC_HARDLINK &&
			    b->ents[u].ino == u;) {
			uint32_t next = link_target(b, u);

			b->ents[u].ino = t;
			b->ents[t].nlink++;
			u = next;
		}
	}
	for (i = 1; i < b->nr_ents; i++) {
		if (b->ents[i].type == LP_TOC_HARDLINK)
			b->ents[i].nlink = b->ents[b->ents[i].ino].nlink;
	}
out:
	return r;
}

static int chunk_err(const struct builder *b, struct lp_err *err, uint32_t ent,
		     const char *why, uint64_t at)
{
	return lp_err_set(err, -EINVAL,
			  "TOC entry \"%.*s\": chunk at file offset %llu %s",
			  ERR_NAME_MAX, b->pool + b->strs[ent].path,
			  (unsigned long long)at, why);
}

/* each file's chunks must tile [0, size) exactly, in order */
int toc_check_chunks(struct builder *b, struct lp_err *err)
{
	uint32_t i, k;
	int r = 0;

	for (i = 0; i < b->nr_ents; i++) {
		struct bent *e = &b->ents[i];
		uint64_t next = 0;

		if (e->type != LP_TOC_REG)
			continue;
		for (k = 0; k < e->nr_chunks; k++) {
			struct bchunk *c = &b->chunks[e->first_chunk + k];

			if (c->chunk_offset < next) {
				r = chunk_err(b, err, i,
					      "overlaps the previous one",
					      c->chunk_offset);
				goto out;
			}
			if (c->chunk_offset > next) {
				r = chunk_err(b, err, i, "leaves a gap",
					      c->chunk_offset);
				goto out;
			}
			if (c->chunk_offset >= e->size) {
				r = chunk_err(b, err, i,
					      "is past the file size",
					      c->chunk_offset);
				goto out;
			}
			/* 0 means "to the end" */
			if (c->chunk_size == 0)
				c->chunk_size = e->size - c->chunk_offset;
			if (c->chunk_size > e->size - c->chunk_offset) {
				r = chunk_err(b, err, i,
					      "runs past the file size",
					      c->chunk_offset);
				goto out;
			}
			if (c->chunk_size > LP_CHUNK_MAX_SIZE) {
				r = lp_err_set(
					err, -EFBIG,
					"TOC entry \"%.*s\": chunk of "
					"%llu bytes exceeds "
					"LP_CHUNK_MAX_SIZE",
					ERR_NAME_MAX, b->pool + b->strs[i].path,
					(unsigned long long)c->chunk_size);
				goto out;
			}
			next = c->chunk_offset + c->chunk_size;
		}
		if (next != e->size) {
			r = lp_err_set(err, -EINVAL,
				       "TOC entry \"%.*s\": chunks cover %llu "
				       "of %llu bytes",
				       ERR_NAME_MAX, b->pool + b->strs[i].path,
				       (unsigned long long)next,
				       (unsigned long long)e->size);
			goto out;
		}
	}
out:
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* compressed size: up to the next distinct member offset, or payload end */
int toc_compressed_sizes(struct builder *b, struct lp_err *err)
{
	uint64_t *offs = NULL;
	size_t n = 0, i, next = 0;
	bool in_order = true;
	int r = 0;

	if (!b->nr_chunks)
		goto out;
	offs = malloc(b->nr_chunks * sizeof(*offs));
	if (!offs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < b->nr_chunks; i++) {
		offs[i] = b->chunks[i].offset;
		if (i && offs[i] < offs[i - 1])
			in_order = false;
	}
	/* a converter writes members in order: then there is nothing to sort
	   and the next member is found by walking */
	if (!in_order)
		qsort(offs, b->nr_chunks, sizeof(*offs), cmp_u64);
	for (i = 0; i < b->nr_chunks; i++) {
		if (!n || offs[n - 1] != offs[i])
			offs[n++] = offs[i];
	}
	for (i = 0; i < b->nr_chunks; i++) {
		struct bchunk *c = &b->chunks[i];
		size_t lo = 0, hi = n;

		if (in_order) {
			while (next < n && offs[next] <= c->offset)
				next++;
			lo = hi = next;
		}
		while (lo < hi) { /* first offset > c->offset */
			size_t mid = lo + (hi - lo) / 2;

			if (offs[mid] <= c->offset)
				lo = mid + 1;
			else
				hi = mid;
		}
		c->compressed_size =
			(lo < n ? offs[lo] : b->payload_end) - c->offset;
		if (c->compressed_size > UINT32_MAX) {
			r = lp_err_set(err, -EFBIG,
				       "TOC entry \"%.*s\": chunk at file "
				       "offset %llu spans %llu compressed "
				       "bytes (over 4 GiB)",
				       ERR_NAME_MAX,
				       b->pool + b->strs[c->entry].path,
				       (unsigned long long)c->chunk_offset,
				       (unsigned long long)c->compressed_size);
			goto out;
		}
	}
out:
	free(offs);
	return r;
}
