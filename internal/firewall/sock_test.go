package firewall

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// datagramWire is a wire whose reads return the datagrams queued in it, truncated to the
// buffer as a socket truncates them.
type datagramWire struct{ dgrams [][]byte }

func (w *datagramWire) write([]byte) error { return nil }

func (w *datagramWire) read(b []byte) (int, error) {
	d := w.dgrams[0]
	w.dgrams = w.dgrams[1:]
	return copy(b, d), nil
}

// answer is an NLMSG_ERROR message numbered seq with error code (0: an ack) that quotes quoted
// bytes of the refused message, as the kernel's answers do.
func answer(seq uint32, code int32, quoted int) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+4+quoted))
	b = binary.NativeEndian.AppendUint16(b, unix.NLMSG_ERROR)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(code))
	b = append(b, make([]byte, quoted)...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// TestAcks: acks counts the answers to the transaction's messages in a datagram (several in
// one, numbers wrapping past 2^32), skips answers to earlier messages, counts an answer cut off
// by the buffer, and returns the first error as the kernel's errno.
func TestAcks(t *testing.T) {
	cat := func(bs ...[]byte) (out []byte) {
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, c := range []struct {
		name        string
		dgram       []byte
		first, last uint32
		want        int
		errno       unix.Errno
	}{
		{"acks", cat(answer(10, 0, 0), answer(11, 0, 0)), 10, 12, 2, 0},
		{"stale answer skipped", cat(answer(5, -int32(unix.EEXIST), 0), answer(10, 0, 0)), 10, 12, 1, 0},
		{"error", cat(answer(10, 0, 0), answer(11, -int32(unix.ENOENT), 40), answer(12, -int32(unix.EEXIST), 0)), 10, 12, 3, unix.ENOENT},
		{"cut off", cat(answer(10, 0, 0), answer(11, -int32(unix.EINVAL), 200)), 10, 12, 2, unix.EINVAL},
		{"numbers wrap", cat(answer(0xffffffff, 0, 0), answer(1, 0, 0), answer(2, 0, 0)), 0xfffffffe, 1, 2, 0},
		{"test socket", answer(0, -int32(unix.EPERM), 0), 10, 12, 1, unix.EPERM},
	} {
		s := &sock{tx: &datagramWire{dgrams: [][]byte{c.dgram}}, rbuf: make([]byte, 128)}
		n, err := s.acks(c.first, c.last)
		if n != c.want || (c.errno == 0) != (err == nil) || c.errno != 0 && (!errors.Is(err, c.errno) || !isReply(err)) {
			t.Errorf("%s: %d answers, %v; want %d, errno %v", c.name, n, err, c.want, c.errno)
		}
	}
}
