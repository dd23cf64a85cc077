/* SPDX-License-Identifier: Apache-2.0 */
/* Log levels, filtering, and one line per event in both formats. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrtc/core/log.h"
#include "mrtc/matrix/json.h"
#include "vectors.h"

/* Runs one mrtc_log call with stderr sent to a file and returns what was written. */
static char *capture(int level, const char *component, const char *rid, const char *msg)
{
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	dup2(fileno(tmp), 2);
	mrtc_log(level, component, rid, "%s", msg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	long n = ftell(tmp);
	rewind(tmp);
	char *out = calloc(1, (size_t)n + 1);
	ck_assert_int_eq(fread(out, 1, (size_t)n, tmp), (size_t)n);
	fclose(tmp);
	return out;
}

START_TEST(test_log_level_parse_names)
{
	int l;
	ck_assert(mrtc_log_level_parse("debug", &l) && l == LOG_DEBUG);
	ck_assert(mrtc_log_level_parse("warn", &l) && l == LOG_WARNING);
	ck_assert(!mrtc_log_level_parse("WARN", &l));
	ck_assert(!mrtc_log_level_parse(NULL, &l));
}
END_TEST

START_TEST(test_log_text_one_line_filtered)
{
	mrtc_log_setup(LOG_INFO, MRTC_LOG_TEXT);
	char *out = capture(LOG_DEBUG, "test", NULL, "hidden");
	ck_assert_str_eq(out, "");
	free(out);
	out = capture(LOG_WARNING, "test", "abc123", "two\nlines");
	ck_assert_ptr_nonnull(strstr(out, " warn test [abc123] two lines\n"));
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}
END_TEST

START_TEST(test_log_json_is_valid_json)
{
	mrtc_log_setup(LOG_DEBUG, MRTC_LOG_JSON);
	char *out = capture(LOG_ERR, "http", "rid", "quote \" and \\ and \x01");
	size_t len = strlen(out);
	ck_assert_int_eq(out[len - 1], '\n');
	struct json_object *v = NULL;
	ck_assert_int_eq(mrtc_json_parse(out, len - 1, 4, &v), MRTC_OK);
	ck_assert_str_eq(mrtc_json_get_string(v, "level"), "error");
	ck_assert_str_eq(mrtc_json_get_string(v, "component"), "http");
	ck_assert_str_eq(mrtc_json_get_string(v, "request_id"), "rid");
	ck_assert_str_eq(mrtc_json_get_string(v, "msg"), "quote \" and \\ and \x01");
	json_object_put(v);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	const TTest *tests[] = { test_log_level_parse_names, test_log_text_one_line_filtered,
				 test_log_json_is_valid_json };
	vectors_add_tests(s, "log", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
