/*
 * fpthreads: threads that keep known values in the x87 and SSE registers for
 * their whole life, and a signal handler doing FP arithmetic: the x86 move
 * workload (amd64, and i386 with gcc -m32) whose check fails when a move
 * loses a thread's FP state (x87 stack, control word, xmm registers, MXCSR).
 *
 *   --threads=N     register-holding threads (default 3)
 *   --period-us=U   sleep between two checks in a thread (default 2000)
 *   (and the wl.h options: --dir, --corrupt, --log-unlinked)
 *
 * Each thread loads values of its own (a function of its index) into xmm4-xmm7
 * and four 80-bit values onto the x87 stack, sets its own rounding modes in
 * the x87 control word and in MXCSR, once, then runs one inline-asm loop until
 * told to stop: compare every register with the expected bytes, count the
 * iteration, sleep with a raw nanosleep system call (int $0x80 on i386,
 * syscall on amd64; the kernel keeps the FP state across both). The
 * registers are never reloaded, so a move that loses FP state makes the next
 * iteration fail; the loop then records which register differed and the
 * bytes it held.
 *
 * Main installs a SIGALRM handler (SA_RESTART, SIGUSR1 in its mask) that does
 * FP arithmetic and checks its result, armed by setitimer every 5 ms (the
 * signal lands on any thread, so the kernel saves and restores the FP state
 * of register-holding threads around it too), and writes one progress line
 * every 100 ms. After SIGUSR2 it checks: the threads' loops still run, none
 * saw a wrong register, the alarms still come, the handler is still
 * installed as it was, the common checks of wl.h; then it stops the threads
 * and writes the result.
 */
#include "wl.h"

#include <pthread.h>
#include <stddef.h>
#include <sys/time.h>

#if !defined(__x86_64__) && !defined(__i386__)
#error "fpthreads is an x86 program (its registers are checked in x86 assembly)"
#endif

/* The layout the assembly uses (offsets from the thread's struct regvals). */
#define OFF_XMM 0    /* 4 x 16: expected xmm4..xmm7 */
#define OFF_X87 64   /* 4 x 16 (10 used): expected st(0)..st(3) */
#define OFF_SCR 128  /* 16 bytes: where a register is stored to be compared */
#define OFF_MXCSR 144
#define OFF_CW 148
#define OFF_STOP 152 /* set by main: leave the loop */
#define OFF_BAD 156  /* 0, or the id of the register that differed */
#define OFF_ITERS 160
#define OFF_TS 168   /* the nanosleep request */

struct regvals {
	uint8_t xmm[4][16];
	uint8_t x87[4][16];
	uint8_t scr[16];
	uint32_t mxcsr;
	uint16_t cw;
	uint16_t pad;
	volatile uint32_t stop;
	volatile uint32_t bad;
	volatile uint64_t iters;
	struct timespec ts;
} __attribute__((aligned(16)));

_Static_assert(offsetof(struct regvals, x87) == OFF_X87, "x87");
_Static_assert(offsetof(struct regvals, scr) == OFF_SCR, "scr");
_Static_assert(offsetof(struct regvals, mxcsr) == OFF_MXCSR, "mxcsr");
_Static_assert(offsetof(struct regvals, cw) == OFF_CW, "cw");
_Static_assert(offsetof(struct regvals, stop) == OFF_STOP, "stop");
_Static_assert(offsetof(struct regvals, bad) == OFF_BAD, "bad");
_Static_assert(offsetof(struct regvals, iters) == OFF_ITERS, "iters");
_Static_assert(offsetof(struct regvals, ts) == OFF_TS, "ts");

#define S(x) #x
#define STR(x) S(x)

/* Register ids in bad: 1-4 xmm4-7, 5-8 st(0)-st(3), 9 MXCSR, 10 control word. */
static const char *reg_name(uint32_t id)
{
	static const char *names[] = {"none", "xmm4", "xmm5", "xmm6", "xmm7", "st(0)",
				      "st(1)", "st(2)", "st(3)", "MXCSR", "x87 control word"};
	return id < sizeof(names) / sizeof(names[0]) ? names[id] : "?";
}

/* CHECK_XMM compares xmmN with the expected bytes at OFF(base) through
 * xmm0, which is scratch. */
#define CHECK_XMM(n, id, base)                                                   \
	"movdqa %%xmm" #n ", %%xmm0\n\t"                                         \
	"movdqu %%xmm" #n ", " STR(OFF_SCR) "(" base ")\n\t"                     \
	"pcmpeqb " STR(OFF_XMM) "+16*(" #n "-4)(" base "), %%xmm0\n\t"            \
	"pmovmskb %%xmm0, %%eax\n\t"                                             \
	"cmpl $0xffff, %%eax\n\t"                                                \
	"movl $" #id ", %%eax\n\t"                                               \
	"jne 8f\n\t"

/* CHECK_ST stores a copy of st(n) (fld pushes it, fstpt pops it) and
 * compares its 10 bytes. */
#define CHECK_ST(n, id, base)                                                    \
	"fld %%st(" #n ")\n\t"                                                   \
	"fstpt " STR(OFF_SCR) "(" base ")\n\t"                                    \
	"movl $" #id ", %%eax\n\t"                                               \
	"movl " STR(OFF_SCR) "(" base "), %%edx\n\t"                              \
	"cmpl " STR(OFF_X87) "+16*" #n "(" base "), %%edx\n\t"                    \
	"jne 8f\n\t"                                                             \
	"movl " STR(OFF_SCR) "+4(" base "), %%edx\n\t"                            \
	"cmpl " STR(OFF_X87) "+16*" #n "+4(" base "), %%edx\n\t"                  \
	"jne 8f\n\t"                                                             \
	"movw " STR(OFF_SCR) "+8(" base "), %%dx\n\t"                             \
	"cmpw " STR(OFF_X87) "+16*" #n "+8(" base "), %%dx\n\t"                   \
	"jne 8f\n\t"

#define CHECK_CTRL(base)                                                         \
	"stmxcsr " STR(OFF_SCR) "(" base ")\n\t"                                  \
	"movl " STR(OFF_SCR) "(" base "), %%edx\n\t"                              \
	"movl $9, %%eax\n\t"                                                     \
	"cmpl " STR(OFF_MXCSR) "(" base "), %%edx\n\t"                            \
	"jne 8f\n\t"                                                             \
	"fnstcw " STR(OFF_SCR) "(" base ")\n\t"                                   \
	"movw " STR(OFF_SCR) "(" base "), %%dx\n\t"                               \
	"movl $10, %%eax\n\t"                                                    \
	"cmpw " STR(OFF_CW) "(" base "), %%dx\n\t"                                \
	"jne 8f\n\t"

#define CHECK_ALL(base)                                                          \
	CHECK_XMM(4, 1, base) CHECK_XMM(5, 2, base) CHECK_XMM(6, 3, base)        \
	CHECK_XMM(7, 4, base) CHECK_ST(0, 5, base) CHECK_ST(1, 6, base)          \
	CHECK_ST(2, 7, base) CHECK_ST(3, 8, base) CHECK_CTRL(base)

/* hold loads the registers once and loops until r->stop. (SSE2 is part of
 * every CPU this runs on; i386's default target just does not assume it.) */
__attribute__((target("sse2"))) static void hold(struct regvals *r)
{
#if defined(__x86_64__)
	__asm__ volatile(
		"movq %0, %%r12\n\t"
		"fninit\n\t"
		"fldcw " STR(OFF_CW) "(%%r12)\n\t"
		"ldmxcsr " STR(OFF_MXCSR) "(%%r12)\n\t"
		"fldt " STR(OFF_X87) "+48(%%r12)\n\t"
		"fldt " STR(OFF_X87) "+32(%%r12)\n\t"
		"fldt " STR(OFF_X87) "+16(%%r12)\n\t"
		"fldt " STR(OFF_X87) "(%%r12)\n\t"
		"movdqu " STR(OFF_XMM) "(%%r12), %%xmm4\n\t"
		"movdqu " STR(OFF_XMM) "+16(%%r12), %%xmm5\n\t"
		"movdqu " STR(OFF_XMM) "+32(%%r12), %%xmm6\n\t"
		"movdqu " STR(OFF_XMM) "+48(%%r12), %%xmm7\n\t"
		"1:\n\t"
		CHECK_ALL("%%r12")
		"addq $1, " STR(OFF_ITERS) "(%%r12)\n\t"
		"cmpl $0, " STR(OFF_STOP) "(%%r12)\n\t"
		"jne 9f\n\t"
		"movl $35, %%eax\n\t" /* __NR_nanosleep */
		"leaq " STR(OFF_TS) "(%%r12), %%rdi\n\t"
		"xorl %%esi, %%esi\n\t"
		"syscall\n\t"
		"jmp 1b\n\t"
		"8:\n\t"
		"movl %%eax, " STR(OFF_BAD) "(%%r12)\n\t"
		"9:\n\t"
		"fninit\n\t"
		:
		: "r"(r)
		: "rax", "rcx", "rdx", "rsi", "rdi", "r11", "r12", "xmm0", "xmm4", "xmm5",
		  "xmm6", "xmm7", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)",
		  "st(7)", "memory", "cc");
#else
	/* ebx may be the PIC register: saved by hand around the loop. */
	__asm__ volatile(
		"pushl %%ebx\n\t"
		"movl %0, %%esi\n\t"
		"fninit\n\t"
		"fldcw " STR(OFF_CW) "(%%esi)\n\t"
		"ldmxcsr " STR(OFF_MXCSR) "(%%esi)\n\t"
		"fldt " STR(OFF_X87) "+48(%%esi)\n\t"
		"fldt " STR(OFF_X87) "+32(%%esi)\n\t"
		"fldt " STR(OFF_X87) "+16(%%esi)\n\t"
		"fldt " STR(OFF_X87) "(%%esi)\n\t"
		"movdqu " STR(OFF_XMM) "(%%esi), %%xmm4\n\t"
		"movdqu " STR(OFF_XMM) "+16(%%esi), %%xmm5\n\t"
		"movdqu " STR(OFF_XMM) "+32(%%esi), %%xmm6\n\t"
		"movdqu " STR(OFF_XMM) "+48(%%esi), %%xmm7\n\t"
		"1:\n\t"
		CHECK_ALL("%%esi")
		"addl $1, " STR(OFF_ITERS) "(%%esi)\n\t"
		"adcl $0, " STR(OFF_ITERS) "+4(%%esi)\n\t"
		"cmpl $0, " STR(OFF_STOP) "(%%esi)\n\t"
		"jne 9f\n\t"
		"movl $162, %%eax\n\t" /* __NR_nanosleep (i386) */
		"leal " STR(OFF_TS) "(%%esi), %%ebx\n\t"
		"xorl %%ecx, %%ecx\n\t"
		"int $0x80\n\t"
		"jmp 1b\n\t"
		"8:\n\t"
		"movl %%eax, " STR(OFF_BAD) "(%%esi)\n\t"
		"9:\n\t"
		"fninit\n\t"
		"popl %%ebx\n\t"
		:
		: "r"(r)
		: "eax", "ecx", "edx", "esi", "xmm0", "xmm4", "xmm5", "xmm6", "xmm7", "st",
		  "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "memory", "cc");
#endif
}

struct tinfo {
	pthread_t th;
	int idx;
	struct regvals r;
};

static struct tinfo *ti;
static int nthreads;

static void expected(struct regvals *r, int idx)
{
	memset(r, 0, sizeof(*r));
	wl_fill(r->xmm, sizeof(r->xmm), 0xf9e0 + (uint64_t)idx, 0);
	for (int i = 0; i < 4; i++) {
		/* Distinct 80-bit values, with low mantissa bits a double lacks. */
		long double v = (long double)(idx * 4 + i + 1) / 3.0L + 1e-18L * (i + 1);
		memcpy(r->x87[i], &v, 10);
	}
	/* Rounding control differs per thread: x87 CW bits 10-11, MXCSR 13-14;
	 * all exceptions masked. */
	r->cw = (uint16_t)(0x037f | ((idx & 3) << 10));
	r->mxcsr = 0x1f80u | ((uint32_t)(idx & 3) << 13);
}

static void *thread_main(void *arg)
{
	struct tinfo *t = arg;
	hold(&t->r);
	return NULL;
}

/* The SIGALRM handler's own FP work: a result it knows. */
static volatile uint64_t alarms, alarm_bad;
static volatile double alarm_seed = 1.0;

static void on_alarm(int sig)
{
	(void)sig;
	double x = alarm_seed, acc = 0;
	for (int i = 1; i <= 32; i++)
		acc += x / (double)i;
	/* sum of 1/i for i = 1..32, rounded to nearest (this handler runs with
	 * whatever MXCSR/CW the interrupted thread had: only compare loosely). */
	if (acc < 4.0584 || acc > 4.0585)
		alarm_bad++;
	alarms++;
}

static int alarm_installed_ok(void)
{
	struct sigaction sa;
	if (sigaction(SIGALRM, NULL, &sa) != 0)
		return 0;
	return sa.sa_handler == on_alarm && (sa.sa_flags & SA_RESTART) &&
	       sigismember(&sa.sa_mask, SIGUSR1);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval it = {{0, 5000}, {0, 5000}};
	long period_us;
	int err;

	wl_init(argc, argv, "threads,period-us");
	nthreads = (int)wl_opt_int("threads", 3);
	period_us = (long)wl_opt_int("period-us", 2000);
	if (nthreads < 1 || nthreads > 64 || period_us < 1 || period_us > 1000000)
		wl_die("--threads must be 1-64 and --period-us 1-1000000");
	ti = aligned_alloc(64, sizeof(*ti) * (size_t)nthreads);
	if (ti == NULL)
		wl_die("out of memory");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		wl_die("sigaction SIGALRM: %s", strerror(errno));

	for (int i = 0; i < nthreads; i++) {
		ti[i].idx = i;
		expected(&ti[i].r, i);
		ti[i].r.ts.tv_sec = period_us / 1000000;
		ti[i].r.ts.tv_nsec = (period_us % 1000000) * 1000;
		if ((err = pthread_create(&ti[i].th, NULL, thread_main, &ti[i])) != 0)
			wl_die("pthread_create: %s", strerror(err));
	}
	/* ready once every thread holds its registers */
	for (uint64_t deadline = wl_mono() + 10000000000ull;;) {
		int ok = 1;
		for (int i = 0; i < nthreads; i++)
			ok = ok && ti[i].r.iters > 0;
		if (ok)
			break;
		if (wl_mono() > deadline)
			wl_die("threads did not start");
		wl_sleep_ns(1000000);
	}
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		wl_die("setitimer: %s", strerror(errno));
	wl_ready();
	wl_loop(100000000ull, NULL);

	/* Still running: every loop moves on, the alarms still come. */
	uint64_t before[64], alarms_before = alarms;
	for (int i = 0; i < nthreads; i++)
		before[i] = ti[i].r.iters;
	/* At least 300 ms, and until every loop moved on and an alarm came,
	 * for at most 2 s (in a TCG guest on a loaded host a thread may wait
	 * that long for a CPU). wl_sleep_ns returns at the first alarm once a
	 * finish is requested, so the window is measured on the clock. */
	for (uint64_t t0 = wl_mono(), now = t0; now < t0 + 2000000000ull; now = wl_mono()) {
		int all = alarms != alarms_before;
		for (int i = 0; i < nthreads; i++)
			all &= ti[i].r.bad || ti[i].r.iters != before[i];
		if (all && now >= t0 + 300000000ull)
			break;
		wl_sleep_ns(1000000);
	}
	for (int i = 0; i < nthreads; i++) {
		if (ti[i].r.bad)
			continue;
		if (ti[i].r.iters == before[i])
			wl_failf("t%d's loop stopped (%" PRIu64 " iterations, bad %u)", i, before[i], ti[i].r.bad);
	}
	if (alarms == alarms_before)
		wl_failf("SIGALRM stopped coming (%" PRIu64 " so far)", alarms);
	if (!alarm_installed_ok())
		wl_failf("the SIGALRM handler is not installed as it was");
	if (alarm_bad)
		wl_failf("%" PRIu64 " of %" PRIu64 " SIGALRM handlers computed a wrong sum", alarm_bad,
			 alarms);
	if (wl.corrupt)
		ti[0].r.bad = 5;

	for (int i = 0; i < nthreads; i++)
		ti[i].r.stop = 1;
	for (int i = 0; i < nthreads; i++) {
		if ((err = pthread_join(ti[i].th, NULL)) != 0)
			wl_failf("join t%d: %s", i, strerror(err));
		uint32_t bad = ti[i].r.bad;
		if (bad) {
			char hex[33];
			for (int b = 0; b < 16; b++)
				snprintf(hex + 2 * b, 3, "%02x", ti[i].r.scr[b]);
			wl_failf("t%d: %s lost its value after %" PRIu64 " iterations (held %s)", i,
				 reg_name(bad), ti[i].r.iters, hex);
		}
	}
	setitimer(ITIMER_REAL, &(struct itimerval){{0, 0}, {0, 0}}, NULL);
	wl_check_common();
	{
		uint64_t total = 0;
		for (int i = 0; i < nthreads; i++)
			total += ti[i].r.iters;
		wl_fieldf("iterations", "%" PRIu64, total);
	}
	wl_fieldf("alarms", "%" PRIu64, alarms);
	wl_fieldf("threads", "%d", nthreads);
	wl_exit();
	return 0;
}
