/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X-Matrix request authentication (PROTOCOL §5.2): building the signed request object and the
 * Authorization header for outgoing requests, leniently parsing incoming headers, and verifying
 * a request against our own server name. Pure: keys come through a lookup callback.
 */
#ifndef MRTC_XMATRIX_H
#define MRTC_XMATRIX_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/matrix/servername.h"
#include "mrtc/matrix/signing.h"

#define MRTC_XMATRIX_HEADER_MAX 8192
#define MRTC_XMATRIX_SIG_MAX 128

struct mrtc_xmatrix_auth {
	char origin[MRTC_SERVER_NAME_MAX + 1];
	char destination[MRTC_SERVER_NAME_MAX + 1]; /* "" when the header has none */
	char key[MRTC_KEY_ID_MAX + 1];
	char sig[MRTC_XMATRIX_SIG_MAX + 1];
};

/*
 * Parses one Authorization header value. Scheme "X-Matrix" (any case) then 1+ spaces, then
 * name=value params separated by ',' with optional spaces/tabs; names case-insensitive; values
 * quoted (backslash escapes the next character) or bare (no ',', space, tab or '"'); unknown
 * params ignored; origin, key and sig required; duplicates of known params rejected; origin and
 * destination must be valid server names; limits of PROTOCOL §5.2.
 * Returns MRTC_ERR_AUTH_MISSING if the scheme is not X-Matrix, MRTC_ERR_AUTH_MALFORMED for
 * anything else wrong. *ret_auth is written only on success.
 */
enum mrtc_err mrtc_xmatrix_parse(const char *header, struct mrtc_xmatrix_auth *ret_auth);

/*
 * The canonical JSON bytes that X-Matrix signs: {"method","uri","origin","destination"
 * [,"content"]}. @content NULL means the request has no body. Caller frees *ret_text.
 */
enum mrtc_err mrtc_xmatrix_signed_bytes(const char *method, const char *uri, const char *origin,
					const char *destination, const struct json_object *content,
					char **ret_text, size_t *ret_len);

/*
 * Builds the Authorization header value for a request from @origin (signed with @key) to
 * @destination. @uri is the request target exactly as it will be sent. Caller frees
 * *ret_header with free().
 */
enum mrtc_err mrtc_xmatrix_sign(const char *method, const char *uri, const char *origin,
				const char *destination, const struct json_object *content,
				const struct mrtc_signing_key *key, char **ret_header);

/*
 * Looks up the current verify key @key_id of server @origin. Returns MRTC_OK and fills
 * @ret_public_key, or MRTC_ERR_UNKNOWN_KEY / MRTC_ERR_KEY_EXPIRED.
 */
typedef enum mrtc_err (*mrtc_key_lookup_fn)(void *ctx, const char *origin, const char *key_id,
					    uint8_t ret_public_key[MRTC_ED25519_PK_LEN]);

/*
 * Verifies a request carrying the @n_headers Authorization values @headers (all of them, as
 * received). Non-X-Matrix values are ignored; X-Matrix values must all parse and name the same
 * origin; at least one must verify. The request is checked as addressed to @our_name whatever
 * a header says, and a header naming another destination fails. @method and @uri are raw from
 * the request line; @content is the parsed body or NULL.
 * On success *ret_origin (size MRTC_SERVER_NAME_MAX + 1) receives the authenticated origin.
 * Errors: MRTC_ERR_AUTH_MISSING (no X-Matrix header), MRTC_ERR_AUTH_MALFORMED,
 * MRTC_ERR_WRONG_DESTINATION, MRTC_ERR_FORBIDDEN (headers naming different origins),
 * MRTC_ERR_UNSUPPORTED (key algorithm), MRTC_ERR_UNKNOWN_KEY, MRTC_ERR_KEY_EXPIRED,
 * MRTC_ERR_BAD_SIGNATURE, MRTC_ERR_NOMEM.
 */
enum mrtc_err mrtc_xmatrix_verify(const char *method, const char *uri,
				  const struct json_object *content, const char *our_name,
				  const char *const *headers, size_t n_headers,
				  mrtc_key_lookup_fn lookup, void *lookup_ctx, char *ret_origin);

/*
 * The same verification in two steps, so that the Ed25519 work can run on another thread:
 * mrtc_xmatrix_prepare() does everything but the signature checks (parsing, destination and
 * origin rules, key lookups, the signed bytes); mrtc_xmatrix_check_run() is pure and
 * thread-safe. A check is finished with mrtc_xmatrix_check_finish().
 */
#define MRTC_XMATRIX_MAX_CANDIDATES 8

struct mrtc_xmatrix_check {
	char origin[MRTC_SERVER_NAME_MAX + 1];
	char *signed_bytes;
	size_t signed_len;
	size_t n;
	uint8_t public_keys[MRTC_XMATRIX_MAX_CANDIDATES][MRTC_ED25519_PK_LEN];
	uint8_t sigs[MRTC_XMATRIX_MAX_CANDIDATES][MRTC_ED25519_SIG_LEN];
	enum mrtc_err first_err; /* the reason if no candidate verifies */
};

/*
 * Errors as mrtc_xmatrix_verify() for everything decided before the signatures are checked.
 * On MRTC_OK, @ret_check holds at least one candidate; finish it with
 * mrtc_xmatrix_check_finish().
 */
enum mrtc_err mrtc_xmatrix_prepare(const char *method, const char *uri,
				   const struct json_object *content, const char *our_name,
				   const char *const *headers, size_t n_headers,
				   mrtc_key_lookup_fn lookup, void *lookup_ctx,
				   struct mrtc_xmatrix_check *ret_check);

/* MRTC_OK if a candidate verifies, else check->first_err. Pure; safe on any thread. */
enum mrtc_err mrtc_xmatrix_check_run(const struct mrtc_xmatrix_check *check);

void mrtc_xmatrix_check_finish(struct mrtc_xmatrix_check *check);

#endif
