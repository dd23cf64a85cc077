/* SPDX-License-Identifier: Apache-2.0 */
/* The membership backend table: lookup by name, the list the configuration checks, its rows. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/core/config.h"
#include "mrtc/homeserver/membership.h"
#include "vectors.h"

START_TEST(test_membership_backend_find_known)
{
	const struct mrtc_membership_backend *b = mrtc_membership_backend_find("synapse-admin");
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(b->name, "synapse-admin");
	ck_assert_str_eq(b->token_var, "MRTC_HOMESERVER_ADMIN_TOKEN");
	ck_assert_str_eq(b->token_label, "admin");
	ck_assert(b->start != NULL);
	b = mrtc_membership_backend_find("msc4502");
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(b->name, "msc4502");
	ck_assert_str_eq(b->token_var, "MRTC_APPSERVICE_TOKEN");
	ck_assert_str_eq(b->token_label, "appservice");
	ck_assert(b->start != NULL);
}
END_TEST

START_TEST(test_membership_backend_find_unknown)
{
	const char *bad[] = { "",	  "ldap",   "Synapse-Admin", "synapse-admin ",
			      " msc4502", "msc450", "msc45022" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mrtc_membership_backend_find(bad[i]) == NULL, "found '%s'", bad[i]);
	ck_assert_ptr_null(mrtc_membership_backend_find(NULL));
}
END_TEST

/* The list is the table in order (the first the documented default), ends with NULL, and
 * agrees with the lookup. */
START_TEST(test_membership_backend_list_matches_table)
{
	const char *var = NULL;
	ck_assert_str_eq(mrtc_membership_backend_list(0, &var), "synapse-admin");
	ck_assert_str_eq(var, "MRTC_HOMESERVER_ADMIN_TOKEN");
	ck_assert_str_eq(mrtc_membership_backend_list(1, &var), "msc4502");
	ck_assert_str_eq(var, "MRTC_APPSERVICE_TOKEN");
	var = "untouched";
	ck_assert_ptr_null(mrtc_membership_backend_list(2, &var));
	ck_assert_str_eq(var, "untouched");
	ck_assert_ptr_null(mrtc_membership_backend_list(1000, &var));
	const char *name;
	for (size_t i = 0; (name = mrtc_membership_backend_list(i, &var)) != NULL; i++) {
		const struct mrtc_membership_backend *b = mrtc_membership_backend_find(name);
		ck_assert_ptr_nonnull(b);
		ck_assert_str_eq(b->token_var, var);
	}
}
END_TEST

/* Every variable has a value here, so --help shows what it would print of each. */
static const char *all_set(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return "value-of-every-variable";
}

/* The --help block of @var in @text: from its name line up to the next variable (caller frees),
 * or NULL if @var is not a variable. */
static char *help_block(const char *text, const char *var)
{
	char line[160];
	ck_assert_int_lt(snprintf(line, sizeof(line), "\n  %s\n", var), (int)sizeof(line));
	const char *at = strstr(text, line);
	if (!at)
		return NULL;
	const char *end = at + 1;
	while ((end = strstr(end + 1, "\n  ")) != NULL && end[3] == ' ')
		;
	return strndup(at, end ? (size_t)(end - at) : strlen(at));
}

/* Every row's token is a secret variable of the configuration table (printed only as "set"),
 * and MRTC_MEMBERSHIP_BACKEND's help names every row: read from --help, which prints the
 * table. */
START_TEST(test_membership_backend_rows_fit_the_configuration)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	mrtc_config_print_help(f, "mrtc-transportd", all_set, NULL);
	fclose(f);
	char *backend = help_block(text, "MRTC_MEMBERSHIP_BACKEND");
	ck_assert_ptr_nonnull(backend);
	const char *var, *name;
	for (size_t i = 0; (name = mrtc_membership_backend_list(i, &var)) != NULL; i++) {
		char *block = help_block(text, var);
		ck_assert_msg(block != NULL, "%s (token of %s) is not a configuration variable",
			      var, name);
		ck_assert_msg(strstr(block, "now: set") && !strstr(block, "value-of-every"),
			      "%s is not a secret: %s", var, block);
		ck_assert_msg(strstr(backend, name) != NULL,
			      "MRTC_MEMBERSHIP_BACKEND's help: no %s", name);
		free(block);
	}
	char def[160];
	ck_assert_int_lt(
	    snprintf(def, sizeof(def), "default: %s;", mrtc_membership_backend_list(0, &var)),
	    (int)sizeof(def));
	ck_assert_msg(strstr(backend, def) != NULL, "the default is not the first row: %s",
		      backend);
	free(backend);
	free(text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("membership");
	const TTest *tests[] = {
		test_membership_backend_find_known,
		test_membership_backend_find_unknown,
		test_membership_backend_list_matches_table,
		test_membership_backend_rows_fit_the_configuration,
	};
	vectors_add_tests(s, "membership", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
