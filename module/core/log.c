/* SPDX-License-Identifier: Apache-2.0 */
/* Line-oriented logging to stderr, text or JSON. */
#include "mrtc/core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mrtc/base/buf.h"
#include "mrtc/base/util.h"

static int log_level = LOG_INFO;
static enum mrtc_log_format log_format = MRTC_LOG_TEXT;

void mrtc_log_setup(int level, enum mrtc_log_format format)
{
	log_level = level;
	log_format = format;
}

int mrtc_log_level(void)
{
	return log_level;
}

bool mrtc_log_level_parse(const char *name, int *ret_level)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "debug", LOG_DEBUG },
		{ "info", LOG_INFO },
		{ "warn", LOG_WARNING },
		{ "error", LOG_ERR },
	};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (name && strcmp(name, levels[i].name) == 0) {
			*ret_level = levels[i].level;
			return true;
		}
	}
	return false;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warn";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* Appends @s as a JSON string body (without quotes). */
static void json_escape(struct mrtc_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			mrtc_buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			mrtc_buf_printf(b, "\\u%04x", c);
		else
			mrtc_buf_putc(b, (char)c);
	}
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 0)))
#endif
static void
vlog(int level, const char *component, const char *request_id, const char *fmt, va_list ap)
{
	if (level > log_level)
		return;
	char msg[2048];
	/* A longer message is cut, never dropped: the cut is marked. */
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	/* One event, one line: fold any newline that slipped into a message. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	uint64_t now = mrtc_now_ms();
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	char ts[32] = "";
	if (gmtime_r(&secs, &tm))
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	struct mrtc_buf b;
	mrtc_buf_init(&b);
	if (log_format == MRTC_LOG_JSON) {
		mrtc_buf_printf(&b, "{\"ts\":\"%s.%03uZ\",\"level\":\"%s\",\"component\":\"", ts,
				(unsigned)(now % 1000), level_name(level));
		json_escape(&b, component);
		mrtc_buf_puts(&b, "\"");
		if (request_id) {
			mrtc_buf_puts(&b, ",\"request_id\":\"");
			json_escape(&b, request_id);
			mrtc_buf_puts(&b, "\"");
		}
		mrtc_buf_puts(&b, ",\"msg\":\"");
		json_escape(&b, msg);
		mrtc_buf_puts(&b, "\"}\n");
	} else {
		mrtc_buf_printf(&b, "%s.%03uZ %s %s", ts, (unsigned)(now % 1000), level_name(level),
				component);
		if (request_id)
			mrtc_buf_printf(&b, " [%s]", request_id);
		mrtc_buf_printf(&b, " %s\n", msg);
	}
	if (!b.failed)
		fputs(b.data, stderr);
	mrtc_buf_finish(&b);
}

void mrtc_log(int level, const char *component, const char *request_id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, component, request_id, fmt, ap);
	va_end(ap);
}

void mrtc_log_refusal(int level, const char *component, const char *request_id, const char *fmt,
		      ...)
{
	static uint64_t second;
	static unsigned lines, suppressed;
	if (level > log_level)
		return;
	uint64_t now = mrtc_monotonic_ms() / 1000;
	if (now != second) {
		second = now;
		lines = 0;
	}
	if (lines >= MRTC_LOG_REFUSALS_PER_SECOND) {
		suppressed++;
		return;
	}
	lines++;
	if (suppressed) {
		mrtc_log(level, component, NULL,
			 "%u lines about refused or abandoned requests suppressed (more than %u a "
			 "second)",
			 suppressed, MRTC_LOG_REFUSALS_PER_SECOND);
		suppressed = 0;
	}
	va_list ap;
	va_start(ap, fmt);
	vlog(level, component, request_id, fmt, ap);
	va_end(ap);
}
