/* SPDX-License-Identifier: Apache-2.0 */
/* Token buckets in milli-tokens on top of the bounded cache. */
#include "mrtc/core/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "mrtc/base/cache.h"

struct bucket {
	uint64_t milli; /* tokens * 1000 */
	uint64_t last_ms;
};

struct mrtc_ratelimit {
	struct mrtc_cache *buckets;
	uint64_t rate;	/* tokens per second = milli-tokens per millisecond */
	uint64_t burst; /* tokens */
};

struct mrtc_ratelimit *mrtc_ratelimit_create(uint64_t per_second, uint64_t burst, size_t max_keys)
{
	struct mrtc_ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->rate = per_second ? per_second : 1;
	rl->burst = burst ? burst : 1;
	rl->buckets = mrtc_cache_create(max_keys, NULL); /* buckets live inside the entries */
	if (!rl->buckets) {
		free(rl);
		return NULL;
	}
	return rl;
}

void mrtc_ratelimit_destroy(struct mrtc_ratelimit *rl)
{
	if (!rl)
		return;
	mrtc_cache_destroy(rl->buckets);
	free(rl);
}

bool mrtc_ratelimit_take(struct mrtc_ratelimit *rl, const char *key, uint64_t now_ms,
			 uint64_t *ret_retry_after_ms)
{
	size_t len = strlen(key);
	const uint64_t full = rl->burst * 1000;
	/* A bucket lives until it would be full again, the same as none: two of those gone per
	 * call keep the cache to the keys seen within a refill time (more when the oldest was
	 * left with less than its neighbours, until it is full again too). */
	mrtc_cache_expire(rl->buckets, now_ms, 2);
	struct bucket *b = mrtc_cache_get(rl->buckets, key, len, now_ms);
	struct bucket cur = { .milli = full, .last_ms = now_ms };
	if (b) {
		cur = *b;
		uint64_t elapsed = now_ms > cur.last_ms ? now_ms - cur.last_ms : 0;
		uint64_t add = elapsed * rl->rate;
		cur.milli = (full - cur.milli < add) ? full : cur.milli + add;
		cur.last_ms = now_ms;
	}
	bool ok = cur.milli >= 1000;
	if (ok)
		cur.milli -= 1000;
	else if (ret_retry_after_ms)
		*ret_retry_after_ms = (1000 - cur.milli + rl->rate - 1) / rl->rate;
	/* The bucket can be forgotten once it would be full again. */
	uint64_t refill_ms = (full - cur.milli + rl->rate - 1) / rl->rate;
	if (b) {
		/* In place; kept until it would be full again (no allocation per request). */
		*b = cur;
		mrtc_cache_refresh(rl->buckets, key, len, now_ms, now_ms + refill_ms + 1);
		return ok;
	}
	mrtc_cache_put_copy(rl->buckets, key, len, &cur, sizeof(cur), now_ms + refill_ms + 1);
	return ok;
}

size_t mrtc_ratelimit_size(const struct mrtc_ratelimit *rl)
{
	struct mrtc_cache_stats s;
	mrtc_cache_get_stats(rl->buckets, &s);
	return s.size;
}

void mrtc_ratelimit_get_params(const struct mrtc_ratelimit *rl, uint64_t *ret_per_second,
			       uint64_t *ret_burst)
{
	*ret_per_second = rl->rate;
	*ret_burst = rl->burst;
}
