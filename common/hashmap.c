// SPDX-License-Identifier: Apache-2.0
/*
 * Hash maps: see lp_hashmap.h. Keys are spread by Fibonacci hashing (the
 * top bits of key * 2^64/phi), so sequential ids and FNV hashes alike land
 * evenly; a table doubles before it is more than half full, which keeps
 * linear probes short.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lp_hashmap.h"

#define MIN_CAP 16

/* colliding strings of one hash, newest first */
struct lp_strmap_node {
	struct lp_strmap_node *next;
	uint64_t val;
	char key[];
};

/* the slot holding @key, or the empty slot where it would go (cap != 0) */
static size_t slot_of(const struct lp_hashmap *m, uint64_t key)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> m->shift);

	while (m->used[i] && m->slots[i].key != key)
		i = (i + 1) & mask;
	return i;
}

static int grow(struct lp_hashmap *m)
{
	struct lp_hashmap nm = { 0 };
	size_t i, j;

	nm.cap = m->cap ? m->cap * 2 : MIN_CAP;
	if (nm.cap > SIZE_MAX / (sizeof(*nm.slots) + 1))
		return -ENOMEM;
	nm.slots = calloc(nm.cap, sizeof(*nm.slots) + 1);
	if (!nm.slots)
		return -ENOMEM;
	nm.used = (uint8_t *)(nm.slots + nm.cap);
	nm.shift = 64;
	for (i = nm.cap; i > 1; i >>= 1)
		nm.shift--;
	for (i = 0; i < m->cap; i++) {
		if (!m->used[i])
			continue;
		j = slot_of(&nm, m->slots[i].key);
		nm.slots[j] = m->slots[i];
		nm.used[j] = 1;
	}
	nm.nr = m->nr;
	free(m->slots);
	*m = nm;
	return 0;
}

int lp_hashmap_get(const struct lp_hashmap *m, uint64_t key, uint64_t *ret_val)
{
	size_t i;

	if (!m->cap)
		return -ENOENT;
	i = slot_of(m, key);
	if (!m->used[i])
		return -ENOENT;
	if (ret_val)
		*ret_val = m->slots[i].val;
	return 0;
}

int lp_hashmap_put(struct lp_hashmap *m, uint64_t key, uint64_t val)
{
	size_t i;
	int r;

	if ((m->nr + 1) * 2 > m->cap && lp_hashmap_get(m, key, NULL) < 0) {
		r = grow(m);
		if (r < 0)
			return r;
	}
	i = slot_of(m, key);
	if (!m->used[i]) {
		m->used[i] = 1;
		m->slots[i].key = key;
		m->nr++;
	}
	m->slots[i].val = val;
	return 0;
}

int lp_hashmap_next(const struct lp_hashmap *m, size_t *pos, uint64_t *ret_key,
		    uint64_t *ret_val)
{
	size_t i;

	for (i = *pos; i < m->cap; i++) {
		if (!m->used[i])
			continue;
		if (ret_key)
			*ret_key = m->slots[i].key;
		if (ret_val)
			*ret_val = m->slots[i].val;
		*pos = i + 1;
		return 1;
	}
	*pos = m->cap;
	return 0;
}

void lp_hashmap_release(struct lp_hashmap *m)
{
	if (!m)
		return;
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static struct lp_strmap_node *strmap_find(const struct lp_strmap *m,
					  const char *key, uint64_t hash,
					  struct lp_strmap_node **ret_head)
{
	struct lp_strmap_node *n = NULL;
	uint64_t v;

	if (lp_hashmap_get(&m->map, hash, &v) == 0)
		n = (struct lp_strmap_node *)(uintptr_t)v;
	*ret_head = n;
	while (n && strcmp(n->key, key) != 0)
		n = n->next;
	return n;
}

int lp_strmap_get_hashed(const struct lp_strmap *m, const char *key,
			 uint64_t hash, uint64_t *ret_val)
{
	struct lp_strmap_node *head, *n = strmap_find(m, key, hash, &head);

	if (!n)
		return -ENOENT;
	if (ret_val)
		*ret_val = n->val;
	return 0;
}

int lp_strmap_put_hashed(struct lp_strmap *m, const char *key, uint64_t hash,
			 uint64_t val)
{
	struct lp_strmap_node *head, *n = strmap_find(m, key, hash, &head);
	size_t len;
	int r;

	if (n) {
		n->val = val;
		return 0;
	}
	len = strlen(key);
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return -ENOMEM;
	memcpy(n->key, key, len + 1);
	n->val = val;
	n->next = head;
	r = lp_hashmap_put(&m->map, hash, (uint64_t)(uintptr_t)n);
	if (r < 0)
		free(n);
	return r;
}

int lp_strmap_get(const struct lp_strmap *m, const char *key, uint64_t *ret_val)
{
	return lp_strmap_get_hashed(m, key, lp_hash_bytes(key, strlen(key)),
				    ret_val);
}

int lp_strmap_put(struct lp_strmap *m, const char *key, uint64_t val)
{
	return lp_strmap_put_hashed(m, key, lp_hash_bytes(key, strlen(key)),
				    val);
}

void lp_strmap_release(struct lp_strmap *m)
{
	struct lp_strmap_node *n, *next;
	size_t pos = 0;
	uint64_t v;

	if (!m)
		return;
	while (lp_hashmap_next(&m->map, &pos, NULL, &v)) {
		for (n = (struct lp_strmap_node *)(uintptr_t)v; n; n = next) {
			next = n->next;
			free(n);
		}
	}
	lp_hashmap_release(&m->map);
}
