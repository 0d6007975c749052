package fwknoptest

import (
	"flag"
	"testing"

	"github.com/sesame-spa/sesame/spa"
)

// update is the repository's one switch for re-recording fwknop vectors: testdata/vectors.json
// is the one set (spa's tests read it too).
var update = flag.Bool("update", false, "re-record testdata/vectors.json with the real fwknop client")

// TestVectors decodes every recorded client packet with sesame and compares the result with
// the client's own dump. It needs neither fwknop nor the clock (no age check). With -update
// it first re-records the vectors of Recorded() from the real client (root and fwknop needed).
func TestVectors(t *testing.T) {
	if *update {
		var vs []Vector
		for _, c := range Recorded() {
			vs = append(vs, NewVector(c, Client(t, c.ClientArgs()...)))
		}
		if err := SaveVectors(VectorsFile, vs); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %d vectors in %s", len(vs), VectorsFile)
	}
	vs, err := LoadVectors(VectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	cases := Recorded()
	if len(vs) != len(cases) {
		t.Fatalf("%d vectors for %d matrix cases; re-record with -update", len(vs), len(cases))
	}
	for i, v := range vs {
		if v.Name != cases[i].Name {
			t.Errorf("vector %d is %s, matrix case is %s; re-record with -update", i, v.Name, cases[i].Name)
		}
		k, err := v.Keys()
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, v.Name, v.Wire, k, v.Fields)
		if want := cases[i].Expected(); v.Fields.Message != want.Message || (cases[i].User != "" && v.Fields.Username != want.Username) {
			t.Errorf("%s: recorded message %q user %q, the case asks for %q %q", v.Name, v.Fields.Message, v.Fields.Username, want.Message, want.Username)
		}
	}
}

// TestIntegrationClientToSesame builds a fresh packet with the real client for every recorded
// case and checks that spa.Decode returns exactly the fields of the client's -v dump.
func TestIntegrationClientToSesame(t *testing.T) {
	for _, c := range Recorded() {
		res := Client(t, c.ClientArgs()...)
		checkDecode(t, c.Name, res.Wire, c.Keys, res.Dump)
	}
}

// checkDecode decodes wire with k and compares every field with the client's dump.
func checkDecode(t *testing.T, name, wire string, k spa.Keys, d Dump) {
	t.Helper()
	if wire != d.FinalSPAData {
		t.Errorf("%s: wire differs from the dump's Final SPA Data", name)
	}
	m, err := spa.Decode([]byte(wire), k)
	if err != nil {
		t.Errorf("%s: spa.Decode: %v", name, err)
		return
	}
	if got, want := *m, d.SPAMessage(); got != want {
		t.Errorf("%s: spa.Decode\n got %+v\nwant %+v", name, got, want)
	}
	if err := spa.CheckWire([]byte(wire)); err != nil {
		t.Errorf("%s: CheckWire: %v", name, err)
	}
	// The plaintext sesame would encode for these fields is the client's encoded data.
	pt, err := spa.EncodePlaintext(m)
	if err != nil {
		t.Errorf("%s: EncodePlaintext: %v", name, err)
	} else if want := d.EncodedData + ":" + d.Digest; pt != want {
		t.Errorf("%s: EncodePlaintext\n got %s\nwant %s", name, pt, want)
	}
}
