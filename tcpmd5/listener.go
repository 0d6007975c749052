package tcpmd5

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// A Listener is a TCP listener whose SYNs must carry a TCP-MD5 signature. It embeds the
// *net.TCPListener, so Accept, AcceptTCP, Addr and Close work as usual.
type Listener struct {
	*net.TCPListener
	t *table
}

// Listen announces on a TCP address ("tcp", "tcp4" or "tcp6") like net.ListenConfig.Listen,
// with the rules' keys installed after socket(2) and before bind(2)/listen(2), so no
// unsigned SYN is ever answered. Peers outside every rule's prefix must sign with a random
// key nobody knows (see the package doc). rules may be empty, for listeners whose keys
// all come later through SetKey. IPv6 rules are kept but not installed on an AF_INET
// socket.
func Listen(ctx context.Context, network, addr string, rules []KeyRule) (*Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("tcpmd5: listen %s: network must be tcp, tcp4 or tcp6", network)
	}
	var (
		t    *table
		sock *rawSocket
	)
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if sock, err = newRawSocket(c); err != nil {
			return err
		}
		if t, err = newTable(sock); err != nil {
			return err
		}
		return t.install(rules)
	}}
	l, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tcpmd5: listen %s %s: %w", network, addr, err)
	}
	tl := l.(*net.TCPListener)
	// The RawConn handed to Control is only valid during the call; keep the listener's.
	rc, err := tl.SyscallConn()
	if err != nil {
		tl.Close()
		return nil, fmt.Errorf("tcpmd5: listener fd: %w", err)
	}
	sock.rc = rc
	return &Listener{TCPListener: tl, t: t}, nil
}

// FromListener installs the rules on a listener that already exists, for instance one
// inherited through systemd socket activation. The socket is already listening, so SYNs
// that arrived before this call (they may wait in the accept queue) were accepted without
// a signature: drain or refuse what Accept returns before the keys were in place, or
// prefer Listen. On error the listener is left open and the caller closes it.
func FromListener(tl *net.TCPListener, rules []KeyRule) (*Listener, error) {
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tcpmd5: listener fd: %w", err)
	}
	sock, err := newRawSocket(rc)
	if err != nil {
		return nil, err
	}
	t, err := newTable(sock)
	if err != nil {
		return nil, err
	}
	if err := t.install(rules); err != nil {
		return nil, err
	}
	return &Listener{TCPListener: tl, t: t}, nil
}

// SetKey adds the rule prefix→key, or replaces the key of an existing rule, on the live
// listener. New SYNs from the prefix must use the new key at once; accepted connections
// keep theirs. Safe for concurrent use.
func (l *Listener) SetKey(prefix netip.Prefix, key Key) error { return l.t.setKey(prefix, key) }

// RemoveKey removes the rule for exactly prefix. Peers it covered fall back to the next
// shorter rule, or to the catch-all. Removing the rule of a catch-all prefix (0.0.0.0/0
// or ::/0) puts the random dummy key back in place, so the listener never becomes an
// open port. It returns an error matching ErrNoSuchKey when there is no such rule.
func (l *Listener) RemoveKey(prefix netip.Prefix) error { return l.t.removeKey(prefix) }

// Replace makes rules the listener's whole table, as a reloaded key file wants. It
// removes the prefixes that are not in rules first (their peers fall back to the next
// shorter rule or to the catch-all, never to no key), then replaces changed keys in
// place, then adds new prefixes, so any table that fits the socket's option memory is
// reached even when the old and new tables together would not fit. Rules are validated
// before anything changes. If the kernel refuses a step, the steps made so far are
// undone and a *ReplaceError is returned: its Restored field reports whether the previous
// table is exactly back in force, and if not, which changes remain. Safe for concurrent
// use; SetKey and RemoveKey wait while Replace runs.
func (l *Listener) Replace(rules []KeyRule) error { return l.t.replace(rules) }

// Keys returns the listener's rules sorted by prefix (the kernel cannot report them). The
// catch-all dummies are not listed.
func (l *Listener) Keys() []KeyRule { return l.t.keys() }
