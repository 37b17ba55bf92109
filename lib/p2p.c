/* SPDX-License-Identifier: MIT */
/*
 * PCI peer-to-peer memory for BLKCOPY_P2P.  The kernel publishes a PCI
 * function's P2P memory (an NVMe CMB with both read and write data support)
 * under /sys/bus/pci/devices/BDF/p2pmem: size, available, published, and
 * "allocate", whose mmap() allocates that much of it for as long as the
 * mapping lives.  O_DIRECT I/O on a queue that takes P2P pages (NVMe over
 * PCIe) then DMAs straight between the device and that memory; the kernel
 * refuses it (-EREMOTEIO) for a queue that does not, and for two devices
 * that meet only at a host bridge it does not trust with P2P traffic.  User
 * space cannot ask that question, so every end is probed with a one-block
 * read into the memory before a job starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "device.h"
#include "emulate.h"
#include "p2p.h"
#include "sysfs.h"
#include "util.h"

#define PCI_DEVICES "/sys/bus/pci/devices"
#define PROBE_PAGE 4096u

/* "dddd:bb:dd.f", a PCI function's name in sysfs. */
static bool is_pci_address(const char *s, size_t len)
{
	static const char shape[] = "xxxx:xx:xx.x";

	if (len != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < len; i++) {
		const bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');

		if (shape[i] == 'x' ? !hex : s[i] != shape[i])
			return false;
	}
	return true;
}

/*
 * The sysfs device path of the PCI function block device @devno sits on
 * (the last PCI function on its path: bridges come before it), and that
 * function's address.  -ENODEV when none is (a virtual device).
 */
static int pci_function_of(dev_t devno, char *path, size_t size, char *addr, size_t addr_size)
{
	char link[64], real[PATH_MAX];
	const char *found = NULL;

	if (!devno)
		return -ENODEV;
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(devno), minor(devno));
	if (!realpath(link, real))
		return -errno;
	for (const char *c = real; *c; ) {
		const char *next = strchr(c + 1, '/');
		const size_t len = next ? (size_t)(next - c - 1) : strlen(c + 1);

		if (*c == '/' && is_pci_address(c + 1, len))
			found = c;
		if (!next)
			break;
		c = next;
	}
	if (!found)
		return -ENODEV;
	const size_t plen = (size_t)(found - real) + 13;
	snprintf(path, size, "%.*s", (int)plen, real);
	snprintf(addr, addr_size, "%.12s", found + 1);
	return 0;
}

static uint64_t read_u64(const char *dir, const char *attr)
{
	char path[PATH_MAX], buf[32];

	if (snprintf(path, sizeof(path), "%s/%s", dir, attr) >= (int)sizeof(path) ||
	    bc_sysfs_read_path(path, buf, sizeof(buf)))
		return 0;
	return strtoull(buf, NULL, 0);
}

static void driver_of(const char *dir, char *out, size_t size)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	n = snprintf(path, sizeof(path), "%s/driver", dir) < (int)sizeof(path) ?
		readlink(path, target, sizeof(target) - 1) : -1;
	if (n < 0)
		n = snprintf(target, sizeof(target), "none");
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	n = (ssize_t)strlen(base) < (ssize_t)size ? (ssize_t)strlen(base) : (ssize_t)size - 1;
	memcpy(out, base, (size_t)n);
	out[n] = '\0';
}

/* @info of @d, and the PCI function's sysfs path into @dir. */
static int info_of(const struct blkcopy_dev *d, struct blkcopy_p2p_info *info, char *dir,
		   size_t dir_size)
{
	char mem[PATH_MAX];
	int ret;

	memset(info, 0, sizeof(*info));
	if (d->kind == BLKCOPY_KIND_FILE || !d->rdev)
		return -ENODEV;
	ret = pci_function_of(d->rdev, dir, dir_size, info->pci, sizeof(info->pci));
	if (ret)
		return ret == -ENOENT ? -ENODEV : ret;
	driver_of(dir, info->driver, sizeof(info->driver));
	snprintf(mem, sizeof(mem), "%s/p2pmem", dir);
	info->has_memory = access(mem, F_OK) == 0;
	if (info->has_memory) {
		info->size = read_u64(mem, "size");
		info->available = read_u64(mem, "available");
		info->published = read_u64(mem, "published") == 1;
	}
	return 0;
}

int blkcopy_dev_p2p(const struct blkcopy_dev *d, struct blkcopy_p2p_info *info)
{
	char dir[PATH_MAX];

	if (!d || !info)
		return -EINVAL;
	return info_of(d, info, dir, sizeof(dir));
}

/* ------------------------------------------------------------------------ */
/* The memory                                                               */

static void *p2p_map(const struct bc_memory *m, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void p2p_unmap(const struct bc_memory *m, void *p, size_t len)
{
	(void)m;
	munmap(p, len);
}

static const struct bc_memory_ops p2p_ops = { .map = p2p_map, .unmap = p2p_unmap };

void bc_p2p_close(struct bc_p2p *p)
{
	if (!p)
		return;
	if (p->memory.fd >= 0)
		close(p->memory.fd);
	free(p);
}

/* ------------------------------------------------------------------------ */
/* Choosing the memory and checking the ends                                */

static const char *name_of(const struct blkcopy_dev *d)
{
	const char *slash = strrchr(d->path, '/');

	return slash ? slash + 1 : d->path;
}

/* Why @d's memory cannot serve: into @out (appended after @sep). */
static void why_not_provider(const struct blkcopy_dev *d, int ret,
			     const struct blkcopy_p2p_info *info, char *out, size_t size,
			     const char *sep)
{
	const size_t used = strlen(out);

	if (ret)
		snprintf(out + used, size - used, "%s%s is not on a PCI device", sep, name_of(d));
	else if (!info->has_memory)
		snprintf(out + used, size - used, "%s%s (%s) has no P2P memory", sep, name_of(d),
			 info->pci);
	else
		snprintf(out + used, size - used, "%s%s (%s) has P2P memory the kernel did not "
			 "publish", sep, name_of(d), info->pci);
}

/* The memory @which names, opened: 0, or -EOPNOTSUPP with the reason on @dst. */
static int choose(struct blkcopy_dev *src, struct blkcopy_dev *dst, uint64_t which,
		  struct bc_p2p *p)
{
	struct blkcopy_dev *cand[2] = { src, dst };
	char dir[PATH_MAX], path[PATH_MAX + 16], why[sizeof(dst->error)] = "";
	struct blkcopy_p2p_info info;
	size_t first = which == BLKCOPY_P2P_DST ? 1 : 0;
	size_t last = which == BLKCOPY_P2P_SRC ? 0 : 1;

	for (size_t i = first; i <= last; i++) {
		const int ret = info_of(cand[i], &info, dir, sizeof(dir));

		if (!ret && info.published) {
			snprintf(path, sizeof(path), "%s/p2pmem/allocate", dir);
			p->memory.fd = open(path, O_RDWR | O_CLOEXEC);
			if (p->memory.fd < 0) {
				const int err = -errno;

				snprintf(dst->error, sizeof(dst->error), "cannot open the P2P memory "
					 "of %s: %s", info.pci, strerror(-err));
				return err;
			}
			p->memory.limit = info.available;
			snprintf(p->memory.name, sizeof(p->memory.name), "%s", info.pci);
			return 0;
		}
		why_not_provider(cand[i], ret, &info, why, sizeof(why), i == first ? "" : ", and ");
	}
	snprintf(dst->error, sizeof(dst->error), "no P2P memory to stage the copy in: %s", why);
	return -EOPNOTSUPP;
}

/* The PCI path of @d below the root complex, and what joins it to @mem_dir: for a refusal. */
static void explain_refused(struct blkcopy_dev *d, const struct bc_p2p *p, int err)
{
	char dir[PATH_MAX], mem_dir[PATH_MAX];
	struct blkcopy_p2p_info info;
	const char *how;

	if (info_of(d, &info, dir, sizeof(dir))) {
		snprintf(d->error, sizeof(d->error), "%s is not on a PCI device: P2P memory is "
			 "reached by PCI DMA only", name_of(d));
		return;
	}
	snprintf(mem_dir, sizeof(mem_dir), "%s/%s", PCI_DEVICES, p->memory.name);
	char real[PATH_MAX];
	if (!realpath(mem_dir, real))
		snprintf(real, sizeof(real), "%s", mem_dir);
	/* The deepest sysfs directory both paths share: a bridge, or the root complex. */
	size_t common = 0, joint = 0;
	for (size_t i = 0; dir[i] && dir[i] == real[i]; i++)
		if (dir[i] == '/')
			common = i;
	for (joint = common; joint && dir[joint - 1] != '/'; joint--)
		;
	if (strcmp(dir, real) == 0)
		how = "";
	else if (is_pci_address(dir + joint, common - joint))
		how = strcmp(info.driver, "nvme") ? ": its driver does not take P2P memory" : "";
	else
		how = ": they meet only at the host bridge (Linux allows P2P DMA below one PCIe "
		      "switch, or through a host bridge it knows)";
	snprintf(d->error, sizeof(d->error), "the kernel refused DMA between %s (%s, driver %s) "
		 "and the P2P memory of %s (%s)%s", name_of(d), info.pci, info.driver, p->memory.name,
		 strerror(-err), how);
}

/*
 * One block of @d at @off read into the memory, twice over (a verifying
 * engine of @d onto itself reads it as source and as destination): the
 * path a copy takes, and nothing is written.
 */
static int probe(struct blkcopy_dev *d, uint64_t off, uint32_t align, const struct bc_p2p *p)
{
	const struct bc_emu_params ep = {
		.queue_depth = 4,
		.max_inflight = 2 * PROBE_PAGE,
		.chunk_size = PROBE_PAGE,
		.expected_bytes = align,
		.direct = true,
		.verify = true,
		.dst_off = off,
		.memory = &p->memory,
	};
	const struct bc_span span = { .src = off, .len = align };
	struct bc_emu *e;
	uint64_t done, low;
	int ret, err;

	ret = bc_emu_create(d, d, &ep, &e);
	if (ret)
		return ret;
	ret = bc_emu_add(e, &span, 1, off, false);
	while (!ret && (ret = bc_emu_run(e, -1)) != 1)
		if (ret == -EINTR)
			ret = 0;
	if (ret == 1) {
		bc_emu_dst_state(e, 0, &done, &low, &err);
		ret = err;
	}
	bc_emu_destroy(e);
	return ret;
}

int bc_p2p_open(struct blkcopy_dev *src, const struct bc_span *spans, size_t nr_spans,
		const struct blkcopy_target *t, size_t nr_targets, uint64_t which,
		struct bc_p2p **pp)
{
	uint32_t align = src->dio_align;
	struct bc_p2p *p;
	int ret;

	if (which > BLKCOPY_P2P_DST || !nr_spans || !nr_targets)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->memory = (struct bc_memory){ .ops = &p2p_ops, .fd = -1 };
	ret = choose(src, t[0].dev, which, p);
	if (ret)
		goto fail;
	for (size_t i = 0; i < nr_targets; i++)
		align = t[i].dev->dio_align > align ? t[i].dev->dio_align : align;
	/* The source's first block, then each destination's: whichever cannot reach the memory. */
	for (size_t i = 0; i <= nr_targets; i++) {
		struct blkcopy_dev *d = i ? t[i - 1].dev : src;

		ret = probe(d, i ? t[i - 1].offset : spans[0].src, align, p);
		if (ret == -EREMOTEIO) {
			explain_refused(d, p, ret);
			ret = -EOPNOTSUPP;
		}
		if (ret)
			goto fail;
	}
	*pp = p;
	return 0;
fail:
	bc_p2p_close(p);
	return ret;
}
