/* SPDX-License-Identifier: Apache-2.0 */
/* CIDR ranges and the outbound address guard. Pure. */
#include "mrtc/matrix/guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "mrtc/base/util.h"

bool mrtc_cidr_parse(const char *s, struct mrtc_cidr *ret)
{
	const char *slash = strchr(s, '/');
	if (!slash)
		return false;
	char addr[64];
	size_t n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(addr))
		return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	struct mrtc_cidr c = { .prefix = 0 };
	uint64_t prefix;
	if (inet_pton(AF_INET, addr, c.addr) == 1) {
		c.family = AF_INET;
		if (!mrtc_parse_u64(slash + 1, 0, 32, &prefix))
			return false;
	} else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
		c.family = AF_INET6;
		if (!mrtc_parse_u64(slash + 1, 0, 128, &prefix))
			return false;
	} else {
		return false;
	}
	c.prefix = (unsigned)prefix;
	*ret = c;
	return true;
}

bool mrtc_cidr_contains(const struct mrtc_cidr *cidr, int family, const uint8_t *addr)
{
	if (cidr->family != family)
		return false;
	unsigned bits = cidr->prefix;
	for (unsigned i = 0; bits > 0; i++) {
		unsigned take = bits >= 8 ? 8 : bits;
		uint8_t mask = (uint8_t)(0xff00u >> take);
		if ((addr[i] & mask) != (cidr->addr[i] & mask))
			return false;
		bits -= take;
	}
	return true;
}

/* Special-purpose ranges that must never be a federation peer (IANA registries). */
static const char *const blocked_v4[] = {
	"0.0.0.0/8",	 "10.0.0.0/8",	    "100.64.0.0/10",  "127.0.0.0/8",	"169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24",    "192.0.2.0/24",   "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",	"240.0.0.0/4",
};
static const char *const blocked_v6[] = {
	"::/128",   "::1/128",	 "100::/64",  "2001::/23", "2001:db8::/32",
	"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",  "3fff::/20",
};

static bool in_list(const char *const *list, size_t n, int family, const uint8_t *addr)
{
	for (size_t i = 0; i < n; i++) {
		struct mrtc_cidr c;
		if (mrtc_cidr_parse(list[i], &c) && mrtc_cidr_contains(&c, family, addr))
			return true;
	}
	return false;
}

static bool allowed(const struct mrtc_cidr *allow, size_t n, int family, const uint8_t *addr)
{
	for (size_t i = 0; i < n; i++)
		if (mrtc_cidr_contains(&allow[i], family, addr))
			return true;
	return false;
}

static bool v4_blocked(const uint8_t *a4, const struct mrtc_cidr *allow, size_t n)
{
	if (allowed(allow, n, AF_INET, a4))
		return false;
	return in_list(blocked_v4, sizeof(blocked_v4) / sizeof(blocked_v4[0]), AF_INET, a4);
}

bool mrtc_guard_is_blocked(const struct sockaddr *sa, const struct mrtc_cidr *allow, size_t n_allow)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return v4_blocked((const uint8_t *)&in->sin_addr, allow, n_allow);
	}
	if (sa->sa_family != AF_INET6)
		return true;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
	const uint8_t *a = in6->sin6_addr.s6_addr;
	if (allowed(allow, n_allow, AF_INET6, a))
		return false;
	static const uint8_t zero10[10] = { 0 };
	/* IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d carry an IPv4 address. */
	if (memcmp(a, zero10, 10) == 0 && ((a[10] == 0xff && a[11] == 0xff) ||
					   (a[10] == 0 && a[11] == 0 && (a[12] | a[13]) != 0)))
		return v4_blocked(a + 12, allow, n_allow);
	/* NAT64 64:ff9b::/96 and 6to4 2002::/16 embed one too. */
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
	if (memcmp(a, nat64, 12) == 0)
		return v4_blocked(a + 12, allow, n_allow);
	if (a[0] == 0x20 && a[1] == 0x02)
		return v4_blocked(a + 2, allow, n_allow);
	return in_list(blocked_v6, sizeof(blocked_v6) / sizeof(blocked_v6[0]), AF_INET6, a);
}
