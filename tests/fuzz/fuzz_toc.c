// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for lp_toc_parse(): the input is TOC JSON. A parsed TOC must
 * hold its invariants: every path looks up to its own entry, parents are
 * directories, hardlinks point at regular files, chunks tile each file and
 * lie inside the payload, children are sorted. And the TOC's own JSON
 * scanner accepts nothing that json-c, in strict mode, refuses: a document
 * it parses is JSON; and when both accept, they read the same document:
 * json-c's "version" (keys decoded) is 1, and each of json-c's entries
 * that is not a chunk or the root is an entry of the TOC (the TOC may add
 * implied directories, never when there are no entries); every digest
 * and chunkDigest the TOC hands out is one json-c read in a "digest" or
 * "chunkDigest" field (a digest in the wrong slot reads back as another).
 * json-c accepting what the TOC parser refuses is no failure: the TOC
 * parser is the stricter (bounds, types, paths). Fed in small steps
 * (lp_toc_parse_fed(), as a mount parses a TOC while it is inflated), the
 * parse gives the same TOC or the same error as of the whole; so does
 * the parse split over two threads (lp_toc_parse_split(), forced at a
 * byte the input chooses, whole and fed: a mount splits a big TOC so),
 * wherever the split falls, those split parses packing with the chunk
 * steps on a second thread (toc_finish(), as for a big TOC).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lp_buf.h"
#include "lp_digest.h"
#include "lp_toc.h"
#include "toc_int.h" /* toc_finish_thread_min */

/* 16 GiB: chunks 4 GiB or more from their block's smallest offset go to
 * the packer's offset column (off_col) */
#define PAYLOAD_END ((uint64_t)1 << 34)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* json-c (strict) parses @data[0..@size) as one JSON document */
static bool json_c_accepts(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(LP_TOC_MAX_JSON_NESTING);
	json_object *o;
	bool ok;

	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	ok = o && json_tokener_get_error(tok) == json_tokener_success &&
	     json_tokener_get_parse_end(tok) == size;
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

/* whether @name[0..@len) names the root: only "" and "." components */
static bool is_root_name(const char *name, size_t len)
{
	size_t i = 0, start;

	while (i < len) {
		start = i;
		while (i < len && name[i] != '/')
			i++;
		if (i - start > 1 || (i - start == 1 && name[start] != '.'))
			return false;
		i++;
	}
	return true;
}

/* the digests json-c read, of one field */
struct dig_set {
	struct lp_digest *d;
	size_t n, cap;
};

static void dig_add(struct dig_set *s, json_object *e, const char *key)
{
	json_object *v;
	struct lp_digest d;

	if (!json_object_object_get_ex(e, key, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    lp_digest_parse_n(json_object_get_string(v),
			      (size_t)json_object_get_string_len(v), &d) < 0)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->d = realloc(s->d, s->cap * sizeof(*s->d));
		if (!s->d)
			abort();
	}
	s->d[s->n++] = d;
}

static bool dig_has(const struct dig_set *s, const struct lp_digest *d)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (lp_digest_equal(&s->d[i], d))
			return true;
	return false;
}

/* every digest @toc hands out is one json-c read in that field */
static void check_digests(const struct lp_toc *toc, const struct dig_set *fd,
			  const struct dig_set *cd)
{
	struct lp_digest d;
	uint32_t i;

	for (i = 0; i < lp_toc_nr_entries(toc); i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		int r;

		if (e->type != LP_TOC_REG)
			continue;
		r = lp_toc_entry_digest(toc, e, &d);
		if (r < 0 || (r && !dig_has(fd, &d)))
			abort(); /* a file digest nobody wrote */
	}
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(toc, i);
		int r = lp_toc_chunk_digest(toc, &c, &d);

		if (r < 0 || (r && !dig_has(cd, &d)))
			abort(); /* a chunkDigest nobody wrote */
	}
}

/* json-c's reading of @data agrees with the parsed @toc */
static void check_same_document(const uint8_t *data, size_t size,
				const struct lp_toc *toc)
{
	struct json_tokener *tok = json_tokener_new_ex(LP_TOC_MAX_JSON_NESTING);
	json_object *o, *ver, *ents, *name, *type;
	struct dig_set fd = { 0 }, cd = { 0 };
	size_t n = 0, k, nr;

	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	if (!o || !json_object_is_type(o, json_type_object))
		abort();
	if (json_object_object_get_ex(o, "version", &ver) &&
	    (!json_object_is_type(ver, json_type_int) ||
	     json_object_get_int64(ver) != 1))
		abort(); /* the TOC parser skipped the version check */
	if (json_object_object_get_ex(o, "entries", &ents)) {
		if (!json_object_is_type(ents, json_type_array))
			abort();
		nr = json_object_array_length(ents);
		for (k = 0; k < nr; k++) {
			json_object *e = json_object_array_get_idx(ents, k);

			dig_add(&fd, e, "digest");
			dig_add(&cd, e, "chunkDigest");
			if (!json_object_object_get_ex(e, "type", &type))
				abort(); /* the TOC parser needs a type */
			/* no name is the name "": the root (toc_decode.c) */
			if (!json_object_object_get_ex(e, "name", &name) ||
			    strcmp(json_object_get_string(type), "chunk") ==
				    0 ||
			    is_root_name(
				    json_object_get_string(name),
				    (size_t)json_object_get_string_len(name)))
				continue;
			n++;
		}
	}
	if (lp_toc_nr_entries(toc) < 1 + n ||
	    (n == 0 && lp_toc_nr_entries(toc) != 1))
		abort(); /* the TOC parser read other entries than json-c */
	check_digests(toc, &fd, &cd);
	free(fd.d);
	free(cd.d);
	json_object_put(o);
	json_tokener_free(tok);
}

static void check_entry(const struct lp_toc *toc, uint32_t i)
{
	const struct lp_toc_entry *e = lp_toc_entry(toc, i);
	const struct lp_toc_entry *ino =
		lp_toc_entry(toc, lp_toc_entry_ino(toc, e));
	char path[LP_TOC_MAX_PATH + 1];
	uint64_t next = 0;
	uint32_t k;

	if (lp_toc_entry_path(toc, i, path, sizeof(path)) < 0 ||
	    lp_toc_lookup_path(toc, path) != i)
		abort();
	if (lp_toc_entry(toc, e->parent)->type != LP_TOC_DIR)
		abort();
	if (e->type == LP_TOC_HARDLINK && ino->type != LP_TOC_REG)
		abort();
	if (e->type != LP_TOC_HARDLINK && lp_toc_entry_ino(toc, e) != i)
		abort();
	/* a directory has "." and its parent's entry; a link has its own */
	if (lp_toc_entry_nlink(toc, e) < (e->type == LP_TOC_DIR ? 2u : 1u) ||
	    (e->type == LP_TOC_HARDLINK &&
	     (lp_toc_entry_nlink(toc, e) < 2 ||
	      lp_toc_entry_nlink(toc, e) != lp_toc_entry_nlink(toc, ino))))
		abort();
	for (k = 0; e->type == LP_TOC_DIR && k < e->nr_children; k++) {
		const struct lp_toc_entry *c = lp_toc_entry(
			toc, lp_toc_child(toc, e->first_child + k));

		if (c->parent != i)
			abort();
		if (k &&
		    strcmp(lp_toc_entry_name(
				   toc,
				   lp_toc_entry(
					   toc,
					   lp_toc_child(toc, e->first_child +
								     k - 1))),
			   lp_toc_entry_name(toc, c)) >= 0)
			abort();
	}
	if (e->type != LP_TOC_REG)
		return;
	for (k = 0; k < e->nr_chunks; k++) {
		const struct lp_toc_chunk c =
			lp_toc_chunk(toc, e->first_chunk + k);

		if (c.chunk_offset != next || c.chunk_size == 0 ||
		    c.entry != i || c.offset >= PAYLOAD_END ||
		    c.compressed_size == 0 ||
		    c.offset + c.compressed_size > PAYLOAD_END ||
		    lp_toc_find_chunk(toc, i, c.chunk_offset) !=
			    e->first_chunk + k)
			abort();
		next += c.chunk_size;
	}
	if (next != e->size)
		abort();
}

/*
 * Under ASan the bytes not yet handed out are poisoned, so that a parser
 * that reads a byte before the feed said it is in place (the inflating
 * thread may not have written it) fails here, not only one whose result
 * differs.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FEED_POISON 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FEED_POISON 1
#endif
#ifdef FEED_POISON
#include <sanitizer/asan_interface.h>
#define feed_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define feed_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define feed_poison(p, n) ((void)(p), (void)(n))
#define feed_unpoison(p, n) ((void)(p), (void)(n))
#endif

/* a feed that hands out what is asked and, by the input, a little more */
struct step_feed {
	size_t len, avail;
	uint32_t x;
	uint8_t *buf; /* the bytes, [avail, len] poisoned */
};

static ssize_t step_wait(void *arg, size_t want)
{
	struct step_feed *f = arg;

	if (want > f->len || want <= f->avail)
		abort(); /* the parser asks for what is not, or is, there */
	f->x = f->x * 1103515245u + 12345u;
	f->avail = want + (f->x >> 16) % 8;
	if (f->avail > f->len)
		f->avail = f->len;
	feed_unpoison(f->buf, f->avail);
	return (ssize_t)f->avail;
}

/* what the records above do not hold (xattrs, link targets, digests,
 * devices, ...): the two TOCs written back as JSON are the same bytes */
static void check_same_json(const struct lp_toc *toc, const struct lp_toc *fed)
{
	struct lp_buf j1, j2;
	int r1, r2;

	lp_buf_init(&j1, (size_t)1 << 30);
	lp_buf_init(&j2, (size_t)1 << 30);
	r1 = lp_toc_write_json(toc, &j1);
	r2 = lp_toc_write_json(fed, &j2);
	if (r1 != r2 || (r1 == 0 && (j1.len != j2.len ||
				     memcmp(j1.data, j2.data, j1.len) != 0)))
		abort();
	lp_buf_release(&j1);
	lp_buf_release(&j2);
}

/* @fed, @fr, @ferr are the TOC, or the error, @toc, @r, @err */
static void check_same(int r, const struct lp_err *err,
		       const struct lp_toc *toc, int fr,
		       const struct lp_err *ferr, const struct lp_toc *fed)
{
	char p1[LP_TOC_MAX_PATH + 1], p2[LP_TOC_MAX_PATH + 1];
	uint32_t i;

	if (fr != r || strcmp(err->msg, ferr->msg) != 0)
		abort(); /* the parse read another document */
	if (r < 0)
		return;
	if (lp_toc_nr_entries(fed) != lp_toc_nr_entries(toc) ||
	    lp_toc_nr_chunks(fed) != lp_toc_nr_chunks(toc) ||
	    lp_toc_prefetch_end(fed) != lp_toc_prefetch_end(toc))
		abort();
	for (i = 0; i < lp_toc_nr_entries(toc); i++) {
		const struct lp_toc_entry *a = lp_toc_entry(toc, i),
					  *b = lp_toc_entry(fed, i);

		if (memcmp(a, b, sizeof(*a)) != 0 ||
		    lp_toc_entry_path(toc, i, p1, sizeof(p1)) < 0 ||
		    lp_toc_entry_path(fed, i, p2, sizeof(p2)) < 0 ||
		    strcmp(p1, p2) != 0 ||
		    lp_toc_entry_uid(toc, a) != lp_toc_entry_uid(fed, b) ||
		    strcmp(lp_toc_entry_user_name(toc, a),
			   lp_toc_entry_user_name(fed, b)) != 0 ||
		    strcmp(lp_toc_entry_group_name(toc, a),
			   lp_toc_entry_group_name(fed, b)) != 0 ||
		    lp_toc_entry_ino(toc, a) != lp_toc_entry_ino(fed, b) ||
		    lp_toc_entry_nlink(toc, a) != lp_toc_entry_nlink(fed, b))
			abort();
	}
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		const struct lp_toc_chunk a = lp_toc_chunk(toc, i),
					  b = lp_toc_chunk(fed, i);

		if (memcmp(&a, &b, sizeof(a)) != 0)
			abort();
	}
	check_same_json(toc, fed);
}

/*
 * A feed the split parse's two threads call: the second one asks for all
 * the bytes once, the first in small steps; bytes nobody asked for yet
 * are poisoned.
 */
struct lock_feed {
	pthread_mutex_t lock;
	size_t len, avail; /* protected by lock */
	uint32_t x; /* protected by lock */
	uint8_t *buf;
};

static ssize_t lock_wait(void *arg, size_t want)
{
	struct lock_feed *f = arg;
	size_t n;

	pthread_mutex_lock(&f->lock);
	if (want > f->len)
		abort(); /* the parser asks for what is not there */
	if (want > f->avail) {
		f->x = f->x * 1103515245u + 12345u;
		f->avail = want + (f->x >> 16) % 8;
		if (f->avail > f->len)
			f->avail = f->len;
		feed_unpoison(f->buf, f->avail);
	}
	n = f->avail;
	pthread_mutex_unlock(&f->lock);
	return (ssize_t)n;
}

/* lp_toc_parse_split() at a byte the input chooses, of the whole and fed:
   the same TOC, or the same error, as the serial @toc, @r, @err */
static void check_split(const uint8_t *data, size_t size, int r,
			const struct lp_err *err, const struct lp_toc *toc)
{
	size_t split = size ? 1 + (size_t)data[size - 1] * size / 256 : 1;
	struct lock_feed lf = { PTHREAD_MUTEX_INITIALIZER, size, 0,
				size ? data[size / 3] : 0, NULL };
	struct lp_toc_feed feed = { lock_wait, &lf,
				    1 + (size ? data[0] % 48 : 0), NULL };
	struct lp_toc *t = NULL;
	struct lp_err e = { 0 };
	int sr;

	toc_finish_thread_min = 0; /* the chunk steps beside the names */
	sr = lp_toc_parse_split(data, size, NULL, split, PAYLOAD_END, &t, &e);
	check_same(r, err, toc, sr, &e, t);
	lp_toc_free(t);
	t = NULL;
	memset(&e, 0, sizeof(e));
	lf.buf = malloc(size + 1);
	if (!lf.buf)
		abort();
	memcpy(lf.buf, data, size);
	lf.buf[size] = 0;
	feed_poison(lf.buf, size + 1);
	split = size ? 1 + (size_t)data[size / 2] * size / 256 : 1;
	sr = lp_toc_parse_split(lf.buf, size, &feed, split, PAYLOAD_END, &t,
				&e);
	toc_finish_thread_min = TOC_FINISH_THREAD_MIN;
	feed_unpoison(lf.buf, size + 1);
	check_same(r, err, toc, sr, &e, t);
	lp_toc_free(t);
	free(lf.buf);
	pthread_mutex_destroy(&lf.lock);
}

/* lp_toc_parse_fed() of the bytes in small steps: the same TOC, or the
   same error, as @toc (NULL) and @r, @err of the whole */
static void check_fed(const uint8_t *data, size_t size, int r,
		      const struct lp_err *err, const struct lp_toc *toc)
{
	struct step_feed sf = { size, 0, size ? data[size / 2] : 0, NULL };
	struct lp_toc_feed feed = { step_wait, &sf,
				    1 + (size ? data[0] % 48 : 0), NULL };
	struct lp_toc *fed = NULL;
	struct lp_err ferr = { 0 };
	int fr;

	/* a copy whose bytes, and one past them, are unreadable until
	   handed out */
	sf.buf = malloc(size + 1);
	if (!sf.buf)
		abort();
	memcpy(sf.buf, data, size);
	sf.buf[size] = 0;
	feed_poison(sf.buf, size + 1);
	/* serially: the split parse is checked by check_split() */
	fr = lp_toc_parse_split(sf.buf, size, &feed, LP_TOC_SPLIT_NONE,
				PAYLOAD_END, &fed, &ferr);
	feed_unpoison(sf.buf, size + 1);
	check_same(r, err, toc, fr, &ferr, fed); /* fed, the same document */
	lp_toc_free(fed);
	free(sf.buf); /* after the TOC, which may point into its JSON */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	uint32_t i;
	int r;

	r = lp_toc_parse_split(data, size, NULL, LP_TOC_SPLIT_NONE, PAYLOAD_END,
			       &toc, &err);
	check_fed(data, size, r, &err, toc);
	check_split(data, size, r, &err, toc);
	if (r < 0) {
		if (!err.msg[0])
			abort(); /* every rejection says why */
		return 0;
	}
	if (lp_toc_entry(toc, 0)->type != LP_TOC_DIR)
		abort();
	if (size < (size_t)1 << 30) {
		if (!json_c_accepts(data, size))
			abort();
		check_same_document(data, size, toc);
	}
	for (i = 0; i < lp_toc_nr_entries(toc); i++)
		check_entry(toc, i);
	lp_toc_free(toc);
	return 0;
}
