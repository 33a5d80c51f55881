// SPDX-License-Identifier: Apache-2.0
/*
 * TOC parsing: TOC JSON in, the compact immutable arrays of lp_toc.h out.
 *
 * One pass over the document, with no JSON library: the scanner
 * (toc_scan.c) reads each entry object once, keeping its known fields as
 * byte spans into the input, and the decoder copies what the TOC keeps
 * into flat arrays and a string pool. No allocation per entry: entries,
 * chunks and xattrs live in arrays that grow by doubling; strings and xattr
 * values live in one pool addressed by offset until the pool stops moving.
 * The converter's order (each directory before its contents, names in
 * order) is the fast path: an entry's parent is found by comparing with
 * the previous entry's, children need no sort; any other order costs a
 * hash lookup per entry and a sort per directory, never a wrong tree.
 *
 * After the last entry the builder resolves what needs the whole TOC: implied
 * parent directories, hardlink targets (one inode, nlink), directory children
 * sorted bytewise, chunk lists checked to tile each file exactly, and each
 * chunk's compressed size (distance to the next distinct member offset).
 * Every rejection names the JSON entry index and its name.
 *
 * The parser's files, by role: this one is the driver (lp_toc_parse) and the
 * builder's string pool, path hash and entry table; toc_scan.c the JSON
 * scanner, toc_decode.c one entry's decoders, toc_validate.c the
 * whole-TOC checks, toc_pack.c the packing into struct lp_toc, toc_query.c
 * the query API, toc_split.c a big TOC's entries parsed on two threads and
 * joined in order (toc_int.h holds what they share).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lp_buf.h"
#include "lp_common.h"
#include "toc_int.h"

int toc_ent_err(struct builder *b, int code, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	int n = b->cur_len > ERR_NAME_MAX ? ERR_NAME_MAX : (int)b->cur_len;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return lp_err_set(b->err, code, "TOC entry %u \"%.*s\": %s",
			  b->json_idx, n, b->cur_name ? b->cur_name : "", why);
}

/* append @len bytes and a NUL to the pool; *ret_off is where they start */
int toc_pool_add(struct builder *b, const void *s, size_t len,
		 uint32_t *ret_off)
{
	size_t need = b->pool_len + len + 1;
	int r = 0;

	if (need > TOC_POOL_MAX(b)) {
		r = toc_ent_err(b, -EFBIG, "TOC strings exceed %zu bytes",
				(size_t)TOC_POOL_MAX(b));
		goto out;
	}
	r = lp_grow_array((void **)&b->pool, &b->pool_cap, need, 1);
	if (r < 0)
		goto out;
	memcpy(b->pool + b->pool_len, s, len);
	b->pool[b->pool_len + len] = '\0';
	*ret_off = (uint32_t)b->pool_len;
	b->pool_len = need;
out:
	return r;
}

#define SIP_ROTL(x, n) (((x) << (n)) | ((x) >> (64 - (n))))

/* one SipRound (Aumasson and Bernstein, "SipHash: a fast short-input PRF") */
static inline void sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = SIP_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = SIP_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = SIP_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = SIP_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = SIP_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = SIP_ROTL(v[2], 32);
}

static inline uint64_t load_le64(const char *s)
{
	uint64_t w;

	memcpy(&w, s, 8);
	return le64toh(w);
}

uint64_t toc_siphash13(const uint64_t key[2], const void *data, size_t len)
{
	const char *s = data;
	uint64_t v[4] = {
		key[0] ^ 0x736f6d6570736575ull,
		key[1] ^ 0x646f72616e646f6dull,
		key[0] ^ 0x6c7967656e657261ull,
		key[1] ^ 0x7465646279746573ull,
	};
	uint64_t m;
	size_t i = 0, k;

	for (; i + 8 <= len; i += 8) {
		m = load_le64(s + i);
		v[3] ^= m;
		sip_round(v); /* c = 1 */
		v[0] ^= m;
	}
	/* the last 0-7 bytes, little-endian, under the length's low byte */
	m = (uint64_t)len << 56;
	for (k = 0; i + k < len; k++)
		m |= (uint64_t)(unsigned char)s[i + k] << (8 * k);
	v[3] ^= m;
	sip_round(v);
	v[0] ^= m;
	v[2] ^= 0xff;
	sip_round(v); /* d = 3 */
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint32_t toc_path_hash(const struct builder *b, const char *s, size_t len)
{
	return (uint32_t)toc_siphash13(b->hash_key, s, len);
}

/* slot of @s (hash @h) in the path hash: holds its entry, or is empty */
static size_t hash_slot(const struct builder *b, const char *s, size_t len,
			uint32_t h)
{
	size_t mask = b->hcap - 1, i = h & mask;
	uint64_t v;

	while ((v = b->htab[i]) != 0) {
		if ((uint32_t)(v >> 32) == h &&
		    toc_path_is(b, (uint32_t)v - 1, s, len))
			break;
		i = (i + 1) & mask;
	}
	return i;
}

uint32_t toc_hash_lookup(const struct builder *b, const char *s, size_t len,
			 uint32_t h)
{
	size_t i;

	if (!b->hcap)
		return LP_TOC_NO_INDEX;
	i = hash_slot(b, s, len, h);
	return b->htab[i] ? (uint32_t)b->htab[i] - 1 : LP_TOC_NO_INDEX;
}

/*
 * the empty slot for hash @h (the table holds no equal path); *probe grows
 * to the number of full slots walked past if that is more
 */
static size_t free_slot(const struct builder *b, uint32_t h, size_t *probe)
{
	size_t mask = b->hcap - 1, i = h & mask, n = 0;

	while (b->htab[i]) {
		i = (i + 1) & mask;
		n++;
	}
	if (n > *probe)
		*probe = n;
	return i;
}

/*
 * move the path hash to a table of @ncap slots; *probe as free_slot(). The
 * table grows in place (realloc(): a big one is remapped, its pages kept)
 * and is filled again from b->hashes: the table holds the @hused entries
 * from the first one hashed on (a split part's 0, else 1: the root is
 * not), in order, as every insert takes the next entry. Fresh pages cost
 * more than the rehash
 * on a VM (about 2.5 us each): a new table and the old one freed touched
 * twice the pages.
 */
static int hash_grow(struct builder *b, size_t ncap, size_t *probe)
{
	size_t i, first = b->frag ? 0 : 1, n = first + b->hused;
	uint64_t *nt;

	nt = realloc(b->htab, ncap * sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	memset(nt, 0, ncap * sizeof(*nt));
	b->htab = nt;
	b->hcap = ncap;
	for (i = first; i < n; i++)
		nt[free_slot(b, b->hashes[i], probe)] =
			(uint64_t)b->hashes[i] << 32 | (uint32_t)(i + 1);
	return 0;
}

int toc_hash_reserve(struct builder *b, size_t n)
{
	size_t ncap = b->hcap ? b->hcap : 1024, probe = 0;

	while ((b->hused + n + 1) * 2 > ncap)
		ncap *= 2;
	return ncap == b->hcap ? 0 : hash_grow(b, ncap, &probe);
}

int toc_hash_put_new(struct builder *b, uint32_t ent)
{
	uint32_t h = b->hashes[ent];
	const char *path = b->pool + b->strs[ent].path;
	size_t mask = b->hcap - 1, i, probe;

	i = hash_slot(b, path, strlen(path), h);
	probe = (i - (h & mask)) & mask;
	if (b->htab[i] || probe > TOC_PROBE_MAX)
		return 1;
	b->htab[i] = (uint64_t)h << 32 | (ent + 1);
	b->hused++;
	if (probe > b->max_probe)
		b->max_probe = probe;
	return 0;
}

int toc_hash_rebuild(struct builder *b, uint32_t n)
{
	size_t probe = 0;
	uint32_t i;

	memset(b->htab, 0, b->hcap * sizeof(*b->htab));
	b->hused = 0;
	for (i = 1; i < n; i++) {
		b->htab[free_slot(b, b->hashes[i], &probe)] =
			(uint64_t)b->hashes[i] << 32 | (i + 1);
		b->hused++;
	}
	return 0;
}

/* insert entry @ent (its path must not be in the table yet) */
int toc_hash_insert(struct builder *b, uint32_t ent)
{
	uint32_t h = b->hashes[ent];
	size_t probe = 0;
	int r = 0;

	if ((b->hused + 1) * 2 > b->hcap) {
		r = hash_grow(b, b->hcap ? b->hcap * 2 : 1024, &probe);
		if (r < 0)
			goto out;
	}
	b->htab[free_slot(b, h, &probe)] = (uint64_t)h << 32 | (ent + 1);
	b->hused++;
	if (probe > b->max_probe)
		b->max_probe = probe;
	/* a backstop: with a keyed hash no TOC can choose this */
	if (probe > TOC_PROBE_MAX)
		r = toc_ent_err(b, -EINVAL,
				"path hash probe of %zu slots exceeds "
				"TOC_PROBE_MAX (%d): refusing the TOC",
				probe, TOC_PROBE_MAX);
out:
	return r;
}

/* a new entry for b->path (@len bytes, hash @h), not yet in the hash */
int toc_add_entry(struct builder *b, size_t len, enum lp_toc_type type,
		  uint32_t h, uint32_t *ret_idx)
{
	struct bent *e;
	uint32_t i = b->nr_ents;
	const char *slash;
	int r;

	if (i >= TOC_MAX_ENTS(b)) {
		r = toc_ent_err(b, -EFBIG,
				"more than LP_TOC_MAX_ENTRIES entries");
		goto out;
	}
	r = lp_grow_array((void **)&b->ents, &b->cap_ents, (size_t)i + 1,
			  sizeof(*b->ents));
	if (r == 0)
		r = lp_grow_array((void **)&b->strs, &b->cap_strs,
				  (size_t)i + 1, sizeof(*b->strs));
	if (r == 0)
		r = lp_grow_array((void **)&b->hashes, &b->cap_hashes,
				  (size_t)i + 1, sizeof(*b->hashes));
	if (r < 0)
		goto out;
	memset(&b->strs[i], 0, sizeof(b->strs[i]));
	r = toc_pool_add(b, b->path, len, &b->strs[i].path);
	if (r < 0)
		goto out;
	slash = memrchr(b->path, '/', len);
	b->strs[i].name =
		b->strs[i].path + (slash ? (uint32_t)(slash - b->path) + 1 : 0);
	b->hashes[i] = h;
	e = &b->ents[i];
	memset(e, 0, sizeof(*e));
	e->type = (uint16_t)type;
	e->ino = i;
	e->parent = LP_TOC_NO_INDEX; /* toc_resolve_parents() */
	e->nlink = type == LP_TOC_DIR ? 2 : 1;
	e->first_chunk = b->nr_chunks;
	e->first_xattr = b->nr_xattrs;
	b->nr_ents++;
	*ret_idx = i;
out:
	return r;
}

void toc_builder_release(struct builder *b)
{
	free(b->owner_new);
	free(b->ents);
	free(b->strs);
	free(b->chunks);
	free(b->digs);
	free(b->fdigs);
	free(b->xattrs);
	free(b->pool);
	free(b->htab);
	free(b->hashes);
	for (int k = 0; k < F_NR; k++)
		free(b->sbuf[k]);
	lp_hashmap_release(&b->umap);
	lp_hashmap_release(&b->gmap);
}

int lp_toc_parse(const void *json, size_t len, uint64_t payload_end,
		 struct lp_toc **ret_toc, struct lp_err *err)
{
	return lp_toc_parse_fed(json, len, NULL, payload_end, ret_toc, err);
}

int lp_toc_parse_fed(const void *json, size_t len,
		     const struct lp_toc_feed *feed, uint64_t payload_end,
		     struct lp_toc **ret_toc, struct lp_err *err)
{
	return lp_toc_parse_split(json, len, feed, 0, payload_end, ret_toc,
				  err);
}

int lp_toc_parse_split(const void *json, size_t len,
		       const struct lp_toc_feed *feed, size_t split,
		       uint64_t payload_end, struct lp_toc **ret_toc,
		       struct lp_err *err)
{
	struct builder *b = NULL;
	struct toc_split *sp = NULL;
	struct lp_toc *toc = NULL;
	uint32_t root;
	int r = -ENOMEM;

	if (len > LP_TOC_MAX_JSON) {
		r = lp_err_set(err, -EFBIG,
			       "TOC JSON of %zu bytes exceeds "
			       "LP_TOC_MAX_JSON",
			       len);
		goto out;
	}
	b = calloc(1, sizeof(*b));
	toc = calloc(1, sizeof(*toc));
	if (toc)
		toc->dig_fd = -1; /* before any lp_toc_free() */
	if (!b || !toc)
		goto out;
	b->err = err;
	b->payload_end = payload_end;
	/* a random 128-bit key for the path hash; the clock if there is
	   none (the hash only decides speed, never the result, and
	   TOC_PROBE_MAX bounds the speed) */
	if (getrandom(b->hash_key, sizeof(b->hash_key), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(b->hash_key)) {
		b->hash_key[0] = (uint64_t)lp_mono_ns();
		b->hash_key[1] = (uint64_t)(uintptr_t)b ^ 0x9e3779b97f4a7c15ull;
	}
	b->last_ent = LP_TOC_NO_INDEX;
	/* offset 0 of the pool is "", the root's path and every empty name */
	r = toc_pool_add(b, "", 0, &root);
	if (r < 0)
		goto out;
	b->path[0] = '\0';
	r = toc_add_entry(b, 0, LP_TOC_DIR, toc_path_hash(b, "", 0), &root);
	if (r < 0)
		goto out;
	b->ents[root].parent = 0;
	b->ents[root].mode = 0755;
	b->ents[root].flags = LP_TOC_IMPLIED;

	if ((split == 0 && len >= LP_TOC_SPLIT_MIN) || (split && split < len))
		sp = toc_split_start(b, json, len, feed, split);
	r = toc_parse_top(b, json, len, feed, sp);
	toc_split_free(sp); /* the thread's part is joined, or not wanted */
	sp = NULL;
	if (r < 0)
		goto out;
	if ((r = toc_resolve_parents(b)) < 0 ||
	    (r = toc_resolve_hardlinks(b)) < 0)
		goto out;
	/* no path is looked up from here on: the packed TOC may take the
	   hash's place (the peak of a big parse) */
	free(b->htab);
	free(b->hashes);
	b->htab = NULL;
	b->hashes = NULL;
	b->hcap = b->hused = 0;
	r = toc_finish(b, toc); /* the chunks checked there */
	if (r < 0)
		goto out;
	*ret_toc = toc;
	toc = NULL;
out:
	toc_split_free(sp); /* before the builder: it reads the hash key */
	if (b)
		toc_builder_release(b);
	free(b);
	lp_toc_free(toc);
	return r;
}
