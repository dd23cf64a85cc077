/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Micro-benchmark: LiveKit participant tokens minted per second (claims object, compact JSON,
 * base64url, HMAC-SHA256) against raw HMAC-SHA256 of the same number of bytes, same run, one
 * core.
 */
#include <sodium.h>
#include <string.h>

#include "bench.h"
#include "mrtc/livekit/livekit.h"

static const struct mrtc_livekit_creds creds = { "APIdevkey",
						 "devsecret-0123456789abcdef0123456789" };
static size_t signed_len;
static uint8_t input[1024];

static bool mint(void *ctx)
{
	(void)ctx;
	char *jwt = NULL;
	if (mrtc_livekit_mint_participant(
		&creds, MRTC_GRANT_LOCAL_USER, "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU",
		"O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc", 1767225600, 3600, &jwt) != MRTC_OK)
		return false;
	free(jwt);
	return true;
}

static bool raw_hmac(void *ctx)
{
	(void)ctx;
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, (const uint8_t *)creds.secret, strlen(creds.secret));
	crypto_auth_hmacsha256_update(&st, input, signed_len);
	crypto_auth_hmacsha256_final(&st, mac);
	return mac[0] != 0 || mac[1] != 1; /* keep the result alive */
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	if (sodium_init() < 0)
		return 1;
	char *jwt = NULL;
	if (mrtc_livekit_mint_participant(&creds, MRTC_GRANT_LOCAL_USER, "x", "y", 0, 1, &jwt) !=
	    MRTC_OK)
		return 1;
	mint(NULL);
	free(jwt);
	jwt = NULL;
	mrtc_livekit_mint_participant(
	    &creds, MRTC_GRANT_LOCAL_USER, "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU",
	    "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc", 1767225600, 3600, &jwt);
	signed_len = (size_t)(strrchr(jwt, '.') - jwt); /* what the HMAC covers */
	memcpy(input, jwt, signed_len);
	free(jwt);
	double raw = bench_rate(raw_hmac, NULL, seconds);
	double ours = bench_rate(mint, NULL, seconds);
	bench_header();
	bench_row("raw HMAC-SHA256 (libsodium)", raw);
	bench_row("mrtc_livekit_mint_participant", ours);
	printf("signed bytes %zu; ratio ours/raw = %.1f%%\n", signed_len, 100.0 * ours / raw);
	return 0;
}
