package fwknoptest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"

	"github.com/sesame-spa/sesame/spa"
)

// VectorsFile is the path of the recorded client packets, relative to this package.
const VectorsFile = "testdata/vectors.json"

// Vector is one packet recorded from the real fwknop client, with what is needed to decode
// it again and the client's own -v dump of its fields.
type Vector struct {
	Name     string   `json:"name"`            // the Matrix case name
	Args     []string `json:"args"`            // client arguments after ClientFlags and -B
	Key      string   `json:"key_base64"`      // Rijndael key bytes, standard base64
	HMACKey  string   `json:"hmac_key_base64"` // "" when the packet has no HMAC
	HMACType string   `json:"hmac_type"`       // fwknop name ("sha256"), "" without HMAC
	Mode     string   `json:"mode"`            // fwknop name ("cbc", "legacy", ...)
	Wire     string   `json:"wire"`            // the packet as sent on the wire
	Fields   Dump     `json:"fields"`          // the client's -v dump
}

// NewVector records res, the client's result for case c.
func NewVector(c Case, res ClientResult) Vector {
	v := Vector{
		Name: c.Name, Args: c.ClientArgs(), Key: base64.StdEncoding.EncodeToString(c.Keys.Key),
		Mode: ModeNames[c.Mode], Wire: res.Wire, Fields: res.Dump,
	}
	if c.HMAC != 0 {
		v.HMACKey = base64.StdEncoding.EncodeToString(c.Keys.HMACKey)
		v.HMACType = DigestNames[c.HMAC]
	}
	return v
}

// Keys returns the vector's keys for spa.Decode.
func (v Vector) Keys() (spa.Keys, error) {
	var k spa.Keys
	var err error
	if k.Key, err = base64.StdEncoding.DecodeString(v.Key); err != nil {
		return k, fmt.Errorf("vector %s: key: %w", v.Name, err)
	}
	if k.Mode, err = modeByName(v.Mode); err != nil {
		return k, fmt.Errorf("vector %s: %w", v.Name, err)
	}
	if v.HMACKey == "" {
		return k, nil
	}
	if k.HMACKey, err = base64.StdEncoding.DecodeString(v.HMACKey); err != nil {
		return k, fmt.Errorf("vector %s: HMAC key: %w", v.Name, err)
	}
	if k.HMACType, err = digestByName(v.HMACType); err != nil {
		return k, fmt.Errorf("vector %s: %w", v.Name, err)
	}
	return k, nil
}

func modeByName(name string) (spa.Mode, error) {
	for m, n := range ModeNames {
		if n == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q", name)
}

func digestByName(name string) (spa.DigestType, error) {
	for d, n := range DigestNames {
		if n == name {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown digest type %q", name)
}

// LoadVectors reads recorded vectors from path (usually VectorsFile).
func LoadVectors(path string) ([]Vector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load vectors: %w", err)
	}
	var vs []Vector
	if err := json.Unmarshal(b, &vs); err != nil {
		return nil, fmt.Errorf("load vectors %s: %w", path, err)
	}
	return vs, nil
}

// SaveVectors writes vectors to path as indented JSON.
func SaveVectors(path string, vs []Vector) error {
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		return fmt.Errorf("save vectors: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save vectors: %w", err)
	}
	return nil
}
