/*
 * zdtm/cmdline: the argument area, the auxiliary vector, the executable
 * link and the command name survive. The program re-executes itself once
 * with extra arguments (spaces, UTF-8), names itself with PR_SET_NAME, and
 * records /proc/self/cmdline, /proc/self/auxv, /proc/self/exe, its argv
 * strings, AT_EXECFN and the AT_RANDOM bytes; all must be identical after
 * the move.
 */
#include "../wl.h"

#include <sys/auxv.h>
#include <sys/prctl.h>

#define NAME "zdtm-cmdline!"

static char cmd0[8192], auxv0[4096], exe0[4096], execfn0[4096], random0[16];
static ssize_t cmd0_len, auxv0_len;
static char *argv0[16];

int main(int argc, char **argv)
{
	char now[8192], name[17] = "";
	ssize_t n;
	int again = 1;
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--arg=", 6) == 0)
			again = 0;
	if (again) {
		char *args[16];
		int i = 0;
		for (; i < argc && i < 12; i++)
			args[i] = argv[i];
		args[i++] = "--arg=two words";
		args[i++] = "--arg=\xc3\xbcnicode";
		args[i] = NULL;
		execv("/proc/self/exe", args);
		wl_die("re-exec: %s", strerror(errno));
	}
	wl_init(argc, argv, "arg");
	if (prctl(PR_SET_NAME, NAME) != 0)
		wl_die("PR_SET_NAME");
	cmd0_len = wl_read_file("/proc/self/cmdline", cmd0, sizeof(cmd0));
	auxv0_len = wl_read_file("/proc/self/auxv", auxv0, sizeof(auxv0));
	if (cmd0_len <= 0 || auxv0_len <= 0 || readlink("/proc/self/exe", exe0, sizeof(exe0) - 1) <= 0)
		wl_die("read /proc/self");
	for (int i = 0; i < argc && i < 16; i++)
		argv0[i] = strdup(argv[i]);
	snprintf(execfn0, sizeof(execfn0), "%s", (const char *)getauxval(AT_EXECFN));
	memcpy(random0, (const void *)getauxval(AT_RANDOM), 16);
	wl_ready();
	wl_loop(10000000ull, NULL);

	if (wl.corrupt)
		prctl(PR_SET_NAME, "renamed");
	wl_check_common();
	n = wl_read_file("/proc/self/cmdline", now, sizeof(now));
	if (n != cmd0_len || memcmp(now, cmd0, (size_t)n) != 0)
		wl_failf("/proc/self/cmdline changed (%zd bytes, was %zd)", n, cmd0_len);
	for (int i = 0; i < argc && i < 16; i++)
		if (strcmp(argv[i], argv0[i]) != 0)
			wl_failf("argv[%d] is \"%s\", was \"%s\"", i, argv[i], argv0[i]);
	n = wl_read_file("/proc/self/auxv", now, sizeof(now));
	if (n != auxv0_len || memcmp(now, auxv0, (size_t)n) != 0)
		wl_failf("/proc/self/auxv changed (%zd bytes, was %zd)", n, auxv0_len);
	memset(now, 0, sizeof(now));
	if (readlink("/proc/self/exe", now, sizeof(now) - 1) <= 0 || strcmp(now, exe0) != 0)
		wl_failf("/proc/self/exe is %s, was %s", now, exe0);
	if (strcmp((const char *)getauxval(AT_EXECFN), execfn0) != 0)
		wl_failf("AT_EXECFN is %s, was %s", (const char *)getauxval(AT_EXECFN), execfn0);
	if (memcmp((const void *)getauxval(AT_RANDOM), random0, 16) != 0)
		wl_failf("the AT_RANDOM bytes changed");
	if (prctl(PR_GET_NAME, name) != 0 || strcmp(name, NAME) != 0)
		wl_failf("PR_GET_NAME is %s, was %s", name, NAME);
	if (wl_read_file("/proc/self/comm", now, sizeof(now)) < 0 || strncmp(now, NAME "\n", 15) != 0)
		wl_failf("/proc/self/comm is %s", now);
	wl_fieldf("argc", "%d", argc);
	wl_exit();
}
