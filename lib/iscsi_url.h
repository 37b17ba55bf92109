/* SPDX-License-Identifier: MIT */
/* iscsi:// URLs: parsing and credentials, apart from libiscsi so that tests need no target. */
#ifndef BLKCOPY_ISCSI_URL_H
#define BLKCOPY_ISCSI_URL_H

#include <stdbool.h>
#include <stddef.h>

/* libiscsi keeps at most 255 bytes of a name or secret; iSCSI names are at most 223. */
struct bc_iscsi_url {
	char portal[272];	/* "host:port", "[v6]:port": what libiscsi connects to */
	char target[224];	/* the IQN, %XX decoded */
	int lun;
	char user[256];
	char password[256];
	bool has_password;	/* the URL gave one, maybe empty */
	char shown[768];	/* the URL without the password: safe to print */
};

/*
 * iscsi://[user[%password]@]host[:port]/target-iqn/lun.  0, or -EINVAL
 * with @why saying what is wrong (never quoting the password).
 */
int bc_iscsi_parse_url(const char *url, struct bc_iscsi_url *u, char *why, size_t why_size);

/*
 * CHAP credentials from the environment where the URL has none:
 * @env_user when the URL names no user, @env_password when it gives no
 * password.  A user without a password is -EINVAL.
 */
int bc_iscsi_url_credentials(struct bc_iscsi_url *u, const char *env_user,
			     const char *env_password, char *why, size_t why_size);

/*
 * The number libiscsi puts in the last parentheses of an error text
 * ("... Status: Authentication failure(513)", "socket error Connection
 * refused(111)"): 0 to INT_MAX, or -1 when there is none.
 */
int bc_iscsi_error_number(const char *err);

#endif
