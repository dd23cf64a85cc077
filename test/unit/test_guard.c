/* SPDX-License-Identifier: Apache-2.0 */
/* The outbound guard: every blocked range, embedded IPv4 forms, and operator exemptions. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "mrtc/matrix/guard.h"
#include "vectors.h"

static bool blocked(const char *ip, const char *allow)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	struct mrtc_cidr c;
	if (allow)
		ck_assert(mrtc_cidr_parse(allow, &c));
	return mrtc_guard_is_blocked((struct sockaddr *)&ss, allow ? &c : NULL, allow ? 1 : 0);
}

START_TEST(test_guard_blocks_special_ranges)
{
	static const char *const bad[] = {
		"0.0.0.0",
		"10.1.2.3",
		"100.64.0.1",
		"127.0.0.1",
		"127.200.3.4",
		"169.254.1.1",
		"172.16.0.1",
		"172.31.255.255",
		"192.0.0.8",
		"192.0.2.1",
		"192.168.1.1",
		"198.18.0.1",
		"198.51.100.7",
		"203.0.113.9",
		"224.0.0.1",
		"239.1.1.1",
		"240.0.0.1",
		"255.255.255.255",
		"::",
		"::1",
		"fe80::1",
		"fc00::1",
		"fd12:3456::1",
		"ff02::1",
		"2001:db8::1",
		"::ffff:127.0.0.1",
		"::ffff:10.0.0.1",
		"::127.0.0.1",
		"64:ff9b::a00:1",
		"2002:7f00:1::",
		"2002:c0a8:101::1",
		"fec0::1",
		"100::1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(blocked(bad[i], NULL), "%s not blocked", bad[i]);
	static const char *const good[] = { "1.1.1.1",	       "8.8.8.8",	  "172.32.0.1",
					    "100.128.0.1",     "2606:4700::1111", "::ffff:1.1.1.1",
					    "2002:101:101::1", "64:ff9b::808:808" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(!blocked(good[i], NULL), "%s blocked", good[i]);
}
END_TEST

START_TEST(test_guard_allow_ranges)
{
	ck_assert(!blocked("127.0.0.1", "127.0.0.0/8"));
	ck_assert(!blocked("::ffff:127.0.0.1", "127.0.0.0/8"));
	ck_assert(!blocked("2002:7f00:1::", "127.0.0.0/8"));
	ck_assert(blocked("10.0.0.1", "127.0.0.0/8"));
	ck_assert(!blocked("fd00::5", "fd00::/8"));
	ck_assert(blocked("::1", "fd00::/8"));
}
END_TEST

START_TEST(test_guard_unknown_family_blocked)
{
	struct sockaddr sa = { .sa_family = AF_UNIX };
	ck_assert(mrtc_guard_is_blocked(&sa, NULL, 0));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("guard");
	const TTest *tests[] = { test_guard_blocks_special_ranges, test_guard_allow_ranges,
				 test_guard_unknown_family_blocked };
	vectors_add_tests(s, "guard", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
