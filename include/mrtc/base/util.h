/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small string and number helpers shared by every component: the one checked number parser,
 * constant-time comparison, and log-safe quoting of untrusted strings.
 */
#ifndef MRTC_UTIL_H
#define MRTC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parses the whole of @s (decimal digits only: no sign, no spaces, no leading zeros except "0")
 * as an unsigned integer in [@min, @max]. Writes *ret_value only on success.
 */
bool mrtc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret_value);

/* Same as mrtc_parse_u64 for the first @len bytes of @s. */
bool mrtc_parse_u64_n(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *ret_value);

/* Constant-time equality of two strings (time depends only on the lengths). */
bool mrtc_str_equal_ct(const char *a, const char *b);

/*
 * Writes a quoted, escaped and capped form of @s into @out (size @size >= 8) for a log line:
 * non-printable bytes become \xNN, quotes and backslashes are escaped, and at most @max_chars
 * input bytes are shown, followed by "..." when cut. Returns @out. @s may be NULL ("(null)").
 */
char *mrtc_quote(char *out, size_t size, const char *s, size_t max_chars);

/* Monotonic and wall clocks in milliseconds. */
uint64_t mrtc_now_ms(void);
uint64_t mrtc_monotonic_ms(void);

/* Returns true if @s has a byte below 0x20 or 0x7f within its first @len bytes. */
bool mrtc_has_control(const char *s, size_t len);

#endif
