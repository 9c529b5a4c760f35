/*
 * zdtm/fpu: floating-point and vector state survives a freeze taken while
 * the values live only in registers.
 *
 * The main loop spends most of its time inside asm blocks that load known
 * values into the vector registers (SSE xmm; AVX ymm and AVX-512 zmm and
 * opmask k1-k7 where the CPU has them) or onto the x87 stack, spin, and
 * store them back: a move during the spin must bring them back bit for bit.
 * MXCSR (rounding toward zero, FTZ, DAZ) and the x87 control word
 * (53-bit precision, toward zero) are set at start and must be unchanged;
 * a double recurrence computed across the whole run must equal a fresh
 * recomputation. Non-x86 builds check only the C-level part.
 */
#include "../wl.h"

#include <fenv.h>

static volatile uint64_t rounds;
static double acc = 1.0;
static uint64_t acc_steps;
static int have_avx, have_avx512;

static void fp_step(void)
{
	for (int i = 0; i < 1000; i++) {
		acc = acc * 1.0000001 + 1e-9 / (double)(acc_steps + 1);
		acc_steps++;
	}
}

static double fp_recompute(void)
{
	double a = 1.0;
	for (uint64_t s = 0; s < acc_steps; s++)
		a = a * 1.0000001 + 1e-9 / (double)(s + 1);
	return a;
}

#if defined(__x86_64__) || defined(__i386__)
#define SPIN 2000000u

#ifdef __x86_64__
#define NV 16
#define NZ 32
#define VCLOBBER                                                                                   \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",   \
		"xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define REP(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define REPZ(M)                                                                                    \
	REP(M)                                                                                     \
	M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30)  \
	M(31)
#define ZCLOBBER                                                                                   \
	VCLOBBER, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24",  \
		"xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
#else
#define NV 8
#define NZ 8
#define VCLOBBER "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7"
#define REP(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define REPZ(M) REP(M)
#define ZCLOBBER VCLOBBER
#endif

static uint8_t vin[NZ * 64 + 64] __attribute__((aligned(64)));
static uint8_t vout[NZ * 64 + 64] __attribute__((aligned(64)));
static uint32_t mxcsr0;
static uint16_t fcw0;

static void prepare(size_t len)
{
	wl_fill(vin, len, 31, rounds * 1000);
	memset(vout, 0, sizeof(vout));
}

static void compare(const char *what, int width, int n)
{
	for (int r = 0; r < n; r++)
		if (memcmp(vin + r * width, vout + r * width, (size_t)width) != 0) {
			wl_failf("%s%d differs after a spin (round %" PRIu64 ")", what, r, rounds);
			return;
		}
}

#define XL(i) "movdqu " #i "*16(%[in]), %%xmm" #i "\n\t"
#define XS(i) "movdqu %%xmm" #i ", " #i "*16(%[out])\n\t"
__attribute__((target("sse2"))) static void sse_round(void)
{
	unsigned n = SPIN;
	prepare(NV * 16);
	__asm__ volatile(REP(XL) "1: dec %[n]\n\tjnz 1b\n\t" REP(XS)
			 : [n] "+r"(n)
			 : [in] "r"(vin), [out] "r"(vout)
			 : "memory", "cc", VCLOBBER);
	compare("xmm", 16, NV);
}

#define YL(i) "vmovdqu " #i "*32(%[in]), %%ymm" #i "\n\t"
#define YS(i) "vmovdqu %%ymm" #i ", " #i "*32(%[out])\n\t"
__attribute__((target("avx"))) static void avx_round(void)
{
	unsigned n = SPIN;
	prepare(NV * 32);
	__asm__ volatile(REP(YL) "1: dec %[n]\n\tjnz 1b\n\t" REP(YS) "vzeroupper\n\t"
			 : [n] "+r"(n)
			 : [in] "r"(vin), [out] "r"(vout)
			 : "memory", "cc", VCLOBBER);
	compare("ymm", 32, NV);
}

#define ZL(i) "vmovdqu64 " #i "*64(%[in]), %%zmm" #i "\n\t"
#define ZS(i) "vmovdqu64 %%zmm" #i ", " #i "*64(%[out])\n\t"
#define KL(i) "kmovw " #i "*2+2048(%[in]), %%k" #i "\n\t"
#define KS(i) "kmovw %%k" #i ", " #i "*2+2048(%[out])\n\t"
#define REPK(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
__attribute__((target("avx512f"))) static void avx512_round(void)
{
	unsigned n = SPIN;
	prepare(sizeof(vin));
	__asm__ volatile(REPZ(ZL) REPK(KL) "1: dec %[n]\n\tjnz 1b\n\t" REPZ(ZS) REPK(KS)
			 "vzeroupper\n\t"
			 : [n] "+r"(n)
			 : [in] "r"(vin), [out] "r"(vout)
			 : "memory", "cc", ZCLOBBER, "k1", "k2", "k3", "k4", "k5", "k6", "k7");
	compare("zmm", 64, NZ);
	for (int k = 1; k < 8; k++)
		if (memcmp(vin + 2048 + 2 * k, vout + 2048 + 2 * k, 2) != 0)
			wl_failf("k%d differs after a spin (round %" PRIu64 ")", k, rounds);
}

static void x87_round(void)
{
	long double in[3], out[3] = {0, 0, 0};
	unsigned n = SPIN;
	in[0] = 3.14159265358979323846L + (long double)rounds;
	in[1] = -2.718281828459045L / (long double)(rounds + 1);
	in[2] = 1e-300L * (long double)(rounds + 7);
	__asm__ volatile("fldt %[a]\n\tfldt %[b]\n\tfldt %[c]\n\t"
			 "1: dec %[n]\n\tjnz 1b\n\t"
			 "fstpt %[z]\n\tfstpt %[y]\n\tfstpt %[x]\n\t"
			 : [n] "+r"(n), [x] "=m"(out[0]), [y] "=m"(out[1]), [z] "=m"(out[2])
			 : [a] "m"(in[0]), [b] "m"(in[1]), [c] "m"(in[2])
			 : "cc");
	for (int i = 0; i < 3; i++)
		if (memcmp(&in[i], &out[i], 10) != 0)
			wl_failf("x87 st(%d) differs after a spin (round %" PRIu64 ")", 2 - i, rounds);
}

__attribute__((target("sse2"))) static uint32_t get_mxcsr(void)
{
	uint32_t v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

__attribute__((target("sse2"))) static void set_mxcsr(uint32_t v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t get_fcw(void)
{
	uint16_t v;
	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void set_fcw(uint16_t v)
{
	__asm__ volatile("fldcw %0" : : "m"(v));
}

static void setup_regs(void)
{
	__builtin_cpu_init();
	have_avx = !!__builtin_cpu_supports("avx");
	have_avx512 = !!__builtin_cpu_supports("avx512f");
	/* MXCSR: round toward zero (bits 13-14 = 11), FTZ (15), DAZ (6). */
	set_mxcsr((get_mxcsr() & ~0x6000u) | 0x6000u | 0x8040u);
	/* x87: 53-bit precision (PC=10), round toward zero (RC=11). */
	set_fcw((uint16_t)((get_fcw() & ~0x0f00u) | 0x0200u | 0x0c00u));
	mxcsr0 = get_mxcsr();
	fcw0 = get_fcw();
}

static void step(void)
{
	sse_round();
	if (have_avx)
		avx_round();
	if (have_avx512)
		avx512_round();
	x87_round();
	fp_step();
	rounds++;
}

static void check_regs(void)
{
	/* bits 0-5 are sticky exception flags the computation sets */
	if ((get_mxcsr() & ~0x3fu) != (mxcsr0 & ~0x3fu))
		wl_failf("MXCSR control bits are %#x, were %#x", get_mxcsr() & ~0x3fu, mxcsr0 & ~0x3fu);
	if (get_fcw() != fcw0)
		wl_failf("x87 control word is %#x, was %#x", get_fcw(), fcw0);
	step();
	wl_fieldf("avx", "%d", have_avx);
	wl_fieldf("avx512", "%d", have_avx512);
	wl_fieldf("mxcsr", "%#x", mxcsr0);
}
#else
static void setup_regs(void)
{
	fesetround(FE_TOWARDZERO);
}
static void step(void)
{
	fp_step();
	rounds++;
}
static void check_regs(void)
{
	if (fegetround() != FE_TOWARDZERO)
		wl_failf("rounding mode changed");
}
#endif

int main(int argc, char **argv)
{
	double want;
	wl_init(argc, argv, NULL);
	setup_regs();
	wl_ready();
	while (!wl_finish) {
		uint64_t t = wl_mono();
		while (wl_mono() - t < 10000000ull && !wl_finish)
			step();
		wl_progress();
		wl_sleep_ns(2000000);
	}
	if (wl.corrupt)
		acc += 1e-12;
	wl_check_common();
	check_regs();
	want = fp_recompute();
	if (memcmp(&want, &acc, sizeof(acc)) != 0)
		wl_failf("double recurrence after %" PRIu64 " steps is %.17g, a fresh recomputation "
			 "gives %.17g",
			 acc_steps, acc, want);
	wl_fieldf("rounds", "%" PRIu64, rounds);
	wl_exit();
}
