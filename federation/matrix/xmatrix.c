/* SPDX-License-Identifier: Apache-2.0 */
/* X-Matrix header building, lenient parsing and request verification. Pure. */
#include "mrtc/matrix/xmatrix.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrtc/base/base64.h"
#include "mrtc/base/buf.h"
#include "mrtc/matrix/json.h"

#include <sodium.h>

#define MAX_XMATRIX_HEADERS 8

static bool is_sp(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Reads one value at *p into @out (capacity @cap incl. NUL). */
static bool read_value(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t o = 0;
	if (*s == '"') {
		s++;
		for (;;) {
			char c = *s;
			if (c == '\0')
				return false; /* unterminated */
			if (c == '"')
				break;
			if (c == '\\') {
				s++;
				c = *s;
				if (c == '\0')
					return false;
			}
			if (o + 1 >= cap)
				return false;
			out[o++] = c;
			s++;
		}
		s++;
	} else {
		while (*s && *s != ',' && !is_sp(*s) && *s != '"') {
			if (o + 1 >= cap)
				return false;
			out[o++] = *s++;
		}
		if (o == 0)
			return false;
	}
	out[o] = '\0';
	*p = s;
	return true;
}

enum mrtc_err mrtc_xmatrix_parse(const char *header, struct mrtc_xmatrix_auth *ret_auth)
{
	if (!header)
		return MRTC_ERR_AUTH_MISSING;
	size_t len = strlen(header);
	const char *sp = header;
	while (*sp && *sp != ' ')
		sp++;
	if ((size_t)(sp - header) != 8 || strncasecmp(header, "X-Matrix", 8) != 0)
		return MRTC_ERR_AUTH_MISSING;
	if (len > MRTC_XMATRIX_HEADER_MAX)
		return MRTC_ERR_AUTH_MALFORMED;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)header[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return MRTC_ERR_AUTH_MALFORMED;
	}
	const char *p = sp;
	if (*p != ' ')
		return MRTC_ERR_AUTH_MALFORMED;
	while (*p == ' ')
		p++;

	struct mrtc_xmatrix_auth auth = { .origin = "" };
	bool have_origin = false, have_dest = false, have_key = false, have_sig = false;
	char scratch[MRTC_XMATRIX_HEADER_MAX + 1];
	while (*p) {
		char name[32];
		size_t n = 0;
		while (is_name_char(*p)) {
			if (n + 1 >= sizeof(name))
				return MRTC_ERR_AUTH_MALFORMED;
			name[n++] = *p++;
		}
		name[n] = '\0';
		if (n == 0 || *p != '=')
			return MRTC_ERR_AUTH_MALFORMED;
		p++;
		char *dst = scratch;
		size_t cap = sizeof(scratch);
		bool *seen = NULL;
		if (strcasecmp(name, "origin") == 0) {
			dst = auth.origin;
			cap = sizeof(auth.origin);
			seen = &have_origin;
		} else if (strcasecmp(name, "destination") == 0) {
			dst = auth.destination;
			cap = sizeof(auth.destination);
			seen = &have_dest;
		} else if (strcasecmp(name, "key") == 0) {
			dst = auth.key;
			cap = sizeof(auth.key);
			seen = &have_key;
		} else if (strcasecmp(name, "sig") == 0) {
			dst = auth.sig;
			cap = sizeof(auth.sig);
			seen = &have_sig;
		}
		if (seen && *seen)
			return MRTC_ERR_AUTH_MALFORMED;
		if (!read_value(&p, dst, cap))
			return MRTC_ERR_AUTH_MALFORMED;
		if (seen)
			*seen = true;
		while (is_sp(*p))
			p++;
		if (*p == '\0')
			break;
		if (*p != ',')
			return MRTC_ERR_AUTH_MALFORMED;
		p++;
		while (is_sp(*p))
			p++;
		if (*p == '\0')
			return MRTC_ERR_AUTH_MALFORMED;
	}
	if (!have_origin || !have_key || !have_sig || !auth.key[0] || !auth.sig[0])
		return MRTC_ERR_AUTH_MALFORMED;
	if (!mrtc_server_name_is_valid(auth.origin))
		return MRTC_ERR_AUTH_MALFORMED;
	if (have_dest && !mrtc_server_name_is_valid(auth.destination))
		return MRTC_ERR_AUTH_MALFORMED;
	*ret_auth = auth;
	return MRTC_OK;
}

enum mrtc_err mrtc_xmatrix_signed_bytes(const char *method, const char *uri, const char *origin,
					const char *destination, const struct json_object *content,
					char **ret_text, size_t *ret_len)
{
	struct json_object *obj = json_object_new_object();
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (!obj)
		return err;
	if (json_object_object_add(obj, "method", json_object_new_string(method)) != 0 ||
	    json_object_object_add(obj, "uri", json_object_new_string(uri)) != 0 ||
	    json_object_object_add(obj, "origin", json_object_new_string(origin)) != 0 ||
	    json_object_object_add(obj, "destination", json_object_new_string(destination)) != 0)
		goto out;
	if (content && json_object_object_add(obj, "content",
					      json_object_get((struct json_object *)content)) != 0)
		goto out;
	err = mrtc_json_canonical(obj, ret_text, ret_len);
out:
	json_object_put(obj);
	return err;
}

enum mrtc_err mrtc_xmatrix_sign(const char *method, const char *uri, const char *origin,
				const char *destination, const struct json_object *content,
				const struct mrtc_signing_key *key, char **ret_header)
{
	if (!mrtc_server_name_is_valid(origin) || !mrtc_server_name_is_valid(destination))
		return MRTC_ERR_INVALID_PARAM;
	char *text = NULL;
	size_t len;
	enum mrtc_err err =
	    mrtc_xmatrix_signed_bytes(method, uri, origin, destination, content, &text, &len);
	if (err != MRTC_OK)
		return err;
	uint8_t sig[MRTC_ED25519_SIG_LEN];
	mrtc_signing_key_sign(key, (const uint8_t *)text, len, sig);
	free(text);
	char sig_b64[MRTC_BASE64_ENCODED_SIZE(MRTC_ED25519_SIG_LEN)];
	mrtc_base64_encode(sig, sizeof(sig), false, sig_b64);
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	/* Server names and key ids are validated, so they need no escaping inside the quotes. */
	mrtc_buf_printf(&b, "X-Matrix origin=\"%s\",destination=\"%s\",key=\"%s\",sig=\"%s\"",
			origin, destination, key->key_id, sig_b64);
	char *h = mrtc_buf_steal(&b, NULL);
	if (!h)
		return MRTC_ERR_NOMEM;
	*ret_header = h;
	return MRTC_OK;
}

enum mrtc_err mrtc_xmatrix_prepare(const char *method, const char *uri,
				   const struct json_object *content, const char *our_name,
				   const char *const *headers, size_t n_headers,
				   mrtc_key_lookup_fn lookup, void *lookup_ctx,
				   struct mrtc_xmatrix_check *ret_check)
{
	struct mrtc_xmatrix_auth auths[MAX_XMATRIX_HEADERS];
	size_t n = 0;
	for (size_t i = 0; i < n_headers; i++) {
		struct mrtc_xmatrix_auth a;
		enum mrtc_err err = mrtc_xmatrix_parse(headers[i], &a);
		if (err == MRTC_ERR_AUTH_MISSING)
			continue;
		if (err != MRTC_OK)
			return err;
		if (n == MAX_XMATRIX_HEADERS)
			return MRTC_ERR_AUTH_MALFORMED;
		auths[n++] = a;
	}
	if (n == 0)
		return MRTC_ERR_AUTH_MISSING;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(auths[i].origin, auths[0].origin) != 0)
			return MRTC_ERR_FORBIDDEN;
		if (auths[i].destination[0] && strcmp(auths[i].destination, our_name) != 0)
			return MRTC_ERR_WRONG_DESTINATION;
	}
	struct mrtc_xmatrix_check c = { .first_err = MRTC_OK };
	for (size_t i = 0; i < n; i++) {
		enum mrtc_err e;
		uint8_t pk[MRTC_ED25519_PK_LEN];
		uint8_t sig[MRTC_ED25519_SIG_LEN + 3];
		size_t sig_len, b64_len = strlen(auths[i].sig);
		if (!mrtc_key_id_is_valid(auths[i].key))
			e = strncmp(auths[i].key, "ed25519:", 8) == 0 ? MRTC_ERR_AUTH_MALFORMED
								      : MRTC_ERR_UNSUPPORTED;
		else
			e = lookup(lookup_ctx, auths[i].origin, auths[i].key, pk);
		if (e == MRTC_OK &&
		    (!mrtc_base64_decode(auths[i].sig, b64_len, sig, sizeof(sig), &sig_len) ||
		     sig_len != MRTC_ED25519_SIG_LEN))
			e = MRTC_ERR_BAD_SIGNATURE;
		if (e != MRTC_OK) {
			if (c.first_err == MRTC_OK)
				c.first_err = e;
			continue;
		}
		memcpy(c.public_keys[c.n], pk, sizeof(pk));
		memcpy(c.sigs[c.n], sig, MRTC_ED25519_SIG_LEN);
		c.n++;
	}
	if (c.n == 0)
		return c.first_err;
	if (c.first_err == MRTC_OK)
		c.first_err = MRTC_ERR_BAD_SIGNATURE;
	enum mrtc_err err = mrtc_xmatrix_signed_bytes(method, uri, auths[0].origin, our_name,
						      content, &c.signed_bytes, &c.signed_len);
	if (err != MRTC_OK)
		return err;
	memcpy(c.origin, auths[0].origin, strlen(auths[0].origin) + 1);
	*ret_check = c;
	return MRTC_OK;
}

enum mrtc_err mrtc_xmatrix_check_run(const struct mrtc_xmatrix_check *c)
{
	for (size_t i = 0; i < c->n; i++)
		if (crypto_sign_verify_detached(c->sigs[i], (const uint8_t *)c->signed_bytes,
						c->signed_len, c->public_keys[i]) == 0)
			return MRTC_OK;
	return c->first_err;
}

void mrtc_xmatrix_check_finish(struct mrtc_xmatrix_check *c)
{
	free(c->signed_bytes);
	c->signed_bytes = NULL;
}

enum mrtc_err mrtc_xmatrix_verify(const char *method, const char *uri,
				  const struct json_object *content, const char *our_name,
				  const char *const *headers, size_t n_headers,
				  mrtc_key_lookup_fn lookup, void *lookup_ctx, char *ret_origin)
{
	struct mrtc_xmatrix_check c;
	enum mrtc_err err = mrtc_xmatrix_prepare(method, uri, content, our_name, headers, n_headers,
						 lookup, lookup_ctx, &c);
	if (err != MRTC_OK)
		return err;
	err = mrtc_xmatrix_check_run(&c);
	if (err == MRTC_OK)
		memcpy(ret_origin, c.origin, strlen(c.origin) + 1);
	mrtc_xmatrix_check_finish(&c);
	return err;
}
