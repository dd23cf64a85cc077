/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matrix unpadded base64 (standard alphabet) and base64url for JWTs.
 */
#ifndef MRTC_BASE64_H
#define MRTC_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode @len bytes without padding, plus the NUL. */
#define MRTC_BASE64_ENCODED_SIZE(len) (((len)*4 + 2) / 3 + 1)

/*
 * Encodes @len bytes of @buf as unpadded base64 into @out, which holds
 * MRTC_BASE64_ENCODED_SIZE(@len) bytes. @url selects the URL-safe alphabet ("-_").
 * Returns the string length.
 */
size_t mrtc_base64_encode(const uint8_t *buf, size_t len, bool url, char *out);

/* Same as mrtc_base64_encode into a new string (caller frees with free()); NULL on OOM. */
char *mrtc_base64_encode_alloc(const uint8_t *buf, size_t len, bool url);

/*
 * Decodes @len characters of @s. Accepts the standard and the URL-safe alphabet (not mixed
 * within one input) and optional '=' padding (only a correct amount, only at the end);
 * rejects every other character, and lengths that leave a lone character.
 * Writes at most @size bytes into @out; *ret_len gets the decoded length. Returns false on bad
 * input or if @out is too small.
 */
bool mrtc_base64_decode(const char *s, size_t len, uint8_t *out, size_t size, size_t *ret_len);

#endif
