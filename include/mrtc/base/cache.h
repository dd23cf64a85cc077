/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounded map from byte keys to owned values with a lifetime per entry. Keys are hashed with
 * SipHash under a random key (no hash flooding); when full, the oldest entry goes. Entries live
 * in slabs of the cache's own (mrtc/base/slab.h), apart from malloc's heap. Pure.
 */
#ifndef MRTC_CACHE_H
#define MRTC_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mrtc_cache;

/* The alignment of a value mrtc_cache_put_copy stores: enough for pointers, 64-bit integers and
 * doubles (not long double), and 8 bytes less per entry than max_align_t's 16. */
#define MRTC_CACHE_VALUE_ALIGN 8

typedef void (*mrtc_cache_free_fn)(void *value);

struct mrtc_cache_stats {
	uint64_t hits, misses, evictions, expirations;
	size_t size, capacity;
};

/* @free_value (may be NULL) releases values the cache drops. NULL on OOM. */
struct mrtc_cache *mrtc_cache_create(size_t capacity, mrtc_cache_free_fn free_value);
void mrtc_cache_destroy(struct mrtc_cache *cache);

/* The value for @key if present and not expired at @now_ms (borrowed), else NULL. */
void *mrtc_cache_get(struct mrtc_cache *cache, const void *key, size_t key_len, uint64_t now_ms);

/* Stores @value (takes ownership, also on failure) until @expires_ms, replacing any old one. */
bool mrtc_cache_put(struct mrtc_cache *cache, const void *key, size_t key_len, void *value,
		    uint64_t expires_ms);

/* Stores a copy of the @value_len bytes at @value inside the entry itself (one allocation per
 * entry; never passed to the free function) until @expires_ms, replacing any old one. The
 * value mrtc_cache_get returns is then aligned to MRTC_CACHE_VALUE_ALIGN and may be changed in
 * place. */
bool mrtc_cache_put_copy(struct mrtc_cache *cache, const void *key, size_t key_len,
			 const void *value, size_t value_len, uint64_t expires_ms);

/* If @key is present and not expired at @now_ms: its entry now lives until @expires_ms and is
 * the last to be evicted, and the answer is true. False (nothing changed) otherwise. */
bool mrtc_cache_refresh(struct mrtc_cache *cache, const void *key, size_t key_len, uint64_t now_ms,
			uint64_t expires_ms);

void mrtc_cache_remove(struct mrtc_cache *cache, const void *key, size_t key_len);

/* Drops at most @max of the oldest entries (in insertion order, a refreshed one counting as
 * new) as long as they are expired at @now_ms, so that expired entries do not wait for
 * eviction: called with a small @max on each insertion, it keeps a cache whose entries live
 * alike, or about alike, free of expired ones at a bounded cost. The answer is how many went. */
size_t mrtc_cache_expire(struct mrtc_cache *cache, uint64_t now_ms, size_t max);

/* Calls @fn for every unexpired entry, oldest first. @fn must not change the cache. */
void mrtc_cache_foreach(struct mrtc_cache *cache, uint64_t now_ms,
			void (*fn)(void *ctx, const void *key, size_t key_len, void *value),
			void *ctx);

void mrtc_cache_get_stats(const struct mrtc_cache *cache, struct mrtc_cache_stats *ret_stats);

#endif
