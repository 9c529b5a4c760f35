/*
 * zdtm/sigactions: every signal's action survives as the task set it:
 * handler, flags, mask, and ignored signals, SIGTRAP among them (the
 * capture reads the actions with code that ends in a trap, which makes the
 * kernel reset an ignored SIGTRAP: it must be put back, on the original
 * too when it is left running).
 *
 *   SIGTRAP  SIG_IGN
 *   SIGHUP   SIG_IGN
 *   SIGUSR1  a handler, SA_SIGINFO|SA_RESTART, mask {SIGINT, SIGRTMIN+2}
 *   SIGCHLD  SIG_DFL with SA_NOCLDSTOP
 *   SIGRTMIN+5  a handler, SA_ONSTACK|SA_NODEFER
 *   SIGPIPE  a handler, SA_RESETHAND
 *
 * After the stop (or whenever asked to finish) it reads every action back
 * and compares; then it raises SIGTRAP, which must be ignored.
 */
#include "../wl.h"

struct want {
	int sig;
	void (*handler)(int);
	void (*action)(int, siginfo_t *, void *);
	int flags;
	int mask[2];
};

static void on_sig(int sig) { (void)sig; }
static void on_info(int sig, siginfo_t *si, void *uc) { (void)sig; (void)si; (void)uc; }

static struct want wants[6];

static void setup(void)
{
	int rt = SIGRTMIN;
	struct want w[] = {
		{SIGTRAP, SIG_IGN, NULL, 0, {0, 0}},
		{SIGHUP, SIG_IGN, NULL, 0, {0, 0}},
		{SIGUSR1, NULL, on_info, SA_SIGINFO | SA_RESTART, {SIGINT, rt + 2}},
		{SIGCHLD, SIG_DFL, NULL, SA_NOCLDSTOP, {0, 0}},
		{rt + 5, on_sig, NULL, SA_ONSTACK | SA_NODEFER, {0, 0}},
		{SIGPIPE, on_sig, NULL, SA_RESETHAND, {0, 0}},
	};
	memcpy(wants, w, sizeof(w));
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		if (wants[i].action)
			sa.sa_sigaction = wants[i].action;
		else
			sa.sa_handler = wants[i].handler;
		sa.sa_flags = wants[i].flags;
		sigemptyset(&sa.sa_mask);
		for (int j = 0; j < 2; j++)
			if (wants[i].mask[j])
				sigaddset(&sa.sa_mask, wants[i].mask[j]);
		if (sigaction(wants[i].sig, &sa, NULL) != 0)
			wl_die("sigaction %d: %s", wants[i].sig, strerror(errno));
	}
}

static void check(void)
{
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		struct want *w = &wants[i];
		struct sigaction sa;
		if (sigaction(w->sig, NULL, &sa) != 0) {
			wl_failf("sigaction %d: %s", w->sig, strerror(errno));
			continue;
		}
		void *got = w->action ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
		void *exp = w->action ? (void *)w->action : (void *)w->handler;
		/* glibc adds SA_RESTORER (0x04000000 on x86 and powerpc) itself. */
		int flags = sa.sa_flags & ~0x04000000;
		if (got != exp)
			wl_failf("signal %d: handler %p, expected %p", w->sig, got, exp);
		if (flags != w->flags)
			wl_failf("signal %d: flags %#x, expected %#x", w->sig, flags, w->flags);
		for (int s = 1; s < NSIG; s++) {
			int in = sigismember(&sa.sa_mask, s) == 1;
			int want = (w->mask[0] == s || w->mask[1] == s) && s != SIGKILL && s != SIGSTOP;
			if (in != want)
				wl_failf("signal %d: signal %d %s the mask", w->sig, s, in ? "is in" : "is not in");
		}
	}
	raise(SIGTRAP); /* ignored, or the task ends here */
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, NULL);
	setup();
	wl_ready();
	wl_loop(10000000ull, NULL);
	wl_check_common();
	if (wl.corrupt)
		signal(SIGHUP, SIG_DFL); /* the check must see it */
	check();
	wl_exit();
}
