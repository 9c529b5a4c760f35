/*
 * zdtm/mprotect: one mapping split by mprotect into pages of every
 * protection keeps each page's protection and contents, and the protection
 * is enforced: reading PROT_NONE and writing read-only pages fault; the
 * executable page (x86: "mov $42, %eax; ret") still runs.
 */
#include "../wl.h"

#include <setjmp.h>
#include <sys/mman.h>

#define NP 8

static long page;
static char *reg;
static const struct {
	int prot;
	const char *perms;
} pages[NP] = {
	{PROT_READ | PROT_WRITE, "rw-p"}, {PROT_READ, "r--p"},
	{PROT_NONE, "---p"},		  {PROT_READ | PROT_EXEC, "r-xp"},
	{PROT_READ | PROT_WRITE, "rw-p"}, {PROT_NONE, "---p"},
	{PROT_READ, "r--p"},		  {PROT_READ | PROT_WRITE | PROT_EXEC, "rwxp"},
};

static sigjmp_buf env;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(env, 1);
}

static int faults(volatile char *p, int write)
{
	if (sigsetjmp(env, 1) != 0)
		return 1;
	if (write)
		*p = *p;
	else
		(void)*p;
	return 0;
}

#if defined(__x86_64__) || defined(__i386__)
static const unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3}; /* mov $42,%eax; ret */
#define HAVE_CODE 1
#endif

int main(int argc, char **argv)
{
	struct sigaction sa;
	wl_init(argc, argv, NULL);
	page = sysconf(_SC_PAGESIZE);
	reg = mmap(NULL, NP * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (reg == MAP_FAILED)
		wl_die("mmap");
	wl_fill(reg, NP * page, 21, 0);
#ifdef HAVE_CODE
	memcpy(reg + 3 * page, code, sizeof(code));
#endif
	for (int i = 0; i < NP; i++)
		if (mprotect(reg + i * page, page, pages[i].prot) != 0)
			wl_die("mprotect page %d: %s", i, strerror(errno));
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		mprotect(reg + 1 * page, page, PROT_READ | PROT_WRITE);
	wl_check_common();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	for (int i = 0; i < NP; i++) {
		char perms[5];
		char *p = reg + i * page;
		if (wl_maps_perms(p, perms) != 0 || strcmp(perms, pages[i].perms) != 0) {
			wl_failf("page %d is %s, expected %s", i, perms, pages[i].perms);
			continue;
		}
		if ((pages[i].prot & PROT_READ) == 0) {
			if (!faults(p, 0))
				wl_failf("page %d (%s): read did not fault", i, pages[i].perms);
			continue;
		}
		if (faults(p, 0))
			wl_failf("page %d (%s): read faulted", i, pages[i].perms);
		if (faults(p, 1) != !(pages[i].prot & PROT_WRITE))
			wl_failf("page %d (%s): write %s", i, pages[i].perms,
				 (pages[i].prot & PROT_WRITE) ? "faulted" : "did not fault");
		if (i == 3) {
#ifdef HAVE_CODE
			if (memcmp(p, code, sizeof(code)) != 0)
				wl_failf("code page changed");
			else if (((int (*)(void))(void *)p)() != 42)
				wl_failf("code page did not return 42");
			wl_check("code page tail", p + 8, page - 8, 21, (3 * (uint64_t)page + 8) / 8);
#endif
			continue;
		}
		wl_check(pages[i].perms, p, page, 21, i * (uint64_t)page / 8);
	}
	wl_exit();
}
