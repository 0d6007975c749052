package server

import (
	"fmt"
	"io"

	"github.com/sesame-spa/sesame/internal/replay"
)

// parseDigestCache is --exit-parse-digest-cache: it loads DIGEST_FILE as the server would at
// start and reports what it holds. As in fwknopd, corrupt lines are skipped, not fatal, and a
// missing file is created; unlike fwknopd, sesame names only how many lines it skipped, not
// which (package replay counts them), and the load may compact the file.
func parseDigestCache(s *settings, verbose int, stdout io.Writer) error {
	if !s.digestPersistence {
		fmt.Fprintln(stdout, "ENABLE_DIGEST_PERSISTENCE is N: no digest cache file to parse.")
		return nil
	}
	c, err := replay.OpenFile(s.digestFile, replay.FileOptions{})
	if err != nil {
		return fmt.Errorf("digest cache %s: %w", s.digestFile, err)
	}
	st := c.Stats()
	if err := c.Close(); err != nil {
		return fmt.Errorf("digest cache %s: %w", s.digestFile, err)
	}
	if st.Skipped > 0 {
		fmt.Fprintf(stdout, "Skipped %d invalid digest file entr%s in %s.\n", st.Skipped, plural(st.Skipped, "y", "ies"), s.digestFile)
	}
	fmt.Fprintf(stdout, "Using Digest Cache: '%s' (entry count = %d)\n", s.digestFile, st.Loaded)
	if verbose > 0 {
		fmt.Fprintf(stdout, "lines %d, fwknopd-format %d, expired %d, skipped %d\n", st.Lines, st.Legacy, st.Expired, st.Skipped)
	}
	fmt.Fprintln(stdout, "Digest cache parsed, exiting.")
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
