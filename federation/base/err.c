/* SPDX-License-Identifier: Apache-2.0 */
/* Names of the error values, for logs and test messages. */
#include "mrtc/base/err.h"

static const char *const names[MRTC_ERR__COUNT] = {
	[MRTC_OK] = "ok",
	[MRTC_ERR_NOMEM] = "out of memory",
	[MRTC_ERR_NOT_JSON] = "not JSON",
	[MRTC_ERR_BAD_JSON] = "bad JSON",
	[MRTC_ERR_INVALID_PARAM] = "invalid parameter",
	[MRTC_ERR_TOO_LARGE] = "too large",
	[MRTC_ERR_MISSING_TOKEN] = "missing token",
	[MRTC_ERR_UNKNOWN_TOKEN] = "unknown token",
	[MRTC_ERR_FORBIDDEN] = "forbidden",
	[MRTC_ERR_UNAUTHORIZED] = "unauthorized",
	[MRTC_ERR_AUTH_MISSING] = "missing authorization",
	[MRTC_ERR_AUTH_MALFORMED] = "malformed authorization",
	[MRTC_ERR_BAD_SIGNATURE] = "bad signature",
	[MRTC_ERR_UNKNOWN_KEY] = "unknown key",
	[MRTC_ERR_KEY_EXPIRED] = "key expired",
	[MRTC_ERR_WRONG_DESTINATION] = "wrong destination",
	[MRTC_ERR_UNSUPPORTED] = "unsupported",
	[MRTC_ERR_NOT_FOUND] = "not found",
	[MRTC_ERR_METHOD] = "method not allowed",
	[MRTC_ERR_LIMIT_EXCEEDED] = "limit exceeded",
	[MRTC_ERR_UPSTREAM] = "upstream failure",
	[MRTC_ERR_TIMEOUT] = "timeout",
	[MRTC_ERR_DNS] = "DNS failure",
	[MRTC_ERR_BLOCKED] = "blocked address",
	[MRTC_ERR_TLS] = "TLS failure",
	[MRTC_ERR_CONNECT] = "connection failed",
	[MRTC_ERR_IO] = "I/O error",
	[MRTC_ERR_CONFIG] = "configuration error",
	[MRTC_ERR_INTERNAL] = "internal error",
};

const char *mrtc_err_str(enum mrtc_err err)
{
	if ((unsigned)err >= MRTC_ERR__COUNT || names[err] == 0)
		return "unknown error";
	return names[err];
}
