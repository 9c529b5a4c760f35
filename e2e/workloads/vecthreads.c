/*
 * vecthreads: threads that keep known values in the floating-point, VMX
 * (AltiVec) and VSX registers for their whole life: the POWER move workload
 * whose check fails when a move loses NT_PRFPREG, NT_PPC_VMX or NT_PPC_VSX.
 * It builds only for powerpc (64-bit LE and BE, and 32-bit: what the
 * compiler enables, __ALTIVEC__ and __VSX__, decides which sets it holds).
 *
 *   --threads=N     register-holding threads (default 3)
 *   --period-us=U   sleep between two checks in a thread (default 2000)
 *   (and the wl.h options: --dir, --corrupt, --log-unlinked)
 *
 * Each thread loads values of its own (a function of its index) into f20-f23
 * (with VSX, the whole of vs20-vs23, whose high doublewords are f20-f23) and
 * v20-v23, once, then runs one inline-asm loop until told to stop: store the
 * registers to memory, compare them word by word with the expected values,
 * count the iteration, sleep with a raw nanosleep syscall. The registers are
 * never reloaded, so a move that loses a register set makes the next
 * iteration fail; the loop then records which register differed, and the
 * bytes it held. Each thread also runs with its own FP rounding mode (FPSCR,
 * part of NT_PRFPREG), checked at the end.
 *
 * Main installs a SIGALRM handler (with SA_RESTART and SIGUSR1 in its mask)
 * that does FP arithmetic, armed by setitimer every 5 ms, and writes one
 * progress line every 100 ms. After SIGUSR2 it checks: the threads' loops
 * still run (their counters move for 300 ms more), none saw a wrong
 * register, the rounding modes, the alarms still come and the handler is
 * still installed as it was, the common checks of wl.h; then it stops the
 * threads and writes the result.
 */
#include "wl.h"

#include <pthread.h>
#include <stddef.h>
#include <sys/time.h>

#if !defined(__powerpc__)
#error "vecthreads is a powerpc program (its registers are checked in powerpc assembly)"
#endif

/*
 * The layout the assembly uses (offsets from the thread's struct regvals):
 * scratch first, so that it is 0(base).
 */
#define OFF_SCR 0    /* 16 bytes: where a register is stored to be compared */
#define OFF_VSX 16   /* 4 x 16: expected vs20..vs23 (dw0 is f20..f23) */
#define OFF_VMX 80   /* 4 x 16: expected v20..v23 */
#define OFF_FPR 144  /* 4 x 8: expected f20..f23 */
#define OFF_TS 176   /* the nanosleep request (two longs) */
#define OFF_STOP 192 /* set by main: leave the loop */
#define OFF_BAD 196  /* 0, or the id of the register that differed */
#define OFF_ITER 200 /* iterations done */

struct regvals {
	uint8_t scratch[16];
	uint8_t vsx[4][16];
	uint8_t vmx[4][16];
	uint8_t fpr[4][8];
	union {
		long ts[2];
		uint8_t ts_space[16];
	};
	volatile uint32_t stop;
	volatile uint32_t bad;
	volatile uint32_t iter;
	uint32_t pad;
} __attribute__((aligned(16)));

_Static_assert(offsetof(struct regvals, scratch) == OFF_SCR, "OFF_SCR");
_Static_assert(offsetof(struct regvals, vsx) == OFF_VSX, "OFF_VSX");
_Static_assert(offsetof(struct regvals, vmx) == OFF_VMX, "OFF_VMX");
_Static_assert(offsetof(struct regvals, fpr) == OFF_FPR, "OFF_FPR");
_Static_assert(offsetof(struct regvals, ts) == OFF_TS, "OFF_TS");
_Static_assert(offsetof(struct regvals, stop) == OFF_STOP, "OFF_STOP");
_Static_assert(offsetof(struct regvals, bad) == OFF_BAD, "OFF_BAD");
_Static_assert(offsetof(struct regvals, iter) == OFF_ITER, "OFF_ITER");

/* Register ids in regvals.bad: 1-4 f20-f23, 11-14 v20-v23, 21-24 vs20-vs23. */
static const char *reg_name(uint32_t id)
{
	static const char *names[] = {
		[1] = "f20", [2] = "f21", [3] = "f22", [4] = "f23",
		[11] = "v20", [12] = "v21", [13] = "v22", [14] = "v23",
		[21] = "vs20", [22] = "vs21", [23] = "vs22", [24] = "vs23",
	};
	if (id < sizeof(names) / sizeof(names[0]) && names[id])
		return names[id];
	return "?";
}

#define STR_(x) #x
#define STR(x) STR_(x)

/* Compare scratch word k with the expected word k at r10; on a difference
 * branch out with the register id in r9. */
#define CMP_WORD(k) \
	"lwz 11," #k "(%[b])\n\t" \
	"lwz 12," #k "(10)\n\t" \
	"cmpw 11,12\n\t" \
	"bne- 8f\n\t"
#define CMP8 CMP_WORD(0) CMP_WORD(4)
#define CMP16 CMP8 CMP_WORD(8) CMP_WORD(12)

#define CHECK_FPR(n, off, id) \
	"li 9," #id "\n\taddi 10,%[b]," #off "\n\tstfd " #n ",0(%[b])\n\t" CMP8
#define LOAD_FPR(n, off) "lfd " #n "," #off "(%[b])\n\t"

#ifdef __ALTIVEC__
#define CHECK_VMX(n, off, id) \
	"li 9," #id "\n\taddi 10,%[b]," #off "\n\tstvx " #n ",0,%[b]\n\t" CMP16
#define LOAD_VMX(n, off) "addi 10,%[b]," #off "\n\tlvx " #n ",0,10\n\t"
#else
#define CHECK_VMX(n, off, id) ""
#define LOAD_VMX(n, off) ""
#endif

#ifdef __VSX__
#define CHECK_VSX(n, off, id) \
	"li 9," #id "\n\taddi 10,%[b]," #off "\n\tstxvd2x " #n ",0,%[b]\n\t" CMP16
#define LOAD_VSX(n, off) "addi 10,%[b]," #off "\n\tlxvd2x " #n ",0,10\n\t"
#else
#define CHECK_VSX(n, off, id) ""
#define LOAD_VSX(n, off) ""
#endif

/*
 * hold_registers loads the values once and loops until v->stop, checking
 * them every iteration. It returns when stopped or at the first difference
 * (v->bad set, the register's bytes left in v->scratch).
 */
static void hold_registers(struct regvals *v)
{
	__asm__ __volatile__(
		/* Load: the FPRs first; with VSX, vs20-23 then set f20-23 as well
		 * (to the same values, fpr[i] == vsx[i][0..8]). */
		LOAD_FPR(20, 144) LOAD_FPR(21, 152) LOAD_FPR(22, 160) LOAD_FPR(23, 168)
		LOAD_VSX(20, 16) LOAD_VSX(21, 32) LOAD_VSX(22, 48) LOAD_VSX(23, 64)
		LOAD_VMX(20, 80) LOAD_VMX(21, 96) LOAD_VMX(22, 112) LOAD_VMX(23, 128)
		"1:\n\t"
		CHECK_FPR(20, 144, 1) CHECK_FPR(21, 152, 2) CHECK_FPR(22, 160, 3) CHECK_FPR(23, 168, 4)
		CHECK_VMX(20, 80, 11) CHECK_VMX(21, 96, 12) CHECK_VMX(22, 112, 13) CHECK_VMX(23, 128, 14)
		CHECK_VSX(20, 16, 21) CHECK_VSX(21, 32, 22) CHECK_VSX(22, 48, 23) CHECK_VSX(23, 64, 24)
		/* iter++ */
		"lwz 11," STR(OFF_ITER) "(%[b])\n\t"
		"addi 11,11,1\n\t"
		"stw 11," STR(OFF_ITER) "(%[b])\n\t"
		/* nanosleep(&v->ts, NULL): sc clobbers r0, r3-r12, cr0, ctr, xer */
		"li 0,%[nr]\n\t"
		"addi 3,%[b]," STR(OFF_TS) "\n\t"
		"li 4,0\n\t"
		"sc\n\t"
		"lwz 11," STR(OFF_STOP) "(%[b])\n\t"
		"cmpwi 11,0\n\t"
		"beq+ 1b\n\t"
		"b 9f\n"
		"8:\n\t"
		"stw 9," STR(OFF_BAD) "(%[b])\n"
		"9:\n"
		:
		: [b] "b"(v), [nr] "i"(__NR_nanosleep)
		: "r0", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12",
		  "ctr", "xer", "cr0", "memory",
		  "fr20", "fr21", "fr22", "fr23"
#ifdef __ALTIVEC__
		  , "v20", "v21", "v22", "v23"
#endif
#ifdef __VSX__
		  , "vs20", "vs21", "vs22", "vs23"
#endif
	);
}

#define MAXT 16

struct thread {
	pthread_t th;
	int idx;
	int round;      /* FPSCR[RN] the thread runs with */
	int round_seen; /* FPSCR[RN] after the loop */
	struct regvals v;
};

static struct thread *ts;
static int nthreads;
static volatile sig_atomic_t alarms;
static volatile double alarm_acc = 1.0;

/* FPSCR[RN]: 0 to nearest, 1 toward zero, 2 upward, 3 downward (Power ISA,
 * the Floating-Point Status and Control Register). Set and read with the
 * compiler's builtins: fesetround would need libm. */
static void set_rounding(int rn)
{
	__builtin_set_fpscr_rn(rn);
}

static int get_rounding(void)
{
	double d = __builtin_mffs();
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return (int)(u & 3);
}

static void fill_values(struct thread *t)
{
	uint64_t seed = 0x5eed0000u + (uint64_t)t->idx;
	for (int r = 0; r < 4; r++) {
		for (int k = 0; k < 2; k++) {
			/* Finite doubles of the thread's own (sign and exponent
			 * bits fixed), so that no FP operation could produce them
			 * by chance: 0x3ff0.. to 0x3fff.. with mixed fractions. */
			uint64_t x = wl_mix(seed * 64 + (uint64_t)r * 2 + (uint64_t)k);
			x = (x & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
			memcpy(&t->v.vsx[r][8 * k], &x, 8);
		}
		memcpy(t->v.fpr[r], t->v.vsx[r], 8);
		for (int k = 0; k < 4; k++) {
			uint32_t w = (uint32_t)wl_mix(seed * 64 + 32 + (uint64_t)r * 4 + (uint64_t)k);
			memcpy(&t->v.vmx[r][4 * k], &w, 4);
		}
	}
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	set_rounding(t->round);
	hold_registers(&t->v);
	t->round_seen = get_rounding();
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
	/* FP in a signal handler: the frame must save and restore the
	 * interrupted FP state (and FPSCR) around it. */
	alarm_acc = alarm_acc * 1.0000001 + 0.25;
	alarms++;
}

static uint32_t total_iterations(uint32_t *min)
{
	uint32_t sum = 0;
	*min = UINT32_MAX;
	for (int i = 0; i < nthreads; i++) {
		uint32_t n = ts[i].v.iter;
		sum += n;
		if (n < *min)
			*min = n;
	}
	return sum;
}

int main(int argc, char **argv)
{
	struct sigaction sa, old;
	struct itimerval it = {{0, 5000}, {0, 5000}};
	long long period_us;
	uint32_t min0, min1, bad_threads = 0;
	int a0;
	char sets[32] = "fpr";

	wl_init(argc, argv, "threads,period-us");
	nthreads = (int)wl_opt_int("threads", 3);
	period_us = wl_opt_int("period-us", 2000);
	if (nthreads <= 0 || nthreads > MAXT || period_us <= 0 || period_us >= 1000000)
		wl_die("--threads must be 1..%d and --period-us 1..999999", MAXT);
#ifdef __ALTIVEC__
	strcat(sets, ",vmx");
#endif
#ifdef __VSX__
	strcat(sets, ",vsx");
#endif

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		wl_die("sigaction SIGALRM: %s", strerror(errno));

	ts = aligned_alloc(16, sizeof(*ts) * (size_t)nthreads);
	if (ts == NULL)
		wl_die("aligned_alloc: %s", strerror(errno));
	memset(ts, 0, sizeof(*ts) * (size_t)nthreads);
	for (int i = 0; i < nthreads; i++) {
		struct thread *t = &ts[i];
		t->idx = i;
		t->round = i % 4;
		t->v.ts[0] = 0;
		t->v.ts[1] = (long)(period_us * 1000);
		fill_values(t);
		if (pthread_create(&t->th, NULL, thread_main, t) != 0)
			wl_die("pthread_create: %s", strerror(errno));
	}
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		wl_die("setitimer: %s", strerror(errno));
	wl_ready();

	while (!wl_finish) {
		wl_mono();
		wl_progress();
		wl_sleep_ns(100000000);
	}

	/* The loops still run here (after a move): their counters move. A loop
	 * that found a wrong register has left: report that first. */
	total_iterations(&min0);
	a0 = alarms;
	/* (wl_sleep_ns returns at the first alarm once a finish is requested:
	 * the windows are measured on the clock, not counted in sleeps) */
	for (uint64_t until = wl_mono() + 3000000000ull;;) {
		total_iterations(&min1);
		if (min1 > min0 + 2 || wl_mono() >= until)
			break;
		wl_sleep_ns(10000000);
	}
	for (int i = 0; i < nthreads; i++) {
		struct thread *t = &ts[i];
		if (t->v.bad) {
			char hex[33];
			bad_threads++;
			for (int k = 0; k < 16; k++)
				snprintf(hex + 2 * k, 3, "%02x", t->v.scratch[k]);
			wl_failf("thread %d: %s did not keep its value (it held %s) after %u iterations",
				 i, reg_name(t->v.bad), hex, t->v.iter);
		}
	}
	if (min1 <= min0)
		wl_failf("a register thread stopped looping: least iterations %u, then %u 3 s later",
			 min0, min1);
	for (uint64_t until = wl_mono() + 1000000000ull; alarms < a0 + 3 && wl_mono() < until;)
		wl_sleep_ns(10000000);
	if (alarms < a0 + 3)
		wl_failf("SIGALRM stopped: %d alarms in 1 s (the interval timer is gone)",
			 alarms - a0);
	if (sigaction(SIGALRM, NULL, &old) != 0)
		wl_failf("sigaction SIGALRM: %s", strerror(errno));
	else if (old.sa_handler != on_alarm || !(old.sa_flags & SA_RESTART) ||
		 !sigismember(&old.sa_mask, SIGUSR1) || sigismember(&old.sa_mask, SIGUSR2))
		wl_failf("SIGALRM handler changed: handler %p (want %p), flags %#x, mask has USR1 %d USR2 %d",
			 (void *)old.sa_handler, (void *)on_alarm, (unsigned)old.sa_flags,
			 sigismember(&old.sa_mask, SIGUSR1), sigismember(&old.sa_mask, SIGUSR2));

	if (wl.corrupt)
		ts[0].v.fpr[1][5] ^= 0x40; /* thread 0 no longer holds the expected f21 */
	wl_sleep_ns(50000000); /* let the loops compare once more */
	for (int i = 0; i < nthreads; i++)
		ts[i].v.stop = 1;
	for (int i = 0; i < nthreads; i++) {
		struct thread *t = &ts[i];
		pthread_join(t->th, NULL);
		if (t->v.bad && bad_threads == 0)
			wl_failf("thread %d: %s did not keep its value after %u iterations", i,
				 reg_name(t->v.bad), t->v.iter);
		if (t->round_seen != t->round)
			wl_failf("thread %d: FP rounding mode %#x, set %#x (FPSCR lost)", i,
				 t->round_seen, t->round);
	}
	setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
	wl_check_common();
	{
		char list[MAXT * 12] = "";
		size_t n = 0;
		for (int i = 0; i < nthreads; i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%u", i ? "," : "",
					      ts[i].v.iter);
		wl_fieldf("iterations", "%s", list);
	}
	wl_fieldf("threads", "%d", nthreads);
	wl_fieldf("bad_threads", "%u", bad_threads);
	wl_fieldf("regsets", "%s", sets);
	wl_fieldf("alarms", "%d", (int)alarms);
	wl_fieldf("bits", "%d", (int)(8 * sizeof(long)));
	wl_exit();
}
