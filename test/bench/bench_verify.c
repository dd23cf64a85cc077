/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Micro-benchmark: X-Matrix request verifications per second (parse header, canonicalise the
 * request object, look up the key, Ed25519 verify) against raw libsodium
 * crypto_sign_verify_detached on a message of the same size, in the same run on one core.
 * The ratio is the figure that counts; the absolute numbers depend on the machine.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mrtc/json.h"
#include "mrtc/util.h"
#include "mrtc/xmatrix.h"

static const struct mrtc_signing_key *bench_key;

static enum mrtc_err lookup(void *ctx, const char *origin, const char *key_id, uint8_t *pk)
{
	(void)ctx;
	(void)origin;
	(void)key_id;
	memcpy(pk, bench_key->public_key, MRTC_ED25519_PK_LEN);
	return MRTC_OK;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	if (sodium_init() < 0)
		return 1;
	const char *line = "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
	struct mrtc_signing_key *key = NULL;
	if (mrtc_signing_key_parse(line, strlen(line), &key) != MRTC_OK)
		return 1;
	bench_key = key;
	const char *uri = "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token";
	const char *body =
	    "{\"user_id\":\"@alice:origin.example\",\"url\":\"wss://sfu.dest.example\","
	    "\"room_id\":\"!r:dest.example\",\"slot_id\":\"m.call#ROOM\","
	    "\"member_id\":\"xyzABC\",\"member\":{\"id\":\"xyzABC\","
	    "\"claimed_device_id\":\"DEV1\"}}";
	struct json_object *content = NULL;
	if (mrtc_json_parse(body, strlen(body), 8, &content) != MRTC_OK)
		return 1;
	char *header = NULL, *signed_bytes = NULL;
	size_t signed_len;
	if (mrtc_xmatrix_sign("POST", uri, "origin.example", "dest.example", content, key,
			      &header) != MRTC_OK ||
	    mrtc_xmatrix_signed_bytes("POST", uri, "origin.example", "dest.example", content,
				      &signed_bytes, &signed_len) != MRTC_OK)
		return 1;
	uint8_t sig[64];
	mrtc_signing_key_sign(key, (const uint8_t *)signed_bytes, signed_len, sig);

	/* Raw libsodium verify of the same byte count. */
	unsigned long raw_n = 0;
	double t0 = now_s(), t;
	do {
		for (int i = 0; i < 100; i++)
			if (crypto_sign_verify_detached(sig, (const uint8_t *)signed_bytes,
							signed_len, key->public_key) != 0)
				return 1;
		raw_n += 100;
	} while ((t = now_s()) - t0 < seconds);
	double raw_rate = (double)raw_n / (t - t0);

	/* Our full X-Matrix verification path, body already parsed as the server has it. */
	unsigned long ours_n = 0;
	const char *headers[] = { header };
	char origin[MRTC_SERVER_NAME_MAX + 1];
	t0 = now_s();
	do {
		for (int i = 0; i < 100; i++)
			if (mrtc_xmatrix_verify("POST", uri, content, "dest.example", headers, 1,
						lookup, NULL, origin) != MRTC_OK)
				return 1;
		ours_n += 100;
	} while ((t = now_s()) - t0 < seconds);
	double ours_rate = (double)ours_n / (t - t0);

	printf("%-44s %12s %10s\n", "benchmark (one core)", "ops/s", "us/op");
	printf("%-44s %12.0f %10.2f\n", "raw crypto_sign_verify_detached", raw_rate,
	       1e6 / raw_rate);
	printf("%-44s %12.0f %10.2f\n", "mrtc_xmatrix_verify (parse+canonical+verify)", ours_rate,
	       1e6 / ours_rate);
	printf("message size %zu bytes; ratio ours/raw = %.1f%%\n", signed_len,
	       100.0 * ours_rate / raw_rate);
	free(header);
	free(signed_bytes);
	json_object_put(content);
	mrtc_signing_key_destroy(key);
	return 0;
}
