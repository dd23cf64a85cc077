/* SPDX-License-Identifier: Apache-2.0 */
/* Server-name grammar, user ids and room ids. */
#include <check.h>
#include <string.h>

#include "mrtc/matrix/servername.h"
#include "vectors.h"

START_TEST(test_server_name_parse_valid)
{
	static const struct {
		const char *name, *host;
		enum mrtc_host_kind kind;
		uint16_t port;
	} ok[] = {
		{ "example.org", "example.org", MRTC_HOST_DNS, 0 },
		{ "example.org:8448", "example.org", MRTC_HOST_DNS, 8448 },
		{ "Example-1.ORG:1", "Example-1.ORG", MRTC_HOST_DNS, 1 },
		{ "localhost", "localhost", MRTC_HOST_DNS, 0 },
		{ "1.2.3.4", "1.2.3.4", MRTC_HOST_IPV4, 0 },
		{ "255.255.255.255:65535", "255.255.255.255", MRTC_HOST_IPV4, 65535 },
		{ "[::1]", "[::1]", MRTC_HOST_IPV6, 0 },
		{ "[2001:db8::1]:8448", "[2001:db8::1]", MRTC_HOST_IPV6, 8448 },
		{ "[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]", MRTC_HOST_IPV6, 0 },
		{ "1.2.3.4.example", "1.2.3.4.example", MRTC_HOST_DNS, 0 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct mrtc_server_name sn;
		ck_assert_msg(mrtc_server_name_parse(ok[i].name, &sn), "rejected %s", ok[i].name);
		ck_assert_str_eq(sn.host, ok[i].host);
		ck_assert_int_eq(sn.kind, ok[i].kind);
		ck_assert_uint_eq(sn.port, ok[i].port);
	}
}
END_TEST

START_TEST(test_server_name_parse_invalid)
{
	static const char *const bad[] = {
		"",	     "a b",	     "example.org:", "example.org:0", "example.org:65536",
		"ex:123456", "1.2.3.256",    "1.2.3",	     "1.2.3.4.5",     "example.org.",
		"[::1",	     "[zz::1]",	     "[]",	     "[::1]x",	      "[::1]:",
		"a\r\nb",    "exa_mple.org", "@x",	     "ex:80:80",      "ex:-1",
		"ex:8a",     "01.2.3.4",     "::1",	     "ex/ample",      "ex\"ample",
		".",	     "1..2.3",	     "ex:+80",	     "ex ample:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!mrtc_server_name_is_valid(bad[i]), "accepted '%s'", bad[i]);
	ck_assert(!mrtc_server_name_is_valid(NULL));
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name));
	long_name[255] = '\0';
	ck_assert(mrtc_server_name_is_valid(long_name));
	long_name[255] = 'a';
	long_name[256] = '\0';
	ck_assert(!mrtc_server_name_is_valid(long_name));
}
END_TEST

START_TEST(test_server_name_is_ip_literal)
{
	ck_assert(mrtc_server_name_is_ip_literal("1.2.3.4"));
	ck_assert(mrtc_server_name_is_ip_literal("1.2.3.4:80"));
	ck_assert(mrtc_server_name_is_ip_literal("[::1]:80"));
	ck_assert(!mrtc_server_name_is_ip_literal("example.org"));
	ck_assert(!mrtc_server_name_is_ip_literal("1.2.3.4.example"));
	ck_assert(!mrtc_server_name_is_ip_literal("bad name"));
}
END_TEST

START_TEST(test_user_id_server_split)
{
	ck_assert_str_eq(mrtc_user_id_server("@alice:example.org"), "example.org");
	ck_assert_str_eq(mrtc_user_id_server("@alice:example.org:8448"), "example.org:8448");
	ck_assert_str_eq(mrtc_user_id_server("@a.b=c/d:[::1]"), "[::1]");
	static const char *const bad[] = {
		"alice:example.org", "@:example.org",	     "@alice", "@alice:",
		"@alice:bad name",   "@al\nice:example.org", "",       "@alice:example.org.",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mrtc_user_id_server(bad[i]) == NULL, "accepted '%s'", bad[i]);
	ck_assert_ptr_null(mrtc_user_id_server(NULL));
	char long_id[300] = "@";
	memset(long_id + 1, 'a', 250);
	strcpy(long_id + 251, ":b.c"); /* 255 bytes: the limit */
	ck_assert_ptr_nonnull(mrtc_user_id_server(long_id));
	memset(long_id + 1, 'a', 251);
	strcpy(long_id + 252, ":b.c");
	ck_assert_ptr_null(mrtc_user_id_server(long_id));
}
END_TEST

START_TEST(test_room_id_is_valid_rules)
{
	ck_assert(mrtc_room_id_is_valid("!r:example.org"));
	ck_assert(mrtc_room_id_is_valid("!abcDEF123")); /* room version 12: no server part */
	ck_assert(!mrtc_room_id_is_valid("!"));
	ck_assert(!mrtc_room_id_is_valid("#alias:example.org"));
	ck_assert(!mrtc_room_id_is_valid("!r\x01:example.org"));
	ck_assert(!mrtc_room_id_is_valid(NULL));
	char long_id[300];
	memset(long_id, 'a', sizeof(long_id));
	long_id[0] = '!';
	long_id[255] = '\0';
	ck_assert(mrtc_room_id_is_valid(long_id));
	long_id[255] = 'a';
	long_id[256] = '\0';
	ck_assert(!mrtc_room_id_is_valid(long_id));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("servername");
	const TTest *tests[] = {
		test_server_name_parse_valid,	test_server_name_parse_invalid,
		test_server_name_is_ip_literal, test_user_id_server_split,
		test_room_id_is_valid_rules,
	};
	vectors_add_tests(s, "servername", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
