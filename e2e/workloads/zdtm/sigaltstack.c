/*
 * zdtm/sigaltstack: alternate signal stacks, per thread, survive, including
 * threads frozen while running a handler on them.
 *
 *   main  an alternate stack, idle
 *   t0    an alternate stack; sits inside a SIGURG handler running on it
 *         for the whole run (sigaltstack reports SS_ONSTACK there)
 *   t1    an alternate stack with SS_AUTODISARM; sits inside a SIGURG
 *         handler too (the kernel disarmed the stack: SS_DISABLE there, and
 *         sigreturn re-arms it from the frame)
 *
 * After the stop each handler checks what sigaltstack reports inside it,
 * returns, and the thread checks its stack is armed again as set up; then a
 * SIGUSR1 in every thread must run on that thread's own alternate stack.
 */
#include "../wl.h"

#include <pthread.h>
#include <sys/mman.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* include/uapi/linux/signal.h */
#endif

struct th {
	pthread_t th;
	char *alt;
	size_t size;
	int flags;
	volatile int in_handler;
	volatile int usr1_ok;
	char fail[256];
};

static struct th ts[3]; /* [2] is main */
static __thread struct th *me;
static volatile int stop;

static int on_alt(struct th *t, const void *sp)
{
	return (const char *)sp >= t->alt && (const char *)sp < t->alt + t->size;
}

static void tfail(struct th *t, const char *fmt, ...)
{
	va_list ap;
	if (t->fail[0])
		return;
	va_start(ap, fmt);
	vsnprintf(t->fail, sizeof(t->fail), fmt, ap);
	va_end(ap);
}

static void on_urg(int sig)
{
	struct th *t = me;
	stack_t ss;
	(void)sig;
	if (!on_alt(t, __builtin_frame_address(0)))
		tfail(t, "SIGURG handler is not on the alternate stack");
	t->in_handler = 1;
	while (!stop)
		wl_sleep_ns(2000000);
	sigaltstack(NULL, &ss);
	if (t->flags & SS_AUTODISARM) {
		if (!(ss.ss_flags & SS_DISABLE))
			tfail(t, "inside the handler an SS_AUTODISARM stack reports flags %#x, not SS_DISABLE",
			      ss.ss_flags);
	} else if (ss.ss_flags != SS_ONSTACK || ss.ss_sp != t->alt) {
		tfail(t, "inside the handler sigaltstack reports %p flags %#x, expected %p SS_ONSTACK",
		      ss.ss_sp, ss.ss_flags, (void *)t->alt);
	}
	t->in_handler = 2;
}

static void on_usr1(int sig)
{
	(void)sig;
	if (on_alt(me, __builtin_frame_address(0)))
		me->usr1_ok = 1;
}

static void arm(struct th *t, int flags)
{
	stack_t ss;
	t->size = 64 * 1024;
	t->alt = mmap(NULL, t->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->alt == MAP_FAILED)
		wl_die("mmap");
	t->flags = flags;
	ss.ss_sp = t->alt;
	ss.ss_size = t->size;
	ss.ss_flags = flags;
	if (sigaltstack(&ss, NULL) != 0)
		wl_die("sigaltstack: %s", strerror(errno));
	me = t;
}

static void check_armed(struct th *t, const char *who)
{
	stack_t ss;
	if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != t->alt || ss.ss_size != t->size ||
	    ss.ss_flags != t->flags)
		tfail(t, "%s: sigaltstack is %p+%zu flags %#x, expected %p+%zu flags %#x", who, ss.ss_sp,
		      ss.ss_size, ss.ss_flags, (void *)t->alt, t->size, t->flags);
	raise(SIGUSR1);
	if (!t->usr1_ok)
		tfail(t, "%s: SIGUSR1 handler did not run on the alternate stack", who);
}

static void *thread(void *arg)
{
	struct th *t = arg;
	int i = (int)(t - ts);
	arm(t, i == 1 ? SS_AUTODISARM : 0);
	raise(SIGURG);
	if (t->in_handler != 2)
		tfail(t, "t%d left the SIGURG handler early", i);
	check_armed(t, i == 0 ? "t0" : "t1");
	return NULL;
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		wl_die("sigaction");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, NULL);
	handle(SIGURG, on_urg);
	handle(SIGUSR1, on_usr1);
	arm(&ts[2], 0);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&ts[i].th, NULL, thread, &ts[i]) != 0)
			wl_die("pthread_create");
	while (ts[0].in_handler != 1 || ts[1].in_handler != 1)
		wl_sleep_ns(1000000);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt) {
		stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536, .ss_flags = 0};
		sigaltstack(&ss, NULL);
	}
	wl_check_common();
	stop = 1;
	for (int i = 0; i < 2; i++) {
		struct timespec d;
		clock_gettime(CLOCK_REALTIME, &d);
		d.tv_sec += 10;
		if (pthread_timedjoin_np(ts[i].th, NULL, &d) != 0)
			wl_failf("t%d did not stop", i);
	}
	check_armed(&ts[2], "main");
	for (int i = 0; i < 3; i++)
		if (ts[i].fail[0])
			wl_failf("%s", ts[i].fail);
	wl_exit();
}
