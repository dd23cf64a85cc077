/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer that is always NUL-terminated and remembers the first allocation
 * failure, so that a writer can append without checking each call and test once at the end.
 */
#ifndef MRTC_BUF_H
#define MRTC_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct mrtc_buf {
	char *data; /* NUL-terminated when len > 0 or after any append; may be NULL when empty */
	size_t len;
	size_t cap;
	size_t max;    /* 0: unbounded; else appends past max fail */
	bool failed;   /* an append failed (memory or max); contents are then incomplete */
	bool external; /* data is caller storage: moved to the heap when it must grow */
};

void mrtc_buf_init(struct mrtc_buf *b);
/* Starts with caller storage @storage of @size bytes (e.g. on the stack) to spare allocations. */
void mrtc_buf_init_with(struct mrtc_buf *b, char *storage, size_t size);
/* Frees the contents; the buffer can be reused after mrtc_buf_init(). */
void mrtc_buf_finish(struct mrtc_buf *b);
bool mrtc_buf_append(struct mrtc_buf *b, const void *p, size_t n);
bool mrtc_buf_puts(struct mrtc_buf *b, const char *s);
bool mrtc_buf_putc(struct mrtc_buf *b, char c);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
bool mrtc_buf_printf(struct mrtc_buf *b, const char *fmt, ...);
/*
 * Hands the contents to the caller (caller frees with free()) and empties the buffer; with
 * caller storage, a heap copy is made.
 * Returns NULL if any append failed; an empty buffer yields "".
 */
char *mrtc_buf_steal(struct mrtc_buf *b, size_t *ret_len);

#endif
