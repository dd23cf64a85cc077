/* SPDX-License-Identifier: Apache-2.0 */
/* The fields of a get_token body, shared by the client and federation endpoints (rtc/) and the
 * delegation of delayed leave (delayed/). Pure. */
#ifndef MRTC_TOKEN_FIELDS_H
#define MRTC_TOKEN_FIELDS_H

#include <stdbool.h>
#include <json-c/json.h>

#include "mrtc/base/err.h"

/*
 * The request fields shared by the client and federation bodies, validated (PROTOCOL §2.3):
 * each a string of its own length in one allocation the struct owns (@store), "" when absent.
 * Free with mrtc_token_fields_finish(); a zeroed struct needs no finish.
 */
#define MRTC_TOKEN_URL_MAX 2048	 /* bytes, without the NUL */
#define MRTC_TOKEN_FIELD_MAX 255 /* every other field */
struct mrtc_token_fields {
	const char *url;
	const char *room_id;
	const char *slot_id;
	const char *member_id;
	const char *claimed_device_id; /* "" when absent */
	const char *claimed_user_id;   /* "" when absent */
	const char *server_name;       /* "" when absent (client body only) */
	const char *user_id;	       /* federation body only */
	char *store;		       /* owns the strings above */
};

/*
 * Validates @body (a parsed JSON value) as a get_token body: MRTC_ERR_NOT_JSON (not an
 * object), MRTC_ERR_BAD_JSON (missing fields, wrong types, member ids that differ),
 * MRTC_ERR_INVALID_PARAM (field syntax). @federation requires user_id instead of allowing
 * server_name. On success *ret_fields holds copies (free with mrtc_token_fields_finish());
 * MRTC_ERR_NOMEM without memory. On failure *ret_message is a static human-readable reason.
 */
enum mrtc_err mrtc_token_fields_parse(const struct json_object *body, bool federation,
				      struct mrtc_token_fields *ret_fields,
				      const char **ret_message);

/*
 * mrtc_token_fields_parse() of the JSON text @text of @len bytes, as strict as
 * mrtc_json_parse() (MRTC_JSON_MAX_DEPTH): MRTC_ERR_NOT_JSON with "Body is not valid JSON" when
 * it is not JSON. The usual body (an object of plain strings) is read in one pass without
 * building a document; any other goes through both functions.
 */
enum mrtc_err mrtc_token_fields_parse_text(const char *text, size_t len, bool federation,
					   struct mrtc_token_fields *ret_fields,
					   const char **ret_message);

/* Frees what @fields owns and zeroes it; accepts a zeroed struct. */
void mrtc_token_fields_finish(struct mrtc_token_fields *fields);

#endif
