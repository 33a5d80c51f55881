// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC's digest table out of the heap (lp_toc_spill_digests()): a big
 * TOC's SHA-256 digests (32 bytes per chunk, a third of what a file with
 * content costs in memory) move to an unlinked file (lp_file_open_unlinked()),
 * read back with one pread() of the digest's 4 KiB page when a chunk is
 * fetched and verified or looked up in the disk tier. The kernel keeps the table in its page cache while there
 * is memory for it and drops it (it is clean once written back) when there
 * is not, where heap pages of a daemon without swap stay forever. A read
 * never waits for anything slower than a read of a local file: the table
 * is written whole before the TOC is shared, never over the network.
 * Small tables stay in memory (LP_TOC_SPILL_MIN): a node with many small
 * layers holds no file per layer; a spilled table holds one descriptor and
 * no mapping (docs/architecture.md, "FUSE filesystem").
 *
 * What comes back is checked: a CRC-32 per 4 KiB page of the table (4 bytes
 * in memory per 128 digests), computed from the table in memory before it
 * is freed, and a read fetches the digest's whole page and compares (-EIO
 * on a mismatch). Chosen over fallocate() + fdatasync() at spill time: a
 * sync of a table of tens of MiB costs the mount its time budget on a busy
 * disk and covers only errors the kernel reports at writeback, where the
 * checksum also catches a page that was lost after a failed writeback (it
 * reads back as zeros or stale bytes) or that changed on the disk, and
 * costs a 4 KiB read and a CRC (about a microsecond) per digest read, next
 * to a chunk fetch that decompresses and hashes the chunk. A mismatch is a
 * local read error, never a digest mismatch blamed on the registry.
 */
#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <isa-l/crc.h>

#include "lp_io.h"
#include "toc_fault.h"
#include "toc_int.h"

/* where a table goes when the caller names no directory */
#define SPILL_DEFAULT_DIR "/var/tmp"

atomic_uint lp_toc_spill_reads, lp_toc_spill_fail_from, lp_toc_spill_fail_to;

/* the bytes of page @p of @toc's spilled table (at most TOC_SPILL_PAGE) */
static size_t spill_page_len(const struct lp_toc *toc, size_t p)
{
	size_t len = (size_t)toc->nr_digests * sizeof(struct lp_digest);

	return (size_t)lp_min_u64(len - p * TOC_SPILL_PAGE, TOC_SPILL_PAGE);
}

/* the CRC-32 of gzip (zlib's crc32()), by ISA-L: carry-less multiplies,
   about ten times zlib's speed (a 20 MiB table in 1 ms, not 10) */
static uint32_t spill_crc(const void *buf, size_t len)
{
	return crc32_gzip_refl(0, buf, len);
}

int toc_digest_get(const struct lp_toc *toc, uint32_t d, struct lp_digest *ret)
{
	uint8_t page[TOC_SPILL_PAGE];
	size_t got = 0, p, len, at;
	unsigned int nr;
	ssize_t n;

	if (d >= toc->nr_digests)
		return 0;
	if (toc->digests) {
		*ret = toc->digests[d];
		return 1;
	}
	nr = atomic_fetch_add_explicit(&lp_toc_spill_reads, 1,
				       memory_order_relaxed);
	if (nr >= atomic_load_explicit(&lp_toc_spill_fail_from,
				       memory_order_relaxed) &&
	    nr < atomic_load_explicit(&lp_toc_spill_fail_to,
				      memory_order_relaxed))
		return -EIO; /* toc_fault.h: a test's failing disk */
	at = (size_t)d * sizeof(*ret);
	p = at / TOC_SPILL_PAGE;
	len = spill_page_len(toc, p);
	while (got < len) {
		n = pread(toc->dig_fd, page + got, len - got,
			  (off_t)(p * TOC_SPILL_PAGE + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno ? -errno : -EIO;
		if (n == 0)
			return -EIO; /* short: the table was written whole */
		got += (size_t)n;
	}
	if (spill_crc(page, len) != toc->dig_sums[p])
		return -EIO; /* not what was written (a lost writeback) */
	memcpy(ret, page + (at - p * TOC_SPILL_PAGE), sizeof(*ret));
	return 1;
}

int lp_toc_spill_digests(struct lp_toc *toc, const char *dir, size_t min_bytes,
			 struct lp_err *err)
{
	size_t len = (size_t)toc->nr_digests * sizeof(*toc->digests), off = 0;
	const char *env = getenv("TMPDIR");
	struct statfs fs;
	uint32_t *sums = NULL;
	size_t nr_pages, p;
	ssize_t n;
	int fd = -1, r;

	if (!toc->digests || !len || len < min_bytes)
		return 0;
	nr_pages = (len + TOC_SPILL_PAGE - 1) / TOC_SPILL_PAGE;
	sums = malloc(nr_pages * sizeof(*sums));
	if (!sums) {
		r = lp_err_set(err, -ENOMEM, "digest table checksums");
		goto out;
	}
	for (p = 0; p < nr_pages; p++)
		sums[p] = spill_crc((const uint8_t *)toc->digests +
					    p * TOC_SPILL_PAGE,
				    (size_t)lp_min_u64(len - p * TOC_SPILL_PAGE,
						       TOC_SPILL_PAGE));
	if (!dir)
		dir = env && *env ? env : SPILL_DEFAULT_DIR;
	fd = lp_file_open_unlinked(dir, ".lazypull-digests");
	if (fd < 0) {
		r = lp_err_set(err, fd, "digest table in %s: %s", dir,
			       strerror(-fd));
		fd = -1;
		goto out;
	}
	/* memory-backed: the table would cost the same memory, unswappable */
	if (fstatfs(fd, &fs) == 0 &&
	    (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)) {
		r = 0;
		goto out;
	}
	while (off < len) {
		n = write(fd, (const uint8_t *)toc->digests + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = lp_err_set(err, n < 0 ? -errno : -EIO,
				       "digest table in %s: %s", dir,
				       n < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)n;
	}
	free(toc->digests);
	toc->digests = NULL;
	toc->dig_fd = fd;
	toc->dig_sums = sums;
	sums = NULL;
	fd = -1;
	r = 1;
out:
	if (fd >= 0)
		close(fd);
	free(sums);
	return r;
}
