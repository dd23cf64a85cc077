/* SPDX-License-Identifier: Apache-2.0 */
/* Number parsing, constant-time comparison, log quoting and clocks. */
#include "mrtc/base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

bool mrtc_parse_u64_n(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *ret_value)
{
	if (!s || len == 0 || len > 20)
		return false;
	if (len > 1 && s[0] == '0')
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*ret_value = v;
	return true;
}

bool mrtc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret_value)
{
	return s && mrtc_parse_u64_n(s, strlen(s), min, max, ret_value);
}

bool mrtc_str_equal_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);
	size_t n = la < lb ? la : lb;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

char *mrtc_quote(char *out, size_t size, const char *s, size_t max_chars)
{
	if (size < 8) {
		if (size)
			out[0] = '\0';
		return out;
	}
	if (!s) {
		memcpy(out, "(null)", sizeof("(null)")); /* size >= 8 */
		return out;
	}
	size_t o = 0;
	out[o++] = '"';
	size_t i = 0;
	for (; s[i] && i < max_chars; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t n;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = "0123456789abcdef"[c >> 4];
			tmp[3] = "0123456789abcdef"[c & 15];
			n = 4;
		} else {
			tmp[0] = (char)c;
			n = 1;
		}
		if (o + n + 5 > size)
			break;
		memcpy(out + o, tmp, n);
		o += n;
	}
	out[o++] = '"';
	if (s[i] && o + 4 <= size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mrtc_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

uint64_t mrtc_monotonic_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

bool mrtc_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 0)))
#endif
static bool
vformat(char *out, size_t size, const char *fmt, va_list ap)
{
	if (size == 0)
		return false;
	int n = vsnprintf(out, size, fmt, ap);
	if (n < 0) {
		out[0] = '\0';
		return false;
	}
	return (size_t)n < size;
}

bool mrtc_format(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool ok = vformat(out, size, fmt, ap);
	va_end(ap);
	return ok;
}

void mrtc_format_shown(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool ok = vformat(out, size, fmt, ap);
	va_end(ap);
	if (!ok && size >= 4 && out[0])
		memcpy(out + size - 4, "...", 4);
}

bool mrtc_copy(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size) {
		if (size)
			out[0] = '\0';
		return false;
	}
	memcpy(out, s, n + 1);
	return true;
}
