/* SPDX-License-Identifier: MIT */
/*
 * The resume journal: see journal.h.  A record is a 16-byte head (magic,
 * type, payload length, CRC-32C of the head with the CRC zero and of the
 * payload) and its payload, in host byte order.  Every record is made
 * durable (fdatasync) before the copy goes on; a new journal's directory
 * entry too.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

#define MAGIC 0x4a434b42u	/* "BKCJ" */
#define VERSION 2u	/* 2: several destinations */

enum { REC_REQUEST = 1, REC_PROGRESS = 2, REC_COMPLETE = 3 };

struct rec_head {
	uint32_t magic;
	uint16_t type;
	uint16_t len;
	uint32_t crc;
	uint32_t version;
};

static uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc >> 1 ^ (0x82f63b78u & -(crc & 1));
	}
	return ~crc;
}

static uint32_t rec_crc(struct rec_head h, const void *payload)
{
	h.crc = 0;
	return crc32c(crc32c(0, &h, sizeof(h)), payload, h.len);
}

static uint64_t fnv(uint64_t h, uint64_t a, uint64_t b)
{
	const uint64_t v[2] = { a, b };

	for (size_t i = 0; i < sizeof(v); i++) {
		h ^= ((const uint8_t *)v)[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t journal_fingerprint(const struct blkcopy_range *r, size_t nr, const uint64_t *dst_off,
			     size_t nr_dsts)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a over the numbers */

	for (size_t i = 0; i < nr; i++)
		h = fnv(h, r[i].offset, r[i].len);
	for (size_t k = 0; k < nr_dsts; k++)
		h = fnv(h, dst_off[k], nr);
	return h;
}

uint64_t journal_resume_point(const struct journal_state *st)
{
	uint64_t low = UINT64_MAX;

	for (uint32_t k = 0; k < st->req.nr_dsts; k++)
		if (st->committed[k] < low)
			low = st->committed[k];
	return low == UINT64_MAX ? 0 : low;
}

/* The first line of a sysfs file, or false. */
static bool sysfs_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "re");
	bool ok = f && fgets(out, (int)size, f);

	if (f)
		fclose(f);
	if (ok)
		out[strcspn(out, "\n")] = '\0';
	return ok && *out;
}

void journal_identify(struct blkcopy_dev *dev, const char *path, struct journal_dev *d)
{
	/* What identifies a block device across reboots, most specific first. */
	static const char *const ids[] = {
		"wwid", "device/wwid", "device/serial", "serial", "dm/uuid", "loop/backing_file",
		"../wwid", "../device/wwid", "../device/serial", "../serial", "../loop/backing_file",
	};
	struct blkcopy_info info;
	struct stat st;

	memset(d, 0, sizeof(*d));
	blkcopy_get_info(dev, &info);
	d->kind = info.kind;
	d->major = info.major;
	d->minor = info.minor;
	d->capacity = info.capacity;
	d->lbs = info.logical_block_size;
	if (info.kind == BLKCOPY_KIND_FILE && !stat(path, &st)) {
		d->dev = st.st_dev;
		d->ino = st.st_ino;
		return;
	}
	if (!info.major) {
		snprintf(d->id, sizeof(d->id), "%s", info.path);	/* an iSCSI URL, no password */
		return;
	}
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char p[256];

		snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/%s", info.major, info.minor, ids[i]);
		if (sysfs_line(p, d->id, sizeof(d->id))) {
			/* A partition is its disk's identity and its place on it. */
			if (info.partition) {
				char part[32];

				snprintf(part, sizeof(part), "@%llu", (unsigned long long)info.partition_start);
				strncat(d->id, part, sizeof(d->id) - strlen(d->id) - 1);
			}
			return;
		}
	}
}

static int write_rec(int fd, uint16_t type, const void *payload, uint16_t len)
{
	struct rec_head h = { .magic = MAGIC, .type = type, .len = len, .version = VERSION };
	char buf[sizeof(h) + sizeof(struct journal_request)];

	h.crc = rec_crc(h, payload);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	if (write(fd, buf, sizeof(h) + len) != (ssize_t)(sizeof(h) + len))
		return errno ? -errno : -EIO;
	return fdatasync(fd) ? -errno : 0;
}

int journal_create(const char *path, const struct journal_request *req)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	char *copy = strdup(path);
	int ret, dfd;

	if (fd < 0 || !copy) {
		ret = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	ret = write_rec(fd, REC_REQUEST, req, sizeof(*req));
	/* The new name must survive a crash as well as the record in it. */
	dfd = ret ? -1 : open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!ret && (dfd < 0 || fsync(dfd)))
		ret = -errno;
	if (dfd >= 0)
		close(dfd);
out:
	free(copy);
	if (ret && fd >= 0) {
		close(fd);
		unlink(path);
		return ret;
	}
	return ret ? ret : fd;
}

/* The state of the journal on @fd, and the bytes its whole records take. */
static int read_state(int fd, struct journal_state *st, off_t *good)
{
	struct rec_head h;
	uint8_t payload[sizeof(struct journal_request)];
	off_t at = 0;

	memset(st, 0, sizeof(*st));
	for (;;) {
		ssize_t n = pread(fd, &h, sizeof(h), at);

		if (n == 0)
			break;
		if (n != sizeof(h) || h.magic != MAGIC || h.len > sizeof(payload) ||
		    pread(fd, payload, h.len, at + (off_t)sizeof(h)) != h.len ||
		    h.crc != rec_crc(h, payload) ||
		    (st->records == 0) != (h.type == REC_REQUEST)) {
			st->torn = true;	/* a cut or damaged record: what follows cannot be trusted */
			break;
		}
		if (h.type == REC_REQUEST) {
			if (h.version != VERSION || h.len != sizeof(st->req))
				return -EPROTO;
			memcpy(&st->req, payload, sizeof(st->req));
			if (!st->req.nr_dsts || st->req.nr_dsts > BLKCOPY_MAX_TARGETS)
				return -EBADMSG;
		} else if (h.len == st->req.nr_dsts * sizeof(uint64_t) &&
			   (h.type == REC_PROGRESS || h.type == REC_COMPLETE)) {
			memcpy(st->committed, payload, h.len);
			st->complete = h.type == REC_COMPLETE;
		} else {
			st->torn = true;
			break;
		}
		st->records++;
		at += (off_t)sizeof(h) + h.len;
	}
	*good = at;
	return st->records ? 0 : -EBADMSG;
}

/* @path opened with @flags and its state read: the descriptor, or -errno. */
static int open_state(const char *path, int flags, struct journal_state *st, off_t *good)
{
	int fd = open(path, flags | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = read_state(fd, st, good);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int journal_read(const char *path, struct journal_state *st)
{
	off_t good;
	int fd = open_state(path, O_RDONLY, st, &good);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int journal_open(const char *path, struct journal_state *st)
{
	off_t good;
	int fd = open_state(path, O_RDWR, st, &good);

	if (fd < 0)
		return fd;
	/* Records go after the last whole one: a torn tail would hide them from a reader. */
	if (ftruncate(fd, good) || lseek(fd, good, SEEK_SET) < 0 || fdatasync(fd)) {
		const int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int journal_record(int fd, const uint64_t *committed, size_t nr_dsts, bool complete)
{
	return write_rec(fd, complete ? REC_COMPLETE : REC_PROGRESS, committed,
			 (uint16_t)(nr_dsts * sizeof(*committed)));
}

static bool same_dev(const struct journal_dev *a, const struct journal_dev *b)
{
	if (a->kind != b->kind || a->capacity != b->capacity || a->lbs != b->lbs)
		return false;
	if (a->kind == BLKCOPY_KIND_FILE)
		return a->dev == b->dev && a->ino == b->ino;
	/* Device numbers change across reboots; what the device says of itself does not. */
	if (a->id[0] || b->id[0])
		return !strcmp(a->id, b->id);
	return a->major == b->major && a->minor == b->minor;
}

const char *journal_mismatch(const struct journal_request *have, const struct journal_request *want,
			     char *why, size_t size)
{
	if (!same_dev(&have->src, &want->src)) {
		snprintf(why, size, "the source is not the device the journal names (%s%s%u:%u, %llu bytes)",
			 have->src.id, have->src.id[0] ? ", " : "", have->src.major, have->src.minor,
			 (unsigned long long)have->src.capacity);
		return why;
	}
	if (have->nr_dsts != want->nr_dsts) {
		snprintf(why, size, "the journal names %u destination%s, the command %u", have->nr_dsts,
			 have->nr_dsts == 1 ? "" : "s", want->nr_dsts);
		return why;
	}
	for (uint32_t k = 0; k < have->nr_dsts; k++) {
		const struct journal_dev *d = &have->dst[k];

		if (!same_dev(d, &want->dst[k])) {
			char which[32] = "the destination";

			if (have->nr_dsts > 1)
				snprintf(which, sizeof(which), "destination %u", k + 1);
			snprintf(why, size, "%s is not the device the journal names "
				 "(%s%s%u:%u, %llu bytes)", which, d->id, d->id[0] ? ", " : "",
				 d->major, d->minor, (unsigned long long)d->capacity);
			return why;
		}
	}
	if (have->fingerprint != want->fingerprint || have->total != want->total ||
	    have->nr_ranges != want->nr_ranges ||
	    memcmp(have->dst_off, want->dst_off, have->nr_dsts * sizeof(have->dst_off[0]))) {
		const bool several = have->nr_dsts > 1;

		snprintf(why, size, "the ranges or the destination offset%s differ from the journal's "
			 "(%u ranges, %llu bytes, %sto offset %llu)", several ? "s" : "", have->nr_ranges,
			 (unsigned long long)have->total, several ? "the first " : "",
			 (unsigned long long)have->dst_off[0]);
		return why;
	}
	return NULL;
}
