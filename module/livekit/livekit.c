/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LiveKit names, identities and HS256 access tokens; webhook verification. Pure: no I/O.
 */
#include "mrtc/livekit/livekit.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "mrtc/base/base64.h"
#include "mrtc/base/buf.h"
#include "mrtc/matrix/json.h"

/* base64url('{"alg":"HS256","typ":"JWT"}') */
#define JWT_HEADER_B64 "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define JWT_MAX 8192
#define SHA256_BLOCK 64

/* SHA-256 as OpenSSL implements it, fetched once: an implicit fetch (EVP_sha256()) looks the
 * algorithm up again on every EVP_DigestInit_ex2. Never freed: it lives as long as libcrypto. */
static EVP_MD *sha256_md;

static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/*
 * SHA-256 of @a then @b into @out, in @ctx (reused across calls: OpenSSL reinitialises it).
 * OpenSSL uses the CPU's SHA extensions or vector code, several times faster than libsodium's
 * portable C, and every token request hashes two names and signs once. False if OpenSSL fails.
 */
static bool sha256_in(EVP_MD_CTX *ctx, const void *a, size_t al, const void *b, size_t bl,
		      uint8_t out[crypto_hash_sha256_BYTES])
{
	static once_flag once = ONCE_FLAG_INIT;
	call_once(&once, fetch_sha256);
	return ctx && sha256_md && EVP_DigestInit_ex2(ctx, sha256_md, NULL) &&
	       EVP_DigestUpdate(ctx, a, al) && (!bl || EVP_DigestUpdate(ctx, b, bl)) &&
	       EVP_DigestFinal_ex(ctx, out, NULL);
}

static bool sha256_two(const void *a, size_t al, const void *b, size_t bl,
		       uint8_t out[crypto_hash_sha256_BYTES])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = sha256_in(ctx, a, al, b, bl, out);
	EVP_MD_CTX_free(ctx); /* wipes its state */
	return ok;
}

enum mrtc_err mrtc_livekit_hash(const char *const *parts, size_t n,
				char ret_hash[MRTC_LIVEKIT_HASH_LEN + 1])
{
	/* The canonical JSON array of strings, written directly into stack storage: this runs
	 * twice per token request, and json-c objects cost several allocations each. */
	char stack[1024];
	struct mrtc_buf b;
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	enum mrtc_err err = MRTC_ERR_NOMEM;
	mrtc_buf_putc(&b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			mrtc_buf_putc(&b, ',');
		if (!mrtc_json_write_string(&b, parts[i], strlen(parts[i]))) {
			err = MRTC_ERR_INVALID_PARAM; /* not UTF-8, as mrtc_json_canonical says */
			goto out;
		}
	}
	mrtc_buf_putc(&b, ']');
	if (b.failed)
		goto out;
	uint8_t digest[crypto_hash_sha256_BYTES];
	if (!sha256_two(b.data, b.len, NULL, 0, digest))
		goto out;
	mrtc_base64_encode(digest, sizeof(digest), false, ret_hash);
	err = MRTC_OK;
out:
	mrtc_buf_finish(&b);
	return err;
}

enum mrtc_err mrtc_livekit_room_name(const char *room_id, const char *slot_id,
				     char ret_name[MRTC_LIVEKIT_HASH_LEN + 1])
{
	const char *parts[] = { room_id, slot_id };
	return mrtc_livekit_hash(parts, 2, ret_name);
}

enum mrtc_err mrtc_livekit_identity(enum mrtc_identity_kind kind, const char *user_id,
				    const char *device_id, const char *member_id,
				    char ret_identity[MRTC_LIVEKIT_HASH_LEN + 1])
{
	if (kind == MRTC_IDENTITY_KIND_USER_MEMBER) {
		const char *parts[] = { user_id, member_id };
		return mrtc_livekit_hash(parts, 2, ret_identity);
	}
	if (!device_id || !device_id[0])
		return MRTC_ERR_BAD_JSON;
	const char *parts[] = { user_id, device_id, member_id };
	return mrtc_livekit_hash(parts, 3, ret_identity);
}

enum mrtc_err mrtc_livekit_legacy_identity(const char *user_id, const char *device_id,
					   char ret_identity[MRTC_LIVEKIT_NAME_MAX + 1])
{
	size_t u = strlen(user_id), d = strlen(device_id);
	if (u + 1 + d > MRTC_LIVEKIT_NAME_MAX)
		return MRTC_ERR_INVALID_PARAM;
	memcpy(ret_identity, user_id, u);
	ret_identity[u] = ':';
	memcpy(ret_identity + u + 1, device_id, d + 1);
	return MRTC_OK;
}

/* HMAC-SHA256 (RFC 2104) with OpenSSL's SHA-256; false if OpenSSL fails. */
static bool hmac(const char *secret, const char *msg, size_t len,
		 uint8_t out[crypto_auth_hmacsha256_BYTES])
{
	uint8_t pad[SHA256_BLOCK] = { 0 }, inner[crypto_hash_sha256_BYTES];
	size_t kl = strlen(secret);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = true;
	if (kl > sizeof(pad))
		ok = sha256_in(ctx, secret, kl, NULL, 0, pad);
	else
		memcpy(pad, secret, kl);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	ok = ok && sha256_in(ctx, pad, sizeof(pad), msg, len, inner);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c;
	ok = ok && sha256_in(ctx, pad, sizeof(pad), inner, sizeof(inner), out);
	EVP_MD_CTX_free(ctx);
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	return ok;
}

/* header.payload.signature with @payload (JSON text) as the payload. */
static enum mrtc_err sign_payload(const struct mrtc_livekit_creds *creds, const char *payload,
				  size_t plen, char **ret_jwt)
{
	char stack[1024];
	struct mrtc_buf b;
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	char small[1024];
	char *p64 = plen <= 700 ? small : malloc(MRTC_BASE64_ENCODED_SIZE(plen));
	if (!p64)
		return MRTC_ERR_NOMEM;
	size_t n = mrtc_base64_encode((const uint8_t *)payload, plen, true, p64);
	mrtc_buf_puts(&b, JWT_HEADER_B64 ".");
	mrtc_buf_append(&b, p64, n);
	if (p64 != small)
		free(p64);
	uint8_t mac[crypto_auth_hmacsha256_BYTES] = { 0 };
	if (!b.failed && !hmac(creds->secret, b.data, b.len, mac))
		b.failed = true;
	char mac64[MRTC_BASE64_ENCODED_SIZE(sizeof(mac))];
	mrtc_base64_encode(mac, sizeof(mac), true, mac64);
	mrtc_buf_putc(&b, '.');
	mrtc_buf_puts(&b, mac64);
	char *jwt = mrtc_buf_steal(&b, NULL);
	if (!jwt)
		return MRTC_ERR_NOMEM;
	*ret_jwt = jwt;
	return MRTC_OK;
}

enum mrtc_err mrtc_livekit_sign_claims(const struct mrtc_livekit_creds *creds,
				       const struct json_object *claims, char **ret_jwt)
{
	char *payload = NULL;
	size_t plen;
	enum mrtc_err err = mrtc_json_canonical(claims, &payload, &plen);
	if (err != MRTC_OK)
		return err;
	err = sign_payload(creds, payload, plen, ret_jwt);
	free(payload);
	return err;
}

static bool add(struct json_object *obj, const char *key, struct json_object *v)
{
	if (!v)
		return false;
	if (json_object_object_add(obj, key, v) != 0) {
		json_object_put(v);
		return false;
	}
	return true;
}

/* Appends @v in decimal (printf costs more than the rest of the claims together). */
static bool put_u64(struct mrtc_buf *b, uint64_t v)
{
	char digits[20]; /* 2^64 - 1 has 20 */
	size_t n = sizeof(digits);
	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return mrtc_buf_append(b, digits + n, sizeof(digits) - n);
}

enum mrtc_err mrtc_livekit_mint_participant(const struct mrtc_livekit_creds *creds,
					    enum mrtc_grant_kind kind, const char *identity,
					    const char *room, uint64_t now_s, uint64_t ttl_s,
					    char **ret_jwt)
{
	size_t il = strlen(identity), rl = strlen(room);
	if (il == 0 || il > MRTC_LIVEKIT_NAME_MAX || rl == 0 || rl > MRTC_LIVEKIT_NAME_MAX)
		return MRTC_ERR_INVALID_PARAM;
	bool publish = kind == MRTC_GRANT_LOCAL_USER || kind == MRTC_GRANT_LEGACY_FULL;
	/*
	 * Written directly (keys in canonical order) rather than through json-c: this is the
	 * per-request hot path. canPublishData is left out on purpose: LiveKit then follows
	 * canPublish.
	 */
	char stack[1024];
	struct mrtc_buf b;
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	bool ok = mrtc_buf_puts(&b, "{\"exp\":") && put_u64(&b, now_s + ttl_s) &&
		  mrtc_buf_puts(&b, ",\"iss\":") &&
		  mrtc_json_write_string(&b, creds->key, strlen(creds->key)) &&
		  mrtc_buf_puts(&b, ",\"nbf\":") && put_u64(&b, now_s) &&
		  mrtc_buf_puts(&b, ",\"sub\":") && mrtc_json_write_string(&b, identity, il) &&
		  mrtc_buf_puts(&b, publish ? ",\"video\":{\"canPublish\":true,"
					    : ",\"video\":{\"canPublish\":false,") &&
		  mrtc_buf_puts(&b, "\"canSubscribe\":true,\"canUpdateOwnMetadata\":false,"
				    "\"hidden\":false,\"room\":") &&
		  mrtc_json_write_string(&b, room, rl) &&
		  mrtc_buf_puts(&b, ",\"roomCreate\":false,\"roomJoin\":true}}");
	enum mrtc_err err = ok ? sign_payload(creds, b.data, b.len, ret_jwt)
			       : (b.failed ? MRTC_ERR_NOMEM : MRTC_ERR_INVALID_PARAM);
	mrtc_buf_finish(&b);
	return err;
}

enum mrtc_err mrtc_livekit_mint_service(const struct mrtc_livekit_creds *creds,
					const struct json_object *video, uint64_t now_s,
					char **ret_jwt)
{
	struct json_object *claims = json_object_new_object();
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (claims && add(claims, "video", json_object_get((struct json_object *)video)) &&
	    add(claims, "iss", json_object_new_string(creds->key)) &&
	    add(claims, "nbf", json_object_new_int64((int64_t)now_s)) &&
	    add(claims, "exp",
		json_object_new_int64((int64_t)(now_s + MRTC_LIVEKIT_SERVICE_TTL_S))))
		err = mrtc_livekit_sign_claims(creds, claims, ret_jwt);
	json_object_put(claims);
	return err;
}

static bool is_b64url(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return n > 0;
}

/* Decodes a base64url JWT segment and parses it as a strict JSON object. */
static enum mrtc_err segment_json(const char *s, size_t n, struct json_object **ret)
{
	uint8_t buf[JWT_MAX];
	size_t len;
	if (!mrtc_base64_decode(s, n, buf, sizeof(buf), &len))
		return MRTC_ERR_AUTH_MALFORMED;
	struct json_object *v = NULL;
	if (mrtc_json_parse((const char *)buf, len, 8, &v) != MRTC_OK)
		return MRTC_ERR_AUTH_MALFORMED;
	if (!json_object_is_type(v, json_type_object)) {
		json_object_put(v);
		return MRTC_ERR_AUTH_MALFORMED;
	}
	*ret = v;
	return MRTC_OK;
}

enum mrtc_err mrtc_livekit_verify(const struct mrtc_livekit_creds *creds, const char *jwt,
				  uint64_t now_s, struct json_object **ret_claims)
{
	size_t len = jwt ? strlen(jwt) : 0;
	if (len == 0 || len > JWT_MAX)
		return MRTC_ERR_AUTH_MALFORMED;
	const char *d1 = strchr(jwt, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d2 || strchr(d2 + 1, '.'))
		return MRTC_ERR_AUTH_MALFORMED;
	size_t hl = (size_t)(d1 - jwt), pl = (size_t)(d2 - d1 - 1),
	       sl = len - (size_t)(d2 - jwt) - 1;
	if (!is_b64url(jwt, hl) || !is_b64url(d1 + 1, pl) || !is_b64url(d2 + 1, sl))
		return MRTC_ERR_AUTH_MALFORMED;
	struct json_object *header = NULL, *claims = NULL;
	enum mrtc_err err = segment_json(jwt, hl, &header);
	if (err != MRTC_OK)
		return err;
	const char *alg = mrtc_json_get_string(header, "alg");
	bool hs256 = alg && strcmp(alg, "HS256") == 0;
	json_object_put(header);
	if (!hs256)
		return MRTC_ERR_AUTH_MALFORMED;
	uint8_t sig[crypto_auth_hmacsha256_BYTES + 3], mac[crypto_auth_hmacsha256_BYTES];
	size_t sig_len;
	if (!mrtc_base64_decode(d2 + 1, sl, sig, sizeof(sig), &sig_len) || sig_len != sizeof(mac))
		return MRTC_ERR_AUTH_MALFORMED;
	if (!hmac(creds->secret, jwt, (size_t)(d2 - jwt), mac))
		return MRTC_ERR_NOMEM;
	if (sodium_memcmp(sig, mac, sizeof(mac)) != 0)
		return MRTC_ERR_BAD_SIGNATURE;
	err = segment_json(d1 + 1, pl, &claims);
	if (err != MRTC_OK)
		return err;
	struct json_object *exp = NULL, *nbf = NULL;
	const char *iss = mrtc_json_get_string(claims, "iss");
	err = MRTC_ERR_AUTH_MALFORMED;
	if (!json_object_object_get_ex(claims, "exp", &exp) ||
	    !json_object_is_type(exp, json_type_int))
		goto fail;
	if (json_object_object_get_ex(claims, "nbf", &nbf) &&
	    !json_object_is_type(nbf, json_type_int))
		goto fail;
	err = MRTC_ERR_FORBIDDEN;
	if (!iss || strcmp(iss, creds->key) != 0)
		goto fail;
	err = MRTC_ERR_KEY_EXPIRED;
	if (json_object_get_int64(exp) + MRTC_LIVEKIT_LEEWAY_S < (int64_t)now_s)
		goto fail;
	if (nbf && json_object_get_int64(nbf) > (int64_t)now_s + MRTC_LIVEKIT_LEEWAY_S)
		goto fail;
	*ret_claims = claims;
	return MRTC_OK;
fail:
	json_object_put(claims);
	return err;
}

static void copy_capped(char *dst, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n > MRTC_LIVEKIT_NAME_MAX)
		n = 0; /* over-long names are not ours: treat as absent */
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

enum mrtc_err mrtc_livekit_webhook_verify(const struct mrtc_livekit_creds *creds,
					  const char *authorization, const char *body, size_t len,
					  uint64_t now_s, struct mrtc_webhook *ret_hook)
{
	struct json_object *claims = NULL, *doc = NULL, *room = NULL, *part = NULL;
	enum mrtc_err err = mrtc_livekit_verify(creds, authorization, now_s, &claims);
	if (err != MRTC_OK)
		return err;
	uint8_t digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, (const uint8_t *)body, len);
	char want[MRTC_BASE64_ENCODED_SIZE(sizeof(digest)) + 2];
	size_t wl = mrtc_base64_encode(digest, sizeof(digest), false, want);
	while (wl % 4)
		want[wl++] = '=';
	want[wl] = '\0';
	const char *got = mrtc_json_get_string(claims, "sha256");
	bool match = got && strlen(got) == wl && sodium_memcmp(got, want, wl) == 0;
	json_object_put(claims);
	if (!match)
		return MRTC_ERR_BAD_SIGNATURE;
	err = mrtc_json_parse(body, len, 16, &doc);
	if (err != MRTC_OK)
		return err;
	const char *event = mrtc_json_get_string(doc, "event");
	if (!event) {
		json_object_put(doc);
		return MRTC_ERR_BAD_JSON;
	}
	static const struct {
		const char *name;
		enum mrtc_webhook_event ev;
	} events[] = {
		{ "participant_joined", MRTC_WEBHOOK_PARTICIPANT_JOINED },
		{ "participant_left", MRTC_WEBHOOK_PARTICIPANT_LEFT },
		{ "participant_connection_aborted", MRTC_WEBHOOK_PARTICIPANT_CONNECTION_ABORTED },
		{ "room_finished", MRTC_WEBHOOK_ROOM_FINISHED },
	};
	struct mrtc_webhook hook = { .event = MRTC_WEBHOOK_OTHER };
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		if (strcmp(event, events[i].name) == 0)
			hook.event = events[i].ev;
	json_object_object_get_ex(doc, "room", &room);
	json_object_object_get_ex(doc, "participant", &part);
	copy_capped(hook.room, mrtc_json_get_string(room, "name"));
	copy_capped(hook.identity, mrtc_json_get_string(part, "identity"));
	json_object_put(doc);
	*ret_hook = hook;
	return MRTC_OK;
}
