/* SPDX-License-Identifier: Apache-2.0 */
/* Vector loading for the Check unit tests. */
#include "vectors.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct json_object *vectors_load(const char *name)
{
	const char *dir = getenv("MRTC_VECTORS_DIR");
	ck_assert_msg(dir != NULL, "MRTC_VECTORS_DIR is not set");
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert(n > 0 && (size_t)n < sizeof(path));
	struct json_object *v = json_object_from_file(path);
	ck_assert_msg(v != NULL, "cannot load %s", path);
	return v;
}

struct json_object *vectors_get(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(obj, key, &v), "vector has no '%s'", key);
	return v;
}

char *vectors_temp_file(const char *text)
{
	char tmpl[] = "/tmp/mrtc-test-XXXXXX";
	int fd = mkstemp(tmpl);
	ck_assert(fd >= 0);
	size_t len = strlen(text);
	ck_assert(write(fd, text, len) == (ssize_t)len);
	close(fd);
	return strdup(tmpl);
}

int vectors_run_suite(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void vectors_add_tests(Suite *suite, const char *name, const TTest *const *tests, size_t n)
{
	TCase *tc = tcase_create(name);
	for (size_t i = 0; i < n; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(suite, tc);
}
