// SPDX-License-Identifier: Apache-2.0
/*
 * Packing a checked TOC: the builder's full-width entries and chunks into
 * the compact immutable arrays of struct lp_toc (36-byte entries, 24-byte
 * chunks, side records for what few entries have, deduplicated digests and
 * owners, one final string pool, children sorted bytewise). Part of the TOC
 * parser (toc_parse.c says how the files divide the work).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lp_buf.h"
#include "toc_int.h"

static int cmp_child(const void *pa, const void *pb, void *ctx)
{
	const struct builder *b = ctx;
	uint32_t x = *(const uint32_t *)pa, y = *(const uint32_t *)pb;

	return strcmp(b->pool + b->strs[x].name, b->pool + b->strs[y].name);
}

/* the final pool: what the TOC keeps of the builder's (no full paths) */
struct final_pool {
	char *p;
	size_t len;
	struct lp_hashmap moved; /* builder offset -> final offset */
};

/* copy @len bytes + NUL at builder offset @off; shared strings once */
static int pool_move(struct builder *b, struct final_pool *f, uint32_t off,
		     size_t len, bool shared, uint32_t *ret_off)
{
	uint64_t v;
	int r = 0;

	if (off == 0) { /* "" */
		*ret_off = 0;
		goto out;
	}
	if (shared && lp_hashmap_get(&f->moved, off, &v) == 0) {
		*ret_off = (uint32_t)v;
		goto out;
	}
	memcpy(f->p + f->len, b->pool + off, len + 1);
	*ret_off = (uint32_t)f->len;
	f->len += len + 1;
	if (shared)
		r = lp_hashmap_put(&f->moved, off, *ret_off);
out:
	return r;
}

static int pool_move_str(struct builder *b, struct final_pool *f, uint32_t off,
			 bool shared, uint32_t *ret_off)
{
	return pool_move(b, f, off, strlen(b->pool + off), shared, ret_off);
}

void toc_col_release(struct toc_col *c)
{
	free(c->bits);
	free(c->rank);
	free(c->vals);
	memset(c, 0, sizeof(*c));
}

/* a column for @n chunks, no bit set (one word more: never empty) */
static int col_alloc(struct toc_col *c, uint32_t n)
{
	size_t words = (size_t)n / 64 + 1;

	c->bits = calloc(words, sizeof(*c->bits));
	c->rank = calloc(words, sizeof(*c->rank));
	return c->bits && c->rank ? 0 : -ENOMEM;
}

static void col_set(struct toc_col *c, uint32_t i)
{
	c->bits[i >> 6] |= UINT64_C(1) << (i & 63);
}

/* the ranks once the bits are set; room for a value per bit (@vals) */
static int col_finish(struct toc_col *c, uint32_t n, bool vals,
		      uint32_t *ret_nr)
{
	size_t words = (size_t)n / 64 + 1, w;
	uint32_t nr = 0;

	for (w = 0; w < words; w++) {
		c->rank[w] = nr;
		nr += (uint32_t)__builtin_popcountll(c->bits[w]);
	}
	if (vals) {
		c->vals = malloc(((size_t)nr + 1) * sizeof(*c->vals));
		if (!c->vals)
			return -ENOMEM;
	}
	*ret_nr = nr;
	return 0;
}

/*
 * The chunks' columns (struct toc_col): which have a chunkDigest, which a
 * compressed size other than the distance to the next chunk's member (or,
 * for the last, to the payload's end: toc_compressed_sizes() measured to
 * the next distinct member offset, which a converter's order makes the
 * next chunk's), which an inner offset; *@ret_ndig chunkDigests.
 */
static int pack_columns(const struct builder *b, struct lp_toc *toc,
			uint32_t *ret_ndig)
{
	uint32_t i, n = b->nr_chunks, nr;
	int r;

	if ((r = col_alloc(&toc->dig_col, n)) < 0 ||
	    (r = col_alloc(&toc->csize_col, n)) < 0 ||
	    (r = col_alloc(&toc->inner_col, n)) < 0 ||
	    (r = col_alloc(&toc->off_col, n)) < 0)
		return r;
	toc->chunk_base = malloc(((size_t)n / TOC_CHUNK_BLOCK + 1) *
				 sizeof(*toc->chunk_base));
	if (!toc->chunk_base)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		uint64_t *base = &toc->chunk_base[i / TOC_CHUNK_BLOCK];

		if (i % TOC_CHUNK_BLOCK == 0 || b->chunks[i].offset < *base)
			*base = b->chunks[i].offset;
	}
	for (i = 0; i < n; i++) {
		const struct bchunk *bc = &b->chunks[i];
		uint64_t next =
			i + 1 < n ? b->chunks[i + 1].offset : b->payload_end;

		if (bc->dig != LP_TOC_NO_INDEX)
			col_set(&toc->dig_col, i);
		if (next <= bc->offset ||
		    next - bc->offset != bc->compressed_size)
			col_set(&toc->csize_col, i);
		if (bc->inner_offset)
			col_set(&toc->inner_col, i);
		if (bc->offset - toc->chunk_base[i / TOC_CHUNK_BLOCK] >
		    UINT32_MAX)
			col_set(&toc->off_col, i);
	}
	if ((r = col_finish(&toc->dig_col, n, false, ret_ndig)) < 0 ||
	    (r = col_finish(&toc->csize_col, n, true, &nr)) < 0 ||
	    (r = col_finish(&toc->inner_col, n, true, &nr)) < 0 ||
	    (r = col_finish(&toc->off_col, n, false, &nr)) < 0)
		return r;
	toc->off_vals = malloc(((size_t)nr + 1) * sizeof(*toc->off_vals));
	if (!toc->off_vals)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct bchunk *bc = &b->chunks[i];

		/* < 4 GiB by toc_compressed_sizes() */
		if (toc_col_has(&toc->csize_col, i))
			toc->csize_col.vals[toc_col_rank(&toc->csize_col, i)] =
				(uint32_t)bc->compressed_size;
		/* bounded by toc_check_chunks() and parse_chunk() */
		if (toc_col_has(&toc->inner_col, i))
			toc->inner_col.vals[toc_col_rank(&toc->inner_col, i)] =
				(uint32_t)bc->inner_offset;
		if (toc_col_has(&toc->off_col, i))
			toc->off_vals[toc_col_rank(&toc->off_col, i)] =
				bc->offset;
	}
	return 0;
}

/* what an entry keeps beside its struct lp_toc_entry */
enum side {
	SIDE_NONE,
	SIDE_ONE, /* one value: TOC_F_ONE */
	SIDE_RARE, /* a side record: TOC_F_RARE */
};
/* where move_strings() leaves entry_side() in bent.flags for the next step
   (above the 8 bits lp_toc_entry.flags takes from them) */
#define BENT_SIDE_SHIFT 8
#define BENT_SIDE_MASK (3u << BENT_SIDE_SHIFT)

/*
 * what entry @i keeps on the side: a side record for device numbers,
 * xattrs, several chunks, a file digest that its first chunk's does not
 * stand for, a hardlink's target, or a link name with a link count; else
 * one value for a symlink's target or another entry's link count other
 * than 1 (directories, files with hardlinks); else nothing
 */
static enum side entry_side(const struct builder *b, uint32_t i)
{
	const struct bent *be = &b->ents[i];
	bool link = b->strs[i].link != 0, nl = be->nlink != 1;
	bool sym = be->type == LP_TOC_SYMLINK;

	if (be->dev_major || be->dev_minor || be->nr_xattrs ||
	    be->nr_chunks > 1 || be->type == LP_TOC_HARDLINK || (link && nl))
		return SIDE_RARE;
	if (be->flags & LP_TOC_HAS_DIGEST) {
		/* converters give every empty file the empty digest */
		if (!be->nr_chunks && be->fdig != TOC_FDIG_EMPTY)
			return SIDE_RARE;
		/* not the first chunk's (parse_chunk() compared them) */
		if (be->nr_chunks && be->fdig != TOC_FDIG_CHUNK)
			return SIDE_RARE;
	}
	if (link)
		return sym ? SIDE_ONE : SIDE_RARE;
	if (nl)
		return sym ? SIDE_RARE : SIDE_ONE;
	return SIDE_NONE;
}

/*
 * toc->children: every entry but the root, grouped by parent (a counting
 * sort: TOC order within a directory) and sorted by name within a
 * directory, which costs one comparison per child when the TOC lists each
 * directory in name order (as converters do); each directory's range in it
 */
static int sort_children(struct builder *b, struct lp_toc *toc)
{
	uint32_t i, pos = 0, *ch;

	toc->nr_children = b->nr_ents - 1;
	ch = toc->children = malloc((toc->nr_children + 1) * sizeof(uint32_t));
	if (!ch)
		return -ENOMEM;
	for (i = 1; i < b->nr_ents; i++)
		b->ents[b->ents[i].parent].nr_children++;
	for (i = 0; i < b->nr_ents; i++) {
		struct bent *d = &b->ents[i];

		d->first_child = pos;
		pos += d->nr_children;
		d->nr_children = 0; /* the fill cursor below */
	}
	for (i = 1; i < b->nr_ents; i++) {
		struct bent *d = &b->ents[b->ents[i].parent];

		ch[d->first_child + d->nr_children++] = i;
	}
	for (i = 0; i < b->nr_ents; i++) {
		const struct bent *d = &b->ents[i];
		uint32_t k;

		for (k = 1; k < d->nr_children; k++) {
			if (cmp_child(&ch[d->first_child + k - 1],
				      &ch[d->first_child + k], b) > 0)
				break;
		}
		if (k < d->nr_children)
			qsort_r(&ch[d->first_child], d->nr_children,
				sizeof(uint32_t), cmp_child, b);
	}
	return 0;
}

/*
 * toc->pool: names (not paths), link targets, owner names (once each) and
 * xattrs, copied from the builder's pool. Sets the entries' name_off and
 * the xattrs; turns b->strs' link/user/group into final offsets. Counts
 * the side records (*ret_nrare), side values (*ret_none) and multi-chunk
 * offsets (*ret_noffs) the next step needs.
 */
static int move_strings(struct builder *b, struct lp_toc *toc,
			uint32_t *ret_nrare, uint32_t *ret_none,
			uint32_t *ret_noffs)
{
	struct final_pool f = { 0 };
	uint32_t i, o, nrare = 0, none = 0, noffs = 0;
	enum side sd;
	char *pool;
	int r = 0;

	toc->xattrs = calloc(b->nr_xattrs + 1, sizeof(*toc->xattrs));
	toc->entries = calloc(b->nr_ents, sizeof(*toc->entries));
	f.p = malloc(b->pool_len);
	if (!toc->xattrs || !toc->entries || !f.p) {
		r = -ENOMEM;
		goto out;
	}
	/* every string is copied at most once: the new pool is no larger */
	f.p[0] = '\0';
	f.len = 1;
	/* st's builder offsets become final ones (the builder is done) */
	for (i = 0; i < b->nr_ents; i++) {
		struct ent_strs *st = &b->strs[i];
		struct lp_toc_entry *e = &toc->entries[i];

		if ((r = pool_move_str(b, &f, st->name, false, &o)) < 0)
			goto out;
		e->name_off = o;
		if ((r = pool_move_str(b, &f, st->link, false, &st->link)) <
			    0 ||
		    (r = pool_move_str(b, &f, st->user, true, &st->user)) < 0 ||
		    (r = pool_move_str(b, &f, st->group, true, &st->group)) < 0)
			goto out;
		sd = entry_side(b, i);
		b->ents[i].flags |= (uint16_t)(sd << BENT_SIDE_SHIFT);
		nrare += sd == SIDE_RARE;
		none += sd == SIDE_ONE;
		if (b->ents[i].nr_chunks > 1)
			noffs += b->ents[i].nr_chunks;
	}
	for (i = 0; i < b->nr_xattrs; i++) {
		const struct xattr_tmp *x = &b->xattrs[i];

		if ((r = pool_move_str(b, &f, x->name, false, &o)) < 0)
			goto out;
		toc->xattrs[i].name = (const char *)(uintptr_t)o;
		if ((r = pool_move(b, &f, x->value, x->len, false, &o)) < 0)
			goto out;
		toc->xattrs[i].value = (const uint8_t *)(uintptr_t)o;
		toc->xattrs[i].len = x->len;
	}
	pool = realloc(f.p, f.len);
	toc->pool = pool ? pool : f.p;
	f.p = NULL;
	/* offsets become pointers now that the pool stays put */
	for (i = 0; i < b->nr_xattrs; i++) {
		struct lp_toc_xattr *x = &toc->xattrs[i];

		x->name = toc->pool + (uintptr_t)x->name;
		x->value = (const uint8_t *)toc->pool + (uintptr_t)x->value;
	}
	toc->nr_xattrs = b->nr_xattrs;
	*ret_nrare = nrare;
	*ret_none = none;
	*ret_noffs = noffs;
out:
	free(f.p);
	lp_hashmap_release(&f.moved);
	return r;
}

/* the side value of entry @i (entry_side()) */
static void add_one(const struct builder *b, struct lp_toc *toc, uint32_t i)
{
	const struct bent *be = &b->ents[i];

	toc->one_ent[toc->nr_one] = i;
	toc->one_val[toc->nr_one++] =
		be->type == LP_TOC_SYMLINK ? b->strs[i].link : be->nlink;
	toc->entries[i].flags |= TOC_F_ONE;
}

/* the side record of entry @i (entry_side()) */
static void add_rare(const struct builder *b, struct lp_toc *toc, uint32_t i)
{
	const struct bent *be = &b->ents[i];
	struct toc_rare *x = &toc->rare[toc->nr_rare];
	uint32_t k;

	x->link_name = toc->pool + b->strs[i].link;
	x->dev_major = be->dev_major;
	x->dev_minor = be->dev_minor;
	x->first_xattr = be->first_xattr;
	x->nr_xattrs = be->nr_xattrs;
	x->digest_idx = LP_TOC_NO_INDEX;
	x->first_off = LP_TOC_NO_INDEX;
	x->ino = be->ino;
	x->nlink = be->nlink;
	if (be->nr_chunks > 1) {
		x->first_off = toc->nr_chunk_offs;
		for (k = 0; k < be->nr_chunks; k++)
			toc->chunk_offs[toc->nr_chunk_offs++] =
				b->chunks[be->first_chunk + k].chunk_offset;
	}
	toc->rare_ent[toc->nr_rare++] = i;
	toc->entries[i].flags |= TOC_F_RARE;
}

/*
 * Each entry's owner record (uid, gid, user and group names; one per
 * distinct combination), side record (@nrare of them, holding @noffs
 * multi-chunk offsets in all) and side value (@none).
 */
static int pack_owners_and_rare(struct builder *b, struct lp_toc *toc,
				uint32_t nrare, uint32_t none, uint32_t noffs)
{
	/* hash of uid, gid, user, group -> index (checked: a collision
	   only costs a duplicate record) */
	struct lp_hashmap owners = { 0 };
	uint32_t i;
	int r = 0;

	toc->rare = calloc(nrare + 1, sizeof(*toc->rare));
	toc->rare_ent = malloc((nrare + 1) * sizeof(*toc->rare_ent));
	toc->owners = calloc(b->nr_ents, sizeof(*toc->owners));
	toc->chunk_offs = malloc((noffs + 1) * sizeof(*toc->chunk_offs));
	toc->one_ent = malloc((none + 1) * sizeof(*toc->one_ent));
	toc->one_val = malloc((none + 1) * sizeof(*toc->one_val));
	if (!toc->rare || !toc->rare_ent || !toc->owners || !toc->chunk_offs ||
	    !toc->one_ent || !toc->one_val) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < b->nr_ents; i++) {
		const struct ent_strs *st = &b->strs[i];
		const struct bent *be = &b->ents[i];
		struct lp_toc_entry *e = &toc->entries[i];
		uint32_t k4[4] = { be->uid, be->gid, st->user, st->group };
		uint64_t key, v;
		struct toc_owner *ow;

		/* most entries have their predecessor's owner */
		if (i && (ow = &toc->owners[e[-1].owner_idx])->uid == be->uid &&
		    ow->gid == be->gid && ow->user == toc->pool + st->user &&
		    ow->group == toc->pool + st->group) {
			e->owner_idx = e[-1].owner_idx;
			goto rare;
		}
		key = lp_hash_bytes(k4, sizeof(k4));
		ow = lp_hashmap_get(&owners, key, &v) == 0 ? &toc->owners[v] :
							     NULL;
		if (ow && ow->uid == be->uid && ow->gid == be->gid &&
		    ow->user == toc->pool + st->user &&
		    ow->group == toc->pool + st->group) {
			e->owner_idx = (uint32_t)v;
		} else {
			e->owner_idx = toc->nr_owners++;
			ow = &toc->owners[e->owner_idx];
			ow->user = toc->pool + st->user;
			ow->group = toc->pool + st->group;
			ow->uid = be->uid;
			ow->gid = be->gid;
			r = lp_hashmap_put(&owners, key, e->owner_idx);
			if (r < 0)
				goto out;
		}
rare:
		switch ((enum side)((be->flags & BENT_SIDE_MASK) >>
				    BENT_SIDE_SHIFT)) {
		case SIDE_RARE:
			add_rare(b, toc, i);
			break;
		case SIDE_ONE:
			add_one(b, toc, i);
			break;
		case SIDE_NONE:
			break;
		}
	}
	if (toc->nr_owners < b->nr_ents) {
		struct toc_owner *ow =
			realloc(toc->owners, toc->nr_owners * sizeof(*ow));

		if (ow)
			toc->owners = ow;
	}
out:
	lp_hashmap_release(&owners);
	return r;
}

/* entry @i's compact fields, and its chunks' */
static void pack_entry(const struct builder *b, struct lp_toc *toc, uint32_t i)
{
	const struct bent *be = &b->ents[i];
	struct lp_toc_entry *e = &toc->entries[i];
	uint32_t k, x;

	e->size = be->size;
	if (be->mtime_sec >= 0 && be->mtime_sec <= UINT32_MAX &&
	    !be->mtime_nsec) {
		e->mtime = (uint32_t)be->mtime_sec;
	} else {
		struct toc_mtime *m = &toc->mtimes[toc->nr_mtimes++];

		m->sec = be->mtime_sec;
		m->nsec = be->mtime_nsec;
		m->entry = i; /* pack_entries() goes in entry order */
		e->flags |= TOC_F_MTIME_SIDE;
	}
	e->mode = (uint16_t)be->mode; /* & 07777 by parse_attrs() */
	e->parent = be->parent;
	if (be->type == LP_TOC_DIR) {
		e->first_child = be->first_child;
		e->nr_children = be->nr_children;
	} else if (be->type == LP_TOC_REG) {
		e->first_chunk = be->first_chunk;
		e->nr_chunks = be->nr_chunks;
	}
	e->type = (uint8_t)be->type;
	/* the private flags are set already */
	e->flags |= (uint8_t)be->flags;
	if ((be->flags & LP_TOC_HAS_DIGEST) &&
	    (be->nr_chunks || be->fdig != TOC_FDIG_EMPTY) &&
	    (x = toc_rare_idx(toc, e)) != LP_TOC_NO_INDEX) {
		/* the first chunk's slot when the same digest, else its own
		   after the chunks' (without a side record: the first
		   chunk's, entry_side()) */
		if (be->nr_chunks && be->fdig == TOC_FDIG_CHUNK) {
			toc->rare[x].digest_idx =
				toc_col_rank(&toc->dig_col, be->first_chunk);
		} else {
			toc->digests[toc->nr_digests] = b->fdigs[be->fdig];
			toc->rare[x].digest_idx = toc->nr_digests++;
		}
	}
	for (k = 0; k < be->nr_chunks; k++) {
		uint32_t ci = be->first_chunk + k;
		const struct bchunk *bc = &b->chunks[ci];
		struct toc_chunk *c = &toc->chunks[ci];

		/* < 4 GiB above the base, else off_col (pack_columns()) */
		if (!toc_col_has(&toc->off_col, ci))
			c->off_delta =
				(uint32_t)(bc->offset -
					   toc->chunk_base[ci /
							   TOC_CHUNK_BLOCK]);
		c->entry = bc->entry;
		/* its digest is in place: b->digs became toc->digests */
	}
}

/* the compact entries and chunks, and the digests (the chunk columns
   are packed: @nchd chunkDigests) */
static int pack_entries(struct builder *b, struct lp_toc *toc, uint32_t nchd)
{
	uint32_t i, ndig = 0, nmt = 0;

	for (i = 0; i < b->nr_ents; i++) {
		const struct bent *be = &b->ents[i];

		ndig += (be->flags & LP_TOC_HAS_DIGEST) != 0;
		nmt += be->mtime_sec < 0 || be->mtime_sec > UINT32_MAX ||
		       be->mtime_nsec;
	}
	toc->payload_end = b->payload_end;
	if (nchd != b->nr_digs)
		return -EINVAL; /* not reached: parse_chunk() */
	ndig += nchd;
	toc->chunks = calloc(b->nr_chunks + 1, sizeof(*toc->chunks));
	/* the chunkDigests are in chunk order already: the table itself,
	   the file digests of their own after them */
	toc->digests = realloc(b->digs, (ndig + 1) * sizeof(*toc->digests));
	if (toc->digests) {
		b->digs = NULL;
		b->cap_digs = b->nr_digs = 0;
	}
	toc->mtimes = malloc((nmt + 1) * sizeof(*toc->mtimes));
	if (!toc->chunks || !toc->digests || !toc->mtimes)
		return -ENOMEM;
	toc->nr_digests = nchd; /* the file digests follow */
	for (i = 0; i < b->nr_ents; i++)
		pack_entry(b, toc, i);
	if (toc->nr_digests < ndig) {
		struct lp_digest *d = realloc(
			toc->digests, (toc->nr_digests + 1) * sizeof(*d));

		if (d)
			toc->digests = d;
	}
	toc->nr_entries = b->nr_ents;
	toc->nr_chunks = b->nr_chunks;
	toc->prefetch_end = b->prefetch_end;
	return 0;
}

/* the file digest of @be as parsed (before any spill) */
static const struct lp_digest *file_digest(const struct builder *b,
					   const struct lp_toc *toc,
					   const struct bent *be)
{
	if (be->fdig == TOC_FDIG_CHUNK)
		return &toc->digests[b->chunks[be->first_chunk].dig];
	if (be->fdig == TOC_FDIG_EMPTY)
		return &toc_empty_digest;
	return &b->fdigs[be->fdig];
}

/*
 * what the entry accessors derive is what the TOC said: every file
 * digest's value, link count and link name (the digests still in memory:
 * before any spill)
 */
static int check_packed_entries(const struct builder *b,
				const struct lp_toc *toc)
{
	struct lp_digest d;
	uint32_t i;

	for (i = 0; i < b->nr_ents; i++) {
		const struct bent *be = &b->ents[i];
		const struct lp_toc_entry *e = &toc->entries[i];
		int has = lp_toc_entry_digest(toc, e, &d);

		if (has != ((be->flags & LP_TOC_HAS_DIGEST) != 0) ||
		    (has && !lp_digest_equal(&d, file_digest(b, toc, be))))
			return -EINVAL; /* not reached: pack_entry() */
		if (lp_toc_entry_nlink(toc, e) != be->nlink ||
		    strcmp(lp_toc_entry_link_name(toc, e),
			   toc->pool + b->strs[i].link))
			return -EINVAL; /* not reached: the side values */
	}
	return 0;
}

/*
 * what lp_toc_chunk() derives is what the TOC said: every chunk's fields
 * and its slot in the digest table
 */
static int check_packed_chunks(const struct builder *b,
			       const struct lp_toc *toc)
{
	uint32_t i;

	for (i = 0; i < b->nr_chunks; i++) {
		const struct bchunk *bc = &b->chunks[i];
		const struct lp_toc_entry *e;
		struct lp_toc_chunk c;

		e = bc->entry < b->nr_ents ? &toc->entries[bc->entry] : NULL;
		if (!e || e->type != LP_TOC_REG || i < e->first_chunk ||
		    i - e->first_chunk >= e->nr_chunks)
			return -EINVAL; /* not reached: the builder's invariant */
		c = lp_toc_chunk(toc, i);
		if (c.chunk_offset != bc->chunk_offset ||
		    c.chunk_size != bc->chunk_size || c.entry != bc->entry)
			return -EINVAL; /* not reached: toc_check_chunks() */
		/* the chunk's slot is the one parse_chunk() gave it */
		if (c.offset != bc->offset ||
		    c.compressed_size != bc->compressed_size ||
		    c.inner_offset != bc->inner_offset ||
		    c.digest_idx != bc->dig)
			return -EINVAL; /* not reached: pack_columns() */
	}
	return 0;
}

size_t toc_finish_thread_min = TOC_FINISH_THREAD_MIN;

/*
 * The chunk steps of toc_finish() (toc_check_chunks(),
 * toc_compressed_sizes(), pack_columns()) and the children's sort, on a
 * second thread while the calling one builds the final pool
 * (move_strings()): the chunk steps read the entries' type, size and
 * chunk range, write only the chunks and the chunk columns, and report
 * into @err; the sort reads the parents and the names' offsets and
 * writes only the children and the entries' child ranges; the pool step
 * reads and writes none of those fields. The caller reads the job only
 * after joining it.
 */
struct finish_job {
	struct builder *b;
	struct lp_toc *toc;
	struct lp_err err;
	int r; /* the columns' result */
	bool checks_failed; /* r is a check's error (with @err) */
	int sort_r; /* sort_children()'s */
	uint32_t nchd; /* chunkDigests, from pack_columns() */
};

static void finish_chunks(struct finish_job *j)
{
	j->r = toc_check_chunks(j->b, &j->err);
	if (j->r == 0)
		j->r = toc_compressed_sizes(j->b, &j->err);
	j->checks_failed = j->r < 0;
	if (j->checks_failed)
		return;
	j->sort_r = sort_children(j->b, j->toc);
	j->r = pack_columns(j->b, j->toc, &j->nchd);
}

static void *finish_main(void *arg)
{
	finish_chunks(arg);
	return NULL;
}

/* the self-check of the packed chunks (read only), beside the entries' */
static void *check_main(void *arg)
{
	struct finish_job *j = arg;

	j->r = check_packed_chunks(j->b, j->toc);
	return NULL;
}

/*
 * Pack the builder's records into @toc: compact entries and chunks, names
 * instead of paths in a new pool, and the digests: every chunkDigest in its
 * own slot (chunk order), a file digest sharing its first chunk's slot when
 * equal (a single-chunk file's usual case), else a slot of its own after
 * them; equal digests elsewhere are not merged. On failure @toc holds what was
 * allocated so far, for lp_toc_free().
 */
int toc_finish(struct builder *b, struct lp_toc *toc)
{
	struct finish_job j = { .b = b, .toc = toc };
	uint32_t nrare = 0, none = 0, noffs = 0;
	bool beside = false;
	pthread_t th;
	int r = 0;

	if ((size_t)b->nr_ents + b->nr_chunks >= toc_finish_thread_min)
		beside = pthread_create(&th, NULL, finish_main, &j) == 0;
	if (beside)
		atomic_fetch_add_explicit(&toc_split_probe.finished_beside, 1,
					  memory_order_relaxed);
	else
		finish_chunks(&j); /* first, as the order says */
	/* the final pool (the checks passed, or they run beside: the job
	   is not read before it is joined) */
	if (beside || !j.checks_failed)
		r = move_strings(b, toc, &nrare, &none, &noffs);
	if (beside)
		pthread_join(th, NULL);
	/* the first error in the serial order: the chunk checks', the
	   sort's, the pool's, the columns' */
	if (j.checks_failed)
		return lp_err_set(b->err, j.r, "%s", j.err.msg);
	if (j.sort_r < 0)
		return j.sort_r;
	if (r < 0)
		return r;
	if (j.r < 0)
		return j.r;
	if ((r = pack_owners_and_rare(b, toc, nrare, none, noffs)) < 0 ||
	    (r = pack_entries(b, toc, j.nchd)) < 0)
		return r;
	/* the self-check, the chunks' half beside (both only read) */
	beside = beside && pthread_create(&th, NULL, check_main, &j) == 0;
	if (!beside)
		j.r = check_packed_chunks(b, toc);
	r = check_packed_entries(b, toc);
	if (beside)
		pthread_join(th, NULL);
	r = r < 0 ? r : j.r;
	if (r < 0)
		lp_err_set(b->err, r,
			   "the packed TOC does not read back as parsed (a "
			   "parser bug)");
	return r;
}
