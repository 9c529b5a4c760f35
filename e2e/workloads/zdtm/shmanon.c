/*
 * zdtm/shmanon: shared anonymous memory stays shared. A MAP_SHARED |
 * MAP_ANONYMOUS region gets a second mapping of the same pages (mremap with
 * old_size 0); after the move a write through either must show through the
 * other, and the contents written before must be intact in both. A restore
 * that made them two private regions keeps the bytes but fails the writes.
 */
#include "../wl.h"

#include <sys/mman.h>

#define NP 16

int main(int argc, char **argv)
{
	long page;
	char *a, *b;
	wl_init(argc, argv, NULL);
	page = sysconf(_SC_PAGESIZE);
	a = mmap(NULL, NP * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		wl_die("mmap: %s", strerror(errno));
	b = mremap(a, 0, NP * page, MREMAP_MAYMOVE);
	if (b == MAP_FAILED)
		wl_die("mremap alias: %s", strerror(errno));
	wl_fill(a, NP * page, 61, 0);
	if (memcmp(a, b, NP * page) != 0)
		wl_die("alias does not share pages");
	wl_ready();
	wl_loop(10000000ull, NULL);

	wl_check_common();
	wl_check("first mapping", a, NP * page, 61, 0);
	wl_check("second mapping of the same pages", b, NP * page, 61, 0);
	a[3 * page + 5] = 'a';
	if (!wl.corrupt)
		b[9 * page + 7] = 'b';
	if (b[3 * page + 5] != 'a')
		wl_failf("a write through the first mapping does not show in the second");
	if (a[9 * page + 7] != 'b')
		wl_failf("a write through the second mapping does not show in the first");
	wl_exit();
}
