/*
 * zdtm/env: the environment survives, both the kernel's view and libc's.
 * The program re-executes itself once with extra variables (one with
 * spaces, '=' and UTF-8 in its value), then changes its environment with
 * setenv/unsetenv. After the move /proc/self/environ (the env area the
 * kernel knows, mm->env_start..env_end) must be byte-identical to what it
 * was, and getenv must see the changes made at run time.
 */
#include "../wl.h"

extern char **environ;

static char env0[65536];
static ssize_t env0_len;

static void expect(const char *k, const char *v)
{
	const char *got = getenv(k);
	if ((v == NULL) != (got == NULL) || (v && strcmp(v, got) != 0))
		wl_failf("getenv(%s) is %s%s%s, expected %s%s%s", k, got ? "\"" : "", got ? got : "NULL",
			 got ? "\"" : "", v ? "\"" : "", v ? v : "NULL", v ? "\"" : "");
}

int main(int argc, char **argv)
{
	char now[65536];
	ssize_t n;
	(void)argc;
	if (getenv("ZDTM_ENV_STAGE") == NULL) {
		static char *extra[] = {
			"ZDTM_ENV_STAGE=1",
			"ZDTM_ENV_KEEP=a value with spaces = and \xc3\xbc",
			"ZDTM_ENV_REMOVE=bye",
			"ZDTM_ENV_CHANGE=before",
		};
		int ne = 0;
		char **env;
		while (environ[ne])
			ne++;
		env = calloc((size_t)ne + 5, sizeof(*env));
		memcpy(env, environ, (size_t)ne * sizeof(*env));
		memcpy(env + ne, extra, sizeof(extra));
		execve("/proc/self/exe", argv, env);
		wl_die("re-exec: %s", strerror(errno));
	}
	wl_init(argc, argv, NULL);
	env0_len = wl_read_file("/proc/self/environ", env0, sizeof(env0));
	if (env0_len <= 0)
		wl_die("read /proc/self/environ");
	unsetenv("ZDTM_ENV_REMOVE");
	setenv("ZDTM_ENV_CHANGE", "after", 1);
	setenv("ZDTM_ENV_ADDED", "added at run time", 1);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		setenv("ZDTM_ENV_ADDED", "changed", 1);
	wl_check_common();
	n = wl_read_file("/proc/self/environ", now, sizeof(now));
	if (n != env0_len || memcmp(now, env0, (size_t)n) != 0)
		wl_failf("/proc/self/environ changed (%zd bytes, was %zd)", n, env0_len);
	expect("ZDTM_ENV_KEEP", "a value with spaces = and \xc3\xbc");
	expect("ZDTM_ENV_REMOVE", NULL);
	expect("ZDTM_ENV_CHANGE", "after");
	expect("ZDTM_ENV_ADDED", "added at run time");
	expect("ZDTM_ENV_STAGE", "1");
	wl_exit();
}
