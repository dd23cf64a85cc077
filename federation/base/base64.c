/* SPDX-License-Identifier: Apache-2.0 */
/* Unpadded base64 encode/decode as Matrix and JWTs use it. */
#include "mrtc/base/base64.h"

#include <stdint.h>
#include <stdlib.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t mrtc_base64_encode(const uint8_t *buf, size_t len, bool url, char *out)
{
	const char *a = url ? url_alpha : std_alpha;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)buf[i] << 16 | (uint32_t)buf[i + 1] << 8 | buf[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)buf[i] << 16;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)buf[i] << 16 | (uint32_t)buf[i + 1] << 8;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

char *mrtc_base64_encode_alloc(const uint8_t *buf, size_t len, bool url)
{
	if (len > SIZE_MAX / 4 - 3)
		return NULL;
	char *out = malloc(MRTC_BASE64_ENCODED_SIZE(len));
	if (out)
		mrtc_base64_encode(buf, len, url, out);
	return out;
}

/* 0..63, or -1 for a character of neither alphabet; *kind: 1 standard-only, 2 url-only. */
static int value_of(char c, int *kind)
{
	*kind = 0;
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '/') {
		*kind = 1;
		return c == '+' ? 62 : 63;
	}
	if (c == '-' || c == '_') {
		*kind = 2;
		return c == '-' ? 62 : 63;
	}
	return -1;
}

bool mrtc_base64_decode(const char *s, size_t len, uint8_t *out, size_t size, size_t *ret_len)
{
	size_t pad = 0;
	while (len > 0 && s[len - 1] == '=' && pad < 2) {
		len--;
		pad++;
	}
	if (len % 4 == 1)
		return false;
	if (pad && (len + pad) % 4 != 0)
		return false;
	size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (need > size)
		return false;
	int seen_kind = 0;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int kind;
		int v = value_of(s[i], &kind);
		if (v < 0)
			return false;
		if (kind) {
			if (seen_kind && seen_kind != kind)
				return false;
			seen_kind = kind;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*ret_len = o;
	return true;
}
