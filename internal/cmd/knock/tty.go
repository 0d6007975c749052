package knock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ttyPassphrase asks for a passphrase on the controlling terminal (/dev/tty, as fwknop's
// client does), with echo off, and returns the line typed. Ctrl-C cancels: signals are off
// while it reads, so the terminal is always restored.
func ttyPassphrase(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("no terminal to ask on: %w", err)
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("no terminal to ask on: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO | unix.ISIG
	quiet.Lflag |= unix.ICANON
	if err := unix.IoctlSetTermios(fd, unix.TCSETSF, &quiet); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(tty)
	}()
	fmt.Fprint(tty, prompt)
	line, err := readLine(bufio.NewReader(tty))
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(line, 0x03) {
		return "", errors.New("cancelled")
	}
	return line, nil
}
