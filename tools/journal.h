/* SPDX-License-Identifier: MIT */
/*
 * The resume journal of "blkcopy copy --journal": an append-only file of
 * checksummed records.  The first names the request (the source and every
 * destination as they identify themselves, a fingerprint of the ranges and
 * the offsets); each later one every destination's committed prefix,
 * written only after the destinations were flushed up to them; the last,
 * when the copy finished, says so.  A torn
 * tail (a record cut by a crash) is ignored: the state is the last whole
 * record's.
 */
#ifndef BLKCOPY_JOURNAL_H
#define BLKCOPY_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkcopy.h"

/* What a device says of itself, as far as a journal tells one from another. */
struct journal_dev {
	uint32_t kind;		/* enum blkcopy_kind */
	uint32_t major, minor;	/* 0:0 for files */
	uint64_t dev, ino;	/* files: the file system and inode */
	uint64_t capacity;
	uint32_t lbs;
	char id[128];		/* WWN, serial, NGUID, a loop's backing file, an iSCSI URL */
};

struct journal_request {
	struct journal_dev src;
	struct journal_dev dst[BLKCOPY_MAX_TARGETS];
	uint64_t dst_off[BLKCOPY_MAX_TARGETS];
	uint32_t nr_dsts;
	uint32_t nr_ranges;
	uint64_t fingerprint;	/* of the ranges and the destination offsets */
	uint64_t total;		/* the ranges' bytes */
	uint32_t flags;		/* BLKCOPY_* the copy ran with (told, not checked) */
	uint32_t pad;
};

struct journal_state {
	struct journal_request req;
	/* Per destination: bytes of the request known in place and flushed. */
	uint64_t committed[BLKCOPY_MAX_TARGETS];
	uint32_t records;	/* whole records read */
	bool complete;
	bool torn;		/* a cut record at the end was ignored */
};

/* Fill @d from an opened device and its path. */
void journal_identify(struct blkcopy_dev *dev, const char *path, struct journal_dev *d);
uint64_t journal_fingerprint(const struct blkcopy_range *r, size_t nr, const uint64_t *dst_off,
			     size_t nr_dsts);
/* Where a resumed copy starts: the smallest committed prefix (bytes after it may be copied again). */
uint64_t journal_resume_point(const struct journal_state *st);

/* A new journal at @path for @req (refused with -EEXIST when one is there): the descriptor, or -errno. */
int journal_create(const char *path, const struct journal_request *req);
/* Open an existing one for appending, its state read into @st: the descriptor, or -errno. */
int journal_open(const char *path, struct journal_state *st);
/*
 * Read @path's state.  0, -errno, -EBADMSG when it is not a journal (no
 * whole first record), -EPROTO when another version of blkcopy wrote it.
 */
int journal_read(const char *path, struct journal_state *st);
/* Append (and make durable) every destination's committed prefix; @complete marks the copy finished. */
int journal_record(int fd, const uint64_t *committed, size_t nr_dsts, bool complete);

/*
 * Why @want (the command) does not match @have (the journal), in words, or
 * NULL when it does.
 */
const char *journal_mismatch(const struct journal_request *have, const struct journal_request *want,
			     char *why, size_t size);

#endif
