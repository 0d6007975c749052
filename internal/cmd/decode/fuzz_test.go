package decode

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
)

// FuzzDecodeInput feeds arbitrary input to the command: it must not panic, must exit 0 or 1,
// and a failure must be exactly one stderr line.
func FuzzDecodeInput(f *testing.F) {
	vs, err := fwknoptest.LoadVectors(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var flags []string
	for _, v := range vs {
		if v.HMACType == "" && v.Mode == "cbc" {
			flags = keyFlagsOf(v)
			f.Add(v.Wire)
			f.Add(v.Wire[:len(v.Wire)-1])
			break
		}
	}
	if flags == nil {
		f.Fatal("no CBC vector without HMAC")
	}
	f.Add("")
	f.Add("U2FsdGVkX1")
	f.Fuzz(func(t *testing.T, in string) {
		var out, errb bytes.Buffer
		code := Main(flags, strings.NewReader(in), &out, &errb)
		switch code {
		case 0:
			if errb.Len() != 0 || out.Len() == 0 {
				t.Fatalf("exit 0 with stderr %q", errb.String())
			}
		case 1, 2:
			if out.Len() != 0 || strings.Count(errb.String(), "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
			}
		default:
			t.Fatalf("exit %d", code)
		}
	})
}

func keyFlagsOf(v fwknoptest.Vector) []string {
	var f []string
	for i := 0; i+1 < len(v.Args); i++ {
		switch v.Args[i] {
		case "--key-rijndael", "--key-base64-rijndael", "--key-hmac", "--key-base64-hmac",
			"--hmac-digest-type", "-M":
			f = append(f, v.Args[i], v.Args[i+1])
			i++
		}
	}
	return f
}
