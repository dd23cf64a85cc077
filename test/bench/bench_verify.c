/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Micro-benchmark: X-Matrix request verifications per second (parse header, canonicalise the
 * request object, look up the key, Ed25519 verify) against raw libsodium
 * crypto_sign_verify_detached on a message of the same size, in the same run on one core.
 * The ratio is the figure that counts; the absolute numbers depend on the machine.
 */
#include <sodium.h>
#include <string.h>

#include "bench.h"
#include "mrtc/matrix/json.h"
#include "mrtc/matrix/xmatrix.h"

struct ctx {
	const struct mrtc_signing_key *key;
	const char *uri;
	struct json_object *content;
	const char *header;
	const char *signed_bytes;
	size_t signed_len;
	uint8_t sig[64];
};

static enum mrtc_err lookup(void *arg, const char *origin, const char *key_id, uint8_t *pk)
{
	const struct ctx *c = arg;
	(void)origin;
	(void)key_id;
	memcpy(pk, c->key->public_key, MRTC_ED25519_PK_LEN);
	return MRTC_OK;
}

static bool raw_verify(void *arg)
{
	struct ctx *c = arg;
	return crypto_sign_verify_detached(c->sig, (const uint8_t *)c->signed_bytes, c->signed_len,
					   c->key->public_key) == 0;
}

static bool xmatrix_verify(void *arg)
{
	struct ctx *c = arg;
	const char *headers[] = { c->header };
	char origin[MRTC_SERVER_NAME_MAX + 1];
	return mrtc_xmatrix_verify("POST", c->uri, c->content, "dest.example", headers, 1, lookup,
				   c, origin) == MRTC_OK;
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
	struct ctx c = { .key = key,
			 .uri = "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/"
				"get_token" };
	const char *body =
	    "{\"user_id\":\"@alice:origin.example\",\"url\":\"wss://sfu.dest.example\","
	    "\"room_id\":\"!r:dest.example\",\"slot_id\":\"m.call#ROOM\","
	    "\"member_id\":\"xyzABC\",\"member\":{\"id\":\"xyzABC\","
	    "\"claimed_device_id\":\"DEV1\"}}";
	char *header = NULL, *signed_bytes = NULL;
	if (mrtc_json_parse(body, strlen(body), 8, &c.content) != MRTC_OK ||
	    mrtc_xmatrix_sign("POST", c.uri, "origin.example", "dest.example", c.content, key,
			      &header) != MRTC_OK ||
	    mrtc_xmatrix_signed_bytes("POST", c.uri, "origin.example", "dest.example", c.content,
				      &signed_bytes, &c.signed_len) != MRTC_OK)
		return 1;
	c.header = header;
	c.signed_bytes = signed_bytes;
	mrtc_signing_key_sign(key, (const uint8_t *)signed_bytes, c.signed_len, c.sig);

	double raw = bench_rate(raw_verify, &c, seconds);
	double ours = bench_rate(xmatrix_verify, &c, seconds);
	bench_header();
	bench_row("raw crypto_sign_verify_detached", raw);
	bench_row("mrtc_xmatrix_verify (parse+canonical+verify)", ours);
	printf("message size %zu bytes; ratio ours/raw = %.1f%%\n", c.signed_len,
	       100.0 * ours / raw);
	free(header);
	free(signed_bytes);
	json_object_put(c.content);
	mrtc_signing_key_destroy(key);
	return 0;
}
