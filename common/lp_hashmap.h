/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small hash maps for the parsers and the converter.
 *
 * struct lp_hashmap maps uint64_t keys to uint64_t values: open addressing
 * with linear probing, never more than half full, one allocation per table
 * (no allocation per key), so it holds millions of keys. A value may carry a
 * pointer (cast through uintptr_t); the map does not own it.
 *
 * struct lp_strmap maps strings to uint64_t values on top of it: the key is
 * copied (one allocation per key) and two strings with the same 64-bit hash
 * are told apart by comparing them.
 *
 * Both are plain structs: zero-initialised is an empty map, *_release() frees
 * it and accepts NULL. There is no removal. Not locked: one writer, or any
 * number of readers and no writer.
 */
#ifndef LP_HASHMAP_H
#define LP_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

struct lp_hashmap_slot {
	uint64_t key, val;
};

struct lp_hashmap {
	struct lp_hashmap_slot *slots; /* cap slots, then cap used flags */
	uint8_t *used; /* points into the same allocation as slots */
	size_t cap, nr; /* cap is 0 or a power of two */
	unsigned int shift; /* 64 - log2(cap): the hash's top bits index */
};

struct lp_strmap {
	struct lp_hashmap map; /* hash -> first struct lp_strmap_node */
};

/* lp_hash_bytes() - FNV-1a of @len bytes (for keys and callers' own tables) */
static inline uint64_t lp_hash_bytes(const void *p, size_t len)
{
	const uint8_t *s = p;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* lp_hashmap_get() - 0 and *ret_val (if not NULL) for @key, or -ENOENT. */
int lp_hashmap_get(const struct lp_hashmap *m, uint64_t key, uint64_t *ret_val);

/*
 * lp_hashmap_put() - set @key to @val, adding the key or replacing its value.
 * Returns 0, or -ENOMEM with the map as it was.
 */
int lp_hashmap_put(struct lp_hashmap *m, uint64_t key, uint64_t val);

/*
 * lp_hashmap_next() - walk the keys in table order: start with *pos = 0;
 * each call returns 1 with the next key and value (either pointer may be
 * NULL), then 0 at the end. The map must not change during the walk.
 */
int lp_hashmap_next(const struct lp_hashmap *m, size_t *pos, uint64_t *ret_key,
		    uint64_t *ret_val);

/* lp_hashmap_release() - free the table; the map is empty again. NULL ok. */
void lp_hashmap_release(struct lp_hashmap *m);

/* lp_strmap_get() - 0 and *ret_val (if not NULL) for @key, or -ENOENT. */
int lp_strmap_get(const struct lp_strmap *m, const char *key,
		  uint64_t *ret_val);

/*
 * lp_strmap_put() - set @key (copied) to @val, adding or replacing.
 * Returns 0, or -ENOMEM with the map as it was.
 */
int lp_strmap_put(struct lp_strmap *m, const char *key, uint64_t val);

/*
 * lp_strmap_get_hashed(), lp_strmap_put_hashed() - the same with the key's
 * hash given: lp_hash_bytes(key, strlen(key)) or, for tests, any value the
 * caller uses for that key every time.
 */
int lp_strmap_get_hashed(const struct lp_strmap *m, const char *key,
			 uint64_t hash, uint64_t *ret_val);
int lp_strmap_put_hashed(struct lp_strmap *m, const char *key, uint64_t hash,
			 uint64_t val);

/* lp_strmap_release() - free the keys and the table. NULL ok. */
void lp_strmap_release(struct lp_strmap *m);

#endif /* LP_HASHMAP_H */
