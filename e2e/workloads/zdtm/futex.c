/*
 * zdtm/futex: threads blocked in futex waits stay blocked across a move and
 * wake when they are woken after it.
 *
 *   w0  FUTEX_WAIT on a word in MAP_SHARED anonymous memory (shared futex)
 *   w1  FUTEX_WAIT_PRIVATE on a private word
 *   w2  FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC deadline an hour
 *       away (must neither fire early nor be lost)
 *
 * At the check each waiter must still be in the futex syscall
 * (/proc/self/task/TID/syscall), then main sets each word and wakes it; every
 * waiter must return within 5 s having seen its word change.
 */
#include "../wl.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>

#define NW 3

static uint32_t *shared_word;
static uint32_t private_word, bitset_word;
static uint32_t *words[NW];
static struct {
	pthread_t th;
	volatile pid_t tid;
	volatile int woken;
	volatile uint64_t returns;
	char fail[256];
} w[NW];

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t val3)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, val3);
}

static void *waiter(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 3600;
	w[i].tid = wl_gettid();
	while (__atomic_load_n(words[i], __ATOMIC_SEQ_CST) == 0) {
		long r;
		if (i == 0)
			r = futex(words[i], FUTEX_WAIT, 0, NULL, 0);
		else if (i == 1)
			r = futex(words[i], FUTEX_WAIT_PRIVATE, 0, NULL, 0);
		else
			r = futex(words[i], FUTEX_WAIT_BITSET_PRIVATE, 0, &deadline, FUTEX_BITSET_MATCH_ANY);
		w[i].returns++;
		if (r != 0 && errno == ETIMEDOUT) {
			snprintf(w[i].fail, sizeof(w[i].fail),
				 "w%d: the absolute deadline an hour away fired", i);
			break;
		}
		if (r != 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(w[i].fail, sizeof(w[i].fail), "w%d: futex: %s", i, strerror(errno));
			break;
		}
	}
	if (*words[i] != 0x5eed0000u + (uint32_t)i && !w[i].fail[0])
		snprintf(w[i].fail, sizeof(w[i].fail), "w%d: word is %#x", i, *words[i]);
	w[i].woken = 1;
	return NULL;
}

/* in_futex reads the syscall a thread is blocked in. */
static int in_futex(pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	if (wl_read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	return atol(buf) == SYS_futex;
}

/*
 * blocked_soon: the waiter is in futex now, or is again within a second. A
 * wait with a timeout cannot be restarted by the kernel on another host (its
 * restart block stays behind), so after a move it may return EINTR once and
 * wait again, as futex(2) allows: "no longer blocked" means it went on past
 * its loop, which the woken flag checked above also catches.
 */
static int blocked_soon(pid_t tid)
{
	for (uint64_t deadline = wl_mono() + 1000000000ull;;) {
		if (in_futex(tid) == 1)
			return 1;
		if (wl_mono() > deadline)
			return 0;
		wl_sleep_ns(1000000);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, NULL);
	shared_word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared_word == MAP_FAILED)
		wl_die("mmap");
	words[0] = shared_word;
	words[1] = &private_word;
	words[2] = &bitset_word;
	for (int i = 0; i < NW; i++)
		if (pthread_create(&w[i].th, NULL, waiter, (void *)(intptr_t)i) != 0)
			wl_die("pthread_create");
	/* ready once all three are asleep in the kernel */
	for (uint64_t deadline = wl_mono() + 10000000000ull;;) {
		int n = 0;
		for (int i = 0; i < NW; i++)
			n += w[i].tid && in_futex(w[i].tid) == 1;
		if (n == NW)
			break;
		if (wl_mono() > deadline)
			wl_die("waiters did not block");
		wl_sleep_ns(1000000);
	}
	wl_ready();
	wl_loop(10000000ull, NULL);

	wl_check_common();
	for (int i = 0; i < NW; i++) {
		if (w[i].woken)
			wl_failf("w%d returned before it was woken: %s", i, w[i].fail);
		else if (!blocked_soon(w[i].tid))
			wl_failf("w%d (tid %d) is no longer blocked in futex", i, (int)w[i].tid);
	}
	for (int i = 0; i < NW; i++) {
		if (wl.corrupt && i == 1)
			continue; /* never woken: the check must notice */
		__atomic_store_n(words[i], 0x5eed0000u + (uint32_t)i, __ATOMIC_SEQ_CST);
		futex(words[i], i == 0 ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, 1, NULL, 0);
	}
	for (uint64_t deadline = wl_mono() + 5000000000ull; wl_mono() < deadline;) {
		int n = 0;
		for (int i = 0; i < NW; i++)
			n += w[i].woken;
		if (n == NW)
			break;
		wl_sleep_ns(1000000);
	}
	for (int i = 0; i < NW; i++) {
		if (!w[i].woken)
			wl_failf("w%d did not wake within 5 s of FUTEX_WAKE", i);
		else if (w[i].fail[0])
			wl_failf("%s", w[i].fail);
	}
	for (int i = 0; i < NW; i++) {
		char k[16];
		snprintf(k, sizeof(k), "returns_w%d", i);
		wl_fieldf(k, "%" PRIu64, w[i].returns);
	}
	wl_exit();
}
