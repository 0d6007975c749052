package keygen

import (
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"
)

// QRLevel is the error-correction level of the printed codes.
const QRLevel = qr.M

// quiet is the margin, in modules, drawn around the code (the QR spec asks for 4).
const quiet = 2

// WriteQR prints text as a QR code with Unicode half blocks, two module rows per line. By
// default it is drawn for a dark terminal: light modules (and the margin) are printed as
// blocks in the foreground colour. invert draws dark modules as blocks, for light
// backgrounds.
func WriteQR(w io.Writer, text string, invert bool) error {
	c, err := qr.Encode(text, QRLevel)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	_, err = io.WriteString(w, render(c.Size, c.Black, invert))
	return err
}

// render draws a size×size module grid (black(x, y) reports dark modules) with a quiet
// margin. A character stands for the module pair (x, y) over (x, y+1).
func render(size int, black func(x, y int) bool, invert bool) string {
	ink := func(x, y int) bool { // whether the module is drawn as a block
		dark := x >= 0 && y >= 0 && x < size && y < size && black(x, y)
		return dark == invert
	}
	var b strings.Builder
	for y := -quiet; y < size+quiet; y += 2 {
		for x := -quiet; x < size+quiet; x++ {
			top, bottom := ink(x, y), y+1 < size+quiet && ink(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
