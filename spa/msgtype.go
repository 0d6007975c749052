package spa

import "fmt"

var msgTypeNames = [...]string{
	CommandMsg:                     "Command msg",
	AccessMsg:                      "Access msg",
	NATAccessMsg:                   "NAT access msg",
	ClientTimeoutAccessMsg:         "Client timeout access msg",
	ClientTimeoutNATAccessMsg:      "Client timeout NAT access msg",
	LocalNATAccessMsg:              "Local NAT access msg",
	ClientTimeoutLocalNATAccessMsg: "Client timeout local NAT access msg",
}

// String returns the text fwknop's field dump prints for the type ("Access msg").
func (t MessageType) String() string {
	if t.valid() {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

func (t MessageType) valid() bool { return t >= CommandMsg && t <= ClientTimeoutLocalNATAccessMsg }

// HasNAT reports whether messages of type t carry the NAT access field (types 2, 4, 5, 6).
func (t MessageType) HasNAT() bool {
	switch t {
	case NATAccessMsg, ClientTimeoutNATAccessMsg, LocalNATAccessMsg, ClientTimeoutLocalNATAccessMsg:
		return true
	}
	return false
}

// HasTimeout reports whether messages of type t carry the client timeout (types 3, 4, 6).
func (t MessageType) HasTimeout() bool {
	switch t {
	case ClientTimeoutAccessMsg, ClientTimeoutNATAccessMsg, ClientTimeoutLocalNATAccessMsg:
		return true
	}
	return false
}

// maxColonsFromType is how many ':' libfko allows from the type field on (digest removed).
func (t MessageType) maxColonsFromType() int {
	switch t {
	case CommandMsg, AccessMsg:
		return 2
	case ClientTimeoutNATAccessMsg, ClientTimeoutLocalNATAccessMsg:
		return 4
	}
	return 3
}
