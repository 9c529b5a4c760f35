/*
 * zdtm/maps: many kinds of mappings keep their place, size, protection,
 * file identity and contents.
 *
 *   anon        private anonymous, filled
 *   holes       8 pages with pages 3-4 unmapped (two VMAs)
 *   fixed       2 pages MAP_FIXED inside a 64 MiB PROT_NONE reservation
 *   sparse      256 MiB MAP_NORESERVE, every 1000th page written
 *   dontneed    16 pages, the middle 8 MADV_DONTNEED'd (zero again)
 *   remapped    a mapping grown with mremap (MREMAP_MAYMOVE)
 *   file        a private read-only mapping of a file (never written)
 *   file-ofs    a private mapping at a file offset of 3 pages, written to
 *
 * Each region's /proc/self/maps line (range, perms, offset, device, inode,
 * path) is recorded at start and must be identical at the end.
 */
#include "../wl.h"

#include <sys/mman.h>

#define NREG 10

struct vma {
	unsigned long long lo, hi, off;
	char perms[5], dev[16], path[256];
	unsigned long inode;
};

static long page;
static struct reg {
	const char *name;
	char *addr;
	size_t len;
	struct vma vma;
} regs[NREG];
static int nregs;
static char *sparse, *dont, *anon;
static int hole_mapped;

/* find_vma parses the /proc/self/maps line whose range contains addr. */
static int find_vma(const void *addr, struct vma *v)
{
	static char buf[1 << 20];
	uintptr_t a = (uintptr_t)addr;
	if (wl_read_file("/proc/self/maps", buf, sizeof(buf)) < 0)
		return -1;
	for (char *line = buf, *next; line && *line; line = next) {
		int pos = 0;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		memset(v, 0, sizeof(*v));
		if (sscanf(line, "%llx-%llx %4s %llx %15s %lu %n", &v->lo, &v->hi, v->perms, &v->off,
			   v->dev, &v->inode, &pos) >= 6 &&
		    a >= v->lo && a < v->hi) {
			snprintf(v->path, sizeof(v->path), "%.255s", line + pos);
			return 0;
		}
	}
	return -1;
}

static void add(const char *name, void *addr, size_t len)
{
	struct reg *r = &regs[nregs++];
	r->name = name;
	r->addr = addr;
	r->len = len;
	if (find_vma(addr, &r->vma) != 0)
		wl_die("%s not in /proc/self/maps", name);
}

/* same: the region is still covered by one VMA with the same protection,
 * file, and file offset at the region's start (neighbours may merge). */
static void check_reg(struct reg *r)
{
	struct vma now, *was = &r->vma;
	uintptr_t a = (uintptr_t)r->addr;
	if (find_vma(r->addr, &now) != 0) {
		wl_failf("%s at %p is no longer mapped", r->name, (void *)r->addr);
		return;
	}
	if (now.hi < a + r->len)
		wl_failf("%s: VMA %llx-%llx no longer covers %p+%#zx", r->name, now.lo, now.hi,
			 (void *)r->addr, r->len);
	else if (strcmp(now.perms, was->perms) != 0)
		wl_failf("%s: protection %s, was %s", r->name, now.perms, was->perms);
	else if (was->inode != 0 && now.off + (a - now.lo) != was->off + (a - was->lo))
		wl_failf("%s: file offset %#llx, was %#llx", r->name, now.off + (a - now.lo),
			 was->off + (a - was->lo));
	else if (strcmp(now.dev, was->dev) != 0 || now.inode != was->inode ||
		 strcmp(now.path, was->path) != 0)
		wl_failf("%s: backing file is %s %lu \"%s\", was %s %lu \"%s\"", r->name, now.dev,
			 now.inode, now.path, was->dev, was->inode, was->path);
}

static void *map(void *hint, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(hint, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		wl_die("mmap: %s", strerror(errno));
	return p;
}

static int make_file(const char *name, size_t len, uint64_t seed)
{
	char path[4096];
	char *buf = malloc(len);
	int fd;
	wl_path(path, sizeof(path), name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	wl_fill(buf, len, seed, 0);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		wl_die("write %s", path);
	free(buf);
	return fd;
}

int main(int argc, char **argv)
{
	char *holes, *resv, *fixed, *rem, *fmap, *fofs;
	int fd;

	wl_init(argc, argv, NULL);
	page = sysconf(_SC_PAGESIZE);

	anon = map(NULL, 64 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wl_fill(anon, 64 * page, 11, 0);
	add("anon", anon, 64 * page);

	holes = map(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wl_fill(holes, 8 * page, 12, 0);
	if (munmap(holes + 3 * page, 2 * page) != 0)
		wl_die("munmap");
	add("holes-low", holes, 3 * page);
	add("holes-high", holes + 5 * page, 3 * page);

	resv = map(NULL, 64 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	fixed = map(resv + (32 << 20), 2 * page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	wl_fill(fixed, 2 * page, 13, 0);
	add("reservation", resv, 32 << 20);
	add("fixed", fixed, 2 * page);

	sparse = map(NULL, 256 << 20, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	for (size_t off = 0; off < (256 << 20); off += 1000 * (size_t)page)
		wl_fill(sparse + off, 64, 14, off / 8);
	add("sparse", sparse, 256 << 20);

	dont = map(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wl_fill(dont, 16 * page, 15, 0);
	if (madvise(dont + 4 * page, 8 * page, MADV_DONTNEED) != 0)
		wl_die("madvise");
	add("dontneed", dont, 16 * page);

	rem = map(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wl_fill(rem, 4 * page, 16, 0);
	rem = mremap(rem, 4 * page, 12 * page, MREMAP_MAYMOVE);
	if (rem == MAP_FAILED)
		wl_die("mremap: %s", strerror(errno));
	wl_fill(rem + 4 * page, 8 * page, 16, 4 * (uint64_t)page / 8);
	add("remapped", rem, 12 * page);

	fd = make_file("maps-ro.dat", 8 * page, 17);
	fmap = map(NULL, 8 * page, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	add("file", fmap, 8 * page);

	fd = make_file("maps-ofs.dat", 8 * page, 18);
	fofs = map(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 3 * page);
	close(fd);
	fofs[1 * page] = 'x';
	add("file-offset", fofs, 4 * page);

	{
		struct vma v;
		hole_mapped = find_vma(holes + 3 * page, &v) == 0;
	}
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		anon[page + 7] ^= 1;
	wl_check_common();
	for (int i = 0; i < nregs; i++)
		check_reg(&regs[i]);
	{
		struct vma v;
		if ((find_vma(holes + 3 * page, &v) == 0) != hole_mapped)
			wl_failf("the hole at %p was %s and is now %s", (void *)(holes + 3 * page),
				 hole_mapped ? "mapped" : "unmapped", hole_mapped ? "unmapped" : "mapped");
	}
	wl_check("anon", anon, 64 * page, 11, 0);
	wl_check("holes-low", holes, 3 * page, 12, 0);
	wl_check("holes-high", holes + 5 * page, 3 * page, 12, 5 * (uint64_t)page / 8);
	wl_check("fixed", fixed, 2 * page, 13, 0);
	for (size_t off = 0; off < (256 << 20); off += (size_t)page) {
		if (off % (1000 * (size_t)page) == 0) {
			if (wl_check("sparse written page", sparse + off, 64, 14, off / 8) != 0)
				break;
		} else if (sparse[off] != 0) {
			wl_failf("sparse: untouched page at %#zx is not zero", off);
			break;
		}
	}
	wl_check("dontneed head", dont, 4 * page, 15, 0);
	wl_check("dontneed tail", dont + 12 * page, 4 * page, 15, 12 * (uint64_t)page / 8);
	for (long i = 4 * page; i < 12 * page; i++)
		if (dont[i] != 0) {
			wl_failf("MADV_DONTNEED'd byte %ld is %#x, not zero", i, dont[i]);
			break;
		}
	wl_check("remapped", rem, 12 * page, 16, 0);
	wl_check("file", fmap, 8 * page, 17, 0);
	if (fofs[page] != 'x')
		wl_failf("file-offset: written byte lost");
	wl_check("file-offset page 0", fofs, page, 18, 3 * (uint64_t)page / 8);
	wl_check("file-offset page 2-3", fofs + 2 * page, 2 * page, 18, 5 * (uint64_t)page / 8);
	wl_fieldf("regions", "%d", nregs);
	wl_exit();
}
