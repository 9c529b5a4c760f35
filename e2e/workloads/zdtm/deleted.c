/*
 * zdtm/deleted: files that were unlinked while open or mapped survive with
 * their contents.
 *
 *   fd   a 64 KiB file, opened O_RDWR, unlinked, its offset left at 12345
 *   map  an 8-page file mapped MAP_SHARED, unlinked and closed; pages 2-3
 *        rewritten through the mapping
 *
 * After the move: the fd still refers to an unlinked file (st_nlink 0,
 * "(deleted)" in /proc/self/fd) with the same size, offset and bytes, and it
 * still takes writes; the mapping keeps every byte and still names a
 * deleted file in /proc/self/maps.
 */
#include "../wl.h"

#include <sys/mman.h>

#define FSIZE 65536
#define OFF 12345

static long page;

static int make(const char *name, size_t len, uint64_t seed, char *path, size_t n)
{
	char *buf = malloc(len);
	int fd;
	wl_path(path, n, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	wl_fill(buf, len, seed, 0);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		wl_die("write %s", path);
	free(buf);
	if (unlink(path) != 0)
		wl_die("unlink %s", path);
	return fd;
}

int main(int argc, char **argv)
{
	char path[4096], link[4096], link0[4096];
	char *map, *buf;
	struct stat st;
	ssize_t ln;
	int fd, mfd;

	wl_init(argc, argv, NULL);
	page = sysconf(_SC_PAGESIZE);
	fd = make("deleted-fd.dat", FSIZE, 41, path, sizeof(path));
	if (lseek(fd, OFF, SEEK_SET) != OFF)
		wl_die("lseek");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	memset(link0, 0, sizeof(link0));
	if (readlink(link, link0, sizeof(link0) - 1) <= 0)
		wl_die("readlink");

	mfd = make("deleted-map.dat", 8 * page, 42, path, sizeof(path));
	map = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (map == MAP_FAILED)
		wl_die("mmap");
	close(mfd);
	wl_fill(map + 2 * page, 2 * page, 43, 0);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		lseek(fd, 0, SEEK_SET);
	wl_check_common();
	if (fstat(fd, &st) != 0 || st.st_nlink != 0 || st.st_size != FSIZE)
		wl_failf("deleted fd: nlink %lu size %lld, expected 0 and %d", (unsigned long)st.st_nlink,
			 (long long)st.st_size, FSIZE);
	if (lseek(fd, 0, SEEK_CUR) != OFF)
		wl_failf("deleted fd: offset %lld, expected %d", (long long)lseek(fd, 0, SEEK_CUR), OFF);
	memset(path, 0, sizeof(path));
	ln = readlink(link, path, sizeof(path) - 1);
	if (ln <= 0 || strcmp(path, link0) != 0)
		wl_failf("%s is \"%s\", was \"%s\"", link, path, link0);
	buf = malloc(FSIZE);
	if (pread(fd, buf, FSIZE, 0) != FSIZE)
		wl_failf("deleted fd: pread: %s", strerror(errno));
	else
		wl_check("deleted fd content", buf, FSIZE, 41, 0);
	if (write(fd, "tail", 4) != 4 || pread(fd, buf, 4, OFF) != 4 || memcmp(buf, "tail", 4) != 0)
		wl_failf("deleted fd no longer takes writes at its offset");
	wl_check("deleted mapping pages 0-1", map, 2 * page, 42, 0);
	wl_check("deleted mapping pages 2-3 (written)", map + 2 * page, 2 * page, 43, 0);
	wl_check("deleted mapping pages 4-7", map + 4 * page, 4 * page, 42, 4 * (uint64_t)page / 8);
	{
		char perms[5] = "";
		if (wl_maps_perms(map, perms) != 0 || strcmp(perms, "rw-s") != 0)
			wl_failf("deleted mapping is %s, expected rw-s", perms);
	}
	free(buf);
	wl_exit();
}
