// Package systemd holds sesame's systemd units: sesame-server.service (the SPA server as an
// unprivileged user with CAP_NET_ADMIN and CAP_NET_RAW), sesame-shield@.service with its
// socket, sesame-server-command-exec.conf (the drop-in for command execution) and
// sesame.sysusers.conf (the sesame user). The package has no code: its tests check the
// files with systemd-analyze and systemd-sysusers, and run the server as the unit runs it.
package systemd
