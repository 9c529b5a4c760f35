/*
 * zdtm/cwd: the working directory (a path with spaces and a non-ASCII name,
 * two levels below the work directory) is the same directory after a move:
 * same path from getcwd, same device and inode, and relative opens find the
 * file placed there.
 */
#include "../wl.h"

int main(int argc, char **argv)
{
	char dir[4096], sub[4096], cwd[4096];
	struct stat st0, st1;
	int fd;
	wl_init(argc, argv, NULL);
	wl_path(dir, sizeof(dir), "cwd d\xc3\xafr");
	wl_path(sub, sizeof(sub), "cwd d\xc3\xafr/sub");
	if (mkdir(dir, 0755) != 0 || mkdir(sub, 0755) != 0 || chdir(sub) != 0)
		wl_die("make and enter %s: %s", sub, strerror(errno));
	fd = open("marker", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "cwd-marker\n", 11) != 11)
		wl_die("write marker");
	close(fd);
	if (stat(".", &st0) != 0 || getcwd(sub, sizeof(sub)) == NULL)
		wl_die("stat .");
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt && chdir("..") != 0)
		wl_die("chdir ..");
	wl_check_common();
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		wl_failf("getcwd: %s", strerror(errno));
	else if (strcmp(cwd, sub) != 0)
		wl_failf("cwd is %s, was %s", cwd, sub);
	if (stat(".", &st1) != 0 || st1.st_dev != st0.st_dev || st1.st_ino != st0.st_ino)
		wl_failf("cwd is another directory (dev/inode changed)");
	{
		char buf[32] = "";
		fd = open("marker", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, buf, sizeof(buf) - 1) != 11 || strcmp(buf, "cwd-marker\n") != 0)
			wl_failf("relative open of marker failed: %s", fd < 0 ? strerror(errno) : "content");
		if (fd >= 0)
			close(fd);
	}
	wl_exit();
}
