/* SPDX-License-Identifier: Apache-2.0 */
/* Growable NUL-terminated buffer with sticky failure. */
#include "mrtc/base/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mrtc_buf_init(struct mrtc_buf *b)
{
	*b = (struct mrtc_buf){ 0 };
}

void mrtc_buf_init_with(struct mrtc_buf *b, char *storage, size_t size)
{
	*b = (struct mrtc_buf){ .data = storage, .cap = size, .external = true };
	if (size)
		storage[0] = '\0';
}

void mrtc_buf_finish(struct mrtc_buf *b)
{
	if (!b->external)
		free(b->data);
	*b = (struct mrtc_buf){ 0 };
}

static bool reserve(struct mrtc_buf *b, size_t extra)
{
	if (b->failed)
		return false;
	if (extra > SIZE_MAX / 2 - b->len || (b->max && b->len + extra > b->max)) {
		b->failed = true;
		return false;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *p = b->external ? malloc(cap) : realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	if (b->external && b->len)
		memcpy(p, b->data, b->len + 1);
	b->external = false;
	b->data = p;
	b->cap = cap;
	return true;
}

bool mrtc_buf_append(struct mrtc_buf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return false;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool mrtc_buf_puts(struct mrtc_buf *b, const char *s)
{
	return mrtc_buf_append(b, s, strlen(s));
}

bool mrtc_buf_putc(struct mrtc_buf *b, char c)
{
	return mrtc_buf_append(b, &c, 1);
}

bool mrtc_buf_printf(struct mrtc_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n)) {
		b->failed = true;
		return false;
	}
	va_start(ap, fmt);
	int m = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (m != n) {
		b->failed = true;
		return false;
	}
	b->len += (size_t)n;
	return true;
}

char *mrtc_buf_steal(struct mrtc_buf *b, size_t *ret_len)
{
	if (b->failed) {
		mrtc_buf_finish(b);
		return NULL;
	}
	if (!b->data && !reserve(b, 0)) {
		mrtc_buf_finish(b);
		return NULL;
	}
	if (!b->len)
		b->data[0] = '\0';
	char *p = b->data;
	if (b->external) {
		p = malloc(b->len + 1);
		if (!p) {
			mrtc_buf_finish(b);
			return NULL;
		}
		memcpy(p, b->data, b->len + 1);
	}
	if (ret_len)
		*ret_len = b->len;
	*b = (struct mrtc_buf){ 0 };
	return p;
}
