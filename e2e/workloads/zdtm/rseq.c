/*
 * zdtm/rseq: glibc's restartable-sequences registration of every thread
 * survives. For main and one thread: registering the same area again must
 * fail with EBUSY (it is still registered, with the same length and
 * signature), the area's cpu_id must follow the thread across CPUs
 * (sched_setaffinity to each allowed CPU in turn; the kernel only updates a
 * registered area), and rseq_cs must be clear.
 */
#include "../wl.h"

#include <pthread.h>
#include <sched.h>
#include <sys/rseq.h>

static volatile int stop;
static char thread_fail[256];

static struct rseq *area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* check_self fills fail (if empty) with what is wrong with this thread's
 * registration. */
static void check_self(const char *who, char *fail, size_t n)
{
	struct rseq *r = area();
	cpu_set_t all, one;
	long ret;
	int cpus = 0;

	/* glibc 2.35+ registers 32 bytes; later versions may use __rseq_size */
	ret = syscall(SYS_rseq, r, 32, 0, RSEQ_SIG);
	if (ret != 0 && errno == EINVAL && __rseq_size != 32)
		ret = syscall(SYS_rseq, r, __rseq_size, 0, RSEQ_SIG);
	if (ret == 0) {
		snprintf(fail, n, "%s: rseq area %p was not registered (registering it again succeeded)",
			 who, (void *)r);
		return;
	}
	if (errno != EBUSY) {
		snprintf(fail, n, "%s: rseq area %p is not registered as before: %s", who, (void *)r,
			 strerror(errno));
		return;
	}
	if (r->rseq_cs != 0) {
		snprintf(fail, n, "%s: rseq_cs is %#llx", who, (unsigned long long)r->rseq_cs);
		return;
	}
	if (sched_getaffinity(0, sizeof(all), &all) != 0) {
		snprintf(fail, n, "%s: sched_getaffinity: %s", who, strerror(errno));
		return;
	}
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (sched_setaffinity(0, sizeof(one), &one) != 0)
			continue;
		sched_yield();
		cpus++;
		if ((int)r->cpu_id != c || (int)r->cpu_id_start != c || sched_getcpu() != c) {
			snprintf(fail, n, "%s: on CPU %d the rseq area says cpu_id %u cpu_id_start %u", who,
				 c, r->cpu_id, r->cpu_id_start);
			break;
		}
	}
	sched_setaffinity(0, sizeof(all), &all);
	if (cpus == 0 && !fail[0])
		snprintf(fail, n, "%s: could not run on any CPU", who);
}

static void *thread(void *arg)
{
	(void)arg;
	while (!stop)
		wl_sleep_ns(1000000);
	check_self("thread", thread_fail, sizeof(thread_fail));
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th;
	char fail[256] = "";
	wl_init(argc, argv, NULL);
	if (__rseq_size == 0)
		wl_die("glibc did not register rseq (glibc.pthread.rseq=0?)");
	if (pthread_create(&th, NULL, thread, NULL) != 0)
		wl_die("pthread_create");
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		syscall(SYS_rseq, area(), 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
	wl_check_common();
	check_self("main", fail, sizeof(fail));
	if (fail[0])
		wl_failf("%s", fail);
	stop = 1;
	pthread_join(th, NULL);
	if (thread_fail[0])
		wl_failf("%s", thread_fail);
	wl_fieldf("rseq_size", "%u", __rseq_size);
	wl_fieldf("rseq_offset", "%td", __rseq_offset);
	wl_exit();
}
