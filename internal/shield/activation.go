package shield

import (
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// Inherited returns the TCP listener handed over by systemd socket activation
// (LISTEN_PID/LISTEN_FDS), with the rules installed on it, or nil when there is none.
// The unset flag removes the LISTEN_* variables so child programs do not see them.
//
// The window: systemd created, bound and listened on the socket before sesame started,
// so until the keys are installed the port is open, and connections may already sit in
// the accept queue, handshaken without a signature. Inherited therefore accepts and
// closes everything queued (without blocking) right after installing the keys; SYNs
// processed after that need a signature. An unsigned client can still see a SYN-ACK
// while sesame starts, so the port is not invisible during that moment. For no window
// at all, let sesame open the socket itself (--listen).
func Inherited(rules []tcpmd5.KeyRule, unset bool) (*tcpmd5.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("shield: socket activation: %w", err)
	}
	if unset {
		unsetActivationEnv()
	}
	var tl *net.TCPListener
	for _, l := range ls {
		if t, ok := l.(*net.TCPListener); ok && tl == nil {
			tl = t
		} else if l != nil {
			l.Close()
		}
	}
	if tl == nil {
		if len(ls) > 0 {
			return nil, fmt.Errorf("shield: socket activation passed %d sockets and none is a TCP listener", len(ls))
		}
		return nil, nil
	}
	l, err := tcpmd5.FromListener(tl, rules)
	if err != nil {
		tl.Close()
		return nil, err
	}
	if err := drainQueued(tl); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
