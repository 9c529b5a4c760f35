/*
 * zdtm/robust: each thread's robust futex list stays registered.
 *
 * Two holder threads each lock a robust mutex (one process-shared in
 * MAP_SHARED memory, one private), record their get_robust_list() head, and
 * when told to stop check the head is unchanged and exit with a raw exit
 * syscall while still holding the mutex. Only the kernel's walk of the robust
 * list can then mark the mutexes dead: main must get EOWNERDEAD for both,
 * and pthread_join (which needs the kernel's clear-child-tid) must return.
 */
#include "../wl.h"

#include <pthread.h>
#include <sys/mman.h>

#define NH 2

static pthread_mutex_t *mu[NH];
static struct {
	pthread_t th;
	volatile int locked;
	void *head;
	size_t len;
	char fail[256];
} h[NH];
static volatile int stop;

static void *holder(void *arg)
{
	int i = (int)(intptr_t)arg;
	void *head;
	size_t len;
	if (pthread_mutex_lock(mu[i]) != 0)
		wl_die("lock");
	if (syscall(SYS_get_robust_list, 0, &h[i].head, &h[i].len) != 0)
		wl_die("get_robust_list: %s", strerror(errno));
	h[i].locked = 1;
	while (!stop)
		wl_sleep_ns(2000000);
	if (syscall(SYS_get_robust_list, 0, &head, &len) != 0)
		snprintf(h[i].fail, sizeof(h[i].fail), "h%d: get_robust_list: %s", i, strerror(errno));
	else if (head != h[i].head || len != h[i].len)
		snprintf(h[i].fail, sizeof(h[i].fail), "h%d: robust list head %p+%zu, was %p+%zu", i,
			 head, len, h[i].head, h[i].len);
	if (wl.corrupt && i == 0) {
		/* drop the registration: the kernel can no longer clean up */
		syscall(SYS_set_robust_list, NULL, h[i].len);
	}
	syscall(SYS_exit, 0);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t a;
	void *mhead;
	size_t mlen;

	wl_init(argc, argv, NULL);
	mu[0] = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	mu[1] = malloc(sizeof(pthread_mutex_t));
	if (mu[0] == MAP_FAILED || mu[1] == NULL)
		wl_die("alloc");
	for (int i = 0; i < NH; i++) {
		pthread_mutexattr_init(&a);
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
		pthread_mutexattr_setpshared(&a, i == 0 ? PTHREAD_PROCESS_SHARED : PTHREAD_PROCESS_PRIVATE);
		if (pthread_mutex_init(mu[i], &a) != 0)
			wl_die("mutex init");
		if (pthread_create(&h[i].th, NULL, holder, (void *)(intptr_t)i) != 0)
			wl_die("pthread_create");
	}
	syscall(SYS_get_robust_list, 0, &mhead, &mlen);
	while (!h[0].locked || !h[1].locked)
		wl_sleep_ns(1000000);
	wl_ready();
	wl_loop(10000000ull, NULL);

	wl_check_common();
	{
		void *head;
		size_t len;
		if (syscall(SYS_get_robust_list, 0, &head, &len) != 0 || head != mhead || len != mlen)
			wl_failf("main's robust list head is %p+%zu, was %p+%zu", head, len, mhead, mlen);
	}
	stop = 1;
	for (int i = 0; i < NH; i++) {
		struct timespec ts;
		int err;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		err = pthread_mutex_timedlock(mu[i], &ts);
		if (err == EOWNERDEAD) {
			pthread_mutex_consistent(mu[i]);
			pthread_mutex_unlock(mu[i]);
		} else {
			wl_failf("%s robust mutex of exited h%d: lock returned %s, expected EOWNERDEAD",
				 i == 0 ? "process-shared" : "private", i, err ? strerror(err) : "success");
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if ((err = pthread_timedjoin_np(h[i].th, NULL, &ts)) != 0)
			wl_failf("join h%d after its raw exit: %s (clear-child-tid lost?)", i, strerror(err));
		if (h[i].fail[0])
			wl_failf("%s", h[i].fail);
	}
	wl_exit();
}
