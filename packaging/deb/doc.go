// Package deb holds what scripts/package puts into sesame's Debian package besides the
// binary, the units and the man pages: the control file template, the maintainer scripts
// (postinst creates the sesame user with systemd-sysusers; nothing is enabled or started),
// the copyright file, the lintian overrides and the example configurations.
//
// The package has no code. Its tests check that the examples load, that the maintainer scripts
// parse, and (TestIntegrationPackage, as root) build the package, run lintian on it, install it
// next to Debian's fwknop-client and fwknop-server, run it, purge it and check that nothing of
// it is left and that the fwknop packages are untouched.
package deb
