package capture_test

import (
	"fmt"

	"github.com/sesame-spa/sesame/internal/capture"
)

func ExampleCompileFilter() {
	f, err := capture.CompileFilter("udp dst port 62201 or 62202 and not src net 192.0.2.0/24")
	if err != nil {
		panic(err)
	}
	fmt.Println(f)
	_, err = capture.CompileFilter("udp port 62201 and ether host 1:2:3:4:5:6")
	fmt.Println(err != nil)
	// Output:
	// (udp dst port 62201 or udp dst port 62202) and not src net 192.0.2.0/24
	// true
}

func ExampleSplitInterfaces() {
	fmt.Printf("%q\n", capture.SplitInterfaces("eth0, wg0 eth0"))
	// Output:
	// ["eth0" "wg0"]
}
