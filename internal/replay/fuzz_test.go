package replay

import (
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to the digest-file loader: it must never panic, and every
// non-comment line is either loaded, expired, or counted as skipped.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(dA + " 17 10.99.0.2 55383 0.0.0.0 62201 1795432102\n"))
	f.Add([]byte(dB + " 0 0.0.0.0 0 0.0.0.0 0 1795432102 1795432402\n# c\n\n"))
	f.Add([]byte("x 1 2 3 4 5 6 7 8 9\r\n\t\t\n"))
	f.Add([]byte(dB + " 0 0.0.0.0 0 0.0.0.0 0 999999999999999999 999999999999999999"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, keep := range []time.Duration{0, time.Hour} {
			m := NewMemory(func() time.Time { return t0 })
			st := load(m, data, t0, keep)
			if st.Skipped+st.Expired > st.Lines || st.Loaded > st.Lines || st.Loaded != m.Len() {
				t.Fatalf("inconsistent stats %+v (len %d)", st, m.Len())
			}
			m.t.each(func(k key, _ int64) {
				if d := m.text(k); !validDigest(d) {
					t.Fatalf("invalid digest %q loaded", d)
				}
			})
		}
	})
}
