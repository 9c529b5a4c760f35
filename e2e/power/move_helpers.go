package power

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// moveFSSource is a small static C program put into the guests for the move
// tests. The guests have no shell, and the engine assumes the destination
// sees the task's files at the same paths with the same size and mtime
// (shared storage); the guests share no filesystem, so the test replicates a
// quiescent workload's files by hand with it:
//
//	movefs write PATH TEXT          write TEXT to PATH (e.g. /proc/sys/kernel/ns_last_pid)
//	movefs stat PATH                print "SIZE SEC NSEC"
//	movefs put PATH SEC NSEC        stdin -> PATH (created, 0644), then mtime = SEC.NSEC
//	movefs mkdir PATH               mkdir -p of one level, EEXIST is fine
//	movefs vmread                   process_vm_readv of its own memory: "ok" or the errno text
const moveFSSource = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int die(const char *what, const char *path)
{
	fprintf(stderr, "movefs: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "write") == 0) {
		int fd = open(argv[2], O_WRONLY);
		if (fd < 0)
			return die("open", argv[2]);
		size_t n = strlen(argv[3]);
		if (write(fd, argv[3], n) != (ssize_t)n)
			return die("write", argv[2]);
		return close(fd) ? die("close", argv[2]) : 0;
	}
	if (argc == 3 && strcmp(argv[1], "stat") == 0) {
		struct stat st;
		if (stat(argv[2], &st))
			return die("stat", argv[2]);
		printf("%lld %lld %ld\n", (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "put") == 0) {
		int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return die("open", argv[2]);
		char buf[65536];
		ssize_t n;
		while ((n = read(0, buf, sizeof(buf))) > 0)
			if (write(fd, buf, n) != n)
				return die("write", argv[2]);
		if (n < 0)
			return die("read stdin for", argv[2]);
		struct timespec ts[2];
		ts[0].tv_sec = ts[1].tv_sec = atoll(argv[3]);
		ts[0].tv_nsec = ts[1].tv_nsec = atol(argv[4]);
		if (futimens(fd, ts))
			return die("futimens", argv[2]);
		return close(fd) ? die("close", argv[2]) : 0;
	}
	if (argc == 3 && strcmp(argv[1], "mkdir") == 0) {
		if (mkdir(argv[2], 0755) && errno != EEXIST)
			return die("mkdir", argv[2]);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "vmread") == 0) {
		static char src[64] = "process_vm_readv", dst[64];
		struct iovec l = {dst, sizeof(dst)}, r = {src, sizeof(src)};
		if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != (ssize_t)sizeof(src)) {
			printf("%s\n", strerror(errno));
			return 1;
		}
		printf("ok\n");
		return 0;
	}
	fprintf(stderr, "usage: movefs write PATH TEXT | stat PATH | put PATH SEC NSEC | mkdir PATH | vmread\n");
	return 2;
}
`

// buildMoveFS cross-builds movefs for arch into dir and returns its path.
func buildMoveFS(ctx context.Context, arch, dir string) (string, error) {
	src := filepath.Join(dir, "movefs.c")
	if err := os.WriteFile(src, []byte(moveFSSource), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "movefs-"+arch)
	if err := BuildC(ctx, arch, out, []string{"-std=gnu11"}, src); err != nil {
		return "", err
	}
	return out, nil
}

// fileStamp is a file's size and mtime as movefs stat prints them.
type fileStamp struct {
	Size      int64
	Sec, Nsec int64
}

func parseStamp(out []byte) (fileStamp, error) {
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return fileStamp{}, fmt.Errorf("movefs stat: %q", out)
	}
	var s fileStamp
	var err error
	if s.Size, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return s, fmt.Errorf("movefs stat size %q: %w", f[0], err)
	}
	if s.Sec, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return s, fmt.Errorf("movefs stat sec %q: %w", f[1], err)
	}
	if s.Nsec, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return s, fmt.Errorf("movefs stat nsec %q: %w", f[2], err)
	}
	return s, nil
}

// replicateFile copies path from guest src to guest dst with the same
// contents, size and mtime: what shared storage would show the destination.
func replicateFile(ctx context.Context, src, dst *Guest, path string) (fileStamp, error) {
	out, err := src.Run(ctx, "/bin/movefs", "stat", path)
	if err != nil {
		return fileStamp{}, err
	}
	st, err := parseStamp(out)
	if err != nil {
		return st, err
	}
	data, err := src.ReadFile(ctx, path)
	if err != nil {
		return st, err
	}
	if int64(len(data)) != st.Size {
		return st, fmt.Errorf("%s: %s: read %d bytes, stat said %d (changed while copied?)", src.Name, path, len(data), st.Size)
	}
	if _, err := dst.Exec(ctx, ctlPut(path, st, data)); err != nil {
		return st, err
	}
	out, err = dst.Run(ctx, "/bin/movefs", "stat", path)
	if err != nil {
		return st, err
	}
	got, err := parseStamp(out)
	if err != nil {
		return st, err
	}
	if got != st {
		return st, fmt.Errorf("%s: %s is %+v after the copy, want %+v", dst.Name, path, got, st)
	}
	return st, nil
}
