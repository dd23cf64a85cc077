/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outbound address guard (PROTOCOL §5.5): federation traffic must not reach loopback,
 * private, link-local, CGNAT, multicast, reserved or documentation addresses (nor their
 * IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 forms) unless an operator allows a range.
 * Pure.
 */
#ifndef MRTC_GUARD_H
#define MRTC_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mrtc_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

/* Parses "a.b.c.d/n" or "v6addr/n". */
bool mrtc_cidr_parse(const char *s, struct mrtc_cidr *ret);

/* True if @addr (4 bytes for AF_INET, 16 for AF_INET6) lies in @cidr. */
bool mrtc_cidr_contains(const struct mrtc_cidr *cidr, int family, const uint8_t *addr);

/*
 * True if connecting to @sa is refused: a blocked range, unless it (or, for mapped forms, the
 * embedded IPv4 address) lies in one of the @n_allow ranges of @allow. Unknown families are
 * blocked.
 */
bool mrtc_guard_is_blocked(const struct sockaddr *sa, const struct mrtc_cidr *allow,
			   size_t n_allow);

#endif
