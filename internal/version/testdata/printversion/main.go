// Command printversion prints version.String("sesame"); version_test.go builds it with VCS
// stamping to check what a real binary reports.
package main

import (
	"fmt"

	"github.com/sesame-spa/sesame/internal/version"
)

func main() { fmt.Println(version.String("sesame")) }
