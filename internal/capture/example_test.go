package capture_test

import (
	"fmt"

	"github.com/sesame-spa/sesame/internal/capture"
)

func ExampleCompileFilter() {
	f, err := capture.CompileFilter("(udp port 62201) or tcp dst port 62201 or icmp")
	if err != nil {
		panic(err)
	}
	fmt.Println(f)
	_, err = capture.CompileFilter("udp port 62201 and host 10.0.0.1")
	fmt.Println(err != nil)
	// Output:
	// udp port 62201 or tcp dst port 62201 or icmp
	// true
}
