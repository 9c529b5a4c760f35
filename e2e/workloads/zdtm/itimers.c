/*
 * zdtm/itimers: all three interval timers stay armed with their intervals
 * and keep firing: ITIMER_REAL (wall time), ITIMER_VIRTUAL (user CPU) and
 * ITIMER_PROF (user+system CPU). The loop burns CPU so the CPU timers run.
 * After the stop each interval must be unchanged, each remaining value no
 * larger than its interval, and each timer must fire again within a bound.
 */
#include "../wl.h"

#include <sys/time.h>

static const struct {
	int which;
	const char *name;
	long us;
	int sig;
} timers[3] = {
	{ITIMER_REAL, "ITIMER_REAL", 15000, SIGALRM},
	{ITIMER_VIRTUAL, "ITIMER_VIRTUAL", 7000, SIGVTALRM},
	{ITIMER_PROF, "ITIMER_PROF", 11000, SIGPROF},
};
static volatile sig_atomic_t fired[3];

static void on_timer(int sig)
{
	for (int i = 0; i < 3; i++)
		if (timers[i].sig == sig)
			fired[i]++;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	wl_init(argc, argv, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_timer;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++) {
		struct itimerval it;
		sigaction(timers[i].sig, &sa, NULL);
		it.it_interval.tv_sec = 0;
		it.it_interval.tv_usec = timers[i].us;
		it.it_value = it.it_interval;
		if (setitimer(timers[i].which, &it, NULL) != 0)
			wl_die("setitimer %s: %s", timers[i].name, strerror(errno));
	}
	wl_ready();
	wl_loop(5000000ull, wl_burn);

	if (wl.corrupt) {
		struct itimerval it = {{0, 0}, {0, 0}};
		setitimer(ITIMER_PROF, &it, NULL);
	}
	wl_check_common();
	for (int i = 0; i < 3; i++) {
		struct itimerval it;
		sig_atomic_t before = fired[i];
		uint64_t deadline;
		if (getitimer(timers[i].which, &it) != 0 || it.it_interval.tv_sec != 0 ||
		    it.it_interval.tv_usec != timers[i].us) {
			wl_failf("%s interval is %ld.%06ld s, expected %ld us", timers[i].name,
				 (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec, timers[i].us);
			continue;
		}
		/*
		 * The CPU timers' remaining value is computed from a sample of
		 * the process's CPU time that can lag the one their expiry was
		 * set from by a scheduler tick (seen: 11 ms left of a 7 ms
		 * ITIMER_VIRTUAL, never moved): allow one tick of 10 ms (HZ=100,
		 * the coarsest).
		 */
		long slack = timers[i].which == ITIMER_REAL ? 0 : 10000;
		if (it.it_value.tv_sec != 0 || it.it_value.tv_usec > timers[i].us + slack)
			wl_failf("%s has %ld.%06ld s left, more than its interval (and a tick)", timers[i].name,
				 (long)it.it_value.tv_sec, (long)it.it_value.tv_usec);
		deadline = wl_mono() + 5000000000ull;
		while (fired[i] == before && wl_mono() < deadline)
			wl_burn();
		if (fired[i] == before)
			wl_failf("%s no longer fires (%d times before)", timers[i].name, (int)before);
	}
	wl_fieldf("real", "%d", (int)fired[0]);
	wl_fieldf("virtual", "%d", (int)fired[1]);
	wl_fieldf("prof", "%d", (int)fired[2]);
	wl_exit();
}
