// Package sesametest holds the end-to-end test harness shared by sesame's packages: the
// sesame server run inside a network namespace, TCP listeners and dial probes in namespaces,
// and a real OpenSSH server with throwaway keys.
//
// It is for tests only (it takes a testing.TB and fails the test on any setup error), but its
// files are ordinary .go files so that any package's tests can import it:
//
//   - StartServer runs "sesame server -f" in a namespace made by internal/nstest with the
//     given fwknopd.conf and access.conf texts, waits for "sesame server started", and stops
//     it by PID at cleanup. Server has Log, WaitLog, FWList, Ctl, Stop and Restart.
//   - Listen serves TCP in a namespace (Banner, Hangup or Echo each connection); Dial,
//     DialConn and WaitDial probe a port from a namespace (Open, Timeout or Refused).
//   - NewSSHKeys makes a throwaway host key, user key, authorized_keys and known_hosts;
//     StartSSHD runs the real sshd on them in a namespace; SSHKeys.SSH builds the matching
//     ssh command. RunSSHDir creates sshd's /run/sshd once and never removes it (tests of
//     other packages may run their sshd at the same moment).
//
// Helpers that need root or binaries call nstest.Require, so they skip outside CI and fail
// under CI=true.
package sesametest
