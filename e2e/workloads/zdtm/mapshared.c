/*
 * zdtm/mapshared: a MAP_SHARED mapping of a regular file stays shared with
 * the file. Pages written through the mapping before the move must be in
 * the file; after the move a write through the mapping must reach the file
 * (pread) and a pwrite to the file must show in the mapping: a restore that
 * made the mapping a private copy fails both.
 */
#include "../wl.h"

#include <sys/mman.h>

#define NP 8

int main(int argc, char **argv)
{
	char path[4096];
	long page;
	char *map, *buf;
	int fd;

	wl_init(argc, argv, NULL);
	page = sysconf(_SC_PAGESIZE);
	buf = malloc(NP * page);
	wl_fill(buf, NP * page, 51, 0);
	wl_path(path, sizeof(path), "shared.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, NP * page) != NP * page)
		wl_die("write %s", path);
	map = mmap(NULL, NP * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		wl_die("mmap: %s", strerror(errno));
	close(fd);
	wl_fill(map + 2 * page, 2 * page, 52, 0); /* pages 2-3 through the mapping */
	wl_ready();
	wl_loop(10000000ull, NULL);

	wl_check_common();
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		wl_failf("open %s: %s", path, strerror(errno));
		wl_exit();
	}
	if (pread(fd, buf, NP * page, 0) != NP * page)
		wl_failf("pread: %s", strerror(errno));
	wl_check("file pages 0-1", buf, 2 * page, 51, 0);
	wl_check("file pages 2-3 (written through the mapping)", buf + 2 * page, 2 * page, 52, 0);
	wl_check("file pages 4-7", buf + 4 * page, 4 * page, 51, 4 * (uint64_t)page / 8);
	wl_check("mapping pages 2-3", map + 2 * page, 2 * page, 52, 0);

	/* after the move, both directions */
	if (!wl.corrupt)
		map[5 * page + 17] = 'M';
	if (pwrite(fd, "F", 1, 6 * page + 33) != 1)
		wl_failf("pwrite: %s", strerror(errno));
	if (pread(fd, buf, 1, 5 * page + 17) != 1 || buf[0] != 'M')
		wl_failf("a write through the mapping did not reach the file");
	if (map[6 * page + 33] != 'F')
		wl_failf("a write to the file did not show in the mapping");
	close(fd);
	wl_exit();
}
