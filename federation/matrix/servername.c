/* SPDX-License-Identifier: Apache-2.0 */
/* Server-name grammar, user-id and room-id checks. Pure. */
#include "mrtc/matrix/servername.h"

#include <arpa/inet.h>
#include <string.h>

#include "mrtc/base/util.h"

static bool is_dns_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

/* A dotted quad with each part 0..255 (no leading zeros beyond "0"). */
static bool is_dotted_quad(const char *s, size_t len)
{
	int parts = 0;
	size_t i = 0;
	while (i <= len) {
		size_t start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		uint64_t v;
		if (!mrtc_parse_u64_n(s + start, i - start, 0, 255, &v))
			return false;
		parts++;
		if (i == len)
			break;
		if (s[i] != '.' || parts == 4)
			return false;
		i++;
	}
	return parts == 4;
}

bool mrtc_server_name_parse(const char *name, struct mrtc_server_name *ret_name)
{
	if (!name)
		return false;
	size_t len = strlen(name);
	if (len == 0 || len > MRTC_SERVER_NAME_MAX)
		return false;
	struct mrtc_server_name out = { .port = 0 };
	size_t host_len;
	if (name[0] == '[') {
		const char *close = strchr(name, ']');
		if (!close)
			return false;
		host_len = (size_t)(close - name) + 1;
		size_t inner = host_len - 2;
		char tmp[64];
		if (inner == 0 || inner >= sizeof(tmp))
			return false;
		for (size_t i = 1; i < host_len - 1; i++) {
			char c = name[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			      (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
				return false;
		}
		memcpy(tmp, name + 1, inner);
		tmp[inner] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return false;
		out.kind = MRTC_HOST_IPV6;
	} else {
		const char *colon = strchr(name, ':');
		host_len = colon ? (size_t)(colon - name) : len;
		if (host_len == 0)
			return false;
		bool only_digits_dots = true;
		for (size_t i = 0; i < host_len; i++) {
			if (!is_dns_char(name[i]))
				return false;
			if (!(name[i] == '.' || (name[i] >= '0' && name[i] <= '9')))
				only_digits_dots = false;
		}
		if (name[host_len - 1] == '.')
			return false;
		if (only_digits_dots) {
			if (!is_dotted_quad(name, host_len))
				return false;
			out.kind = MRTC_HOST_IPV4;
		} else {
			out.kind = MRTC_HOST_DNS;
		}
	}
	if (host_len < len) {
		if (name[host_len] != ':')
			return false;
		const char *port = name + host_len + 1;
		size_t plen = len - host_len - 1;
		uint64_t p;
		/* 1-5 digits; leading zeros are tolerated by the grammar ("1*5DIGIT"). */
		if (plen == 0 || plen > 5)
			return false;
		size_t skip = 0;
		while (skip + 1 < plen && port[skip] == '0')
			skip++;
		if (!mrtc_parse_u64_n(port + skip, plen - skip, 1, 65535, &p))
			return false;
		out.port = (uint16_t)p;
	}
	memcpy(out.host, name, host_len);
	out.host[host_len] = '\0';
	if (ret_name)
		*ret_name = out;
	return true;
}

bool mrtc_server_name_is_valid(const char *name)
{
	return mrtc_server_name_parse(name, NULL);
}

bool mrtc_server_name_is_ip_literal(const char *name)
{
	struct mrtc_server_name sn;
	return mrtc_server_name_parse(name, &sn) && sn.kind != MRTC_HOST_DNS;
}

const char *mrtc_user_id_server(const char *user_id)
{
	if (!user_id || user_id[0] != '@')
		return NULL;
	size_t len = strlen(user_id);
	if (len > MRTC_ID_MAX || mrtc_has_control(user_id, len))
		return NULL;
	const char *colon = strchr(user_id, ':');
	if (!colon || colon == user_id + 1)
		return NULL;
	if (!mrtc_server_name_is_valid(colon + 1))
		return NULL;
	return colon + 1;
}

bool mrtc_room_id_is_valid(const char *room_id)
{
	if (!room_id || room_id[0] != '!')
		return false;
	size_t len = strlen(room_id);
	return len >= 2 && len <= MRTC_ID_MAX && !mrtc_has_control(room_id, len);
}
