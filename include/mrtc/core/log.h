/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one logging call: syslog levels, a component tag, an optional request id, one line per
 * event on stderr, as text or JSON. Never pass tokens, secrets or Authorization headers; quote
 * untrusted strings with mrtc_quote().
 */
#ifndef MRTC_LOG_H
#define MRTC_LOG_H

#include <stdbool.h>
#include <syslog.h>

enum mrtc_log_format {
	MRTC_LOG_TEXT,
	MRTC_LOG_JSON,
};

/* Messages above @level (a syslog LOG_* value) are dropped. */
void mrtc_log_setup(int level, enum mrtc_log_format format);
int mrtc_log_level(void);

/* Parses "debug", "info", "warn", "error" into a syslog level. */
bool mrtc_log_level_parse(const char *name, int *ret_level);

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void mrtc_log(int level, const char *component, const char *request_id, const char *fmt, ...);

/* Lines about refused or abandoned requests a second, over all of them (mrtc_log_refusal). */
#define MRTC_LOG_REFUSALS_PER_SECOND 10

/*
 * Like mrtc_log(), for lines any client can cause at will (a request refused, a client that
 * went away): at most MRTC_LOG_REFUSALS_PER_SECOND such lines a second in all, so a flood of
 * requests cannot flood the log. Lines over the budget are counted, and the next line written
 * is preceded by one saying how many were dropped. Event loop thread only.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void mrtc_log_refusal(int level, const char *component, const char *request_id,
		      const char *fmt, ...);

#endif
