/*
 * simple: the single-threaded workload of the task-engine issue.
 *
 * State it builds and checks after SIGUSR2:
 *   - a brk heap, a private and a shared anonymous mapping, a private file
 *     mapping written to (copy-on-write pages over file pages, the file itself
 *     unchanged), a region with rw / PROT_NONE guard / read-only pages;
 *     every byte is compared with the pattern it was filled with;
 *   - a work array the counter loop keeps writing (model: iteration count);
 *   - SIGUSR1 and SIGALRM handlers (counted; both must run on the alternate
 *     signal stack), their sigaction flags and masks, the sigaltstack,
 *     SIGHUP ignored, the blocked set (SIGWINCH, SIGTTIN, SIGRTMIN+5);
 *   - setitimer(ITIMER_REAL): the interval is unchanged and it still fires;
 *   - the progress log (offset and content), CLOCK_MONOTONIC never went back,
 *     the pid is unchanged.
 *
 * Modes (--mode=):
 *   busy       a counter loop, one progress line every 10 ms
 *   nanosleep  mostly asleep in nanosleep(20 ms), resumed with the remaining
 *              time after EINTR; each full sleep must last at least 20 ms
 *   pause      waits in pause() for SIGUSR1; each one wakes it for one step
 *              and one progress line
 * --itimer-us=N sets the ITIMER_REAL period (default 20000).
 * --posix-timer creates a POSIX timer on the main thread's CPU clock
 * (armed for an hour, SIGEV_NONE), which a move must refuse: it does not
 * recreate timers on a thread's clock yet.
 */
#include "wl.h"

#include <malloc.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/time.h>

#define MIB (1024 * 1024)
#define HEAP_SIZE (3 * MIB)
#define PRIV_SIZE (8 * MIB)
#define SHARED_SIZE (2 * MIB)
#define FILE_SIZE (1 * MIB)
#define PROT_PAGES 16
#define WORK_SLOTS 16384
#define SLEEP_NS 20000000ull

enum { MODE_BUSY, MODE_NANOSLEEP, MODE_PAUSE };

static long page;
static int mode;
static long itimer_us;

static char *heap, *priv, *shared, *fmap, *prot;
static void *brk_at_start;
static uint32_t *work;
static uint64_t iterations;

static char *altstack;
static size_t altstack_size;
static volatile sig_atomic_t usr1_count, alrm_count, off_stack;
static uint64_t sleeps, short_sleeps, eintrs, wakeups;

static void on_signal(int sig)
{
	char *sp = __builtin_frame_address(0);
	if (sp < altstack || sp >= altstack + altstack_size)
		off_stack++;
	if (sig == SIGUSR1)
		usr1_count++;
	else
		alrm_count++;
}

static uint32_t work_value(uint64_t k)
{
	return (uint32_t)(k * 2654435761u) ^ 0x5a5a5a5au;
}

static void step(void)
{
	work[iterations % WORK_SLOTS] = work_value(iterations);
	iterations++;
}

static void *map(size_t len, int prot_, int flags, int fd)
{
	void *p = mmap(NULL, len, prot_, flags, fd, 0);
	if (p == MAP_FAILED)
		wl_die("mmap %zu: %s", len, strerror(errno));
	return p;
}

static void install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaddset(&sa.sa_mask, sig == SIGUSR1 ? SIGALRM : SIGUSR1);
	if (sigaction(sig, &sa, NULL) != 0)
		wl_die("sigaction: %s", strerror(errno));
}

static void check_handler(int sig, const char *name)
{
	struct sigaction sa;
	int want = SA_ONSTACK | SA_RESTART;
	int keys = SA_ONSTACK | SA_RESTART | SA_SIGINFO | SA_NODEFER | SA_RESETHAND;
	if (sigaction(sig, NULL, &sa) != 0) {
		wl_failf("sigaction(%s): %s", name, strerror(errno));
		return;
	}
	if (sa.sa_handler != on_signal)
		wl_failf("%s handler is %p, expected %p", name, (void *)sa.sa_handler,
			 (void *)on_signal);
	else if ((sa.sa_flags & keys) != want)
		wl_failf("%s sa_flags are %#x, expected %#x", name, sa.sa_flags & keys, want);
	else if (!sigismember(&sa.sa_mask, SIGTERM) ||
		 !sigismember(&sa.sa_mask, sig == SIGUSR1 ? SIGALRM : SIGUSR1) ||
		 sigismember(&sa.sa_mask, SIGHUP))
		wl_failf("%s sa_mask changed", name);
}

static void setup(void)
{
	char path[4096];
	int fd;
	stack_t ss;
	struct itimerval it;

	page = sysconf(_SC_PAGESIZE);

	/* brk heap: keep malloc from using mmap for this block. */
	mallopt(M_MMAP_THRESHOLD, 64 * MIB);
	heap = malloc(HEAP_SIZE);
	if (heap == NULL)
		wl_die("malloc heap");
	wl_fill(heap, HEAP_SIZE, 1, 0);
	brk_at_start = sbrk(0);

	priv = map(PRIV_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(priv, PRIV_SIZE, 2, 0);
	shared = map(SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	wl_fill(shared, SHARED_SIZE, 3, 0);

	/* A private file mapping: even pages stay file pages, odd pages are
	 * written (copy-on-write). The file must not change. */
	wl_path(path, sizeof(path), "mapped.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("open %s: %s", path, strerror(errno));
	{
		char *buf = malloc(FILE_SIZE);
		wl_fill(buf, FILE_SIZE, 4, 0);
		if (write(fd, buf, FILE_SIZE) != FILE_SIZE)
			wl_die("write %s", path);
		free(buf);
	}
	fmap = map(FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	close(fd);
	for (long off = page; off < FILE_SIZE; off += 2 * page)
		wl_fill(fmap + off, (size_t)page, 5, (uint64_t)off / 8);

	/* rw pages 0-3, PROT_NONE guard page 4, read-only 5-9, rw 10-15. */
	prot = map(PROT_PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(prot, PROT_PAGES * page, 6, 0);
	if (mprotect(prot + 4 * page, page, PROT_NONE) != 0 ||
	    mprotect(prot + 5 * page, 5 * page, PROT_READ) != 0)
		wl_die("mprotect: %s", strerror(errno));

	work = map(WORK_SLOTS * sizeof(uint32_t), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1);

	altstack_size = 64 * 1024;
	altstack = map(altstack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	ss.ss_sp = altstack;
	ss.ss_size = altstack_size;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0)
		wl_die("sigaltstack: %s", strerror(errno));
	install(SIGUSR1);
	install(SIGALRM);
	/* a disposition of SIG_IGN and a blocked set of its own */
	signal(SIGHUP, SIG_IGN);
	{
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGWINCH);
		sigaddset(&set, SIGTTIN);
		sigaddset(&set, SIGRTMIN + 5);
		if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
			wl_die("sigprocmask");
	}

	it.it_interval.tv_sec = itimer_us / 1000000;
	it.it_interval.tv_usec = itimer_us % 1000000;
	it.it_value = it.it_interval;
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		wl_die("setitimer: %s", strerror(errno));
}

/* One full nanosleep of SLEEP_NS, resumed with the remaining time. */
static void sleep_exact(void)
{
	struct timespec req = {0, (long)SLEEP_NS}, rem;
	uint64_t t0 = wl_mono(), t1;
	while (nanosleep(&req, &rem) != 0) {
		if (errno != EINTR) {
			wl_failf("nanosleep: %s", strerror(errno));
			return;
		}
		eintrs++;
		if (rem.tv_sec > req.tv_sec || (rem.tv_sec == req.tv_sec && rem.tv_nsec > req.tv_nsec)) {
			wl_failf("nanosleep remaining time grew: %ld.%09ld > %ld.%09ld",
				 (long)rem.tv_sec, rem.tv_nsec, (long)req.tv_sec, req.tv_nsec);
			return;
		}
		if (wl_finish)
			return;
		req = rem;
	}
	t1 = wl_mono();
	sleeps++;
	if (t1 - t0 < SLEEP_NS) {
		if (short_sleeps++ == 0)
			wl_failf("a nanosleep of %" PRIu64 " ns returned after %" PRIu64 " ns", (uint64_t)SLEEP_NS,
				 t1 - t0);
	}
}

static void run(void)
{
	uint64_t next = wl_mono() + 10000000ull;
	sig_atomic_t seen = usr1_count;
	while (!wl_finish) {
		switch (mode) {
		case MODE_BUSY:
			for (int i = 0; i < 4096; i++)
				step();
			if (wl_mono() >= next) {
				wl_progress();
				next += 10000000ull;
			}
			break;
		case MODE_NANOSLEEP:
			for (int i = 0; i < 64; i++)
				step();
			sleep_exact();
			if (!wl_finish)
				wl_progress();
			break;
		case MODE_PAUSE:
			while (usr1_count == seen && !wl_finish)
				pause();
			if (wl_finish)
				break;
			seen = usr1_count;
			wakeups++;
			for (int i = 0; i < 64; i++)
				step();
			wl_progress();
			break;
		}
	}
}

static sigjmp_buf probe_env;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(probe_env, 1);
}

/* probe returns 1 when the access faulted. */
static int probe(volatile char *p, int write)
{
	if (sigsetjmp(probe_env, 1) != 0)
		return 1;
	if (write)
		*p = *p;
	else
		(void)*p;
	return 0;
}

static void check_prot(void)
{
	static const char *want[PROT_PAGES] = {
		"rw-p", "rw-p", "rw-p", "rw-p", "---p", "r--p", "r--p", "r--p",
		"r--p", "r--p", "rw-p", "rw-p", "rw-p", "rw-p", "rw-p", "rw-p",
	};
	struct sigaction sa, old_segv, old_bus;
	char perms[5];

	for (int i = 0; i < PROT_PAGES; i++) {
		if (wl_maps_perms(prot + i * page, perms) != 0) {
			wl_failf("mprotect region page %d is not mapped", i);
			return;
		}
		if (strcmp(perms, want[i]) != 0) {
			wl_failf("mprotect region page %d is %s, expected %s", i, perms, want[i]);
			return;
		}
	}
	wl_check("mprotect rw pages 0-3", prot, 4 * page, 6, 0);
	wl_check("mprotect read-only pages 5-9", prot + 5 * page, 5 * page, 6,
		 (uint64_t)(5 * page) / 8);
	wl_check("mprotect rw pages 10-15", prot + 10 * page, 6 * page, 6,
		 (uint64_t)(10 * page) / 8);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	if (!probe(prot + 4 * page, 0))
		wl_failf("reading the PROT_NONE guard page did not fault");
	if (!probe(prot + 6 * page, 1))
		wl_failf("writing a read-only page did not fault");
	if (probe(prot + 6 * page, 0))
		wl_failf("reading a read-only page faulted");
	if (probe(prot + 11 * page, 1))
		wl_failf("writing a rw page faulted");
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
}

static void check_file_mapping(void)
{
	char path[4096];
	char *buf = malloc(FILE_SIZE);
	int fd;
	for (long off = 0; off < FILE_SIZE; off += page) {
		int written = (off / page) % 2 == 1;
		if (wl_check(written ? "private file mapping, written page"
				     : "private file mapping, file page",
			     fmap + off, (size_t)page, written ? 5 : 4, (uint64_t)off / 8) != 0)
			break;
	}
	wl_path(path, sizeof(path), "mapped.dat");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || buf == NULL || pread(fd, buf, FILE_SIZE, 0) != FILE_SIZE)
		wl_failf("read back %s: %s", path, strerror(errno));
	else
		wl_check("mapped.dat on disk (private writes leaked to the file?)", buf, FILE_SIZE,
			 4, 0);
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void check_work(void)
{
	for (uint64_t s = 0; s < WORK_SLOTS; s++) {
		uint32_t want = 0;
		if (iterations > s) {
			uint64_t k = s + (iterations - 1 - s) / WORK_SLOTS * WORK_SLOTS;
			want = work_value(k);
		}
		if (work[s] != want) {
			wl_failf("work slot %" PRIu64 " is %#x, expected %#x after %" PRIu64
				 " iterations",
				 s, work[s], want, iterations);
			return;
		}
	}
}

static void check_signals(void)
{
	stack_t ss;
	struct itimerval it;
	sig_atomic_t before;
	uint64_t deadline;

	if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != altstack || ss.ss_size != altstack_size ||
	    ss.ss_flags != 0)
		wl_failf("sigaltstack is %p+%zu flags %#x, expected %p+%zu", ss.ss_sp, ss.ss_size,
			 ss.ss_flags, (void *)altstack, altstack_size);
	check_handler(SIGUSR1, "SIGUSR1");
	check_handler(SIGALRM, "SIGALRM");
	{
		struct sigaction sa;
		sigset_t now;
		if (sigaction(SIGHUP, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
			wl_failf("SIGHUP is no longer ignored");
		sigprocmask(SIG_BLOCK, NULL, &now);
		for (int s = 1; s < NSIG; s++) {
			int want = s == SIGWINCH || s == SIGTTIN || s == SIGRTMIN + 5;
			if (sigismember(&now, s) != want) {
				wl_failf("signal %d is %s, expected %s", s,
					 want ? "not blocked" : "blocked", want ? "blocked" : "not blocked");
				break;
			}
		}
	}

	before = usr1_count;
	raise(SIGUSR1);
	if (usr1_count != before + 1)
		wl_failf("raise(SIGUSR1) counted %d times", (int)(usr1_count - before));

	if (getitimer(ITIMER_REAL, &it) != 0 ||
	    it.it_interval.tv_sec != itimer_us / 1000000 ||
	    it.it_interval.tv_usec != itimer_us % 1000000)
		wl_failf("ITIMER_REAL interval is %ld.%06ld s, expected %ld us",
			 (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec, itimer_us);
	before = alrm_count;
	deadline = wl_mono() + 20 * (uint64_t)itimer_us * 1000 + 2000000000ull;
	while (alrm_count == before && wl_mono() < deadline)
		wl_sleep_ns(1000000);
	if (alrm_count == before)
		wl_failf("ITIMER_REAL stopped firing (%d ticks so far)", (int)alrm_count);
	if (off_stack)
		wl_failf("%d signal handler runs were not on the alternate stack", (int)off_stack);
}

static void check_heap(void)
{
	void *now = sbrk(0), *grown;
	char *more;
	wl_check("brk heap", heap, HEAP_SIZE, 1, 0);
	if (now != brk_at_start)
		wl_failf("program break moved from %p to %p", brk_at_start, now);
	more = malloc(4 * MIB);
	grown = sbrk(0);
	if (more == NULL || (char *)grown < (char *)now + 4 * MIB)
		wl_failf("the heap no longer grows: brk %p -> %p", now, grown);
	else
		memset(more, 0x77, 4 * MIB);
	free(more);
}

int main(int argc, char **argv)
{
	const char *m;
	wl_init(argc, argv, "mode,itimer-us,posix-timer");
	m = wl_opt("mode");
	if (m == NULL || strcmp(m, "busy") == 0)
		mode = MODE_BUSY;
	else if (strcmp(m, "nanosleep") == 0)
		mode = MODE_NANOSLEEP;
	else if (strcmp(m, "pause") == 0)
		mode = MODE_PAUSE;
	else
		wl_die("--mode must be busy, nanosleep or pause");
	itimer_us = (long)wl_opt_int("itimer-us", 20000);
	if (itimer_us <= 0)
		wl_die("--itimer-us must be positive");

	setup();
	if (wl_opt("posix-timer")) {
		struct sigevent sev = {.sigev_notify = SIGEV_NONE};
		struct itimerspec its = {.it_value = {3600, 0}};
		timer_t id;
		if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &id) != 0 || timer_settime(id, 0, &its, NULL) != 0)
			wl_die("timer_create: %s", strerror(errno));
	}
	wl_ready();
	run();

	if (wl.corrupt)
		priv[12345] ^= 0x40;
	wl_check_common();
	check_heap();
	wl_check("private anonymous mapping", priv, PRIV_SIZE, 2, 0);
	wl_check("shared anonymous mapping", shared, SHARED_SIZE, 3, 0);
	check_file_mapping();
	check_prot();
	check_work();
	check_signals();
	if (mode == MODE_NANOSLEEP && sleeps == 0)
		wl_failf("no nanosleep completed");
	wl_fieldf("iterations", "%" PRIu64, iterations);
	wl_fieldf("usr1", "%d", (int)usr1_count);
	wl_fieldf("alrm", "%d", (int)alrm_count);
	wl_fieldf("sleeps", "%" PRIu64, sleeps);
	wl_fieldf("eintr", "%" PRIu64, eintrs);
	wl_fieldf("wakeups", "%" PRIu64, wakeups);
	wl_exit();
}
