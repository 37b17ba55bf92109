/* SPDX-License-Identifier: MIT */
/*
 * iscsi:// URLs and the credentials that complete them (lib/iscsi_url.c),
 * and the numbers in libiscsi's error texts (what a target's login answer
 * turns into).  The input is three NUL-separated strings: URL, user,
 * password (the LIBISCSI_CHAP_* variables).  A password must never show in
 * the printable form of the URL.
 */
#include <stdio.h>

#include "fuzz.h"
#include "iscsi_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_string(data, size), *user, *pass, why[256];
	struct bc_iscsi_url u;

	if (!s)
		return 0;
	user = s + strlen(s);
	if (user < s + size)
		user++;
	pass = user + strlen(user);
	if (pass < s + size)
		pass++;
	if (!bc_iscsi_parse_url(s, &u, why, sizeof(why)) &&
	    !bc_iscsi_url_credentials(&u, *user ? user : NULL, *pass ? pass : NULL, why, sizeof(why))) {
		/*
		 * The shown form has no password: nothing between "iscsi://" and
		 * the first '/' after it holds the '%' that would start one (the
		 * target name after it may hold anything).
		 */
		const char *auth = u.shown + strlen("iscsi://"), *end = strchr(auth, '/');

		if (strncmp(u.shown, "iscsi://", 8) || !end || memchr(auth, '%', (size_t)(end - auth)))
			abort();
		if (u.lun < 0 || u.lun > 16383 || !u.portal[0] || !u.target[0])
			abort();
	}
	(void)bc_iscsi_error_number(s);
	free(s);
	return 0;
}
