/*
 * zdtm/vdso: the vDSO stays where the task's code expects it, with its data
 * pages in the same layout, and the clocks it reads agree with the kernel's.
 *
 * At start it records AT_SYSINFO_EHDR and the [vvar], [vvar_vclock] and
 * [vdso] ranges; they must be unchanged (the image at AT_SYSINFO_EHDR still
 * an ELF). Then, for each clock, a vDSO read, a raw syscall and a vDSO read
 * again must be ordered and close: a vDSO reading another data page (for
 * example the host's instead of a time namespace's) would disagree.
 * gettimeofday, time and getcpu are compared the same way.
 */
#include "../wl.h"

#include <sched.h>
#include <sys/auxv.h>
#include <sys/time.h>

struct range {
	const char *name;
	unsigned long long lo, hi;
};
static struct range r0[3] = {{"[vvar]", 0, 0}, {"[vvar_vclock]", 0, 0}, {"[vdso]", 0, 0}};
static unsigned long base0;

static void read_ranges(struct range *r)
{
	static char buf[1 << 20];
	if (wl_read_file("/proc/self/maps", buf, sizeof(buf)) < 0)
		wl_die("read maps");
	for (char *line = buf, *next; line && *line; line = next) {
		unsigned long long lo, hi;
		char *name;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		name = strrchr(line, ' ');
		if (!name || sscanf(line, "%llx-%llx", &lo, &hi) != 2)
			continue;
		for (int i = 0; i < 3; i++)
			if (strcmp(name + 1, r[i].name) == 0) {
				r[i].lo = lo;
				r[i].hi = hi;
			}
	}
}

static uint64_t ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

/* clock_one reads clock c through the vDSO, the system call, the vDSO, and
 * says what is wrong with the three readings, or NULL. */
static const char *clock_one(clockid_t c, int coarse, uint64_t v[3])
{
	struct timespec a, b, d;
	clock_gettime(c, &a);
	if (syscall(SYS_clock_gettime, c, &b) != 0)
		return strerror(errno);
	clock_gettime(c, &d);
	v[0] = ns(&a), v[1] = ns(&b), v[2] = ns(&d);
	/* 100 us of slack for rounding between the two read paths; a vDSO
	 * reading the wrong data page is off by far more. */
	if (!coarse && (v[0] > v[1] + 100000 || v[1] > v[2] + 100000))
		return "not ordered";
	if (v[2] - v[0] > 200000000ull ||
	    (coarse && (v[1] + 50000000ull < v[0] || v[1] > v[2] + 50000000ull)))
		return "disagree";
	return NULL;
}

/* check_clock fails only if several readings in a row are wrong: a vDSO
 * reading the wrong data page is wrong every time, while a host that
 * stalls the VM between two reads (or steps CLOCK_REALTIME) spoils one. */
static void check_clock(clockid_t c, const char *name, int coarse)
{
	uint64_t v[3] = {0};
	const char *why = NULL;
	for (int try = 0; try < 5; try++) {
		why = clock_one(c, coarse, v);
		if (!why)
			return;
	}
	wl_failf("%s: vDSO %" PRIu64 ", syscall %" PRIu64 ", vDSO %" PRIu64 ": %s (5 tries in a row)", name,
		 v[0], v[1], v[2], why);
}

static void check_all(void)
{
	struct timeval tv, tv2;
	time_t t1, t2;
	unsigned cpu = 0;
	check_clock(CLOCK_MONOTONIC, "CLOCK_MONOTONIC", 0);
	check_clock(CLOCK_REALTIME, "CLOCK_REALTIME", 0);
	check_clock(CLOCK_BOOTTIME, "CLOCK_BOOTTIME", 0);
	check_clock(CLOCK_MONOTONIC_RAW, "CLOCK_MONOTONIC_RAW", 0);
	check_clock(CLOCK_MONOTONIC_COARSE, "CLOCK_MONOTONIC_COARSE", 1);
	check_clock(CLOCK_REALTIME_COARSE, "CLOCK_REALTIME_COARSE", 1);
	gettimeofday(&tv, NULL);
	syscall(SYS_gettimeofday, &tv2, NULL);
	if (tv2.tv_sec - tv.tv_sec > 1 || tv2.tv_sec < tv.tv_sec)
		wl_failf("gettimeofday: vDSO %ld s, syscall %ld s", (long)tv.tv_sec, (long)tv2.tv_sec);
	t1 = time(NULL);
#ifdef SYS_time
	t2 = (time_t)syscall(SYS_time, NULL);
#else
	t2 = t1;
#endif
	if (t2 - t1 > 1 || t2 < t1)
		wl_failf("time: vDSO %ld, syscall %ld", (long)t1, (long)t2);
	if (syscall(SYS_getcpu, &cpu, NULL, NULL) != 0 || sched_getcpu() < 0)
		wl_failf("getcpu: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	struct range r1[3] = {{"[vvar]", 0, 0}, {"[vvar_vclock]", 0, 0}, {"[vdso]", 0, 0}};
	wl_init(argc, argv, NULL);
	base0 = getauxval(AT_SYSINFO_EHDR);
	read_ranges(r0);
	if (base0 == 0 || r0[2].lo != base0)
		wl_die("AT_SYSINFO_EHDR %#lx is not the [vdso] start %#llx", base0, r0[2].lo);
	check_all();
	if (wl.nfail)
		wl_die("vDSO checks fail before any move: %s", wl.fail);
	wl_ready();
	wl_loop(10000000ull, check_all);

	if (wl.corrupt)
		r0[0].lo += 4096;
	wl_check_common();
	read_ranges(r1);
	for (int i = 0; i < 3; i++)
		if (r1[i].lo != r0[i].lo || r1[i].hi != r0[i].hi)
			wl_failf("%s is %llx-%llx, was %llx-%llx", r0[i].name, r1[i].lo, r1[i].hi, r0[i].lo,
				 r0[i].hi);
	if (getauxval(AT_SYSINFO_EHDR) != base0)
		wl_failf("AT_SYSINFO_EHDR changed");
	if (memcmp((const void *)base0, "\177ELF", 4) != 0)
		wl_failf("no ELF image at the vDSO address %#lx", base0);
	check_all();
	wl_fieldf("vdso", "%#lx", base0);
	wl_exit();
}
