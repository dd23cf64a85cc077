/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chained hash table plus an insertion-ordered list for eviction. One object per entry, from
 * the cache's own slab allocator (mrtc/base/slab.h), so that entries carry no malloc header and
 * long-lived entries stay out of the heap the requests churn: the node, its key, then its
 * payload, which is the value itself (mrtc_cache_put_copy) or the pointer to it
 * (mrtc_cache_put). The node is kept small: with 100 000 users the daemon holds several caches
 * of that many entries. The bucket array grows with the entries (at most LOAD per bucket on
 * average) up to the capacity's, in pages of its own, so a cache costs memory for what it holds.
 */
#include "mrtc/base/cache.h"

#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/slab.h"

#define KEY_BITS 22
#define KEY_MAX ((1u << KEY_BITS) - 1)
#define LARGE (MRTC_SLAB_MAX / MRTC_SLAB_STEP + 1) /* units of an object from malloc */
_Static_assert(LARGE < (1u << (31 - KEY_BITS)), "the units field holds LARGE");

struct node {
	struct node *chain;	    /* same bucket */
	struct node *older, *newer; /* insertion order */
	uint64_t expires_ms;
	uint32_t hash; /* its low bits pick the bucket (at most 2^31 of them) */
	/* Bit fields: the key at offset 40. */
	uint32_t key_len : KEY_BITS;
	uint32_t value_owned : 1;	/* mrtc_cache_put: the payload is a pointer to the value */
	uint32_t units : 31 - KEY_BITS; /* the object's size in MRTC_SLAB_STEP units, or LARGE */
	unsigned char key[];
};

struct mrtc_cache {
	struct node **buckets;
	size_t n_buckets, max_buckets;
	struct mrtc_slab *slab;
	size_t size, capacity;
	struct node *oldest, *newest;
	mrtc_cache_free_fn free_value;
	unsigned char sip_key[crypto_shorthash_KEYBYTES];
	struct mrtc_cache_stats stats;
};

/* One page of bucket pointers: the first page a cache touches. */
#define MIN_BUCKETS 512
/* Entries per bucket, on average, before the buckets double: a 100 000-entry cache has 2^16 of
 * them (half a MiB; about 1.8 entries looked at per hit), not 2^17. */
#define LOAD 2

struct mrtc_cache *mrtc_cache_create(size_t capacity, mrtc_cache_free_fn free_value)
{
	if (sodium_init() < 0 || capacity == 0)
		return NULL;
	struct mrtc_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->capacity = capacity;
	c->max_buckets = MIN_BUCKETS;
	while (LOAD * c->max_buckets < capacity && c->max_buckets < ((size_t)1 << 31))
		c->max_buckets *= 2;
	c->n_buckets = MIN_BUCKETS;
	c->buckets = mrtc_pages_alloc(c->n_buckets * sizeof(*c->buckets));
	c->slab = mrtc_slab_create();
	if (!c->buckets || !c->slab) {
		mrtc_pages_free(c->buckets, c->n_buckets * sizeof(*c->buckets));
		mrtc_slab_destroy(c->slab);
		free(c);
		return NULL;
	}
	c->free_value = free_value;
	crypto_shorthash_keygen(c->sip_key);
	return c;
}

static uint32_t hash_of(const struct mrtc_cache *c, const void *key, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	crypto_shorthash(out, key, len, c->sip_key);
	uint32_t h;
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct node **slot_of(struct mrtc_cache *c, uint32_t h, const void *key, size_t len)
{
	struct node **p = &c->buckets[h & (c->n_buckets - 1)];
	while (*p && !((*p)->hash == h && (*p)->key_len == len && memcmp((*p)->key, key, len) == 0))
		p = &(*p)->chain;
	return p;
}

/* Where the payload starts: after the key, aligned to MRTC_CACHE_VALUE_ALIGN. */
static size_t payload_offset(size_t key_len)
{
	const size_t a = MRTC_CACHE_VALUE_ALIGN;
	return (offsetof(struct node, key) + key_len + a - 1) / a * a;
}

static void *payload_of(const struct node *n)
{
	return (unsigned char *)n + payload_offset(n->key_len);
}

/* The value mrtc_cache_get answers for @n. */
static void *value_of(const struct node *n)
{
	void *v = payload_of(n);
	if (n->value_owned)
		memcpy(&v, v, sizeof(v));
	return v;
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
	if (c->free_value && n->value_owned)
		c->free_value(value_of(n));
	sodium_memzero(n->key, n->key_len); /* keys may be token digests */
	mrtc_slab_free(c->slab, n, (size_t)n->units * MRTC_SLAB_STEP);
	c->size--;
}

void *mrtc_cache_get(struct mrtc_cache *c, const void *key, size_t len, uint64_t now_ms)
{
	uint32_t h = hash_of(c, key, len);
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
	return value_of(*slot);
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

/* Makes room for @key and allocates its node with @payload bytes after the key's aligned end. */
static struct node *node_new(struct mrtc_cache *c, const void *key, size_t len, size_t payload,
			     uint32_t *ret_hash)
{
	if (len > KEY_MAX || payload > SIZE_MAX - payload_offset(len))
		return NULL;
	uint32_t h = hash_of(c, key, len);
	struct node **slot = slot_of(c, h, key, len);
	if (*slot)
		unlink_node(c, slot);
	if (c->size >= c->capacity && c->oldest) {
		struct node *o = c->oldest;
		unlink_node(c, slot_of(c, o->hash, o->key, o->key_len));
		c->stats.evictions++;
	}
	size_t size = payload_offset(len) + payload;
	struct node *n = mrtc_slab_alloc(c->slab, size);
	if (!n)
		return NULL;
	n->units = size > MRTC_SLAB_MAX ? LARGE : (uint32_t)((size - 1) / MRTC_SLAB_STEP + 1);
	n->key_len = (uint32_t)len; /* payload_of needs it before node_insert */
	*ret_hash = h;
	return n;
}

/* Twice the buckets; on OOM the chains just get longer. */
static void grow(struct mrtc_cache *c)
{
	size_t n = c->n_buckets * 2;
	struct node **b = mrtc_pages_alloc(n * sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < c->n_buckets; i++)
		while (c->buckets[i]) {
			struct node *e = c->buckets[i];
			c->buckets[i] = e->chain;
			e->chain = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	mrtc_pages_free(c->buckets, c->n_buckets * sizeof(*c->buckets));
	c->buckets = b;
	c->n_buckets = n;
}

static void node_insert(struct mrtc_cache *c, struct node *n, uint32_t h, const void *key,
			size_t len, uint64_t expires_ms)
{
	n->hash = h;
	n->expires_ms = expires_ms;
	memcpy(n->key, key, len); /* key_len is set by node_new */
	if (c->size >= LOAD * c->n_buckets && c->n_buckets < c->max_buckets)
		grow(c);
	struct node **head = &c->buckets[h & (c->n_buckets - 1)];
	n->chain = *head;
	*head = n;
	append_newest(c, n);
	c->size++;
}

bool mrtc_cache_put(struct mrtc_cache *c, const void *key, size_t len, void *value,
		    uint64_t expires_ms)
{
	uint32_t h = 0;
	struct node *n = node_new(c, key, len, sizeof(value), &h);
	if (!n) {
		if (c->free_value)
			c->free_value(value);
		return false;
	}
	n->value_owned = 1;
	memcpy(payload_of(n), &value, sizeof(value));
	node_insert(c, n, h, key, len, expires_ms);
	return true;
}

bool mrtc_cache_put_copy(struct mrtc_cache *c, const void *key, size_t len, const void *value,
			 size_t value_len, uint64_t expires_ms)
{
	uint32_t h = 0;
	struct node *n = node_new(c, key, len, value_len ? value_len : 1, &h);
	if (!n)
		return false;
	n->value_owned = 0;
	if (value_len)
		memcpy(payload_of(n), value, value_len);
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

size_t mrtc_cache_expire(struct mrtc_cache *c, uint64_t now_ms, size_t max)
{
	size_t n = 0;
	while (n < max && c->oldest && c->oldest->expires_ms <= now_ms) {
		struct node *o = c->oldest;
		unlink_node(c, slot_of(c, o->hash, o->key, o->key_len));
		n++;
	}
	c->stats.expirations += n;
	return n;
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
			fn(ctx, n->key, n->key_len, value_of(n));
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
	mrtc_pages_free(c->buckets, c->n_buckets * sizeof(*c->buckets));
	mrtc_slab_destroy(c->slab);
	free(c);
}
