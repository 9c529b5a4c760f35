/*
 * zdtm/pthreads: four threads keep their TIDs, their pthread_t (the
 * thread pointer), their names, thread-specific data, __thread values and
 * counters; the set of TIDs in /proc/self/task is the same.
 */
#include "../wl.h"

#include <dirent.h>
#include <pthread.h>

#define NT 4

static struct th {
	pthread_t self;
	pid_t tid;
	char name[16];
	volatile uint64_t published;
	char fail[256];
	int done;
} th[NT];
static pthread_key_t key;
static volatile int stop;
static pthread_barrier_t started;
static __thread uint64_t tls_count;
static __thread int tls_idx = -1;

static void *run(void *arg)
{
	struct th *t = arg;
	int idx = (int)(t - th);
	uint64_t local = 0;
	char name[16];
	struct timespec ts = {0, 1000000};

	tls_idx = idx;
	t->self = pthread_self();
	t->tid = wl_gettid();
	snprintf(t->name, sizeof(t->name), "zdtm-pt%d", idx);
	pthread_setname_np(pthread_self(), t->name);
	pthread_setspecific(key, &th[idx]);
	pthread_barrier_wait(&started);
	/* At least one step, even when the finish comes before this thread
	 * was first scheduled (a loaded machine): "did not run" must mean a
	 * lost thread, not a slow one. */
	do {
		tls_count++;
		local++;
		t->published = local;
		nanosleep(&ts, NULL);
	} while (!stop);
	if (wl.corrupt && idx == 2)
		tls_count++;
	if (wl_gettid() != t->tid)
		snprintf(t->fail, sizeof(t->fail), "t%d: tid %d, was %d", idx, (int)wl_gettid(), (int)t->tid);
	else if (!pthread_equal(pthread_self(), t->self))
		snprintf(t->fail, sizeof(t->fail), "t%d: pthread_self changed", idx);
	else if (tls_idx != idx || tls_count != local)
		snprintf(t->fail, sizeof(t->fail), "t%d: __thread idx %d count %" PRIu64 ", expected %d %" PRIu64,
			 idx, tls_idx, tls_count, idx, local);
	else if (pthread_getspecific(key) != &th[idx])
		snprintf(t->fail, sizeof(t->fail), "t%d: thread-specific data lost", idx);
	else if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0 || strcmp(name, t->name))
		snprintf(t->fail, sizeof(t->fail), "t%d: name is %s, expected %s", idx, name, t->name);
	t->done = 1;
	return NULL;
}

/* task_tids reads /proc/self/task into a sorted list. */
static int task_tids(pid_t *out, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && n < max)
			out[n++] = (pid_t)atoi(e->d_name);
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j] < out[j - 1]; j--) {
			pid_t x = out[j];
			out[j] = out[j - 1];
			out[j - 1] = x;
		}
	return n;
}

int main(int argc, char **argv)
{
	pid_t before[64], after[64];
	int nb, na;
	wl_init(argc, argv, NULL);
	pthread_key_create(&key, NULL);
	pthread_barrier_init(&started, NULL, NT + 1);
	for (int i = 0; i < NT; i++) {
		pthread_t p;
		if (pthread_create(&p, NULL, run, &th[i]) != 0)
			wl_die("pthread_create");
	}
	pthread_barrier_wait(&started);
	nb = task_tids(before, 64);
	wl_ready();
	wl_loop(10000000ull, NULL);

	wl_check_common();
	na = task_tids(after, 64);
	if (na != nb || memcmp(before, after, sizeof(pid_t) * (size_t)nb) != 0)
		wl_failf("/proc/self/task changed: %d tasks, was %d", na, nb);
	stop = 1;
	for (int i = 0; i < NT; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		if (pthread_timedjoin_np(th[i].self, NULL, &ts) != 0)
			wl_failf("t%d did not stop", i);
		else if (th[i].fail[0])
			wl_failf("%s", th[i].fail);
		else if (!th[i].done || th[i].published == 0)
			wl_failf("t%d did not run", i);
	}
	wl_fieldf("threads", "%d", NT);
	wl_exit();
}
