// Package fail2ban holds sesame's Fail2Ban filter (filter.d/sesame.conf) and an example jail
// (jail.d/sesame.conf). The package has no code: its test runs Debian's fail2ban-regex with
// the filter on the log of a real sesame server.
package fail2ban
