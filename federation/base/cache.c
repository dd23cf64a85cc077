/* SPDX-License-Identifier: Apache-2.0 */
/* Chained hash table plus an insertion-ordered list for eviction. */
#include "mrtc/base/cache.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *chain;	    /* same bucket */
	struct node *older, *newer; /* insertion order */
	uint64_t hash;
	uint64_t expires_ms;
	void *value;
	size_t key_len;
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
	if (c->free_value)
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

bool mrtc_cache_put(struct mrtc_cache *c, const void *key, size_t len, void *value,
		    uint64_t expires_ms)
{
	uint64_t h = hash_of(c, key, len);
	struct node **slot = slot_of(c, h, key, len);
	if (*slot)
		unlink_node(c, slot);
	if (c->size >= c->capacity && c->oldest) {
		struct node *o = c->oldest;
		unlink_node(c, slot_of(c, o->hash, o->key, o->key_len));
		c->stats.evictions++;
	}
	struct node *n = malloc(sizeof(*n) + len);
	if (!n) {
		if (c->free_value)
			c->free_value(value);
		return false;
	}
	*n = (struct node){ .hash = h, .expires_ms = expires_ms, .value = value, .key_len = len };
	memcpy(n->key, key, len);
	struct node **head = &c->buckets[h & (c->n_buckets - 1)];
	n->chain = *head;
	*head = n;
	n->older = c->newest;
	if (c->newest)
		c->newest->newer = n;
	else
		c->oldest = n;
	c->newest = n;
	c->size++;
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
