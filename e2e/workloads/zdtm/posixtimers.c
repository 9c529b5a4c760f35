/*
 * zdtm/posixtimers: POSIX timers (timer_create) keep their IDs, clocks,
 * notification and settings, and keep firing:
 *   t0  CLOCK_MONOTONIC, every 13 ms, SIGRTMIN+2 carrying the value 1001
 *   t1  CLOCK_REALTIME, one shot an hour ahead (never fires here)
 *   t2  created and deleted: its ID must stay free (a gap to recreate)
 *   t3  CLOCK_BOOTTIME, every 50 ms, SIGEV_NONE
 *   t4  CLOCK_MONOTONIC, every 17 ms, SIGRTMIN+4 to one thread (SIGEV_THREAD_ID)
 *   t5  the process's CPU clock, every 9 ms of CPU, SIGRTMIN+5
 * After the stop: every interval unchanged, remaining values no larger than
 * the interval (t1: within the hour), t2's ID not a timer, and each signal
 * timer fires again within a bound, with its value and timer ID, t4's on
 * its thread.
 */
#include "../wl.h"

#include <pthread.h>
#include <sys/syscall.h>

enum { T0, T1, T2, T3, T4, T5, NT };
static timer_t ids[NT];
static const long period_ns[NT] = {13000000, 0, 0, 50000000, 17000000, 9000000};
static volatile sig_atomic_t fired[NT], bad_value, bad_thread;
static volatile pid_t worker_tid;
static volatile int stop_worker;

static int which(int sig)
{
	if (sig == SIGRTMIN + 2)
		return T0;
	if (sig == SIGRTMIN + 4)
		return T4;
	if (sig == SIGRTMIN + 5)
		return T5;
	return -1;
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	int i = which(sig);
	(void)uc;
	if (i < 0)
		return;
	fired[i]++;
	if (si->si_code != SI_TIMER || si->si_timerid != (int)(intptr_t)ids[i])
		bad_value++;
	if (i == T0 && si->si_value.sival_int != 1001)
		bad_value++;
	if (i == T4 && (pid_t)syscall(SYS_gettid) != worker_tid)
		bad_thread++;
}

static void *worker(void *arg)
{
	sigset_t set;
	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	worker_tid = (pid_t)syscall(SYS_gettid);
	while (!stop_worker)
		wl_sleep_ns(1000000);
	return NULL;
}

static void make(int i, clockid_t clock, int notify, int sig, long long value_ns, long long interval_ns)
{
	struct sigevent sev;
	struct itimerspec its = {{(time_t)(interval_ns / 1000000000), (long)(interval_ns % 1000000000)},
				 {(time_t)(value_ns / 1000000000), (long)(value_ns % 1000000000)}};
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = notify;
	sev.sigev_signo = sig;
	if (i == T0)
		sev.sigev_value.sival_int = 1001;
	if (notify == SIGEV_THREAD_ID)
		sev._sigev_un._tid = worker_tid;
	if (timer_create(clock, &sev, &ids[i]) != 0)
		wl_die("timer_create t%d: %s", i, strerror(errno));
	if (value_ns && timer_settime(ids[i], 0, &its, NULL) != 0)
		wl_die("timer_settime t%d: %s", i, strerror(errno));
}

static long long ns(const struct timespec *t) { return (long long)t->tv_sec * 1000000000ll + t->tv_nsec; }

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t th;
	sigset_t set;
	wl_init(argc, argv, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_timer;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (int s = SIGRTMIN + 2; s <= SIGRTMIN + 5; s++)
		sigaction(s, &sa, NULL);
	/* Only the worker takes t4's signal. */
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&th, NULL, worker, NULL) != 0)
		wl_die("pthread_create");
	while (!worker_tid)
		wl_sleep_ns(1000000);

	make(T0, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 2, period_ns[T0], period_ns[T0]);
	make(T1, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 3, 3600000000000ll, 0);
	make(T2, CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0);
	make(T3, CLOCK_BOOTTIME, SIGEV_NONE, 0, period_ns[T3], period_ns[T3]);
	make(T4, CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 4, period_ns[T4], period_ns[T4]);
	make(T5, CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, SIGRTMIN + 5, period_ns[T5], period_ns[T5]);
	if (timer_delete(ids[T2]) != 0)
		wl_die("timer_delete: %s", strerror(errno));

	wl_ready();
	wl_loop(5000000ull, wl_burn);

	if (wl.corrupt)
		timer_delete(ids[T3]);
	wl_check_common();
	for (int i = 0; i < NT; i++) {
		struct itimerspec its;
		if (i == T2) {
			if (timer_gettime(ids[i], &its) == 0)
				wl_failf("t2's ID %d, deleted, is a timer again", (int)(intptr_t)ids[i]);
			continue;
		}
		if (timer_gettime(ids[i], &its) != 0) {
			wl_failf("t%d (ID %d) is gone: %s", i, (int)(intptr_t)ids[i], strerror(errno));
			continue;
		}
		if (ns(&its.it_interval) != period_ns[i])
			wl_failf("t%d interval is %lld ns, expected %ld", i, ns(&its.it_interval), period_ns[i]);
		if (i == T1) {
			if (ns(&its.it_value) <= 0 || ns(&its.it_value) > 3600000000000ll)
				wl_failf("t1 has %lld ns left of its hour", ns(&its.it_value));
		} else if (ns(&its.it_value) <= 0 || ns(&its.it_value) > period_ns[i] + 10000000) {
			/* (a CPU clock may lag by a tick, as for the itimers) */
			wl_failf("t%d has %lld ns left, interval %ld", i, ns(&its.it_value), period_ns[i]);
		}
	}
	for (int i = 0; i < NT; i++) {
		sig_atomic_t before = fired[i];
		uint64_t deadline = wl_mono() + 5000000000ull;
		if (i != T0 && i != T4 && i != T5)
			continue;
		while (fired[i] == before && wl_mono() < deadline)
			wl_burn();
		if (fired[i] == before)
			wl_failf("t%d no longer fires (%d times before)", i, (int)before);
	}
	if (bad_value)
		wl_failf("%d timer signals came with a wrong code, timer ID or value", (int)bad_value);
	if (bad_thread)
		wl_failf("%d of t4's signals came to another thread than its own", (int)bad_thread);
	stop_worker = 1;
	pthread_join(th, NULL);
	wl_fieldf("t0", "%d", (int)fired[T0]);
	wl_fieldf("t4", "%d", (int)fired[T4]);
	wl_fieldf("t5", "%d", (int)fired[T5]);
	wl_exit();
}
