/* SPDX-License-Identifier: MIT */
/*
 * iscsi:// URLs: the forms QEMU and libiscsi take, the portal handed to
 * libiscsi, credentials from the URL or the environment, and the printable
 * form that never holds the password.  The lab logs in to real LIO targets
 * with the same parser.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "iscsi_url.h"

static void good(const char *url, const char *portal, const char *target, int lun,
		 const char *user, const char *password, const char *shown)
{
	struct bc_iscsi_url u;
	char why[256] = "";

	CHECK_EQ(bc_iscsi_parse_url(url, &u, why, sizeof(why)), 0);
	CHECK(!strcmp(u.portal, portal), "%s: portal '%s', want '%s' (%s)", url, u.portal, portal, why);
	CHECK(!strcmp(u.target, target), "%s: target '%s', want '%s'", url, u.target, target);
	CHECK_EQ(u.lun, lun);
	CHECK(!strcmp(u.user, user), "%s: user '%s', want '%s'", url, u.user, user);
	CHECK(!strcmp(u.password, password), "%s: wrong password", url);
	CHECK(!strcmp(u.shown, shown), "%s: shown '%s', want '%s'", url, u.shown, shown);
	CHECK(!*password || !strstr(u.shown, password), "%s: the password shows", url);
}

static void bad(const char *url, const char *what)
{
	struct bc_iscsi_url u;
	char why[256] = "";

	CHECK_EQ(bc_iscsi_parse_url(url, &u, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, what), "%s: says '%s', want '%s' in it", url, why, what);
	CHECK(!strstr(why, "sekrit"), "%s: the password is in the message '%s'", url, why);
}

int main(void)
{
	good("iscsi://127.0.0.1/iqn.2026-11.org.blkcopy.lab:alpha/0", "127.0.0.1:3260",
	     "iqn.2026-11.org.blkcopy.lab:alpha", 0, "", "",
	     "iscsi://127.0.0.1:3260/iqn.2026-11.org.blkcopy.lab:alpha/0");
	good("iscsi://san-1.example.com:3261/iqn.x%3Ay/17", "san-1.example.com:3261", "iqn.x:y", 17,
	     "", "", "iscsi://san-1.example.com:3261/iqn.x%3Ay/17");
	good("iscsi://[fd00::1]:860/iqn.x:y/1", "[fd00::1]:860", "iqn.x:y", 1, "", "",
	     "iscsi://[fd00::1]:860/iqn.x:y/1");
	good("iscsi://[::1]/iqn.x:y/16383", "[::1]:3260", "iqn.x:y", 16383, "", "",
	     "iscsi://[::1]:3260/iqn.x:y/16383");
	good("iscsi://bob%sekrit@10.0.0.1/iqn.x:y/2", "10.0.0.1:3260", "iqn.x:y", 2, "bob", "sekrit",
	     "iscsi://bob@10.0.0.1:3260/iqn.x:y/2");
	/* The last '@' ends the credentials: a password may hold '@' and '%'. */
	good("iscsi://bob%se@k%rit@h/iqn.x:y/0", "h:3260", "iqn.x:y", 0, "bob", "se@k%rit",
	     "iscsi://bob@h:3260/iqn.x:y/0");
	good("iscsi://bob@h/iqn.x:y/0", "h:3260", "iqn.x:y", 0, "bob", "", "iscsi://bob@h:3260/iqn.x:y/0");

	bad("iscsi:/h/iqn/0", "iscsi://");
	bad("nbd://h/iqn/0", "iscsi://");
	bad("iscsi://h", "no target");
	bad("iscsi://h/iqn.x:y", "no LUN");
	bad("iscsi://h/iqn.x:y/", "LUN must be a number");
	bad("iscsi://h/iqn.x:y/1a", "LUN must be a number");
	bad("iscsi://h/iqn.x:y/-1", "LUN must be a number");
	bad("iscsi://h/iqn.x:y/16384", "at most 16383");
	bad("iscsi://h/iqn.x:y/99999999999", "LUN must be a number");
	bad("iscsi://h//0", "target IQN is empty");
	bad("iscsi://h/iqn.x%3/0", "%-encoded");
	bad("iscsi://h/iqn.x%zz/0", "%-encoded");
	bad("iscsi://h/iqn x/0", "%-encoded");
	bad("iscsi://h/iqn.x%00y/0", "%-encoded");
	bad("iscsi:///iqn.x:y/0", "no host");
	bad("iscsi://h:0/iqn.x:y/0", "port");
	bad("iscsi://h:65536/iqn.x:y/0", "port");
	bad("iscsi://h:/iqn.x:y/0", "port");
	bad("iscsi://h:32a/iqn.x:y/0", "port");
	bad("iscsi://fd00::1/iqn.x:y/0", "IPv6");
	bad("iscsi://[fd00::1/iqn.x:y/0", "']'");
	bad("iscsi://[fd00::1]x/iqn.x:y/0", "junk");
	bad("iscsi://%sekrit@h/iqn.x:y/0", "empty user");
	bad("iscsi://h$x/iqn.x:y/0", "host name");

	char longer[400];
	memset(longer, 'a', sizeof(longer));
	memcpy(longer, "iscsi://h/", 10);
	memcpy(longer + sizeof(longer) - 3, "/0", 3);
	bad(longer, "too long");

	/* Credentials from the environment: only where the URL has none. */
	struct bc_iscsi_url u;
	char why[256];
	CHECK_EQ(bc_iscsi_parse_url("iscsi://h/iqn.x:y/0", &u, why, sizeof(why)), 0);
	CHECK_EQ(bc_iscsi_url_credentials(&u, "env-user", "env-pass", why, sizeof(why)), 0);
	CHECK(!strcmp(u.user, "env-user") && !strcmp(u.password, "env-pass"), "env credentials");
	CHECK(!strstr(u.shown, "env"), "credentials from the environment show: %s", u.shown);

	CHECK_EQ(bc_iscsi_parse_url("iscsi://bob%url-pass@h/iqn.x:y/0", &u, why, sizeof(why)), 0);
	CHECK_EQ(bc_iscsi_url_credentials(&u, "env-user", "env-pass", why, sizeof(why)), 0);
	CHECK(!strcmp(u.user, "bob") && !strcmp(u.password, "url-pass"), "the URL's credentials win");

	CHECK_EQ(bc_iscsi_parse_url("iscsi://bob@h/iqn.x:y/0", &u, why, sizeof(why)), 0);
	CHECK_EQ(bc_iscsi_url_credentials(&u, "env-user", "env-pass", why, sizeof(why)), 0);
	CHECK(!strcmp(u.user, "bob") && !strcmp(u.password, "env-pass"),
	      "a URL user takes the environment's password");

	CHECK_EQ(bc_iscsi_parse_url("iscsi://bob@h/iqn.x:y/0", &u, why, sizeof(why)), 0);
	CHECK_EQ(bc_iscsi_url_credentials(&u, NULL, NULL, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "no password"), "user without a password: '%s'", why);

	CHECK_EQ(bc_iscsi_parse_url("iscsi://h/iqn.x:y/0", &u, why, sizeof(why)), 0);
	CHECK_EQ(bc_iscsi_url_credentials(&u, NULL, "stray", why, sizeof(why)), 0);
	CHECK(!u.user[0] && !u.password[0], "a password alone means no CHAP");

	return check_done("test_iscsi_url");
}
