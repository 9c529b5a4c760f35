/*
 * zdtm/umask: an unusual umask (0247) stays in force: umask() returns it and
 * a file created after the move gets the masked mode.
 */
#include "../wl.h"

#define MASK 0247

int main(int argc, char **argv)
{
	char path[4096];
	struct stat st;
	mode_t now;
	int fd;
	wl_init(argc, argv, NULL);
	umask(MASK);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		umask(022);
	wl_check_common();
	now = umask(MASK);
	if (now != MASK)
		wl_failf("umask is %04o, was %04o", (unsigned)now, MASK);
	wl_path(path, sizeof(path), "umask-probe");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0777);
	if (fd < 0 || fstat(fd, &st) != 0)
		wl_failf("create %s: %s", path, strerror(errno));
	else if ((st.st_mode & 0777) != (0777 & ~MASK))
		wl_failf("a file created with 0777 got %04o, expected %04o", (unsigned)(st.st_mode & 0777),
			 0777 & ~MASK);
	if (fd >= 0)
		close(fd);
	wl_exit();
}
