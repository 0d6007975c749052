// Package shield puts a TCP-MD5 signature requirement in front of a TCP service: it
// accepts signed connections on a tcpmd5.Listener and forwards each one to an upstream
// address or hands it to a program inetd-style. It also reads key files, watches the
// kernel's MD5 drop counters, and keeps the expiring per-host keys that SPA grants will
// add to a live listener.
//
// # Resources
//
// A Server caps the connections it handles (MaxConns; beyond it they are reset) and
// survives running out of descriptors. A forwarded connection holds two descriptors;
// the bytes move by splice(2) through pipes taken from a shared, bounded pool only while
// they move, and idle pipes are closed (Pipes reports them). Programs run by Exec lead
// their own process group; at shutdown they and all their descendants get SIGTERM, then
// SIGKILL after a grace period, and a Reaper adopts and ends what they leave behind.
package shield
