/*
 * powercheck: kernel-feature checks and register-set capture for the POWER
 * e2e guests. Built static with the powerpc cross compilers for ppc64le,
 * ppc64 (big-endian) and ppc (32-bit); see e2e/power/build.go.
 *
 *   powercheck ptrace            PTRACE_SEIZE + INTERRUPT + PEEK/POKE + GETREGSET on a child
 *   powercheck softdirty         clear_refs 4, then pagemap bit 55 shows exactly the written page
 *   powercheck pagesize [WANT]   prints sysconf(_SC_PAGESIZE) and AT_PAGESZ, checks WANT
 *   powercheck auxv              writes /proc/self/auxv to stdout, raw
 *   powercheck regdump [EXE]     runs EXE (default: itself) as "regs-child" under ptrace and
 *                                dumps every register set at its trap, in hex
 *   powercheck regs-child        loads the known values (see regs_child) and traps
 *   powercheck sleep SECONDS     sleeps (a process for the harness to find and signal)
 *
 * Every check prints "PASS <what>" or "FAIL <what>: <why>" and exits non-zero on failure.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Note types from include/uapi/linux/elf.h, for libcs that lack some. */
#ifndef NT_PPC_VMX
#define NT_PPC_VMX 0x100
#endif
#ifndef NT_PPC_SPE
#define NT_PPC_SPE 0x101
#endif
#ifndef NT_PPC_VSX
#define NT_PPC_VSX 0x102
#endif
#ifndef NT_PPC_TAR
#define NT_PPC_TAR 0x103
#endif
#ifndef NT_PPC_PPR
#define NT_PPC_PPR 0x104
#endif
#ifndef NT_PPC_DSCR
#define NT_PPC_DSCR 0x105
#endif
#ifndef NT_PPC_EBB
#define NT_PPC_EBB 0x106
#endif
#ifndef NT_PPC_PMU
#define NT_PPC_PMU 0x107
#endif
#ifndef NT_PPC_TM_SPR
#define NT_PPC_TM_SPR 0x10c
#endif
#ifndef NT_PPC_PKEY
#define NT_PPC_PKEY 0x110
#endif
/* include/uapi/linux/ptrace.h */
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

static int fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const char *what, const char *fmt, ...)
{
	va_list ap;
	int e = errno;
	printf("FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (errno %d %s)\n", e, strerror(e));
	fflush(stdout);
	return 1;
}

static volatile unsigned long marker = (unsigned long)0x1122334455667788ULL;

static int check_ptrace(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return fail("ptrace", "fork");
	if (pid == 0) {
		for (;;)
			usleep(1000);
	}
	int st, rc = 1;
	unsigned long got;
	unsigned char regs[1024];
	struct iovec iov = { regs, sizeof(regs) };
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
		fail("ptrace", "PTRACE_SEIZE");
		goto out;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) {
		fail("ptrace", "PTRACE_INTERRUPT");
		goto out;
	}
	if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st) || (st >> 16) != PTRACE_EVENT_STOP) {
		fail("ptrace", "wait for the group stop: status %#x", st);
		goto out;
	}
	errno = 0;
	got = ptrace(PTRACE_PEEKDATA, pid, (void *)&marker, 0);
	if (errno != 0 || got != marker) {
		fail("ptrace", "PEEKDATA read %#lx, want %#lx", got, marker);
		goto out;
	}
	if (ptrace(PTRACE_POKEDATA, pid, (void *)&marker, (void *)~marker) != 0) {
		fail("ptrace", "POKEDATA");
		goto out;
	}
	errno = 0;
	got = ptrace(PTRACE_PEEKDATA, pid, (void *)&marker, 0);
	if (errno != 0 || got != ~marker) {
		fail("ptrace", "PEEKDATA after POKEDATA read %#lx, want %#lx", got, ~marker);
		goto out;
	}
	if (ptrace(PTRACE_GETREGSET, pid, (void *)NT_PRSTATUS, &iov) != 0) {
		fail("ptrace", "GETREGSET NT_PRSTATUS");
		goto out;
	}
	if (ptrace(PTRACE_DETACH, pid, 0, 0) != 0) {
		fail("ptrace", "PTRACE_DETACH");
		goto out;
	}
	printf("PASS ptrace: SEIZE, INTERRUPT (event stop), PEEKDATA, POKEDATA, GETREGSET NT_PRSTATUS %zu bytes, DETACH\n",
	       iov.iov_len);
	rc = 0;
out:
	kill(pid, SIGKILL);
	waitpid(pid, &st, __WALL);
	return rc;
}

static int pagemap_soft_dirty(int fd, void *addr, long page, int *dirty)
{
	uint64_t e;
	off_t off = (off_t)((uintptr_t)addr / (uintptr_t)page) * 8;
	if (pread(fd, &e, sizeof(e), off) != sizeof(e))
		return -1;
	*dirty = (int)((e >> 55) & 1);
	return 0;
}

static int check_softdirty(void)
{
	const int n = 8, written = 3;
	long page = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return fail("softdirty", "mmap");
	for (int i = 0; i < n; i++)
		m[i * page] = 1;
	int cr = open("/proc/self/clear_refs", O_WRONLY);
	if (cr < 0)
		return fail("softdirty", "open clear_refs");
	if (write(cr, "4", 1) != 1)
		return fail("softdirty", "write 4 to clear_refs");
	close(cr);
	int pm = open("/proc/self/pagemap", O_RDONLY);
	if (pm < 0)
		return fail("softdirty", "open pagemap");
	for (int i = 0; i < n; i++) {
		int d;
		if (pagemap_soft_dirty(pm, m + i * page, page, &d) != 0)
			return fail("softdirty", "read pagemap");
		if (d)
			return fail("softdirty", "page %d soft-dirty right after clear_refs", i);
	}
	m[written * page] = 2;
	for (int i = 0; i < n; i++) {
		int d;
		if (pagemap_soft_dirty(pm, m + i * page, page, &d) != 0)
			return fail("softdirty", "read pagemap");
		if (d != (i == written))
			return fail("softdirty", "page %d soft-dirty=%d after writing page %d", i, d, written);
	}
	printf("PASS softdirty: clear_refs 4 cleared bit 55 on %d pages of %ld bytes, a write set it on exactly one\n",
	       n, page);
	return 0;
}

static int check_pagesize(const char *want)
{
	long sc = sysconf(_SC_PAGESIZE);
	unsigned long at = getauxval(AT_PAGESZ);
	if ((unsigned long)sc != at)
		return fail("pagesize", "sysconf %ld != AT_PAGESZ %lu", sc, at);
	if (want && strtol(want, NULL, 0) != sc)
		return fail("pagesize", "page size %ld, want %s", sc, want);
	printf("PASS pagesize: %ld (AT_PAGESZ %lu, %zu-bit task)\n", sc, at, sizeof(long) * 8);
	return 0;
}

static int dump_auxv(void)
{
	char buf[4096];
	int fd = open("/proc/self/auxv", O_RDONLY);
	if (fd < 0)
		return fail("auxv", "open");
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n <= 0)
		return fail("auxv", "read");
	fwrite(buf, 1, n, stdout);
	return 0;
}

/*
 * Known register values loaded by regs_child before its trap. N is the
 * register number. These are documented in e2e/power/testdata/README.md;
 * change both together.
 */
struct vsx_init {
	uint64_t fpr;  /* doubleword 0: the FPR */
	uint64_t low;  /* doubleword 1: the VSX-only half */
};
static struct vsx_init vsx_vals[32] __attribute__((aligned(16)));
static uint32_t vr_vals[32][4] __attribute__((aligned(16)));
static uint32_t vscr_val[4] __attribute__((aligned(16))) = { 0x00010000, 0x00010000, 0x00010000, 0x00010000 };

#define LOAD_GPR_32(n) "lis " #n ",0xA5A5\n\tori " #n "," #n ",(" #n "<<8)|" #n "\n\t"
#define LOAD_GPR_64(n) "lis " #n ",0xA5A5\n\tsldi " #n "," #n ",32\n\tori " #n "," #n ",(" #n "<<8)|" #n "\n\t"
#ifdef __powerpc64__
#define LOAD_GPR LOAD_GPR_64
#define CTR_LOAD "lis 0,0xC7C7\n\tsldi 0,0,32\n\tori 0,0,0x0c0c\n\t"
#else
#define LOAD_GPR LOAD_GPR_32
#define CTR_LOAD "lis 0,0xC7C7\n\tori 0,0,0x0c0c\n\t"
#endif
#define LXV(n) "lxvd2x " #n ",0,%0\n\taddi %0,%0,16\n\t"
#define LVX(n) "lvx " #n ",0,%1\n\taddi %1,%1,16\n\t"

static void __attribute__((noreturn)) regs_child(void)
{
	for (int n = 0; n < 32; n++) {
		vsx_vals[n].fpr = 0xF0F0000000000000ULL | (uint64_t)((n << 8) | n);
		vsx_vals[n].low = 0x5A5A000000000000ULL | (uint64_t)((n << 8) | n);
		for (int w = 0; w < 4; w++)
			vr_vals[n][w] = 0xB0000000U | (uint32_t)(n << 8) | (uint32_t)w;
	}
	void *vsx = vsx_vals, *vr = vr_vals;
	__asm__ __volatile__(
		".machine push\n\t.machine power8\n\t"
		/* VSCR: NJ set; then v0 gets its pattern below */
		"lvx 0,0,%2\n\tmtvscr 0\n\t"
		LXV(0) LXV(1) LXV(2) LXV(3) LXV(4) LXV(5) LXV(6) LXV(7)
		LXV(8) LXV(9) LXV(10) LXV(11) LXV(12) LXV(13) LXV(14) LXV(15)
		LXV(16) LXV(17) LXV(18) LXV(19) LXV(20) LXV(21) LXV(22) LXV(23)
		LXV(24) LXV(25) LXV(26) LXV(27) LXV(28) LXV(29) LXV(30) LXV(31)
		LVX(0) LVX(1) LVX(2) LVX(3) LVX(4) LVX(5) LVX(6) LVX(7)
		LVX(8) LVX(9) LVX(10) LVX(11) LVX(12) LVX(13) LVX(14) LVX(15)
		LVX(16) LVX(17) LVX(18) LVX(19) LVX(20) LVX(21) LVX(22) LVX(23)
		LVX(24) LVX(25) LVX(26) LVX(27) LVX(28) LVX(29) LVX(30) LVX(31)
		"mtfsfi 7,1\n\t"                          /* FPSCR RN = 01, round toward zero */
		"lis 0,0xA5A5\n\tori 0,0,0xF00D\n\tmtspr 256,0\n\t" /* VRSAVE */
		"li 0,0x11\n\tmtspr 3,0\n\t"              /* DSCR (user SPR 3) */
		"lis 0,0x7A7A\n\tori 0,0,0x0800\n\tmtspr 815,0\n\t" /* TAR */
		"or 1,1,1\n\t"                            /* PPR priority: low */
		CTR_LOAD "mtctr 0\n\t"
		"lis 0,0x1234\n\tori 0,0,0x5678\n\tmtcrf 0xff,0\n\t" /* CR */
		"lis 0,0x2000\n\tmtxer 0\n\t"             /* XER[CA] */
		LOAD_GPR(14) LOAD_GPR(15) LOAD_GPR(16) LOAD_GPR(17) LOAD_GPR(18) LOAD_GPR(19)
		LOAD_GPR(20) LOAD_GPR(21) LOAD_GPR(22) LOAD_GPR(23) LOAD_GPR(24) LOAD_GPR(25)
		LOAD_GPR(26) LOAD_GPR(27) LOAD_GPR(28) LOAD_GPR(29)
		"trap\n\t"
		".machine pop\n\t"
		: "+b"(vsx), "+b"(vr)
		: "b"(vscr_val)
		: "r0", "r14", "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24",
		  "r25", "r26", "r27", "r28", "r29", "ctr", "xer", "cr0", "cr1", "cr2", "cr3", "cr4",
		  "cr5", "cr6", "cr7", "memory",
		  "vs0", "vs1", "vs2", "vs3", "vs4", "vs5", "vs6", "vs7", "vs8", "vs9", "vs10", "vs11",
		  "vs12", "vs13", "vs14", "vs15", "vs16", "vs17", "vs18", "vs19", "vs20", "vs21", "vs22",
		  "vs23", "vs24", "vs25", "vs26", "vs27", "vs28", "vs29", "vs30", "vs31",
		  "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13",
		  "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25",
		  "v26", "v27", "v28", "v29", "v30", "v31");
	_exit(0);
}

static const struct {
	const char *name;
	unsigned int type;
} regsets[] = {
	{ "NT_PRSTATUS", NT_PRSTATUS }, { "NT_PRFPREG", NT_PRFPREG }, { "NT_PPC_VMX", NT_PPC_VMX },
	{ "NT_PPC_SPE", NT_PPC_SPE },   { "NT_PPC_VSX", NT_PPC_VSX }, { "NT_PPC_TAR", NT_PPC_TAR },
	{ "NT_PPC_PPR", NT_PPC_PPR },   { "NT_PPC_DSCR", NT_PPC_DSCR }, { "NT_PPC_EBB", NT_PPC_EBB },
	{ "NT_PPC_PMU", NT_PPC_PMU },   { "NT_PPC_TM_SPR", NT_PPC_TM_SPR }, { "NT_PPC_PKEY", NT_PPC_PKEY },
};

static int regdump(const char *exe)
{
	pid_t pid = fork();
	if (pid < 0)
		return fail("regdump", "fork");
	if (pid == 0) {
		char *argv[] = { (char *)exe, "regs-child", NULL };
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		execv(exe, argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
		return fail("regdump", "no exec stop: status %#x", st);
	if (ptrace(PTRACE_CONT, pid, 0, 0) != 0)
		return fail("regdump", "PTRACE_CONT");
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
		kill(pid, SIGKILL);
		return fail("regdump", "child did not reach its trap: status %#x", st);
	}
	printf("# powercheck regdump: tracer %zu-bit, tracee %s\n", sizeof(long) * 8, exe);
	for (size_t i = 0; i < sizeof(regsets) / sizeof(regsets[0]); i++) {
		static unsigned char buf[8192];
		struct iovec iov = { buf, sizeof(buf) };
		memset(buf, 0, sizeof(buf));
		if (ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)regsets[i].type, &iov) != 0) {
			int e = errno;
			printf("regset %s 0x%x errno %d %s\n", regsets[i].name, regsets[i].type, e, strerror(e));
			continue;
		}
		printf("regset %s 0x%x len %zu\n", regsets[i].name, regsets[i].type, iov.iov_len);
		for (size_t off = 0; off < iov.iov_len; off += 32) {
			printf("%04zx ", off);
			for (size_t j = off; j < off + 32 && j < iov.iov_len; j++)
				printf("%02x", buf[j]);
			printf("\n");
		}
	}
	printf("end\n");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: powercheck ptrace|softdirty|pagesize [WANT]|auxv|regdump [EXE]|regs-child\n");
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "ptrace"))
		return check_ptrace();
	if (!strcmp(cmd, "softdirty"))
		return check_softdirty();
	if (!strcmp(cmd, "pagesize"))
		return check_pagesize(argc > 2 ? argv[2] : NULL);
	if (!strcmp(cmd, "auxv"))
		return dump_auxv();
	if (!strcmp(cmd, "regdump"))
		return regdump(argc > 2 ? argv[2] : "/proc/self/exe");
	if (!strcmp(cmd, "regs-child"))
		regs_child();
	if (!strcmp(cmd, "sleep") && argc > 2) {
		sleep((unsigned)atoi(argv[2]));
		return 0;
	}
	fprintf(stderr, "powercheck: unknown command %s\n", cmd);
	return 2;
}
