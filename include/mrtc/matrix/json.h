/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict JSON input and Matrix canonical JSON output (PROTOCOL §5.3).
 *
 * json-c's own parser accepts NaN, single quotes, floats, lone surrogates and duplicate keys,
 * so every JSON text the daemon reads goes through mrtc_json_parse(), which accepts exactly
 * RFC 8259 JSON restricted to the Matrix limits and builds json-c objects from it.
 */
#ifndef MRTC_JSON_H
#define MRTC_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"

#define MRTC_JSON_MAX_DEPTH 64
#define MRTC_JSON_INT_MAX INT64_C(9007199254740991)

/*
 * Parses @len bytes of @text as one strict JSON value (any type; NULL for JSON null is not a
 * possible success result: a top-level null is rejected). Rejects floats and exponents,
 * integers outside ±(2^53-1), leading zeros, NaN/Infinity, single quotes, invalid UTF-8, lone
 * surrogates, NUL in object keys, raw control characters in strings, duplicate keys, nesting
 * deeper than @max_depth, and anything after the value but whitespace.
 * On success *ret_value is a new json-c object (caller frees with json_object_put()).
 * Returns MRTC_ERR_NOT_JSON for any rejection, MRTC_ERR_NOMEM on allocation failure.
 */
enum mrtc_err mrtc_json_parse(const char *text, size_t len, int max_depth,
			      struct json_object **ret_value);

/*
 * Writes the canonical JSON form of @value (NULL means JSON null): keys sorted by code point,
 * no whitespace, only '"', '\\' and control characters escaped, raw UTF-8 otherwise.
 * Fails with MRTC_ERR_INVALID_PARAM for values canonical JSON cannot hold (doubles, integers
 * out of range, NUL in keys, invalid UTF-8). On success *ret_text is NUL-terminated (caller
 * frees with free()) and *ret_len (if not NULL) its length.
 */
enum mrtc_err mrtc_json_canonical(const struct json_object *value, char **ret_text,
				  size_t *ret_len);

struct mrtc_buf;

/*
 * Appends @len bytes of UTF-8 @s to @b as a canonical JSON string (quotes included). Returns
 * false (appending part of it) if @s is not valid UTF-8.
 */
bool mrtc_json_write_string(struct mrtc_buf *b, const char *s, size_t len);

/* Borrowed string member @key of object @obj, or NULL if absent or not a string. */
const char *mrtc_json_get_string(const struct json_object *obj, const char *key);

#endif
