#!/usr/bin/env python3
"""chain: the interpreter workload of the task-engine issue, part 2.

Hashes a chain: h[0] = sha256(seed), h[i+1] = sha256(h[i] + i as 8 bytes
little-endian), for --steps steps, in batches of --batch with a --pace-ms
sleep between batches, writing "step NNNNNNNNNN <first 16 hex digits>" to
DIR/progress.log after each batch (one fd, no O_APPEND, kept open). The
defaults make progress lines for about 25 s: a move, however slow the
machine, finds it still working.

Protocol (e2e/workload): --dir=DIR, DIR/ready, SIGUSR2 -> DIR/result. On
SIGUSR2 it finishes the remaining steps without pacing, so the final hash
never depends on when the signal came, then recomputes the whole chain from
scratch and compares it and every progress line with what it computed
across its lifetime (and maybe a move). The result carries final=<hex>,
which the driver compares with a chain computed in Go (workload.ChainFinal):
the result of a run that was never moved.
"""
import argparse
import hashlib
import os
import signal
import sys
import time

finish = False


def on_usr2(signum, frame):
    global finish
    finish = True


def step(h, i):
    return hashlib.sha256(h + i.to_bytes(8, "little")).digest()


def line(i, h):
    return b"step %010d %s\n" % (i, h.hex()[:16].encode())


def write_atomic(d, name, data):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(d, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--steps", type=int, default=500000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--pace-ms", type=int, default=100)
    ap.add_argument("--seed", default="migrated")
    ap.add_argument("--corrupt", action="store_true")
    a = ap.parse_args()
    if a.steps <= 0 or a.batch <= 0 or a.pace_ms < 0:
        sys.exit("chain: --steps and --batch must be positive")

    signal.signal(signal.SIGUSR2, on_usr2)
    pid = os.getpid()
    log = open(os.path.join(a.dir, "progress.log"), "wb", buffering=0)
    written = []  # (step, hash) of every progress line
    size = 0
    failures = []

    h = hashlib.sha256(a.seed.encode()).digest()
    write_atomic(a.dir, "ready", b"%d\n" % pid)
    last = time.monotonic()
    i = 0
    while i < a.steps:
        end = min(i + a.batch, a.steps)
        while i < end:
            h = step(h, i)
            i += 1
        if log.tell() != size:
            failures.append("progress.log offset is %d, expected %d" % (log.tell(), size))
        ln = line(i, h)
        log.write(ln)
        size += len(ln)
        written.append((i, h))
        now = time.monotonic()
        if now < last:
            failures.append("time.monotonic went backwards by %f s" % (last - now))
        last = now
        if not finish and a.pace_ms:
            time.sleep(a.pace_ms / 1000.0)
    while not finish:
        time.sleep(0.01)  # not signal.pause(): a signal just before it would be missed

    if a.corrupt:
        h = bytes([h[0] ^ 1]) + h[1:]
    # Recompute from scratch: the state that crossed a move must agree.
    r = hashlib.sha256(a.seed.encode()).digest()
    marks = dict(written)
    for j in range(a.steps):
        r = step(r, j)
        if j + 1 in marks and marks[j + 1] != r:
            failures.append("hash after step %d differs from a fresh recomputation" % (j + 1))
            break
    if r != h:
        failures.append("final hash %s differs from a fresh recomputation %s" % (h.hex(), r.hex()))
    if log.tell() != size:
        failures.append("progress.log fd offset is %d, expected %d" % (log.tell(), size))
    with open(os.path.join(a.dir, "progress.log"), "rb") as f:
        content = f.read()
    want = b"".join(line(s, x) for s, x in written)
    if content != want:
        failures.append("progress.log content differs from the lines written (size %d, expected %d)"
                        % (len(content), len(want)))
    if os.getpid() != pid:
        failures.append("pid changed from %d to %d" % (pid, os.getpid()))

    status = "PASS" if not failures else "FAIL: " + failures[0]
    out = "%s\nprogress=%d\npid=%d\nsteps=%d\nfinal=%s\n" % (status, len(written), pid, a.steps, h.hex())
    if failures:
        out += "failures=%d\n" % len(failures)
    write_atomic(a.dir, "result", out.encode())
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
