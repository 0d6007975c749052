package replay

import (
	"os"
	"syscall"
)

// readMapped maps the file read-only (pre-faulted), which spares loading a large digest file
// a copy into fresh memory. release must be called when data is no longer used. It falls back
// to reading the file for sizes mmap cannot handle. The file must not be truncated while
// mapped (sesame owns DIGEST_FILE; a concurrent truncation would fault the process).
func readMapped(path string) (data []byte, release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, func() {}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, func() {}, err
	}
	size := fi.Size()
	if size == 0 || size != int64(int(size)) || !fi.Mode().IsRegular() {
		data, err := os.ReadFile(path)
		return data, func() {}, err
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		data, err := os.ReadFile(path)
		return data, func() {}, err
	}
	return data, func() { syscall.Munmap(data) }, nil
}
