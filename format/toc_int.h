/* SPDX-License-Identifier: Apache-2.0 */
/*
 * format/-private: what the files of the TOC parser share. struct lp_toc
 * (the compact immutable arrays lp_toc.h hands out) is defined here for the
 * packer (toc_pack.c) that fills it and the query API (toc_query.c) that
 * reads it; struct builder is the parse state that the scanner
 * (toc_scan.c), the entry decoder (toc_decode.c), the whole-TOC checks
 * (toc_validate.c) and the packer pass along, owned by lp_toc_parse()
 * (toc_parse.c). Not included outside format/.
 */
#ifndef LP_TOC_INT_H
#define LP_TOC_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lp_hashmap.h"
#include "lp_toc.h"

/* all strings and xattr values of one TOC; bounds the implied-dir copies */
#define POOL_MAX ((size_t)2 * LP_TOC_MAX_JSON)
/*
 * A split part (toc_split.c) is held to 1/TOC_FRAG_SHARE of the entry,
 * chunk and string limits: it may parse what the serial scan skips (entry-
 * like objects inside an unknown field), so beside the first part, which
 * has the whole limits, a hostile TOC holds at most 1.5 times what the
 * serial parse may before its digest is checked. A part over its share
 * fails and is dropped: the scan parses those entries itself.
 */
#define TOC_FRAG_SHARE 2
#define TOC_MAX_ENTS(b) \
	((b)->frag ? LP_TOC_MAX_ENTRIES / TOC_FRAG_SHARE : LP_TOC_MAX_ENTRIES)
#define TOC_POOL_MAX(b) ((b)->frag ? POOL_MAX / TOC_FRAG_SHARE : POOL_MAX)
#define USER_NAME_MAX 256
#define ERR_NAME_MAX 160 /* bytes of an entry name quoted in errors */
/*
 * the most full slots one path hash insert may walk past (the table is at
 * most half full: with the keyed hash a run this long has odds below
 * 1e-20); a longer one refuses the TOC, a backstop, never a normal outcome
 */
#define TOC_PROBE_MAX 256
/* JSON containers around one entry: the top object and "entries" */
#define ENTRY_JSON_DEPTH 2

/* the daemon's memory per mounted entry (docs/benchmarks.md) */
_Static_assert(sizeof(struct lp_toc_entry) == 36, "lp_toc_entry grew");

/* sha256 of no bytes: an empty file's `digest`, kept as a flag alone */
extern const struct lp_digest toc_empty_digest;

/* private lp_toc_entry flags */
enum {
	/* has one side value (lp_toc.one_val): a symlink's target, another
	   entry's link count, when that is all it needs beside the entry */
	TOC_F_ONE = 1 << 5,
	TOC_F_RARE = 1 << 6, /* has a side record (struct toc_rare) */
	TOC_F_MTIME_SIDE = 1 << 7, /* its mtime is in toc->mtimes */
};

/* an mtime that does not fit lp_toc_entry.mtime (seconds 0..2^32-1) */
struct toc_mtime {
	int64_t sec;
	uint32_t entry;
	uint32_t nsec;
};

/*
 * A chunk as kept (8 bytes): where its member is and whose it is. Its
 * place in the file is not stored: a single-chunk file's one chunk (most
 * chunks) covers [0, size) of its entry, and the chunks of a file of
 * several have their file offsets in toc->chunk_offs, from the file's side
 * record (toc_rare.first_off). Its member's blob offset is kept as the
 * distance from the smallest of its block of 64 chunks (toc->chunk_base),
 * or, when that is 4 GiB or more, in full in a column (off_col, off_vals):
 * toc_chunk_offset(). What most chunks do not need is in columns
 * (struct toc_col): the compressed size when it is not the distance to the
 * next chunk's member (the last chunk's: to the payload's end), the inner
 * offset when not 0, and whether it has a chunkDigest, whose slot in
 * toc->digests is its rank among the chunks that have one. lp_toc_chunk()
 * puts them back together.
 */
struct toc_chunk {
	uint32_t off_delta; /* offset - chunk_base[i / 64], unless off_col */
	uint32_t entry; /* owning file entry */
};
_Static_assert(sizeof(struct toc_chunk) == 8, "toc_chunk grew");

/* chunks per toc->chunk_base (a toc_col word) */
#define TOC_CHUNK_BLOCK 64

/*
 * A sparse column over the chunks: a bit per chunk, the number of bits set
 * before each 64-bit word (the rank of a chunk with the bit is that plus a
 * popcount), and a 32-bit value per chunk with the bit, in chunk order
 * (none for the digest column: its ranks are slots in toc->digests).
 * 12 bytes per 64 chunks plus the values.
 */
struct toc_col {
	uint64_t *bits;
	uint32_t *rank;
	uint32_t *vals;
};

/* whether chunk @i has the column's bit */
static inline bool toc_col_has(const struct toc_col *c, uint32_t i)
{
	return (c->bits[i >> 6] >> (i & 63)) & 1;
}

/* the bits set before chunk @i */
static inline uint32_t toc_col_rank(const struct toc_col *c, uint32_t i)
{
	uint64_t below = c->bits[i >> 6] & ((UINT64_C(1) << (i & 63)) - 1);

	return c->rank[i >> 6] + (uint32_t)__builtin_popcountll(below);
}

/* what few entries have: toc_rare_of() finds an entry's */
struct toc_rare {
	const char *link_name;
	uint32_t dev_major, dev_minor;
	uint32_t first_xattr, nr_xattrs;
	/* the file digest when it is not the first chunk's, or NO_INDEX */
	uint32_t digest_idx;
	/* a file of several chunks: their file offsets from chunk_offs[] */
	uint32_t first_off;
	uint32_t ino; /* a hardlink's target (any other entry: itself) */
	uint32_t nlink; /* names of the inode (not kept: 1) */
};

/* owners, deduplicated: lp_toc_entry.owner_idx indexes these */
struct toc_owner {
	const char *user, *group;
	uint32_t uid, gid;
};

struct lp_toc {
	struct lp_toc_entry *entries;
	struct toc_chunk *chunks;
	uint64_t *chunk_offs; /* chunk_offset of chunks of multi-chunk files */
	struct lp_toc_xattr *xattrs;
	/* the chunkDigests in chunk order (slot: toc_col_rank(&dig_col)),
	 * then the file digests that are not their first chunk's
	 * (toc_rare.digest_idx): in memory, or NULL once
	 * lp_toc_spill_digests() moved them to the file @dig_fd */
	struct lp_digest *digests;
	struct toc_col dig_col; /* chunks with a chunkDigest */
	struct toc_col csize_col; /* chunks with a compressed size stated */
	struct toc_col inner_col; /* chunks with an inner offset */
	uint64_t *chunk_base; /* the smallest offset of each 64 chunks */
	struct toc_col off_col; /* chunks 4 GiB or more above their base */
	uint64_t *off_vals; /* their offsets, by rank in off_col */
	struct toc_rare *rare;
	uint32_t *rare_ent; /* the entry of each side record, ascending */
	uint32_t *one_ent; /* the entry of each side value, ascending */
	uint32_t *one_val; /* symlink: target's pool offset; else nlink */
	struct toc_mtime *mtimes; /* ascending by entry */
	struct toc_owner *owners;
	uint32_t *children;
	char *pool; /* names, link targets, owner names, xattrs */
	uint32_t nr_entries, nr_chunks, nr_xattrs, nr_children, nr_digests;
	uint32_t nr_rare, nr_owners, nr_chunk_offs, nr_mtimes, nr_one;
	uint64_t prefetch_end;
	uint64_t payload_end; /* where the last chunk's member ends */
	int dig_fd; /* the spilled digest table (unlinked), or -1 */
	/* with dig_fd: the CRC-32 of each TOC_SPILL_PAGE of the table as it
	 * was written (toc_spill.c), checked on every read */
	uint32_t *dig_sums;
};

/* the spilled table is read and checked a page of this many bytes at once */
#define TOC_SPILL_PAGE 4096

/*
 * digest @d of toc->digests into *@ret, from memory or the spilled table
 * (toc_spill.c): 1, 0 when @d is not a digest (LP_TOC_NO_INDEX), the
 * read's -errno (-EIO when it came back short)
 */
int toc_digest_get(const struct lp_toc *toc, uint32_t d, struct lp_digest *ret);

/*
 * the index of @e's side record in toc->rare, or LP_TOC_NO_INDEX (a binary
 * search: only entries with the flag have one, mostly directories)
 */
static inline uint32_t toc_side_idx(const uint32_t *ents, uint32_t n,
				    uint32_t i)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ents[mid] < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && ents[lo] == i ? lo : LP_TOC_NO_INDEX;
}

static inline uint32_t toc_rare_idx(const struct lp_toc *toc,
				    const struct lp_toc_entry *e)
{
	if (!(e->flags & TOC_F_RARE))
		return LP_TOC_NO_INDEX;
	return toc_side_idx(toc->rare_ent, toc->nr_rare,
			    (uint32_t)(e - toc->entries));
}

/* the blob offset of chunk @i's member (< nr_chunks) */
static inline uint64_t toc_chunk_offset(const struct lp_toc *toc, uint32_t i)
{
	if (toc_col_has(&toc->off_col, i))
		return toc->off_vals[toc_col_rank(&toc->off_col, i)];
	return toc->chunk_base[i / TOC_CHUNK_BLOCK] + toc->chunks[i].off_delta;
}

/* @e's side value (TOC_F_ONE), or LP_TOC_NO_INDEX (a binary search) */
static inline uint32_t toc_one_of(const struct lp_toc *toc,
				  const struct lp_toc_entry *e)
{
	uint32_t k;

	if (!(e->flags & TOC_F_ONE))
		return LP_TOC_NO_INDEX;
	k = toc_side_idx(toc->one_ent, toc->nr_one,
			 (uint32_t)(e - toc->entries));
	return k == LP_TOC_NO_INDEX ? k : toc->one_val[k];
}

/* @e's side record, or NULL */
static inline const struct toc_rare *toc_rare_of(const struct lp_toc *toc,
						 const struct lp_toc_entry *e)
{
	uint32_t r = toc_rare_idx(toc, e);

	return r == LP_TOC_NO_INDEX ? NULL : &toc->rare[r];
}

/*
 * An entry and a chunk while parsing: every field at full width, strings as
 * pool offsets (struct ent_strs). finish() packs them into the compact
 * lp_toc_entry / lp_toc_chunk; the builder's arrays are then freed.
 */
struct bent {
	uint64_t size, offset;
	int64_t mtime_sec;
	uint32_t mtime_nsec, mode, uid, gid, dev_major, dev_minor;
	uint32_t ino, parent, nlink;
	uint32_t first_chunk, nr_chunks, first_xattr, nr_xattrs;
	uint32_t first_child, nr_children;
	/* LP_TOC_HAS_DIGEST: its `digest` in builder.fdigs, or
	   TOC_FDIG_CHUNK (the same as its first chunk's chunkDigest), or
	   TOC_FDIG_EMPTY (a file without chunks: the empty digest) */
	uint32_t fdig;
	uint16_t type, flags;
};

/* bent.fdig: the file digest is its first chunk's */
#define TOC_FDIG_CHUNK UINT32_MAX
/* bent.fdig: an empty file's digest is the empty one (converters give
   every empty file that digest: not kept once per file) */
#define TOC_FDIG_EMPTY (UINT32_MAX - 1)

struct bchunk {
	uint64_t offset, compressed_size, inner_offset, chunk_offset;
	uint64_t chunk_size;
	uint32_t entry;
	/* its chunkDigest in builder.digs, or LP_TOC_NO_INDEX */
	uint32_t dig;
};

/* pool offsets of an entry's strings while the pool may still move */
struct ent_strs {
	uint32_t path, name, link, user, group;
};

struct xattr_tmp {
	uint32_t name, value, len;
};

/* a JSON value as the scanner (toc_scan.c) found it */
enum jkind {
	J_NONE, /* absent */
	J_NULL,
	J_FALSE,
	J_TRUE,
	J_INT, /* a number without fraction or exponent */
	J_NUM, /* any other number */
	J_STR,
	J_OBJ,
	J_ARR,
};

struct jval {
	const char *p; /* J_STR: the bytes between the quotes, else the value */
	size_t len;
	uint8_t kind; /* enum jkind */
	bool esc; /* J_STR: holds a backslash escape (decode before use) */
};

/* the fields of a TOC entry the decoder reads (any other key is skipped) */
enum toc_field {
	F_NAME,
	F_TYPE,
	F_SIZE,
	F_MODTIME,
	F_LINKNAME,
	F_MODE,
	F_UID,
	F_GID,
	F_USERNAME,
	F_GROUPNAME,
	F_OFFSET,
	F_INNEROFFSET,
	F_DEVMAJOR,
	F_DEVMINOR,
	F_XATTRS,
	F_DIGEST,
	F_CHUNKOFFSET,
	F_CHUNKSIZE,
	F_CHUNKDIGEST,
	F_NR,
};

/* one entry object: the last value of each known key (as json-c kept) */
struct toc_fields {
	struct jval v[F_NR];
};

/* the JSON key of field @f */
extern const char *const toc_field_key[F_NR];

struct builder {
	struct lp_err *err;
	uint64_t payload_end;
	struct bent *ents;
	struct ent_strs *strs; /* parallel to ents */
	uint32_t nr_ents;
	size_t cap_ents, cap_strs;
	struct bchunk *chunks;
	uint32_t nr_chunks;
	size_t cap_chunks;
	/*
	 * the digests out of the records (32 bytes that would be fresh pages
	 * twice over: here and in the packed table): every chunkDigest in
	 * chunk order, so that toc_finish() hands @digs over as the packed
	 * table (a chunk's index in it is its rank among the chunks with a
	 * digest); the file digests that are not their first chunk's in
	 * @fdigs
	 */
	struct lp_digest *digs;
	uint32_t nr_digs;
	size_t cap_digs;
	struct lp_digest *fdigs;
	uint32_t nr_fdigs;
	size_t cap_fdigs;
	struct xattr_tmp *xattrs;
	uint32_t nr_xattrs;
	size_t cap_xattrs;
	char *pool;
	size_t pool_len, pool_cap;
	/* path hash: (32-bit hash << 32) | (entry index + 1); 0 = empty */
	uint64_t *htab;
	size_t hcap, hused;
	uint64_t hash_key[2]; /* the path hash's SipHash key, random */
	size_t max_probe; /* the longest insert probe so far */
	uint32_t *hashes; /* each entry's path hash, parallel to ents */
	size_t cap_hashes;
	/* the parent of the entry decoded last (a path prefix cache) */
	uint32_t last_dir;
	/* decoded strings with escapes, one buffer per field */
	char *sbuf[F_NR];
	size_t scap[F_NR];
	struct lp_hashmap umap, gmap; /* uid/gid -> pool offset of its name */
	uint32_t last_ent; /* last non-chunk entry, for "chunk" */
	bool root_named;
	uint64_t prefetch_end;
	/* the JSON entry being parsed, for messages */
	uint32_t json_idx;
	const char *cur_name;
	size_t cur_len;
	/*
	 * a split part (toc_split.c): the entries after the split point,
	 * parsed on a second thread into a builder of their own. Its indexes
	 * and pool offsets are its own until toc_split_join() moves them
	 * into the first part's; what it cannot know there is marked: a
	 * parent at the root (TOC_FRAG_ROOT), not among its own entries
	 * (LP_TOC_NO_INDEX), an owner name carried forward from before the
	 * split (TOC_OWNER_INHERIT). A root entry fails the part.
	 */
	bool frag;
	bool landmark; /* frag: prefetch_end was set */
	/* frag: owner names added where the part's own map had no name for
	   the id: (pool offset << 1 | is-group, id), joined against the first
	   part's names (the serial parse may have reused one of those) */
	uint64_t (*owner_new)[2];
	size_t nr_owner_new, cap_owner_new;
	char path[LP_TOC_MAX_PATH + 1];
};

/* a split part's parent at the root (struct builder.frag) */
#define TOC_FRAG_ROOT (LP_TOC_NO_INDEX - 1)
/* a split part's owner name carried forward from before the split */
#define TOC_OWNER_INHERIT UINT32_MAX

/* --- the builder (toc_parse.c) --- */

/* whether entry @ent's path is @s[0..@len) */
static inline bool toc_path_is(const struct builder *b, uint32_t ent,
			       const char *s, size_t len)
{
	const char *p = b->pool + b->strs[ent].path;

	return strncmp(p, s, len) == 0 && p[len] == '\0';
}

/* fail the entry being parsed: @err gets its JSON index and name */
int toc_ent_err(struct builder *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* append @len bytes and a NUL to the pool; *ret_off is where they start */
int toc_pool_add(struct builder *b, const void *s, size_t len,
		 uint32_t *ret_off);

/*
 * SipHash-1-3 of @data[0..@len) under the 128-bit @key (key[0] is the
 * key's first eight bytes read little-endian)
 */
uint64_t toc_siphash13(const uint64_t key[2], const void *data, size_t len);

/*
 * the hash of a path (or a prefix) as the path hash keeps it: SipHash-1-3
 * keyed by b->hash_key, 128 random bits per parse, so paths that collide
 * for one key are no likelier to collide for another and a TOC cannot
 * choose paths that pile into one run of slots without knowing the key;
 * TOC_PROBE_MAX refuses the TOC if one ever does
 */
uint32_t toc_path_hash(const struct builder *b, const char *s, size_t len);

/* the entry whose path is @s[0..@len) (hash @h), or LP_TOC_NO_INDEX */
uint32_t toc_hash_lookup(const struct builder *b, const char *s, size_t len,
			 uint32_t h);

/* insert entry @ent (its path must not be in the table yet) */
int toc_hash_insert(struct builder *b, uint32_t ent);

/*
 * a new entry for b->path (@len bytes, toc_path_hash() @h), not yet in the
 * hash; its parent is LP_TOC_NO_INDEX until set
 */
int toc_add_entry(struct builder *b, size_t len, enum lp_toc_type type,
		  uint32_t h, uint32_t *ret_idx);

/* --- the JSON skeleton (toc_scan.c) --- */

struct toc_split;

/*
 * scan the TOC document, handing each entry to toc_parse_entry(); with
 * @sp, the entries from its split point on may come parsed from its
 * second thread (toc_split_at())
 */
int toc_parse_top(struct builder *b, const char *json, size_t len,
		  const struct lp_toc_feed *feed, struct toc_split *sp);

/*
 * the entries of a split part: @json[@start..) (all @len bytes in place)
 * holds entry objects of the "entries" array up to its ']'; each goes to
 * toc_parse_entry() of part @b, and *@at says where the next starts. 0
 * and *@ret_end just past the ']', 1 when *@stop was set (checked between
 * entries), or the first error.
 */
int toc_parse_frag(struct builder *b, const char *json, size_t len,
		   size_t start, const _Atomic bool *stop, _Atomic size_t *at,
		   size_t *ret_end);

/*
 * the first candidate split point at or after @from: the '{' of an
 * object that follows "}," (whitespace allowed), or @len when there is
 * none. A candidate inside a string or a nested array is possible: the
 * serial scan only joins a part that starts where an entry starts.
 */
size_t toc_split_candidate(const char *json, size_t len, size_t from);

/* whether the entry object at @json[@pos..) has "type":"chunk" (a peek) */
bool toc_frag_is_chunk(const char *json, size_t len, size_t pos);

/* --- the split parse (toc_split.c) --- */

/*
 * start a second thread parsing the entries from the first split point
 * at or after byte @target (0: a share of what the serial scan has left
 * when the whole JSON is in place, waited for through @feed);
 * NULL (a serial parse) when the thread cannot start. The thread shares
 * @b's path hash key and payload end, nothing it writes.
 */
struct toc_split *toc_split_start(struct builder *b, const char *json,
				  size_t len, const struct lp_toc_feed *feed,
				  size_t target);

/*
 * the serial scan is at the entry starting at @pos (json index
 * b->json_idx): 1 and *@ret_end when the split part from @pos on was
 * joined into @b (the scan goes on after its ']'), 0 to parse on
 * serially, or -ENOMEM. Called from the parsing thread only.
 */
int toc_split_at(struct toc_split *sp, struct builder *b, size_t pos,
		 size_t *ret_end);

/* stop the thread and free its part (NULL allowed) */
void toc_split_free(struct toc_split *sp);

/*
 * which way split parses went, for the unit tests (a test asserts that the
 * join it meant was taken, not only the result): a relaxed atomic add per
 * split; never read outside the tests
 */
struct toc_split_probe {
	atomic_uint started; /* a second thread started */
	atomic_uint joined; /* its part joined */
	atomic_uint dropped; /* its part parsed again, or never used */
	atomic_uint finished_beside; /* toc_finish() took a second thread */
};
extern struct toc_split_probe toc_split_probe;

/* free what builder @b holds (not @b itself) */
void toc_builder_release(struct builder *b);

/*
 * the path hash helpers the join needs (toc_parse.c): reserve room for
 * @n more entries; insert entry @ent if its path is not in the table
 * (0, or 1 when it is, or the probe would pass TOC_PROBE_MAX: nothing
 * inserted, no message); forget everything and insert entries 1..@n-1
 */
int toc_hash_reserve(struct builder *b, size_t n);
int toc_hash_put_new(struct builder *b, uint32_t ent);
int toc_hash_rebuild(struct builder *b, uint32_t n);

/*
 * the members of JSON object @obj (a J_OBJ the scanner validated) in order:
 * @fn gets each key (decoded into @kbuf, @kcap bytes; longer keys fail
 * with -EFBIG) and value; a nonzero return stops the walk and is returned
 */
int toc_json_members(const struct jval *obj, char *kbuf, size_t kcap,
		     int (*fn)(void *ctx, const char *key, size_t klen,
			       const struct jval *v),
		     void *ctx);

/*
 * decode string @v (J_STR, validated) into @out (at least @v->len bytes);
 * *ret_len the decoded length. -EINVAL for a lone surrogate escape.
 */
int toc_json_unescape(const struct jval *v, char *out, size_t *ret_len);

/* --- one entry (toc_decode.c) --- */

/* decode the fields of JSON entry b->json_idx into the builder */
int toc_parse_entry(struct builder *b, const struct toc_fields *f);

/* --- whole-TOC checks (toc_validate.c), in this order --- */

/* implied parent directories; every entry's parent set */
int toc_resolve_parents(struct builder *b);
/* hardlinks to their targets: one inode, nlink counted */
int toc_resolve_hardlinks(struct builder *b);
/*
 * each file's chunks tile [0, size) exactly, within their bounds; the
 * message into @err. Reads the entries' type, size and chunk range and
 * writes only the chunks: toc_finish() runs it beside the name packing.
 */
int toc_check_chunks(struct builder *b, struct lp_err *err);
/* each chunk's compressed size: distance to the next member offset (the
   chunks only, as toc_check_chunks()) */
int toc_compressed_sizes(struct builder *b, struct lp_err *err);

/* --- packing (toc_pack.c) --- */

/*
 * check the chunks (toc_check_chunks(), toc_compressed_sizes()) and pack
 * the builder into @toc's compact arrays, the error the one of those steps
 * in that order; with toc_finish_thread_min entries and chunks or more,
 * the chunk steps, the chunk columns and the children's sort run on a
 * second thread beside the final string pool, and the self-check's chunk
 * half beside its entry half
 */
int toc_finish(struct builder *b, struct lp_toc *toc);

/* entries + chunks from which toc_finish() takes a second thread (tests
   set 0 or SIZE_MAX) */
#define TOC_FINISH_THREAD_MIN ((size_t)1 << 16)
extern size_t toc_finish_thread_min;

/* free a column's arrays (a zeroed column too) */
void toc_col_release(struct toc_col *c);

#endif /* LP_TOC_INT_H */
