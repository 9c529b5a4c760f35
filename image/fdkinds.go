package image

// SupportedFdKinds is the one table of file descriptor kinds the engine can
// carry today. The source refuses a task holding any other kind before it
// freezes it; compat rejects a manifest naming one. Grow it here, in one
// place, when restore learns a new kind.
var SupportedFdKinds = map[FdKind]bool{
	FdKind_FD_REGULAR:   true,
	FdKind_FD_DIRECTORY: true,
	FdKind_FD_DEV_NULL:  true,
	FdKind_FD_DEV_ZERO:  true,
	FdKind_FD_EVENTFD:   true,
	FdKind_FD_EPOLL:     true,
	// An open file that was unlinked: its contents travel (bounded).
	FdKind_FD_DELETED_REGULAR: true,
}

// FdKindName is a short human name for a kind ("pipe", "socket").
func FdKindName(k FdKind) string {
	switch k {
	case FdKind_FD_REGULAR:
		return "regular file"
	case FdKind_FD_DIRECTORY:
		return "directory"
	case FdKind_FD_DEV_NULL:
		return "/dev/null"
	case FdKind_FD_DEV_ZERO:
		return "/dev/zero"
	case FdKind_FD_PIPE:
		return "pipe"
	case FdKind_FD_SOCKET:
		return "socket"
	case FdKind_FD_TTY:
		return "terminal"
	case FdKind_FD_EVENTFD:
		return "eventfd"
	case FdKind_FD_EPOLL:
		return "epoll"
	case FdKind_FD_SIGNALFD:
		return "signalfd"
	case FdKind_FD_TIMERFD:
		return "timerfd"
	case FdKind_FD_INOTIFY:
		return "inotify"
	case FdKind_FD_MEMFD:
		return "memfd"
	case FdKind_FD_PIDFD:
		return "pidfd"
	case FdKind_FD_CHAR_OTHER:
		return "character device"
	case FdKind_FD_BLOCK:
		return "block device"
	case FdKind_FD_ANON_OTHER:
		return "anonymous inode"
	case FdKind_FD_DELETED_REGULAR:
		return "deleted file"
	}
	return "unknown"
}
