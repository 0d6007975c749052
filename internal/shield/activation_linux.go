package shield

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func unsetActivationEnv() {
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
}

// drainQueued accepts and closes every connection already in tl's accept queue: they
// were handshaken before the keys were installed.
func drainQueued(tl *net.TCPListener) error {
	rc, err := tl.SyscallConn()
	if err != nil {
		return fmt.Errorf("shield: listener fd: %w", err)
	}
	var aerr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					aerr = err
				}
				return
			}
			unix.Close(nfd)
		}
	})
	if cerr != nil {
		return fmt.Errorf("shield: listener fd: %w", cerr)
	}
	if aerr != nil {
		return fmt.Errorf("shield: draining the accept queue: %w", aerr)
	}
	return nil
}
