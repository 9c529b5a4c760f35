/*
 * zdtm/signals: pending signals survive, shared and per thread, queued
 * real-time ones with their order, values and origin.
 *
 * Before ready, with the signals blocked:
 *   kill(self, SIGUSR1)                         shared, standard (SI_USER)
 *   sigqueue(self, SIGRTMIN+1, 101, 102, 103)   shared, queued three times
 *   pthread_sigqueue(t, SIGRTMIN+2, 201, 202)   pending on thread t only
 *   tgkill(self, main, SIGRTMIN+3)              pending on main only
 * After the stop, main and t each take their signals with sigtimedwait and
 * check the set, the order, si_value, si_code and si_pid; nothing else may
 * be pending.
 */
#include "../wl.h"

#include <pthread.h>

static volatile int stop;
static pid_t pid;
static char tfail[256];
static pthread_t th;
static volatile int t_ready;
static int tkill_code;

static int take(sigset_t *set, siginfo_t *si)
{
	struct timespec zero = {0, 0};
	return sigtimedwait(set, si, &zero);
}

static void expect(const char *who, char *fail, size_t n, int sig, int code, int value)
{
	sigset_t set;
	siginfo_t si;
	int got;
	if (fail[0])
		return;
	sigemptyset(&set);
	sigaddset(&set, sig);
	memset(&si, 0, sizeof(si));
	got = take(&set, &si);
	if (got != sig)
		snprintf(fail, n, "%s: signal %d (value %d) is no longer pending", who, sig, value);
	else if (si.si_code != code || si.si_pid != pid)
		snprintf(fail, n, "%s: signal %d has si_code %d si_pid %d, expected %d %d", who, sig,
			 si.si_code, (int)si.si_pid, code, (int)pid);
	else if (value >= 0 && si.si_value.sival_int != value)
		snprintf(fail, n, "%s: signal %d carries value %d, expected %d (order lost?)", who, sig,
			 si.si_value.sival_int, value);
}

static void expect_none(const char *who, char *fail, size_t n)
{
	sigset_t set;
	siginfo_t si;
	int got;
	if (fail[0])
		return;
	sigfillset(&set);
	sigdelset(&set, SIGUSR2);
	if ((got = take(&set, &si)) > 0)
		snprintf(fail, n, "%s: unexpected pending signal %d", who, got);
}

static void *thread(void *arg)
{
	(void)arg;
	t_ready = 1;
	while (!stop)
		wl_sleep_ns(1000000);
	expect("thread", tfail, sizeof(tfail), SIGRTMIN + 2, SI_QUEUE, 201);
	expect("thread", tfail, sizeof(tfail), SIGRTMIN + 2, SI_QUEUE, 202);
	/* the shared ones are main's to take */
	{
		sigset_t set;
		sigpending(&set);
		if (!tfail[0] && sigismember(&set, SIGRTMIN + 3))
			snprintf(tfail, sizeof(tfail), "main's thread-directed SIGRTMIN+3 shows on t");
	}
	return NULL;
}

int main(int argc, char **argv)
{
	sigset_t block;
	union sigval v;
	char fail[256] = "";

	wl_init(argc, argv, NULL);
	pid = getpid();
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	for (int i = 1; i <= 3; i++)
		sigaddset(&block, SIGRTMIN + i);
	pthread_sigmask(SIG_BLOCK, &block, NULL); /* inherited by the thread */
	if (pthread_create(&th, NULL, thread, NULL) != 0)
		wl_die("pthread_create");
	while (!t_ready)
		wl_sleep_ns(1000000);

	kill(pid, SIGUSR1);
	for (int i = 1; i <= 3; i++) {
		v.sival_int = 100 + i;
		if (sigqueue(pid, SIGRTMIN + 1, v) != 0)
			wl_die("sigqueue: %s", strerror(errno));
	}
	for (int i = 1; i <= 2; i++) {
		v.sival_int = 200 + i;
		if (pthread_sigqueue(th, SIGRTMIN + 2, v) != 0)
			wl_die("pthread_sigqueue");
	}
	/* learn the si_code this kernel gives tgkill (SI_TKILL; older: SI_USER) */
	{
		sigset_t one;
		siginfo_t si;
		sigemptyset(&one);
		sigaddset(&one, SIGRTMIN + 4);
		pthread_sigmask(SIG_BLOCK, &one, NULL);
		syscall(SYS_tgkill, pid, wl_gettid(), SIGRTMIN + 4);
		if (take(&one, &si) != SIGRTMIN + 4)
			wl_die("tgkill probe");
		tkill_code = si.si_code;
	}
	syscall(SYS_tgkill, pid, wl_gettid(), SIGRTMIN + 3);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt) {
		sigset_t one;
		siginfo_t si;
		sigemptyset(&one);
		sigaddset(&one, SIGRTMIN + 1);
		take(&one, &si);
	}
	wl_check_common();
	stop = 1;
	pthread_join(th, NULL);
	if (tfail[0])
		wl_failf("%s", tfail);
	expect("main", fail, sizeof(fail), SIGUSR1, SI_USER, -1);
	for (int i = 1; i <= 3; i++)
		expect("main", fail, sizeof(fail), SIGRTMIN + 1, SI_QUEUE, 100 + i);
	expect("main", fail, sizeof(fail), SIGRTMIN + 3, tkill_code, -1);
	expect_none("main", fail, sizeof(fail));
	if (fail[0])
		wl_failf("%s", fail);
	wl_exit();
}
