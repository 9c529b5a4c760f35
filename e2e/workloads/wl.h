/*
 * wl.h: the protocol every C workload follows (see e2e/workload/doc.go).
 *
 *   --dir=DIR    work directory (required)
 *   --corrupt    deliberately damage the program's own state just before the
 *                final check, which must then report FAIL (the negative test)
 *   --log-unlinked  unlink DIR/progress.log right after opening it: the log
 *                then lives only in the open fd (a deleted regular file, whose
 *                contents travel with a move), so a program that runs during
 *                the move changes no file by name; for hosts that share no
 *                storage (the POWER guests). The check reads the log back
 *                through /proc/self/fd. Without it nothing changes.
 *
 * DIR/ready         "<pid>\n", written atomically once the program is set up
 * DIR/progress.log  fixed-width lines "progress NNNNNNNNNN\n", written through one
 *                   fd opened without O_APPEND and kept open: if the file offset
 *                   were lost by a move, later lines would overwrite earlier ones
 * DIR/result        written atomically after SIGUSR2: "PASS" or "FAIL: <reason>",
 *                   then "key=value" lines; then the program exits (0 on PASS)
 *
 * Header-only so that each workload is one translation unit; written to build
 * with gcc for x86_64 and with gcc -m32 (and for powerpc) alike.
 */
#ifndef WL_H
#define WL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define WL_LINE_LEN 20 /* "progress " + 10 digits + "\n" */

struct wl_state {
	const char *dir;
	int argc;
	char **argv;
	int corrupt;
	pid_t pid;
	int logfd;
	int log_unlinked;
	uint64_t log_lines;
	uint64_t log_bytes;
	uint64_t last_mono_ns;
	uint64_t mono_backwards;
	uint64_t last_boot_ns;
	uint64_t boot_backwards;
	uint64_t start_mono_ns;
	char fail[768];
	int nfail;
	char fields[4096];
	size_t fields_len;
};

static struct wl_state wl;
static volatile sig_atomic_t wl_finish; /* set by SIGUSR2 */

static void wl_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "workload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

/* wl_failf records a failure; the first one is the reason reported. */
static void wl_failf(const char *fmt, ...)
{
	va_list ap;
	if (wl.nfail++ == 0) {
		va_start(ap, fmt);
		vsnprintf(wl.fail, sizeof(wl.fail), fmt, ap);
		va_end(ap);
	}
}

/* wl_fieldf appends "key=value\n" to the result file. */
static void wl_fieldf(const char *key, const char *fmt, ...)
{
	va_list ap;
	size_t room = sizeof(wl.fields) - wl.fields_len;
	int n = snprintf(wl.fields + wl.fields_len, room, "%s=", key);
	if (n < 0 || (size_t)n >= room)
		return;
	wl.fields_len += n;
	room -= n;
	va_start(ap, fmt);
	n = vsnprintf(wl.fields + wl.fields_len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 1 >= room)
		return;
	wl.fields_len += n;
	wl.fields[wl.fields_len++] = '\n';
	wl.fields[wl.fields_len] = 0;
}

static uint64_t wl_clock_ns(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		wl_die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * wl_mono returns CLOCK_MONOTONIC in ns and counts every time it, or
 * CLOCK_BOOTTIME, went backwards (only in the calling thread's view; threads
 * keep their own check). A restore into a time namespace must keep both
 * continuous.
 */
static uint64_t wl_mono(void)
{
	uint64_t now = wl_clock_ns(CLOCK_MONOTONIC);
	uint64_t boot = wl_clock_ns(CLOCK_BOOTTIME);
	if (now < wl.last_mono_ns) {
		if (wl.mono_backwards++ == 0)
			wl_failf("CLOCK_MONOTONIC went backwards by %" PRIu64 " ns",
				 wl.last_mono_ns - now);
	} else {
		wl.last_mono_ns = now;
	}
	if (boot < wl.last_boot_ns) {
		if (wl.boot_backwards++ == 0)
			wl_failf("CLOCK_BOOTTIME went backwards by %" PRIu64 " ns",
				 wl.last_boot_ns - boot);
	} else {
		wl.last_boot_ns = boot;
	}
	return now;
}

static pid_t wl_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* wl_opt returns the value of --name=value, "" for a bare --name, or NULL. */
static const char *wl_opt(const char *name)
{
	size_t n = strlen(name);
	for (int i = 1; i < wl.argc; i++) {
		const char *a = wl.argv[i];
		if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n) != 0)
			continue;
		if (a[2 + n] == '=')
			return a + 3 + n;
		if (a[2 + n] == 0)
			return "";
	}
	return NULL;
}

static long long wl_opt_int(const char *name, long long def)
{
	const char *v = wl_opt(name);
	char *end;
	long long x;
	if (v == NULL)
		return def;
	errno = 0;
	x = strtoll(v, &end, 0);
	if (errno != 0 || *v == 0 || *end != 0)
		wl_die("--%s: not an integer: %s", name, v);
	return x;
}

static void wl_on_usr2(int sig)
{
	(void)sig;
	wl_finish = 1;
}

static void wl_path(char *buf, size_t n, const char *name)
{
	if ((size_t)snprintf(buf, n, "%s/%s", wl.dir, name) >= n)
		wl_die("path too long: %s/%s", wl.dir, name);
}

/* wl_write_atomic writes DIR/name through DIR/name.tmp and a rename. */
static int wl_write_atomic(const char *name, const char *data, size_t len)
{
	char tmp[4096], dst[4096];
	int fd;
	size_t off = 0;
	wl_path(dst, sizeof(dst), name);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", dst) >= sizeof(tmp))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0)
		return -1;
	return rename(tmp, dst);
}

/*
 * wl_init parses the common options, rejects unknown ones (allowed lists the
 * program's own, comma separated), installs the SIGUSR2 handler and opens the
 * progress log.
 */
static void wl_init(int argc, char **argv, const char *allowed)
{
	struct sigaction sa;
	char path[4096];

	wl.argc = argc;
	wl.argv = argv;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq;
		size_t n;
		if (strncmp(a, "--", 2) != 0)
			wl_die("unexpected argument %s", a);
		a += 2;
		eq = strchr(a, '=');
		n = eq ? (size_t)(eq - a) : strlen(a);
		if ((n == 3 && strncmp(a, "dir", 3) == 0) ||
		    (n == 7 && strncmp(a, "corrupt", 7) == 0) ||
		    (n == 12 && strncmp(a, "log-unlinked", 12) == 0))
			continue;
		for (const char *p = allowed; p && *p;) {
			const char *c = strchr(p, ',');
			size_t m = c ? (size_t)(c - p) : strlen(p);
			if (m == n && strncmp(p, a, n) == 0)
				goto ok;
			p = c ? c + 1 : p + m;
		}
		wl_die("unknown option --%.*s", (int)n, a);
	ok:;
	}
	wl.dir = wl_opt("dir");
	if (wl.dir == NULL || wl.dir[0] == 0)
		wl_die("--dir=DIR is required");
	wl.corrupt = wl_opt("corrupt") != NULL;
	wl.pid = getpid();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wl_on_usr2;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) != 0)
		wl_die("sigaction SIGUSR2: %s", strerror(errno));

	wl_path(path, sizeof(path), "progress.log");
	wl.logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (wl.logfd < 0)
		wl_die("open %s: %s", path, strerror(errno));
	wl.log_unlinked = wl_opt("log-unlinked") != NULL;
	if (wl.log_unlinked && unlink(path) != 0)
		wl_die("unlink %s: %s", path, strerror(errno));
	wl.start_mono_ns = wl_mono();
}

static void wl_format_line(char *buf, uint64_t n)
{
	char tmp[WL_LINE_LEN + 1];
	snprintf(tmp, sizeof(tmp), "progress %010" PRIu64 "\n", (uint64_t)(n % 10000000000ull));
	memcpy(buf, tmp, WL_LINE_LEN);
}

/* wl_progress appends the next progress line at the offset it expects. */
static void wl_progress(void)
{
	char line[WL_LINE_LEN];
	off_t cur = lseek(wl.logfd, 0, SEEK_CUR);
	if (cur != (off_t)wl.log_bytes)
		wl_failf("progress.log offset is %lld, expected %" PRIu64, (long long)cur,
			 wl.log_bytes);
	wl_format_line(line, wl.log_lines + 1);
	for (;;) {
		ssize_t w = write(wl.logfd, line, sizeof(line));
		if (w < 0 && errno == EINTR)
			continue;
		if (w != (ssize_t)sizeof(line)) {
			wl_failf("write progress.log: %s", w < 0 ? strerror(errno) : "short write");
			return;
		}
		break;
	}
	wl.log_lines++;
	wl.log_bytes += sizeof(line);
}

static void wl_ready(void)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (wl_write_atomic("ready", buf, (size_t)n) != 0)
		wl_die("write ready: %s", strerror(errno));
}

/* wl_sleep_ns sleeps, resuming with the remaining time after signals, unless
 * a finish is requested. */
static void wl_sleep_ns(uint64_t ns)
{
	struct timespec req = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)}, rem;
	while (nanosleep(&req, &rem) != 0 && errno == EINTR && !wl_finish)
		req = rem;
}

/* splitmix64: the content of filled memory is a pure function of (seed, word
 * index), so a check can recompute any byte without keeping a copy. */
static inline uint64_t wl_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* wl_burn spends about 3 ms of CPU (less once a finish is requested): for
 * the workloads whose timers count CPU time. */
static volatile uint64_t wl_sink;
static void wl_burn(void)
{
	uint64_t t = wl_mono();
	while (wl_mono() - t < 3000000ull && !wl_finish)
		for (int i = 0; i < 1000; i++)
			wl_sink = wl_mix(wl_sink + (uint64_t)i);
}

static void wl_fill(void *p, size_t len, uint64_t seed, uint64_t first_word)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = wl_mix(seed * 0x100000001b3ull + first_word + i);
}

/* wl_check compares memory with wl_fill's pattern; reports the first
 * mismatch as a failure naming the region and the offset. */
static int wl_check(const char *what, const void *p, size_t len, uint64_t seed,
		    uint64_t first_word)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++) {
		uint64_t want = wl_mix(seed * 0x100000001b3ull + first_word + i);
		if (w[i] != want) {
			wl_failf("%s: memory differs at offset %#zx (%p): got %#" PRIx64
				 " want %#" PRIx64,
				 what, i * 8, (const void *)&w[i], w[i], want);
			return -1;
		}
	}
	return 0;
}

static uint64_t wl_sum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len / 8; i++)
		h = wl_mix(h ^ w[i]);
	return h;
}

/* wl_check_log verifies the progress log: the fd's offset and the file's
 * content are exactly the lines written, no gap and no overwrite. */
static void wl_check_log(void)
{
	char path[4096], want[WL_LINE_LEN], got[WL_LINE_LEN];
	struct stat st;
	off_t cur = lseek(wl.logfd, 0, SEEK_CUR);
	int fd, fl;

	if (cur != (off_t)wl.log_bytes)
		wl_failf("progress.log fd offset is %lld, expected %" PRIu64, (long long)cur,
			 wl.log_bytes);
	fl = fcntl(wl.logfd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_WRONLY || (fl & O_APPEND))
		wl_failf("progress.log fd flags changed: %#x", fl);
	fl = fcntl(wl.logfd, F_GETFD);
	if (fl < 0 || !(fl & FD_CLOEXEC))
		wl_failf("progress.log fd lost FD_CLOEXEC: %#x", fl);
	if (fstat(wl.logfd, &st) != 0 || st.st_size != (off_t)wl.log_bytes)
		wl_failf("progress.log size is %lld, expected %" PRIu64, (long long)st.st_size,
			 wl.log_bytes);
	if (wl.log_unlinked)
		snprintf(path, sizeof(path), "/proc/self/fd/%d", wl.logfd);
	else
		wl_path(path, sizeof(path), "progress.log");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		wl_failf("open %s: %s", path, strerror(errno));
		return;
	}
	for (uint64_t i = 1; i <= wl.log_lines; i++) {
		ssize_t r = read(fd, got, sizeof(got));
		wl_format_line(want, i);
		if (r != (ssize_t)sizeof(got) || memcmp(got, want, sizeof(got)) != 0) {
			wl_failf("progress.log line %" PRIu64 " is %.*s, expected %.*s", i,
				 r > 0 ? (int)r - 1 : 0, got, WL_LINE_LEN - 1, want);
			break;
		}
	}
	close(fd);
	wl_fieldf("progress", "%" PRIu64, wl.log_lines);
}

/* wl_check_common runs the checks every workload shares. */
static void wl_check_common(void)
{
	pid_t now = (pid_t)syscall(SYS_getpid);
	if (now != wl.pid)
		wl_failf("pid changed: started as %d, now %d", (int)wl.pid, (int)now);
	wl_mono();
	wl_check_log();
	wl_fieldf("pid", "%d", (int)now);
	wl_fieldf("mono_backwards", "%" PRIu64, wl.mono_backwards);
	wl_fieldf("boot_backwards", "%" PRIu64, wl.boot_backwards);
}

/* wl_exit writes the result file and exits: 0 on PASS, 1 on FAIL. */
static void wl_exit(void)
{
	static char buf[sizeof(wl.fail) + sizeof(wl.fields) + 64];
	int n;
	if (wl.nfail)
		n = snprintf(buf, sizeof(buf), "FAIL: %s\nfailures=%d\n%s", wl.fail, wl.nfail,
			     wl.fields);
	else
		n = snprintf(buf, sizeof(buf), "PASS\n%s", wl.fields);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)strlen(buf);
	if (wl_write_atomic("result", buf, (size_t)n) != 0)
		wl_die("write result: %s", strerror(errno));
	exit(wl.nfail ? 1 : 0);
}

/*
 * wl_loop is the main loop of most zdtm programs: one progress line every
 * period, step() (may be NULL) in between, until SIGUSR2.
 */
static void wl_loop(uint64_t period_ns, void (*step)(void))
{
	while (!wl_finish) {
		if (step)
			step();
		wl_mono();
		wl_progress();
		wl_sleep_ns(period_ns);
	}
}

/* wl_read_file reads a small file (e.g. under /proc) into buf, NUL-terminated. */
static ssize_t wl_read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t off = 0;
	if (fd < 0)
		return -1;
	while (off + 1 < n) {
		ssize_t r = read(fd, buf + off, n - 1 - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	buf[off] = 0;
	close(fd);
	return (ssize_t)off;
}

/*
 * wl_maps_perms finds the /proc/self/maps line that contains addr and
 * copies its permission field ("rw-p") to perms. Returns 0 when found.
 */
static int wl_maps_perms(const void *addr, char perms[5])
{
	static char buf[1 << 20];
	uintptr_t a = (uintptr_t)addr;
	char *line;
	if (wl_read_file("/proc/self/maps", buf, sizeof(buf)) < 0)
		return -1;
	for (line = buf; line && *line;) {
		char *next = strchr(line, '\n');
		unsigned long long lo, hi;
		char p[5];
		if (next)
			*next++ = 0;
		if (sscanf(line, "%llx-%llx %4s", &lo, &hi, p) == 3 && a >= lo && a < hi) {
			memcpy(perms, p, 5);
			return 0;
		}
		line = next;
	}
	return -1;
}

#endif /* WL_H */
