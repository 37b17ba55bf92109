/* SPDX-License-Identifier: MIT */
/* iscsi:// URLs, in the form QEMU and libiscsi take. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi_url.h"

#define PREFIX "iscsi://"
#define DEFAULT_PORT 3260
#define MAX_LUN 16383	/* flat space addressing */

static int bad(char *why, size_t size, const char *what)
{
	snprintf(why, size, "bad iSCSI URL: %s (iscsi://[user[%%password]@]host[:port]/target-iqn/lun)",
		 what);
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copy [s, s + n) into @out, decoding %XX; false when malformed or too long. */
static bool decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c <= ' ' || c == 0x7f || o + 1 >= size)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return o > 0;
}

static bool host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static int parse_hostport(const char *s, size_t n, struct bc_iscsi_url *u, char *why, size_t size)
{
	const char *host = s, *port = NULL;
	size_t hlen;
	bool v6 = false;

	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close || close == s + 1)
			return bad(why, size, "an IPv6 address needs its closing ']'");
		host = s + 1;
		hlen = (size_t)(close - host);
		for (size_t i = 0; i < hlen; i++)
			if (hexval(host[i]) < 0 && host[i] != ':' && host[i] != '.')
				return bad(why, size, "not an IPv6 address in [ ]");
		if (close + 1 < s + n) {
			if (close[1] != ':')
				return bad(why, size, "junk after the IPv6 address");
			port = close + 2;
		}
		v6 = true;
	} else {
		const char *colon = memchr(s, ':', n);

		hlen = colon ? (size_t)(colon - s) : n;
		if (colon && memchr(colon + 1, ':', n - hlen - 1))
			return bad(why, size, "an IPv6 address must be written in [ ]");
		if (colon)
			port = colon + 1;
		for (size_t i = 0; i < hlen; i++)
			if (!host_char_ok(host[i]))
				return bad(why, size, "a host name holds only letters, digits, '.', '-', '_'");
	}
	if (!hlen)
		return bad(why, size, "no host");
	if (hlen > 253)
		return bad(why, size, "host name too long");

	unsigned long p = DEFAULT_PORT;
	if (port) {
		size_t plen = (size_t)(s + n - port);
		char buf[8];

		if (!plen || plen > 5 || port[strspn(port, "0123456789")] != '/')
			return bad(why, size, "the port must be a number from 1 to 65535");
		memcpy(buf, port, plen);
		buf[plen] = '\0';
		p = strtoul(buf, NULL, 10);
		if (p < 1 || p > 65535)
			return bad(why, size, "the port must be a number from 1 to 65535");
	}
	snprintf(u->portal, sizeof(u->portal), "%s%.*s%s:%lu", v6 ? "[" : "", (int)hlen, host,
		 v6 ? "]" : "", p);
	return 0;
}

int bc_iscsi_parse_url(const char *url, struct bc_iscsi_url *u, char *why, size_t size)
{
	const char *auth, *slash, *at, *last;
	size_t alen;
	int ret;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, PREFIX, strlen(PREFIX)))
		return bad(why, size, "it must start with iscsi://");
	auth = url + strlen(PREFIX);
	slash = strchr(auth, '/');
	if (!slash)
		return bad(why, size, "no target IQN");
	alen = (size_t)(slash - auth);

	/* The last '@' ends the user part: a password may hold '@'. */
	at = NULL;
	for (const char *p = auth; p < slash; p++)
		if (*p == '@')
			at = p;
	if (at) {
		const char *pct = memchr(auth, '%', (size_t)(at - auth));
		size_t ulen = pct ? (size_t)(pct - auth) : (size_t)(at - auth);

		if (!ulen)
			return bad(why, size, "an empty user name before '@'");
		if (ulen >= sizeof(u->user))
			return bad(why, size, "user name too long");
		memcpy(u->user, auth, ulen);
		if (pct) {
			size_t plen = (size_t)(at - pct - 1);

			if (plen >= sizeof(u->password))
				return bad(why, size, "password too long");
			memcpy(u->password, pct + 1, plen);
			u->has_password = true;
		}
		alen -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	ret = parse_hostport(auth, alen, u, why, size);
	if (ret)
		return ret;

	last = strrchr(slash, '/');
	if (last == slash)
		return bad(why, size, "no LUN after the target IQN");
	if (!decode(slash + 1, (size_t)(last - slash - 1), u->target, sizeof(u->target)))
		return bad(why, size, "the target IQN is empty, too long or badly %-encoded");
	if (!last[1] || strspn(last + 1, "0123456789") != strlen(last + 1) || strlen(last + 1) > 5)
		return bad(why, size, "the LUN must be a number");
	u->lun = atoi(last + 1);
	if (u->lun > MAX_LUN)
		return bad(why, size, "the LUN must be at most 16383");

	snprintf(u->shown, sizeof(u->shown), "%s%s%s%s/%.*s/%d", PREFIX, u->user,
		 u->user[0] ? "@" : "", u->portal, (int)(last - slash - 1), slash + 1, u->lun);
	return 0;
}

int bc_iscsi_url_credentials(struct bc_iscsi_url *u, const char *env_user,
			     const char *env_password, char *why, size_t size)
{
	if (!u->user[0] && env_user && *env_user) {
		if (strlen(env_user) >= sizeof(u->user))
			return bad(why, size, "LIBISCSI_CHAP_USERNAME too long");
		strcpy(u->user, env_user);
	}
	if (u->user[0] && !u->has_password && env_password) {
		if (strlen(env_password) >= sizeof(u->password))
			return bad(why, size, "LIBISCSI_CHAP_PASSWORD too long");
		strcpy(u->password, env_password);
		u->has_password = true;
	}
	if (u->user[0] && !u->password[0]) {
		snprintf(why, size, "CHAP user '%s' has no password (in the URL as user%%password@, "
			 "or in LIBISCSI_CHAP_PASSWORD)", u->user);
		return -EINVAL;
	}
	return 0;
}

int bc_iscsi_error_number(const char *err)
{
	const char *p = err ? strrchr(err, '(') : NULL;
	long v = 0;

	if (!p || p[1] < '0' || p[1] > '9')
		return -1;
	/* Digits up to ')' and no more than fit: a peer's text is not to be trusted. */
	for (p++; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > INT_MAX)
			return -1;
	}
	return *p == ')' ? (int)v : -1;
}
