// dirtier: a test task for package precopy. Usage: dirtier N all|mix
// [seccomp]. It maps a region of N pages,
// fills it with known contents, and then obeys commands on stdin (one per
// line, each answered by one line on stdout):
//
//   base            -> "<hex address> <pages> <page size>"
//   w I...          write one byte into each page I           -> "ok"
//   z I             madvise(MADV_DONTNEED) page I              -> "ok"
//   k I             the kernel writes into page I (read(2))    -> "ok"
//   map N           mmap N new pages and fill them             -> "<hex address>"
//   unmap A N       munmap N pages at A                        -> "ok"
//   resv N          mmap N pages PROT_NONE (a reservation)     -> "<hex address>"
//   fixed A N       mmap N new pages over A (MAP_FIXED), write
//                   the first                                  -> "ok"
//   shm N           mmap N shared anonymous pages, filled      -> "<hex address>"
//   pw A I          write one byte into page I at A            -> "ok"
//   poke A I        make page I at A writable, write it, and
//                   make it PROT_NONE again                    -> "ok"
//   spin R          a second thread writes R random pages/ms   -> "ok"
//   stop            stop that thread, answer when it is idle   -> "ok <pages written>"
//   sum             FNV-1a of the region                       -> "<hex>"
//   quit            exit(0)
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static unsigned char *region;
static size_t npages, psz;
static volatile long rate;
static volatile int spinning, idle = 1;
static volatile unsigned long written;

static uint64_t xs(uint64_t *s) {
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(unsigned char *p, size_t n, int mix) {
	uint64_t s = 0x9E3779B97F4A7C15ULL ^ (uintptr_t)p;
	for (size_t i = 0; i < n; i++) {
		unsigned char *pg = p + i * psz;
		if (mix && i % 4 == 0)
			continue; /* a quarter never touched: not present */
		if (mix && i % 4 == 1) {
			snprintf((char *)pg, psz, "page %zu of the text quarter", i);
			continue;
		}
		for (size_t j = 0; j < psz; j += 8)
			*(uint64_t *)(pg + j) = xs(&s);
	}
}

static void *spinner(void *arg) {
	(void)arg;
	uint64_t s = 88172645463325252ULL;
	struct timespec ts = {0, 1000000};
	for (;;) {
		if (spinning) {
			idle = 0;
			for (long i = 0; i < rate && spinning; i++) {
				size_t p = xs(&s) % npages;
				region[p * psz + (written * 61) % psz] = (unsigned char)written;
				written++;
			}
			idle = 1;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	npages = strtoul(argv[1], NULL, 0);
	if (argc > 3 && strcmp(argv[3], "seccomp") == 0) {
		/* A filter that allows everything: enough to be "under seccomp". */
		struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
		struct sock_fprog prog = {1, allow};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
			return 11;
	}
	int mix = argc > 2 && strcmp(argv[2], "mix") == 0;
	psz = sysconf(_SC_PAGESIZE);
	region = mmap(NULL, npages * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return 3;
	fill(region, npages, mix);
	pthread_t th;
	pthread_create(&th, NULL, spinner, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		char *rest;
		if (strncmp(line, "base", 4) == 0) {
			printf("%lx %zu %zu\n", (unsigned long)region, npages, psz);
		} else if (line[0] == 'w') {
			char *p = line + 1;
			for (;;) {
				unsigned long i = strtoul(p, &rest, 10);
				if (rest == p)
					break;
				p = rest;
				region[i * psz + 7] += 1;
			}
			printf("ok\n");
		} else if (line[0] == 'z') {
			unsigned long i = strtoul(line + 1, NULL, 10);
			madvise(region + i * psz, psz, MADV_DONTNEED);
			printf("ok\n");
		} else if (line[0] == 'k') {
			unsigned long i = strtoul(line + 1, NULL, 10);
			int fds[2];
			if (pipe(fds) != 0 || write(fds[1], "kernel-written!", 16) != 16 ||
			    read(fds[0], region + i * psz + 100, 16) != 16)
				return 4;
			close(fds[0]);
			close(fds[1]);
			printf("ok\n");
		} else if (strncmp(line, "map", 3) == 0) {
			size_t n = strtoul(line + 3, NULL, 10);
			unsigned char *p = mmap(NULL, n * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				return 5;
			fill(p, n, 0);
			printf("%lx\n", (unsigned long)p);
		} else if (strncmp(line, "unmap", 5) == 0) {
			unsigned long a = strtoul(line + 5, &rest, 16);
			size_t n = strtoul(rest, NULL, 10);
			munmap((void *)a, n * psz);
			printf("ok\n");
		} else if (strncmp(line, "resv", 4) == 0) {
			size_t n = strtoul(line + 4, NULL, 10);
			void *p = mmap(NULL, n * psz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p == MAP_FAILED)
				return 6;
			printf("%lx\n", (unsigned long)p);
		} else if (strncmp(line, "fixed", 5) == 0) {
			unsigned long a = strtoul(line + 5, &rest, 16);
			size_t n = strtoul(rest, NULL, 10);
			unsigned char *p = mmap((void *)a, n * psz, PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (p == MAP_FAILED)
				return 9;
			p[0] = 0x5a;
			printf("ok\n");
		} else if (strncmp(line, "shm", 3) == 0) {
			size_t n = strtoul(line + 3, NULL, 10);
			unsigned char *p = mmap(NULL, n * psz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				return 10;
			fill(p, n, 0);
			printf("%lx\n", (unsigned long)p);
		} else if (strncmp(line, "pw", 2) == 0) {
			unsigned long a = strtoul(line + 2, &rest, 16);
			size_t i = strtoul(rest, NULL, 10);
			((unsigned char *)a)[i * psz + 11] += 1;
			printf("ok\n");
		} else if (strncmp(line, "poke", 4) == 0) {
			unsigned long a = strtoul(line + 4, &rest, 16);
			size_t i = strtoul(rest, NULL, 10);
			unsigned char *pg = (unsigned char *)a + i * psz;
			if (mprotect(pg, psz, PROT_READ | PROT_WRITE) != 0)
				return 7;
			memcpy(pg + 10, "poked", 5);
			if (mprotect(pg, psz, PROT_NONE) != 0)
				return 8;
			printf("ok\n");
		} else if (strncmp(line, "spin", 4) == 0) {
			rate = strtol(line + 4, NULL, 10);
			spinning = 1;
			printf("ok\n");
		} else if (strncmp(line, "stop", 4) == 0) {
			spinning = 0;
			while (!idle)
				usleep(100);
			printf("ok %lu\n", written);
		} else if (strncmp(line, "sum", 3) == 0) {
			uint64_t h = 1469598103934665603ULL;
			for (size_t i = 0; i < npages * psz; i++)
				h = (h ^ region[i]) * 1099511628211ULL;
			printf("%llx\n", (unsigned long long)h);
		} else if (strncmp(line, "quit", 4) == 0) {
			return 0;
		} else {
			printf("?\n");
		}
	}
	return 0;
}
