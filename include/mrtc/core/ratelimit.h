/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token buckets per key (a user id, an origin server) with bounded memory (PROTOCOL §6.3).
 * Idle buckets expire once they would be full again; past the bound the oldest goes. Pure.
 */
#ifndef MRTC_RATELIMIT_H
#define MRTC_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mrtc_ratelimit;

struct mrtc_ratelimit *mrtc_ratelimit_create(uint64_t per_second, uint64_t burst, size_t max_keys);
void mrtc_ratelimit_destroy(struct mrtc_ratelimit *rl);

/*
 * Takes one token for @key at @now_ms. False when the bucket is empty, with the time until a
 * token is available in *ret_retry_after_ms.
 */
bool mrtc_ratelimit_take(struct mrtc_ratelimit *rl, const char *key, uint64_t now_ms,
			 uint64_t *ret_retry_after_ms);

size_t mrtc_ratelimit_size(const struct mrtc_ratelimit *rl);

/* The refill per second and the bucket size @rl was created with (after defaults). */
void mrtc_ratelimit_get_params(const struct mrtc_ratelimit *rl, uint64_t *ret_per_second,
			       uint64_t *ret_burst);

#endif
