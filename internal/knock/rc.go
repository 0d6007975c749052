package knock

import (
	"errors"
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

// FromRC returns the options of stanza name (merged over [default]) of f, plus warnings: lines
// of the file that are ignored and values that lost text after a blank. Bad lines of the
// stanzas used and bad variables are errors (rcfile.ErrSyntax, *ParamError).
func FromRC(f *rcfile.File, name string) (*Options, []string, error) {
	s, err := f.Resolve(name)
	if err != nil {
		return nil, nil, err
	}
	o := &Options{}
	warn := append([]string(nil), f.Warnings...)
	w, err := o.Apply(s, f.Path)
	warn = append(warn, w...)
	if err != nil {
		return nil, warn, err
	}
	return o, warn, nil
}
