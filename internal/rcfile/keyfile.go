package rcfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNoKey: a key file has no line for the server.
var ErrNoKey = errors.New("no key for server in key file")

// LookupKey reads a fwknop key file (-G/--get-key, --get-hmac-key): lines "<server>: <key>",
// where <server> is the -D value exactly as given (IPv6 addresses work too). Blank and '#'
// lines are skipped. The key is the text after the ':' with surrounding blanks removed; when
// several lines name the server the last one counts, as in fwknop 2.6.10. The file's mode is
// not checked (fwknop reads a 0644 key file too); see CheckMode.
func LookupKey(path, server string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	defer fh.Close()
	key := ""
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// Match by prefix, not by splitting at the first ':', so IPv6 servers work.
		rest, ok := strings.CutPrefix(line, server)
		if !ok {
			continue
		}
		if rest = strings.TrimLeft(rest, " \t"); strings.HasPrefix(rest, ":") {
			if k := strings.TrimSpace(rest[1:]); k != "" {
				key = k
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("key file %s: %w", path, err)
	}
	if key == "" {
		return "", fmt.Errorf("%s has no line \"%s: KEY\"; add one or use --key-rijndael: %w", path, server, ErrNoKey)
	}
	return key, nil
}
