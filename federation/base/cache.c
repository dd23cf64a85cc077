/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chained hash table plus an insertion-ordered list for eviction. A node holds its key and,
 * for mrtc_cache_put_copy, its value too: one allocation per entry.
 */
#include "mrtc/base/cache.h"

#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *chain;	    /* same bucket */
	struct node *older, *newer; /* insertion order */
	uint64_t hash;
	uint64_t expires_ms;
	void *value;
	uint32_t key_len;
	bool value_inline; /* mrtc_cache_put_copy: the value follows the key */
	unsigned char key[];
};

struct mrtc_cache {
	struct node **buckets;
	size_t n_buckets;
	size_t size, capacity;
	struct node *oldest, *newest;
	mrtc_cache_free_fn free_value;
	unsigned char sip_key[crypto_shorthash_KEYBYTES];
	struct mrtc_cache_stats stats;
};

struct mrtc_cache *mrtc_cache_create(size_t capacity, mrtc_cache_free_fn free_value)
{
	if (sodium_init() < 0 || capacity == 0)
		return NULL;
	struct mrtc_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->capacity = capacity;
	c->n_buckets = 16;
	while (c->n_buckets < capacity)
		c->n_buckets *= 2;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->free_value = free_value;
	crypto_shorthash_keygen(c->sip_key);
	return c;
}

static uint64_t hash_of(const struct mrtc_cache *c, const void *key, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	crypto_shorthash(out, key, len, c->sip_key);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct node **slot_of(struct mrtc_cache *c, uint64_t h, const void *key, size_t len)
{
	struct node **p = &c->buckets[h & (c->n_buckets - 1)];
	while (*p && !((*p)->hash == h && (*p)->key_len == len && memcmp((*p)->key, key, len) == 0))
		p = &(*p)->chain;
	return p;
}

/* Where a value copied into the node starts: after the key, aligned for any type. */
static size_t value_offset(size_t key_len)
{
	const size_t a = _Alignof(max_align_t);
	return (sizeof(struct node) + key_len + a - 1) / a * a;
}

static void unlink_node(struct mrtc_cache *c, struct node **slot)
{
	struct node *n = *slot;
	*slot = n->chain;
	if (n->older)
		n->older->newer = n->newer;
	else
		c->oldest = n->newer;
	if (n->newer)
		n->newer->older = n->older;
	else
		c->newest = n->older;
	if (c->free_value && !n->value_inline)
		c->free_value(n->value);
	sodium_memzero(n->key, n->key_len); /* keys may be token digests */
	free(n);
	c->size--;
}

void *mrtc_cache_get(struct mrtc_cache *c, const void *key, size_t len, uint64_t now_ms)
{
	uint64_t h = hash_of(c, key, len);
	struct node **slot = slot_of(c, h, key, len);
	if (!*slot) {
		c->stats.misses++;
		return NULL;
	}
	if ((*slot)->expires_ms <= now_ms) {
		unlink_node(c, slot);
		c->stats.misses++;
		return NULL;
	}
	c->stats.hits++;
	return (*slot)->value;
}

static void append_newest(struct mrtc_cache *c, struct node *n)
{
	n->newer = NULL;
	n->older = c->newest;
	if (c->newest)
		c->newest->newer = n;
	else
		c->oldest = n;
	c->newest = n;
}

/* Makes room for @key and allocates its node with @extra bytes after the key's aligned end. */
static struct node *node_new(struct mrtc_cache *c, const void *key, size_t len, size_t extra,
			     uint64_t *ret_hash)
{
	if (len > UINT32_MAX)
		return NULL;
	uint64_t h = hash_of(c, key, len);
	struct node **slot = slot_of(c, h, key, len);
	if (*slot)
		unlink_node(c, slot);
	if (c->size >= c->capacity && c->oldest) {
		struct node *o = c->oldest;
		unlink_node(c, slot_of(c, o->hash, o->key, o->key_len));
		c->stats.evictions++;
	}
	struct node *n = malloc(extra ? value_offset(len) + extra : sizeof(*n) + len);
	if (n)
		*ret_hash = h;
	return n;
}

static void node_insert(struct mrtc_cache *c, struct node *n, uint64_t h, const void *key,
			size_t len, uint64_t expires_ms)
{
	n->hash = h;
	n->expires_ms = expires_ms;
	n->key_len = (uint32_t)len;
	memcpy(n->key, key, len);
	struct node **head = &c->buckets[h & (c->n_buckets - 1)];
	n->chain = *head;
	*head = n;
	append_newest(c, n);
	c->size++;
}

bool mrtc_cache_put(struct mrtc_cache *c, const void *key, size_t len, void *value,
		    uint64_t expires_ms)
{
	uint64_t h = 0;
	struct node *n = node_new(c, key, len, 0, &h);
	if (!n) {
		if (c->free_value)
			c->free_value(value);
		return false;
	}
	n->value = value;
	n->value_inline = false;
	node_insert(c, n, h, key, len, expires_ms);
	return true;
}

bool mrtc_cache_put_copy(struct mrtc_cache *c, const void *key, size_t len, const void *value,
			 size_t value_len, uint64_t expires_ms)
{
	uint64_t h = 0;
	struct node *n = node_new(c, key, len, value_len ? value_len : 1, &h);
	if (!n)
		return false;
	n->value = (unsigned char *)n + value_offset(len);
	n->value_inline = true;
	memcpy(n->value, value, value_len);
	node_insert(c, n, h, key, len, expires_ms);
	return true;
}

bool mrtc_cache_refresh(struct mrtc_cache *c, const void *key, size_t len, uint64_t now_ms,
			uint64_t expires_ms)
{
	struct node **slot = slot_of(c, hash_of(c, key, len), key, len);
	struct node *n = *slot;
	if (!n || n->expires_ms <= now_ms)
		return false;
	n->expires_ms = expires_ms;
	if (n != c->newest) { /* now the newest: the last to be evicted */
		if (n->older)
			n->older->newer = n->newer;
		else
			c->oldest = n->newer;
		n->newer->older = n->older;
		append_newest(c, n);
	}
	return true;
}

void mrtc_cache_remove(struct mrtc_cache *c, const void *key, size_t len)
{
	struct node **slot = slot_of(c, hash_of(c, key, len), key, len);
	if (*slot)
		unlink_node(c, slot);
}

void mrtc_cache_foreach(struct mrtc_cache *c, uint64_t now_ms,
			void (*fn)(void *ctx, const void *key, size_t key_len, void *value),
			void *ctx)
{
	for (struct node *n = c->oldest; n; n = n->newer)
		if (n->expires_ms > now_ms)
			fn(ctx, n->key, n->key_len, n->value);
}

void mrtc_cache_get_stats(const struct mrtc_cache *c, struct mrtc_cache_stats *ret)
{
	*ret = c->stats;
	ret->size = c->size;
	ret->capacity = c->capacity;
}

void mrtc_cache_destroy(struct mrtc_cache *c)
{
	if (!c)
		return;
	while (c->oldest)
		unlink_node(c, slot_of(c, c->oldest->hash, c->oldest->key, c->oldest->key_len));
	free(c->buckets);
	free(c);
}
