package spa

import (
	"fmt"
	"io"
)

// randomDigits returns 16 uniformly distributed decimal digits read from r (rejection
// sampling on bytes: 250..255 are discarded).
func randomDigits(r io.Reader) (string, error) {
	var out [randLen]byte
	var buf [32]byte
	n := 0
	for n < randLen {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("spa: reading random value: %w", err)
		}
		for _, b := range buf {
			if b < 250 && n < randLen {
				out[n] = '0' + b%10
				n++
			}
		}
	}
	return string(out[:]), nil
}
