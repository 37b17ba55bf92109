/* SPDX-License-Identifier: MIT */
/*
 * SCSI third-party copy (EXTENDED COPY LID1), independent of how commands
 * travel: discovery, parameter lists and sense decoding.  A transport
 * (SG_IO on a local sd node, libiscsi for a LUN by URL) runs the commands.
 */
#ifndef BLKCOPY_SCSI_H
#define BLKCOPY_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include "blkcopy.h"
#include "span.h"
#include "util.h"

enum bc_scsi_dir { BC_SCSI_NONE, BC_SCSI_FROM_DEV, BC_SCSI_TO_DEV };

/*
 * Run one command.  Returns 0 for GOOD, 1 for CHECK CONDITION with the
 * sense bytes in @sense (*@sense_len of them, at most 252), or -errno when
 * the command did not complete (transport failure, timeout, BUSY, ...).
 */
struct bc_scsi_transport {
	int (*exec)(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir,
		    void *buf, uint32_t len, uint32_t timeout_ms, uint8_t *sense,
		    uint32_t *sense_len);
	void *ctx;
};

struct bc_scsi_sense {
	uint8_t key, asc, ascq;
	bool info_valid;
	uint64_t info;
	uint32_t cmd_info;	/* COMMAND-SPECIFIC INFORMATION: a failed segment's number */
};

/* What discovery learnt about one logical unit. */
struct bc_scsi_lu {
	uint32_t lbs;
	uint64_t capacity;		/* bytes, from READ CAPACITY(16) */
	bool three_pc;			/* INQUIRY 3PC: a copy manager is there */
	bool has_tpc_vpd;		/* Third-party Copy VPD page 0x8F */
	uint8_t designator[20];		/* VPD 0x83 NAA designation descriptor, with header */
	uint8_t designator_len;		/* 0: none usable in an 0xE4 descriptor */
	/* RECEIVE COPY OPERATING PARAMETERS */
	uint16_t max_targets;
	uint16_t max_segments;
	uint32_t max_list_bytes;
	uint32_t max_segment_bytes;
	uint8_t granularity_log2;
	bool seg_block_to_block;	/* segment descriptor 0x02 implemented */
	bool target_id_desc;		/* target descriptor 0xE4 implemented */
};

/*
 * A command with Unit Attentions retried (the first contact after a LUN
 * appears reports one).  0, or -EIO with *@s filled when the device said
 * CHECK CONDITION, or the transport's -errno.
 */
int bc_scsi_run(const struct bc_scsi_transport *t, const uint8_t *cdb, uint8_t cdb_len,
		enum bc_scsi_dir dir, void *buf, uint32_t len, uint32_t timeout_ms,
		struct bc_scsi_sense *s);

/*
 * INQUIRY, READ CAPACITY(16), then bc_scsi_copy_manager().  0 when the LU
 * can take part in EXTENDED COPY, with @lu filled; else -errno with @why
 * saying what is missing.
 */
int bc_scsi_discover(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
		     size_t why_size);

/*
 * The copy manager of a LU whose INQUIRY and capacity are in @lu: Device
 * Identification VPD, RECEIVE COPY OPERATING PARAMETERS.  0 when it can
 * take part in EXTENDED COPY; else -errno with @why.
 */
int bc_scsi_copy_manager(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
			 size_t why_size);

/* READ CAPACITY(16): block length and bytes.  -errno with @why. */
int bc_scsi_capacity(const struct bc_scsi_transport *t, uint32_t *lbs, uint64_t *capacity,
		     char *why, size_t why_size);

/*
 * TEST UNIT READY and INQUIRY: 0 for a direct-access LU that is there and
 * ready, its 3PC bit in @lu; -ENXIO when the target has no LU at this
 * number, -ENOTBLK for another device type; else -errno.
 */
int bc_scsi_ready(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
		  size_t why_size);

/* MODE SENSE(10) says the medium is write protected (false when it cannot tell). */
bool bc_scsi_write_protected(const struct bc_scsi_transport *t);

/* Block Limits VPD (0xB0): the largest transfer in bytes, or 0 when not reported. */
uint64_t bc_scsi_max_transfer(const struct bc_scsi_transport *t, uint32_t lbs);

/*
 * One EXTENDED COPY(LID1) of one piece, sent through @t (the receiving LU
 * must be one of the two).  0, -EOPNOTSUPP/-E2BIG when refused before
 * writing, or -errno; a CHECK CONDITION is put in words in @msg.
 */
int bc_scsi_xcopy(const struct bc_scsi_transport *t, const struct bc_scsi_lu *src,
		  uint64_t src_base, const struct bc_scsi_lu *dst, uint64_t dst_base, bool same_lu,
		  const struct bc_span *segs, const struct bc_piece *piece, uint32_t timeout_ms,
		  char *msg, size_t msg_size);

/* Copy limits (blkcopy's names) for copies among @a and @b (the same LU, or two). */
void bc_scsi_limits(const struct bc_scsi_lu *a, const struct bc_scsi_lu *b,
		    struct blkcopy_limits *lim);

/*
 * The EXTENDED COPY(LID1) parameter list for one piece: one 0xE4 target
 * descriptor per distinct LU, one block-to-block segment per span.  LBAs
 * are device offsets + @src_base / @dst_base, in blocks.  Returns the list
 * length, or -E2BIG when it does not fit @size.
 */
ssize_t bc_scsi_xcopy_list(const struct bc_scsi_lu *src, uint64_t src_base,
			   const struct bc_scsi_lu *dst, uint64_t dst_base, bool same_lu,
			   const struct bc_span *segs, const struct bc_piece *piece,
			   uint8_t *buf, size_t size);

/* The largest parameter list bc_scsi_xcopy_list() writes for @nr_segs segments. */
size_t bc_scsi_xcopy_list_max(uint32_t nr_segs);

/* The EXTENDED COPY(LID1) CDB for a list of @len bytes. */
void bc_scsi_xcopy_cdb(uint8_t cdb[16], uint32_t len);

/* Sense data (fixed or descriptor format) of @len bytes into @s; all zero when unreadable. */
void bc_scsi_parse_sense(const uint8_t *b, uint32_t len, struct bc_scsi_sense *s);
/*
 * A Unit Attention (the first answer after a LU change) is a reason to ask
 * again: a command is sent at most this many times in all.
 */
#define BC_SCSI_UA_SENDS 4
#define BC_SCSI_KEY_UNIT_ATTENTION 0x6

/* A command's resends so far, by cause. */
struct bc_scsi_retry {
	uint32_t unit_attentions;
	uint32_t transients;
};
/*
 * Should a command that ended in CHECK CONDITION with @s go out again?
 * After a Unit Attention at once (BC_SCSI_UA_SENDS sends in all); while the
 * LU is NOT READY in a passing state (becoming ready, an ALUA state
 * transition) after a pause, for about a second in all.  Returns the pause
 * in microseconds (0: none), or -1: do not resend.
 */
long bc_scsi_retry(struct bc_scsi_retry *r, const struct bc_scsi_sense *s);

/*
 * Sense -> -errno, with a readable account in @msg.  Refusals before any
 * write (an unsupported command, descriptor or field) give -EOPNOTSUPP, a
 * list too long for the copy manager -E2BIG.
 */
int bc_scsi_sense_errno(const struct bc_scsi_sense *s, const char *what, char *msg, size_t size);

#endif
