package move

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/transport"
)

// Signals sent to the original after its state was captured, while it is
// frozen for the cutover, are not in the image: the source reads them just
// before it kills the original and sends them in Forward, after Running;
// the destination sends them to the task, which runs by then. A signal is
// never lost to a move, only a little later than it would have been taken.

// forwardOf is the Forward message for late signals (none: an empty one).
func forwardOf(moveID string, l *checkpoint.LateSignals) *image.Forward {
	fw := &image.Forward{MoveId: moveID}
	if l == nil {
		return fw
	}
	fw.Shared = l.Shared
	tids := make([]int32, 0, len(l.Threads))
	for tid := range l.Threads {
		tids = append(tids, tid)
	}
	sort.Slice(tids, func(i, j int) bool { return tids[i] < tids[j] })
	for _, tid := range tids {
		fw.Threads = append(fw.Threads, &image.ThreadSignals{Tid: tid, Signals: l.Threads[tid]})
	}
	return fw
}

// answerForward sends the task pid the signals of fw, unless why says why
// not, and answers ForwardDone with how many went out.
func answerForward(s *transport.Session, log *slog.Logger, pid int, fw *image.Forward, why error) {
	n, err := 0, why
	if err == nil && !emptyForward(fw) {
		n, err = deliverForward(pid, fw)
		log.Info("signals sent to the original during the cutover, forwarded", "pid", pid, "sent", n, "err", err)
	}
	done := &image.ForwardDone{MoveId: fw.MoveId, Delivered: int32(n)}
	if err != nil {
		done.Error = err.Error()
	}
	_ = s.Send(&image.Control{Msg: &image.Control_ForwardDone{ForwardDone: done}})
}

func emptyForward(fw *image.Forward) bool {
	return len(fw.GetShared()) == 0 && len(fw.GetThreads()) == 0
}

// siTkill is tgkill's si_code (include/uapi/asm-generic/siginfo.h). The
// kernel lets no process queue a siginfo with it, or with kill's or its own
// codes (0 and up), to another: those are sent again with kill or tgkill.
const siTkill = -6

// deliverForward sends the forwarded signals to the task pid: each with its
// siginfo where the kernel lets another process queue it (sigqueue and the
// like: si_code below 0), otherwise with kill or tgkill (the sender then
// reads as this agent). A thread's signal whose thread is gone goes to the
// process. It returns how many were sent.
func deliverForward(pid int, fw *image.Forward) (int, error) {
	sent := 0
	var errs []error
	for _, s := range fw.GetShared() {
		if err := sendSignal(pid, 0, s); err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
	}
	for _, ts := range fw.GetThreads() {
		for _, s := range ts.GetSignals() {
			err := sendSignal(pid, int(ts.GetTid()), s)
			if errors.Is(err, unix.ESRCH) {
				err = sendSignal(pid, 0, s)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sent++
		}
	}
	return sent, errors.Join(errs...)
}

// sendSignal queues s to the process pid (tid 0) or to its thread tid.
func sendSignal(pid, tid int, s *image.SigInfo) error {
	sig := int(s.GetSigno())
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("forwarded signal %d: no such signal", sig)
	}
	raw := s.GetRaw()
	var err error
	if len(raw) >= 12 {
		if code := int32(binary.NativeEndian.Uint32(raw[8:12])); code < 0 && code != siTkill {
			buf := make([]byte, 128)
			copy(buf, raw)
			if tid == 0 {
				_, _, e := unix.Syscall(unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(sig), uintptr(unsafe.Pointer(&buf[0])))
				err = errnoErr(e)
			} else {
				_, _, e := unix.Syscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(tid), uintptr(sig), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
				err = errnoErr(e)
			}
			if err == nil {
				return nil
			}
			if !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("forward signal %d to %d/%d: %w", sig, pid, tid, err)
			}
		}
	}
	if tid == 0 {
		err = unix.Kill(pid, unix.Signal(sig))
	} else {
		err = unix.Tgkill(pid, tid, unix.Signal(sig))
	}
	if err != nil {
		return fmt.Errorf("forward signal %d to %d/%d: %w", sig, pid, tid, err)
	}
	return nil
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
