package hostfw

// Representative host rulesets, written for these tests (not copied from the projects).

// ufwSave is the shape of the IPv4 filter table Debian's ufw 0.36 loads with the default
// policy "deny (incoming)" and "ufw allow 22/tcp", as `iptables -S` prints it: INPUT policy
// DROP and jumps into ufw's chains.
const ufwSave = `-P INPUT DROP
-P FORWARD DROP
-P OUTPUT ACCEPT
-N ufw-after-input
-N ufw-before-input
-N ufw-not-local
-N ufw-reject-input
-N ufw-skip-to-policy-input
-N ufw-user-input
-A INPUT -j ufw-before-input
-A INPUT -j ufw-after-input
-A INPUT -j ufw-reject-input
-A ufw-after-input -p udp -m udp --dport 137 -j ufw-skip-to-policy-input
-A ufw-after-input -p tcp -m tcp --dport 445 -j ufw-skip-to-policy-input
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A ufw-before-input -p udp -m udp --sport 67 --dport 68 -j ACCEPT
-A ufw-before-input -j ufw-not-local
-A ufw-before-input -d 224.0.0.251/32 -p udp -m udp --dport 5353 -j ACCEPT
-A ufw-before-input -j ufw-user-input
-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN
-A ufw-not-local -m addrtype --dst-type MULTICAST -j RETURN
-A ufw-not-local -m addrtype --dst-type BROADCAST -j RETURN
-A ufw-not-local -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
-A ufw-not-local -j DROP
-A ufw-skip-to-policy-input -j DROP
-A ufw-user-input -p tcp -m tcp --dport 22 -m comment --comment dapp_OpenSSH -j ACCEPT
`

// ufw6Save is ufw's IPv6 counterpart (chains ufw6-*).
const ufw6Save = `-P INPUT DROP
-P FORWARD DROP
-P OUTPUT ACCEPT
-N ufw6-before-input
-N ufw6-user-input
-A INPUT -j ufw6-before-input
-A ufw6-before-input -i lo -j ACCEPT
-A ufw6-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw6-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw6-before-input -p ipv6-icmp -j ACCEPT
-A ufw6-before-input -j ufw6-user-input
-A ufw6-user-input -p tcp -m tcp --dport 22 -j ACCEPT
`

// firewalldNft is the shape of the inet firewalld table firewalld 1.3 writes for the public
// zone with the ssh service: filter_INPUT at priority filter + 10, ending in a reject, with
// the zone dispatch in regular chains.
const firewalldNft = `table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority filter + 10; policy accept;
		ct state { established, related } accept
		ct status dnat accept
		iifname "lo" accept
		ct state invalid drop
		jump filter_INPUT_POLICIES_pre
		jump filter_INPUT_ZONES
		jump filter_INPUT_POLICIES_post
		reject with icmpx admin-prohibited
	}
	chain filter_INPUT_POLICIES_pre {
	}
	chain filter_INPUT_POLICIES_post {
	}
	chain filter_INPUT_ZONES {
		iifname "eth0" goto filter_IN_public
		goto filter_IN_public
	}
	chain filter_IN_public {
		jump filter_IN_public_pre
		jump filter_IN_public_log
		jump filter_IN_public_deny
		jump filter_IN_public_allow
		jump filter_IN_public_post
		meta l4proto { icmp, ipv6-icmp } accept
	}
	chain filter_IN_public_pre {
	}
	chain filter_IN_public_log {
	}
	chain filter_IN_public_deny {
	}
	chain filter_IN_public_allow {
		tcp dport 22 ct state { new, untracked } accept
		ip6 daddr fe80::/64 udp dport 546 ct state { new, untracked } accept
	}
	chain filter_IN_public_post {
	}
	chain filter_FORWARD {
		type filter hook forward priority filter + 10; policy accept;
		ct state { established, related } accept
		reject with icmpx admin-prohibited
	}
}
`

// nftDropNft is the plain default-drop nftables host of case (a).
const nftDropNft = `table inet filter {
	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iif lo accept
		tcp dport { 8000-8080, 9090 } accept
		tcp dport vmap { 7000 : accept, 7001 : drop }
	}
}
`
