package multicast

import (
	"fmt"
	"net"
	"strings"
)

// ChooseInterface returns the interface to join the group on: the one
// named, which must exist, be up and support multicast; or, when name is
// "", the single interface that is up, supports multicast and is not a
// loopback. It fails with a message that lists the candidates when there
// is none or more than one.
func ChooseInterface(name string) (*net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("multicast: listing network interfaces: %w", err)
	}
	return chooseFrom(all, name)
}

func chooseFrom(all []net.Interface, name string) (*net.Interface, error) {
	var names, candidates []string
	var pick *net.Interface
	for i := range all {
		ifi := &all[i]
		names = append(names, ifi.Name)
		if name != "" && ifi.Name == name {
			switch {
			case ifi.Flags&net.FlagUp == 0:
				return nil, fmt.Errorf("multicast: interface %q is down", name)
			case ifi.Flags&net.FlagMulticast == 0:
				return nil, fmt.Errorf("multicast: interface %q does not support multicast (flags %v)", name, ifi.Flags)
			}
			return ifi, nil
		}
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0 {
			candidates = append(candidates, ifi.Name)
			pick = ifi
		}
	}
	switch {
	case name != "":
		return nil, fmt.Errorf("multicast: no network interface %q; this host has: %s", name, joinNames(names))
	case len(candidates) == 0:
		return nil, fmt.Errorf("multicast: no interface is up, multicast-capable and not a loopback (this host has: %s); name one with \"interface\"", joinNames(names))
	case len(candidates) > 1:
		return nil, fmt.Errorf("multicast: %d interfaces could carry multicast (%s); name one with \"interface\"", len(candidates), joinNames(candidates))
	}
	return pick, nil
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
