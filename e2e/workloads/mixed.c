/*
 * mixed: the benchmark workload (pre-copy issue, FACTS.md).
 *
 *   --size-mib=N     memory to fill (default 256)
 *   --dirty-rate=R   pages dirtied per second, spread over the region (default 1000)
 *   --seed=S         seed of the random and text contents (default 1)
 *
 * Page i of the region is, by i mod 4: a zero page (written, so present), a
 * random page, a random page, or a page of text. The program then runs a
 * 1 ms heartbeat on CLOCK_MONOTONIC; each beat dirties its share of pages by
 * writing a 64-byte stamp (page index, version) at a place that depends on the
 * page. A version counter per page is the model: after SIGUSR2 every page is
 * recomputed from (class, index, version) and compared.
 *
 * The longest gap between two heartbeats is the downtime a move caused; it
 * is written to the result as max_gap_us (with max_gap_at_ms, the time of
 * that gap since the heartbeat started), next to PASS or FAIL. On a busy
 * machine scheduling alone can cause gaps of some milliseconds, so the
 * result also lists the largest gaps as gaps=<end>:<length>,... with <end>
 * the CLOCK_MONOTONIC time (ms, the workload's clock) at which the gap
 * ended and <length> in microseconds, largest first: a harness that knows
 * when its cutover happened can tell the move's gap from the noise.
 */
#include "wl.h"

#include <sys/mman.h>

static const char *words[] = {
	"the", "process", "keeps", "running", "while", "its", "memory", "streams", "to",
	"another", "host", "and", "resumes", "there", "after", "a", "short", "pause",
	"exactly", "one", "copy", "runs", "never", "zero", "never", "two", "page",
	"frame", "round", "dirty", "converge", "cutover", "POWER", "kernel", "signal",
	"thread", "register", "vector", "futex", "mapping",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static long page;
static uint64_t seed;
static size_t npages;
static uint8_t *region;
static uint32_t *version;

static void base_page(size_t i, uint8_t *dst)
{
	switch (i % 4) {
	case 0:
		memset(dst, 0, (size_t)page);
		break;
	case 1:
	case 2:
		wl_fill(dst, (size_t)page, seed, (uint64_t)i * ((uint64_t)page / 8));
		break;
	case 3: {
		uint64_t r = wl_mix(seed ^ ((uint64_t)i << 17) ^ 0x7e47u);
		size_t off = 0;
		while (off < (size_t)page) {
			const char *w;
			size_t n;
			r = wl_mix(r);
			w = words[r % NWORDS];
			n = strlen(w);
			if (off + n + 1 > (size_t)page)
				n = (size_t)page - off - 1;
			memcpy(dst + off, w, n);
			off += n;
			dst[off++] = (r >> 32) % 11 == 0 ? '\n' : ' ';
		}
		break;
	}
	}
}

static size_t stamp_off(size_t i)
{
	return (i % ((size_t)page / 64)) * 64;
}

static void stamp(size_t i, uint32_t v, uint8_t *pg)
{
	uint64_t *w = (uint64_t *)(pg + stamp_off(i));
	for (int k = 0; k < 8; k++)
		w[k] = wl_mix(seed ^ ((uint64_t)i << 24) ^ ((uint64_t)v << 3) ^ (uint64_t)k);
}

#define NGAPS 16
static struct gap {
	uint64_t end_ns, len_ns;
} gaps[NGAPS];

/* note_gap keeps the NGAPS largest gaps, largest first. */
static void note_gap(uint64_t end_ns, uint64_t len_ns)
{
	int i = NGAPS - 1;
	if (len_ns <= gaps[i].len_ns)
		return;
	while (i > 0 && gaps[i - 1].len_ns < len_ns) {
		gaps[i] = gaps[i - 1];
		i--;
	}
	gaps[i].end_ns = end_ns;
	gaps[i].len_ns = len_ns;
}

static void dirty_one(uint64_t *rng)
{
	size_t i;
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	i = (size_t)(*rng % npages);
	version[i]++;
	stamp(i, version[i], region + i * (size_t)page);
}

int main(int argc, char **argv)
{
	long long size_mib, rate;
	uint64_t last, next, t0, max_gap = 0, max_gap_at = 0, beats = 0, dirtied = 0;
	uint64_t last_dirty, next_progress;
	uint64_t rng = 0x2545f4914f6cdd1dull;
	double owed = 0;
	uint8_t *want;

	wl_init(argc, argv, "size-mib,dirty-rate,seed");
	page = sysconf(_SC_PAGESIZE);
	size_mib = wl_opt_int("size-mib", 256);
	rate = wl_opt_int("dirty-rate", 1000);
	seed = (uint64_t)wl_opt_int("seed", 1);
	if (size_mib <= 0 || rate < 0)
		wl_die("--size-mib must be positive and --dirty-rate not negative");
	npages = (size_t)size_mib * 1024 * 1024 / (size_t)page;

	/* MAP_POPULATE: faulting 1 GiB in page by page takes ~30x longer on
	 * this VM than populating it at once. */
	region = mmap(NULL, npages * (size_t)page, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	version = calloc(npages, sizeof(*version));
	want = malloc((size_t)page);
	if (region == MAP_FAILED || version == NULL || want == NULL)
		wl_die("cannot allocate %lld MiB: %s", size_mib, strerror(errno));
	for (size_t i = 0; i < npages; i++)
		base_page(i, region + i * (size_t)page);

	wl_ready();
	t0 = last = last_dirty = wl_mono();
	next = last + 1000000;
	next_progress = last + 100000000;
	while (!wl_finish) {
		struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
		uint64_t now;
		int err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		if (err != 0 && err != EINTR)
			wl_failf("clock_nanosleep: %s", strerror(err));
		now = wl_mono();
		if (now - last > max_gap) {
			max_gap = now - last;
			max_gap_at = now - t0;
		}
		note_gap(now, now - last);
		last = now;
		beats++;
		owed += (double)rate * (double)(now - last_dirty) / 1e9;
		last_dirty = now;
		if (owed > (double)rate)
			owed = (double)rate; /* after a long stop, at most one second's worth */
		while (owed >= 1) {
			dirty_one(&rng);
			dirtied++;
			owed -= 1;
		}
		if (now >= next_progress) {
			wl_progress();
			next_progress += 100000000;
		}
		next += 1000000;
		if (next < now)
			next = now + 1000000;
	}

	if (wl.corrupt)
		region[(size_t)page + 3000] ^= 0x10;
	wl_check_common();
	for (size_t i = 0; i < npages; i++) {
		uint8_t *got = region + i * (size_t)page;
		base_page(i, want);
		if (version[i])
			stamp(i, version[i], want);
		if (memcmp(got, want, (size_t)page) != 0) {
			size_t off = 0;
			while (got[off] == want[off])
				off++;
			wl_failf("page %zu (class %zu, version %u) differs at byte %zu: %#x != %#x",
				 i, i % 4, version[i], off, got[off], want[off]);
			break;
		}
	}
	wl_fieldf("max_gap_us", "%" PRIu64, max_gap / 1000);
	wl_fieldf("max_gap_at_ms", "%" PRIu64, max_gap_at / 1000000);
	{
		char list[NGAPS * 48] = "";
		size_t n = 0;
		for (int i = 0; i < NGAPS && gaps[i].len_ns; i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%" PRIu64 ":%" PRIu64,
					      i ? "," : "", gaps[i].end_ns / 1000000, gaps[i].len_ns / 1000);
		wl_fieldf("gaps", "%s", list);
	}
	wl_fieldf("heartbeats", "%" PRIu64, beats);
	wl_fieldf("dirtied", "%" PRIu64, dirtied);
	wl_fieldf("size_mib", "%lld", size_mib);
	wl_fieldf("pages", "%zu", npages);
	wl_exit();
}
