/*
 * threads: the multi-threaded workload of the task-engine issue, part 2.
 *
 * Eight threads besides main:
 *   t0, t1  ping-pong through a mutex and a condvar (turn variable)
 *   t2      pthread_kill(t3, SIGRTMIN) every 2 ms (queued: none may be lost)
 *   t3      receives them on its own alternate signal stack
 *   t4, t5  take turns on a robust mutex guarding a shared counter
 *   t6      holds a second robust mutex and, when told to stop, exits with a
 *           raw exit syscall while still holding it: only the kernel's robust
 *           list walk can then hand EOWNERDEAD to the next locker, and only
 *           the kernel's clear-child-tid can let pthread_join return
 *   t7      blocked in pthread_cond_wait (a futex wait) until the stop
 *
 * Every thread keeps a __thread counter mirrored on its stack, a __thread
 * buffer filled with its own pattern, its own signal mask, its own
 * sigaltstack and its name, and records its TID at start. At the stop each
 * thread checks all of that itself (TIDs must be the same after a move:
 * glibc caches them), plus CLOCK_MONOTONIC never going back in that thread.
 * Main writes the progress log and checks the shared counters.
 */
#include "wl.h"

#include <pthread.h>
#include <sys/mman.h>

#define NT 8
#define TLS_BUF 4096

struct tinfo {
	pthread_t th;
	int idx;
	pid_t tid;
	volatile uint64_t published;
	char name[16];
	char *alt;
	size_t alt_size;
	sigset_t mask;
	char fail[512];
	int checked;
};

static struct tinfo ti[NT];
static volatile int stop;
static pthread_barrier_t started; /* all threads set up, all handles known */

static __thread uint64_t tls_counter;
static __thread int tls_idx = -1;
static __thread uint64_t tls_last_mono;
static __thread uint64_t tls_backwards;
static __thread uint8_t tls_buf[TLS_BUF];

/* tls_addr hides the TLS offset from the optimiser: gcc 12 -O2 otherwise
 * folds the loop's constants into a TPOFF32 relocation that does not fit. */
static uint8_t *tls_addr(void)
{
	uint8_t *p = tls_buf;
	__asm__("" : "+r"(p));
	return p;
}

/* ping-pong */
static pthread_mutex_t pp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cv = PTHREAD_COND_INITIALIZER;
static int turn;
static uint64_t pings, pongs;

/* signals t2 -> t3 */
static volatile int killer_stop;
static volatile uint64_t rt_sent;
static volatile uint64_t rt_received, rt_wrong_thread, rt_off_stack;

/* robust mutexes */
static pthread_mutex_t rob_mu, held_mu;
static uint64_t rob_count, rob_by[2];
static volatile int held_locked;

/* t7 */
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static uint64_t t7_wakeups;

static void tfail(struct tinfo *t, const char *fmt, ...)
{
	va_list ap;
	if (t->fail[0])
		return;
	va_start(ap, fmt);
	vsnprintf(t->fail, sizeof(t->fail), fmt, ap);
	va_end(ap);
}

static void tmono(void)
{
	uint64_t now = wl_clock_ns(CLOCK_MONOTONIC);
	if (now < tls_last_mono)
		tls_backwards++;
	else
		tls_last_mono = now;
}

static void on_rt(int sig)
{
	char *sp = __builtin_frame_address(0);
	struct tinfo *t = &ti[3];
	(void)sig;
	if (wl_gettid() != t->tid || tls_idx != 3)
		rt_wrong_thread++;
	if (sp < t->alt || sp >= t->alt + t->alt_size)
		rt_off_stack++;
	__atomic_add_fetch(&rt_received, 1, __ATOMIC_SEQ_CST);
}

static void nap_us(long us)
{
	struct timespec ts = {0, us * 1000};
	nanosleep(&ts, NULL);
}

/* The per-thread state every thread sets up and checks. */
static void thread_setup(struct tinfo *t)
{
	stack_t ss;
	sigset_t set;

	tls_idx = t->idx;
	t->tid = wl_gettid();
	uint8_t *buf = tls_addr();
	for (int i = 0; i < TLS_BUF; i++)
		buf[i] = (uint8_t)(wl_mix((uint64_t)t->idx * 7919 + i) & 0xff);

	snprintf(t->name, sizeof(t->name), "wl-t%d", t->idx);
	pthread_setname_np(pthread_self(), t->name);

	t->alt_size = 32 * 1024;
	t->alt = mmap(NULL, t->alt_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->alt == MAP_FAILED)
		wl_die("mmap altstack");
	ss.ss_sp = t->alt;
	ss.ss_size = t->alt_size;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0)
		wl_die("sigaltstack: %s", strerror(errno));

	/* Every worker blocks SIGUSR2 (main takes it), SIGRTMIN unless it is
	 * t3, and one real-time signal of its own so its mask is unique. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (t->idx != 3)
		sigaddset(&set, SIGRTMIN);
	sigaddset(&set, SIGRTMIN + 2 + t->idx);
	if (pthread_sigmask(SIG_SETMASK, &set, NULL) != 0)
		wl_die("pthread_sigmask");
	pthread_sigmask(SIG_SETMASK, NULL, &t->mask);
	tmono();
}

static void thread_check(struct tinfo *t, uint64_t local)
{
	stack_t ss;
	sigset_t now;
	char name[16];

	tmono();
	if (wl_gettid() != t->tid)
		tfail(t, "t%d: tid changed from %d to %d", t->idx, (int)t->tid, (int)wl_gettid());
	if (tls_idx != t->idx)
		tfail(t, "t%d: __thread index is %d", t->idx, tls_idx);
	if (tls_counter != local)
		tfail(t, "t%d: __thread counter %" PRIu64 " != stack copy %" PRIu64, t->idx,
		      tls_counter, local);
	if (tls_counter < t->published)
		tfail(t, "t%d: __thread counter %" PRIu64 " went below published %" PRIu64, t->idx,
		      tls_counter, t->published);
	uint8_t *buf = tls_addr();
	for (int i = 0; i < TLS_BUF; i++) {
		uint8_t want = (uint8_t)(wl_mix((uint64_t)t->idx * 7919 + i) & 0xff);
		if (buf[i] != want) {
			tfail(t, "t%d: __thread buffer differs at %d: %#x != %#x", t->idx, i,
			      buf[i], want);
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	for (int s = 1; s < NSIG; s++) {
		if (sigismember(&now, s) != sigismember(&t->mask, s)) {
			tfail(t, "t%d: signal mask changed for signal %d", t->idx, s);
			break;
		}
	}
	if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != t->alt || ss.ss_size != t->alt_size ||
	    ss.ss_flags != 0)
		tfail(t, "t%d: sigaltstack is %p+%zu flags %#x, expected %p+%zu", t->idx, ss.ss_sp,
		      ss.ss_size, ss.ss_flags, (void *)t->alt, t->alt_size);
	if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0 ||
	    strcmp(name, t->name) != 0)
		tfail(t, "t%d: thread name is %s, expected %s", t->idx, name, t->name);
	if (tls_backwards)
		tfail(t, "t%d: CLOCK_MONOTONIC went backwards %" PRIu64 " times", t->idx,
		      tls_backwards);
	t->checked = 1;
}

#define TICK(t, local)                                                                             \
	do {                                                                                       \
		tls_counter++;                                                                     \
		(local)++;                                                                         \
		(t)->published = tls_counter;                                                      \
		tmono();                                                                           \
	} while (0)

static void ping_pong(struct tinfo *t, int me)
{
	uint64_t local = 0;
	while (!stop) {
		pthread_mutex_lock(&pp_mu);
		while (turn != me && !stop)
			pthread_cond_wait(&pp_cv, &pp_mu);
		if (!stop) {
			if (me == 0)
				pings++;
			else
				pongs++;
			turn = 1 - me;
			pthread_cond_broadcast(&pp_cv);
		}
		pthread_mutex_unlock(&pp_mu);
		TICK(t, local);
		if (me == 0)
			nap_us(200);
	}
	pthread_mutex_lock(&pp_mu);
	pthread_cond_broadcast(&pp_cv);
	pthread_mutex_unlock(&pp_mu);
	if (me == 0 && wl.corrupt)
		tls_buf[100] ^= 1;
	thread_check(t, local);
}

static void killer(struct tinfo *t)
{
	uint64_t local = 0;
	while (!stop && !killer_stop) {
		int err = pthread_kill(ti[3].th, SIGRTMIN);
		if (err != 0)
			tfail(t, "t2: pthread_kill: %s", strerror(err));
		else
			__atomic_add_fetch(&rt_sent, 1, __ATOMIC_SEQ_CST);
		TICK(t, local);
		nap_us(2000);
	}
	thread_check(t, local);
}

static void receiver(struct tinfo *t)
{
	uint64_t local = 0;
	while (!stop) {
		TICK(t, local);
		nap_us(1000);
	}
	thread_check(t, local);
}

static void robust_user(struct tinfo *t, int me)
{
	uint64_t local = 0;
	while (!stop) {
		int err = pthread_mutex_lock(&rob_mu);
		if (err != 0) {
			tfail(t, "t%d: robust mutex lock: %s", t->idx, strerror(err));
			break;
		}
		rob_count++;
		rob_by[me]++;
		pthread_mutex_unlock(&rob_mu);
		TICK(t, local);
		nap_us(500);
	}
	thread_check(t, local);
}

static void holder(struct tinfo *t)
{
	uint64_t local = 0;
	if (pthread_mutex_lock(&held_mu) != 0)
		wl_die("lock held_mu");
	held_locked = 1;
	while (!stop) {
		TICK(t, local);
		nap_us(5000);
	}
	thread_check(t, local);
	/* Exit holding held_mu, bypassing glibc: the kernel must walk the
	 * robust list and clear the tid. */
	syscall(SYS_exit, 0);
}

static void waiter(struct tinfo *t)
{
	uint64_t local = 0;
	pthread_mutex_lock(&stop_mu);
	while (!stop) {
		pthread_cond_wait(&stop_cv, &stop_mu);
		t7_wakeups++;
	}
	pthread_mutex_unlock(&stop_mu);
	TICK(t, local);
	thread_check(t, local);
}

static void *thread_main(void *arg)
{
	struct tinfo *t = arg;
	thread_setup(t);
	pthread_barrier_wait(&started);
	switch (t->idx) {
	case 0:
	case 1:
		ping_pong(t, t->idx);
		break;
	case 2:
		killer(t);
		break;
	case 3:
		receiver(t);
		break;
	case 4:
	case 5:
		robust_user(t, t->idx - 4);
		break;
	case 6:
		holder(t);
		break;
	case 7:
		waiter(t);
		break;
	}
	return NULL;
}

static void init_robust(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	if (pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0)
		wl_die("setrobust");
	if (pthread_mutex_init(m, &a) != 0)
		wl_die("mutex init");
	pthread_mutexattr_destroy(&a);
}

static struct timespec deadline_in(int sec)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += sec;
	return ts;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct timespec ts;
	uint64_t deadline;
	int err;

	wl_init(argc, argv, NULL);
	init_robust(&rob_mu);
	init_robust(&held_mu);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_rt;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGRTMIN, &sa, NULL) != 0)
		wl_die("sigaction SIGRTMIN");
	{
		/* main never takes SIGRTMIN */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGRTMIN);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}

	pthread_barrier_init(&started, NULL, NT + 1);
	for (int i = 0; i < NT; i++) {
		ti[i].idx = i;
		if ((err = pthread_create(&ti[i].th, NULL, thread_main, &ti[i])) != 0)
			wl_die("pthread_create: %s", strerror(err));
	}
	pthread_barrier_wait(&started);
	/* ready once t6 holds its lock */
	deadline = wl_mono() + 10000000000ull;
	for (;;) {
		int ok = held_locked;
		for (int i = 0; i < NT; i++)
			ok = ok && ti[i].tid != 0;
		if (ok)
			break;
		if (wl_mono() > deadline)
			wl_die("threads did not start");
		nap_us(1000);
	}
	wl_ready();
	wl_loop(10000000ull, NULL);

	/* Stop t2 first and let t3 drain: queued signals are never merged,
	 * so every one sent must arrive. */
	killer_stop = 1;
	ts = deadline_in(10);
	if ((err = pthread_timedjoin_np(ti[2].th, NULL, &ts)) != 0)
		wl_failf("t2 did not stop: %s", strerror(err));
	deadline = wl_mono() + 5000000000ull;
	while (rt_received != rt_sent && wl_mono() < deadline)
		nap_us(1000);
	if (rt_received != rt_sent)
		wl_failf("t3 received %" PRIu64 " of %" PRIu64 " queued SIGRTMIN", rt_received,
			 rt_sent);

	/* Stop: workers check themselves, then main checks what they share. */
	stop = 1;
	pthread_mutex_lock(&stop_mu);
	pthread_cond_broadcast(&stop_cv);
	pthread_mutex_unlock(&stop_mu);

	wl_check_common();
	for (int i = 0; i < NT; i++) {
		if (i == 2 || i == 6)
			continue;
		ts = deadline_in(10);
		if ((err = pthread_timedjoin_np(ti[i].th, NULL, &ts)) != 0)
			wl_failf("t%d did not stop: %s", i, strerror(err));
	}
	/* t6 exited holding held_mu: the kernel must have marked it dead. */
	ts = deadline_in(5);
	err = pthread_mutex_timedlock(&held_mu, &ts);
	if (err == EOWNERDEAD) {
		pthread_mutex_consistent(&held_mu);
		pthread_mutex_unlock(&held_mu);
	} else {
		wl_failf("robust mutex held by exited t6: lock returned %s, expected EOWNERDEAD "
			 "(robust list lost?)",
			 err ? strerror(err) : "success");
	}
	ts = deadline_in(5);
	if ((err = pthread_timedjoin_np(ti[6].th, NULL, &ts)) != 0)
		wl_failf("join t6 after its raw exit: %s (clear-child-tid lost?)", strerror(err));

	for (int i = 0; i < NT; i++) {
		if (ti[i].fail[0])
			wl_failf("%s", ti[i].fail);
		else if (!ti[i].checked)
			wl_failf("t%d never checked itself", i);
	}
	if (!((turn == 0 && pings == pongs) || (turn == 1 && pings == pongs + 1)))
		wl_failf("ping-pong lost a turn: pings %" PRIu64 " pongs %" PRIu64 " turn %d", pings,
			 pongs, turn);
	if (pings == 0)
		wl_failf("ping-pong never ran");
	if (rob_count != rob_by[0] + rob_by[1])
		wl_failf("robust-mutex counter %" PRIu64 " != %" PRIu64 " + %" PRIu64, rob_count,
			 rob_by[0], rob_by[1]);
	if (rt_sent == 0)
		wl_failf("t2 never signalled t3");
	if (rt_wrong_thread)
		wl_failf("%" PRIu64 " SIGRTMIN ran on the wrong thread", rt_wrong_thread);
	if (rt_off_stack)
		wl_failf("%" PRIu64 " SIGRTMIN handlers ran off t3's alternate stack", rt_off_stack);

	wl_fieldf("pings", "%" PRIu64, pings);
	wl_fieldf("rt_signals", "%" PRIu64, rt_sent);
	wl_fieldf("robust_locks", "%" PRIu64, rob_count);
	wl_fieldf("t7_wakeups", "%" PRIu64, t7_wakeups);
	{
		char tids[NT * 12] = "";
		size_t n = 0;
		for (int i = 0; i < NT && n < sizeof(tids); i++)
			n += (size_t)snprintf(tids + n, sizeof(tids) - n, "%s%d", i ? "," : "",
					      (int)ti[i].tid);
		wl_fieldf("tids", "%s", tids);
	}
	wl_exit();
}
