package knock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sesame-spa/sesame/internal/rcfile"
)

// DefaultRCPath is $HOME/.fwknoprc ("" when HOME is unknown).
func DefaultRCPath() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".fwknoprc")
}

// LoadRC reads the rc file at path (DefaultRCPath when ""). A missing file is not an error
// when mustExist is false: it returns an empty file.
func LoadRC(path string, mustExist bool) (*rcfile.File, error) {
	if path == "" {
		path = DefaultRCPath()
	}
	f, err := rcfile.Load(path)
	if errors.Is(err, fs.ErrNotExist) && !mustExist {
		return &rcfile.File{Path: path}, nil
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// FromRC returns the options of stanza name (merged over [default]) of f, plus warnings about
// variables sesame ignores.
func FromRC(f *rcfile.File, name string) (*Options, []string, error) {
	s, err := f.Resolve(name)
	if err != nil {
		return nil, nil, err
	}
	o := &Options{}
	warn, err := o.Apply(s)
	if err != nil {
		return nil, warn, fmt.Errorf("%s: %w", f.Path, err)
	}
	return o, warn, nil
}
