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

/*
 * snprintf() that says whether the whole result fit: false on truncation or an encoding error
 * (then @out holds "" or the cut text: never use it). Every formatted copy into a fixed buffer
 * goes through it or mrtc_copy(), and its result is checked.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
bool mrtc_format(char *out, size_t size, const char *fmt, ...);

/* Like mrtc_format(), for text that is only shown (log details, messages): a cut is marked with
 * "..." at the end instead. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void mrtc_format_shown(char *out, size_t size, const char *fmt, ...);

/* Copies @s into @out (size @size) if it fits with its NUL; else false and @out is "". */
bool mrtc_copy(char *out, size_t size, const char *s);

/* Monotonic and wall clocks in milliseconds. */
uint64_t mrtc_now_ms(void);
uint64_t mrtc_monotonic_ms(void);

/* Returns true if @s has a byte below 0x20 or 0x7f within its first @len bytes. */
bool mrtc_has_control(const char *s, size_t len);

#endif
