package replay

import (
	"io"
	"syscall"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// readMapped maps the file read-only (pre-faulted), which spares loading a large digest file
// a copy into fresh memory. release must be called when data is no longer used. It falls back
// to reading the file for sizes mmap cannot handle. The file is opened with safefile.OpenRead:
// never through a link, and only a regular file owned by root or us in a safe directory. The file must not be truncated while
// mapped (sesame owns DIGEST_FILE; a concurrent truncation would fault the process).
func readMapped(path string) (data []byte, release func(), err error) {
	f, err := safefile.OpenRead(path)
	if err != nil {
		return nil, func() {}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, func() {}, err
	}
	size := fi.Size()
	if size == 0 || size != int64(int(size)) {
		data, err := io.ReadAll(f)
		return data, func() {}, err
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		data, err := io.ReadAll(f)
		return data, func() {}, err
	}
	return data, func() { syscall.Munmap(data) }, nil
}
