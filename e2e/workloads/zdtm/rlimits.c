/*
 * zdtm/rlimits: resource limits lowered to distinctive values stay as set.
 * Soft limits are lowered for most resources and some hard limits too
 * (lowering needs no privilege; root here lacks CAP_SYS_RESOURCE, so the
 * engine cannot simply raise them back either). Every limit is compared.
 */
#include "../wl.h"

#include <sys/resource.h>

#define NR RLIMIT_NLIMITS

static struct rlimit want[NR];

/* lower sets soft to min(soft, s) and, when h is not 0, hard to min(hard, h). */
static void lower(int r, rlim_t s, rlim_t h)
{
	struct rlimit l;
	if (getrlimit(r, &l) != 0)
		wl_die("getrlimit %d", r);
	if (h && (l.rlim_max == RLIM_INFINITY || l.rlim_max > h))
		l.rlim_max = h;
	if (l.rlim_cur == RLIM_INFINITY || l.rlim_cur > s)
		l.rlim_cur = s;
	if (l.rlim_cur > l.rlim_max)
		l.rlim_cur = l.rlim_max;
	if (setrlimit(r, &l) != 0)
		wl_die("setrlimit %d: %s", r, strerror(errno));
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, NULL);
	lower(RLIMIT_NOFILE, 777, 0);
	lower(RLIMIT_CORE, 12345 * 4096, 23456 * 4096);
	lower(RLIMIT_STACK, 7 << 20, 0);
	lower(RLIMIT_DATA, (rlim_t)3 << 30, 0);
	lower(RLIMIT_FSIZE, (rlim_t)1 << 30, (rlim_t)2 << 30);
	lower(RLIMIT_MSGQUEUE, 54321, 0);
	lower(RLIMIT_SIGPENDING, 4321, 0);
	lower(RLIMIT_LOCKS, 999, 1999);
	lower(RLIMIT_NICE, 3, 0);
	lower(RLIMIT_RTPRIO, 2, 0);
	lower(RLIMIT_RTTIME, 5000000, 0);
	lower(RLIMIT_MEMLOCK, 3 << 20, 0);
	for (int r = 0; r < NR; r++)
		if (getrlimit(r, &want[r]) != 0)
			wl_die("getrlimit %d", r);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		lower(RLIMIT_NOFILE, 555, 0);
	wl_check_common();
	for (int r = 0; r < NR; r++) {
		struct rlimit now;
		if (getrlimit(r, &now) != 0)
			wl_failf("getrlimit %d: %s", r, strerror(errno));
		else if (now.rlim_cur != want[r].rlim_cur || now.rlim_max != want[r].rlim_max)
			wl_failf("rlimit %d is %llu/%llu, was %llu/%llu", r,
				 (unsigned long long)now.rlim_cur, (unsigned long long)now.rlim_max,
				 (unsigned long long)want[r].rlim_cur, (unsigned long long)want[r].rlim_max);
	}
	wl_exit();
}
