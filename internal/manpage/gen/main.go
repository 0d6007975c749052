// Command gen writes sesame's manual pages (sesame.1, sesame-server.8, sesame.conf.5) into a
// directory, generated from the command definitions by package manpage:
//
//	go run ./internal/manpage/gen -version 0.1.0 -date 2026-11-30 DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/sesame-spa/sesame/internal/manpage"
)

func main() {
	var m manpage.Meta
	flag.StringVar(&m.Version, "version", "devel", "version shown in the page footers")
	flag.StringVar(&m.Date, "date", "", "date shown in the page footers, YYYY-MM-DD (required: the source's date, for reproducible pages)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: gen -version VERSION -date YYYY-MM-DD DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || !regexp.MustCompile(`^\d{4}-\d\d-\d\d$`).MatchString(m.Date) {
		flag.Usage()
		os.Exit(2)
	}
	if err := write(flag.Arg(0), m); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

func write(dir string, m manpage.Meta) error {
	pages, err := manpage.Pages(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range pages {
		if err := os.WriteFile(filepath.Join(dir, p.File), []byte(p.Text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
