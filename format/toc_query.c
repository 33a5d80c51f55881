// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC query API of lp_toc.h over the packed arrays: entries, chunks
 * (put back together from their compact form), names and paths, owners,
 * xattrs, lookups by name and path, the chunk at a file offset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toc_int.h"

const struct lp_digest toc_empty_digest = { {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
	0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
	0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
} };

void lp_toc_free(struct lp_toc *toc)
{
	if (!toc)
		return;
	free(toc->entries);
	free(toc->chunks);
	toc_col_release(&toc->dig_col);
	toc_col_release(&toc->csize_col);
	toc_col_release(&toc->inner_col);
	toc_col_release(&toc->off_col);
	free(toc->off_vals);
	free(toc->chunk_base);
	free(toc->chunk_offs);
	free(toc->xattrs);
	free(toc->digests);
	if (toc->dig_fd >= 0)
		close(toc->dig_fd);
	free(toc->dig_sums);
	free(toc->children);
	free(toc->rare);
	free(toc->rare_ent);
	free(toc->one_ent);
	free(toc->one_val);
	free(toc->mtimes);
	free(toc->owners);
	free(toc->pool);
	free(toc);
}

uint32_t lp_toc_nr_entries(const struct lp_toc *toc)
{
	return toc->nr_entries;
}

uint32_t lp_toc_nr_chunks(const struct lp_toc *toc)
{
	return toc->nr_chunks;
}

const struct lp_toc_entry *lp_toc_entry(const struct lp_toc *toc, uint32_t i)
{
	return i < toc->nr_entries ? &toc->entries[i] : NULL;
}

struct lp_toc_chunk lp_toc_chunk(const struct lp_toc *toc, uint32_t i)
{
	struct lp_toc_chunk c = { .entry = LP_TOC_NO_INDEX,
				  .digest_idx = LP_TOC_NO_INDEX };
	const struct toc_chunk *tc;
	const struct lp_toc_entry *e;
	uint64_t end;
	uint32_t k;

	if (i >= toc->nr_chunks)
		return c;
	tc = &toc->chunks[i];
	e = &toc->entries
		     [tc->entry]; /* a regular file owning i (toc_finish()) */
	c.offset = toc_chunk_offset(toc, i);
	/* checked against the builder's by check_packed_chunks() */
	if (toc_col_has(&toc->csize_col, i))
		c.compressed_size =
			toc->csize_col.vals[toc_col_rank(&toc->csize_col, i)];
	else
		c.compressed_size =
			(uint32_t)((i + 1 < toc->nr_chunks ?
					    toc_chunk_offset(toc, i + 1) :
					    toc->payload_end) -
				   c.offset);
	if (toc_col_has(&toc->inner_col, i))
		c.inner_offset =
			toc->inner_col.vals[toc_col_rank(&toc->inner_col, i)];
	c.entry = tc->entry;
	if (toc_col_has(&toc->dig_col, i))
		c.digest_idx = toc_col_rank(&toc->dig_col, i);
	end = e->size;
	if (e->nr_chunks > 1) {
		/* a file of several chunks has a side record */
		const uint64_t *offs =
			&toc->chunk_offs[toc_rare_of(toc, e)->first_off];

		k = i - e->first_chunk;
		c.chunk_offset = offs[k];
		if (k + 1 < e->nr_chunks)
			end = offs[k + 1];
	}
	/* <= LP_CHUNK_MAX_SIZE: toc_check_chunks() */
	c.chunk_size = (uint32_t)(end - c.chunk_offset);
	return c;
}

const struct lp_toc_xattr *lp_toc_xattr(const struct lp_toc *toc, uint32_t i)
{
	return i < toc->nr_xattrs ? &toc->xattrs[i] : NULL;
}

uint32_t lp_toc_child(const struct lp_toc *toc, uint32_t i)
{
	return i < toc->nr_children ? toc->children[i] : LP_TOC_NO_INDEX;
}

int lp_toc_entry_path(const struct lp_toc *toc, uint32_t i, char *buf,
		      size_t size)
{
	size_t len = 0, pos, n;
	uint32_t cur;
	int r;

	if (i >= toc->nr_entries) {
		r = -ENOENT;
		goto fail;
	}
	/* the length first, then the components right to left */
	for (cur = i; cur; cur = toc->entries[cur].parent)
		len += strlen(toc->pool + toc->entries[cur].name_off) +
		       (len ? 1 : 0);
	if (len >= size) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	buf[len] = '\0';
	pos = len;
	for (cur = i; cur; cur = toc->entries[cur].parent) {
		n = strlen(toc->pool + toc->entries[cur].name_off);
		if (pos != len)
			buf[--pos] = '/';
		pos -= n;
		memcpy(buf + pos, toc->pool + toc->entries[cur].name_off, n);
	}
	return (int)len;
fail:
	if (size)
		buf[0] = '\0';
	return r;
}

int lp_toc_entry_digest(const struct lp_toc *toc, const struct lp_toc_entry *e,
			struct lp_digest *ret)
{
	const struct toc_rare *x;
	uint32_t d = LP_TOC_NO_INDEX;

	if (!(e->flags & LP_TOC_HAS_DIGEST))
		return 0;
	if ((x = toc_rare_of(toc, e)))
		d = x->digest_idx;
	/* a file without chunks and no digest of its own: the empty digest
	 * (the marker pack_entry() leaves, with or without a side record) */
	if (d == LP_TOC_NO_INDEX && e->type == LP_TOC_REG && !e->nr_chunks) {
		*ret = toc_empty_digest;
		return 1;
	}
	if (d == LP_TOC_NO_INDEX && e->type == LP_TOC_REG && e->nr_chunks &&
	    e->first_chunk < toc->nr_chunks &&
	    toc_col_has(&toc->dig_col, e->first_chunk))
		d = toc_col_rank(&toc->dig_col, e->first_chunk);
	return toc_digest_get(toc, d, ret);
}

uint32_t lp_toc_entry_ino(const struct lp_toc *toc,
			  const struct lp_toc_entry *e)
{
	const struct toc_rare *x;

	if (e->type == LP_TOC_HARDLINK && (x = toc_rare_of(toc, e)))
		return x->ino; /* always: entry_side() */
	return (uint32_t)(e - toc->entries);
}

uint32_t lp_toc_entry_nlink(const struct lp_toc *toc,
			    const struct lp_toc_entry *e)
{
	const struct toc_rare *x = toc_rare_of(toc, e);
	uint32_t v;

	if (x)
		return x->nlink;
	v = e->type == LP_TOC_SYMLINK ? LP_TOC_NO_INDEX : toc_one_of(toc, e);
	return v == LP_TOC_NO_INDEX ? 1 : v;
}

const char *lp_toc_entry_name(const struct lp_toc *toc,
			      const struct lp_toc_entry *e)
{
	return toc->pool + e->name_off;
}

int lp_toc_chunk_digest(const struct lp_toc *toc, const struct lp_toc_chunk *c,
			struct lp_digest *ret)
{
	return toc_digest_get(toc, c->digest_idx, ret);
}

const char *lp_toc_entry_link_name(const struct lp_toc *toc,
				   const struct lp_toc_entry *e)
{
	const struct toc_rare *x = toc_rare_of(toc, e);
	uint32_t v;

	if (x)
		return x->link_name;
	v = e->type == LP_TOC_SYMLINK ? toc_one_of(toc, e) : LP_TOC_NO_INDEX;
	return v == LP_TOC_NO_INDEX ? "" : toc->pool + v;
}

void lp_toc_entry_mtime(const struct lp_toc *toc, const struct lp_toc_entry *e,
			int64_t *ret_sec, uint32_t *ret_nsec)
{
	uint32_t i = (uint32_t)(e - toc->entries), lo = 0, hi = toc->nr_mtimes;

	*ret_sec = e->mtime;
	*ret_nsec = 0;
	if (!(e->flags & TOC_F_MTIME_SIDE))
		return;
	while (lo < hi) { /* toc->mtimes is ascending by entry */
		uint32_t mid = lo + (hi - lo) / 2;

		if (toc->mtimes[mid].entry < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < toc->nr_mtimes && toc->mtimes[lo].entry == i) {
		*ret_sec = toc->mtimes[lo].sec;
		*ret_nsec = toc->mtimes[lo].nsec;
	}
}

uint32_t lp_toc_entry_uid(const struct lp_toc *toc,
			  const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].uid :
					       0;
}

uint32_t lp_toc_entry_gid(const struct lp_toc *toc,
			  const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].gid :
					       0;
}

const char *lp_toc_entry_user_name(const struct lp_toc *toc,
				   const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].user :
					       "";
}

const char *lp_toc_entry_group_name(const struct lp_toc *toc,
				    const struct lp_toc_entry *e)
{
	return e->owner_idx < toc->nr_owners ? toc->owners[e->owner_idx].group :
					       "";
}

void lp_toc_entry_dev(const struct lp_toc *toc, const struct lp_toc_entry *e,
		      uint32_t *ret_major, uint32_t *ret_minor)
{
	const struct toc_rare *x = toc_rare_of(toc, e);

	*ret_major = x ? x->dev_major : 0;
	*ret_minor = x ? x->dev_minor : 0;
}

const struct lp_toc_xattr *lp_toc_entry_xattrs(const struct lp_toc *toc,
					       const struct lp_toc_entry *e,
					       uint32_t *ret_nr)
{
	const struct toc_rare *x;

	*ret_nr = 0;
	x = toc_rare_of(toc, e);
	if (!x)
		return NULL;
	if (!x->nr_xattrs)
		return NULL;
	*ret_nr = x->nr_xattrs;
	return &toc->xattrs[x->first_xattr];
}

static int cmp_name(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b), n = alen < blen ? alen : blen;
	int c = memcmp(a, b, n);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

uint32_t lp_toc_lookup(const struct lp_toc *toc, uint32_t dir, const char *name,
		       size_t len)
{
	const struct lp_toc_entry *d;
	uint32_t lo, hi;

	if (dir >= toc->nr_entries)
		return LP_TOC_NO_INDEX;
	d = &toc->entries[dir];
	if (d->type != LP_TOC_DIR)
		return LP_TOC_NO_INDEX;
	lo = d->first_child;
	hi = d->first_child + d->nr_children;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint32_t e = toc->children[mid];
		int c = cmp_name(name, len,
				 toc->pool + toc->entries[e].name_off);

		if (c == 0)
			return e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return LP_TOC_NO_INDEX;
}

uint32_t lp_toc_lookup_path(const struct lp_toc *toc, const char *path)
{
	uint32_t cur = 0;
	const char *p = path;

	while (*p && cur != LP_TOC_NO_INDEX) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* "", "." */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			cur = LP_TOC_NO_INDEX;
		} else {
			cur = lp_toc_lookup(toc, cur, p, len);
		}
		p += len;
		if (*p == '/')
			p++;
	}
	return cur;
}

uint32_t lp_toc_find_chunk(const struct lp_toc *toc, uint32_t ino, uint64_t off)
{
	const struct lp_toc_entry *e;
	const uint64_t *offs;
	uint32_t lo, hi;

	if (ino >= toc->nr_entries)
		return LP_TOC_NO_INDEX;
	e = &toc->entries[ino];
	if (e->type != LP_TOC_REG || off >= e->size || !e->nr_chunks)
		return LP_TOC_NO_INDEX;
	if (e->nr_chunks == 1)
		return e->first_chunk;
	offs = &toc->chunk_offs[toc_rare_of(toc, e)->first_off];
	lo = 0;
	hi = e->nr_chunks;
	while (hi - lo > 1) { /* last chunk with chunk_offset <= off */
		uint32_t mid = lo + (hi - lo) / 2;

		if (offs[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return e->first_chunk + lo;
}

uint64_t lp_toc_prefetch_end(const struct lp_toc *toc)
{
	return toc->prefetch_end;
}
