package channel

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// Access says who may use a channel, as D-Bus policies do for a bus
// name, at the grain of a channel. It is checked against the kernel's
// peer credentials of each connection when it is accepted (Cred), and
// again for the connected clients when SetAccess changes it. Its zero
// value admits everyone the socket file's mode lets connect.
type Access struct {
	// Allow, when not nil, lists who may connect: a client it does not
	// admit is refused with wire.CodeForbidden.
	Allow *Principals
	// Publish, when not nil, lists who of the connected clients may send
	// events; the others may only listen. A client it does not admit that
	// sends an event is dropped with wire.CodeForbidden.
	Publish *Principals
	// MaxClients bounds the channel's connections; MaxClientsPerUID
	// bounds those of one user id. A connection over either is refused
	// with wire.CodeTooManyClients. 0 means no limit.
	MaxClients       int
	MaxClientsPerUID int
}

// Principals is a set of users and groups: an allow or publish list.
type Principals struct {
	uids, gids []int
}

// ParsePrincipals reads the entries of an allow or publish list. Each is
// a user, by name or number ("alice", "1000", or "user:alice",
// "user:1000"), or a group, by name or number ("group:adm",
// "group:4"). Names are looked up now, in the system's user database;
// an unknown one is an error that names it. No entries make a set that
// admits nobody; a nil set admits everyone.
func ParsePrincipals(entries []string) (*Principals, error) {
	p := &Principals{}
	for _, e := range entries {
		kind, name := "user", e
		if k, n, ok := strings.Cut(e, ":"); ok {
			kind, name = k, n
		}
		if name == "" {
			return nil, fmt.Errorf("%q: empty name", e)
		}
		switch kind {
		case "user":
			uid, err := lookupID(name, func(s string) (string, error) {
				u, err := user.Lookup(s)
				if err != nil {
					return "", err
				}
				return u.Uid, nil
			})
			if err != nil {
				return nil, fmt.Errorf("%q: no such user: %v", e, err)
			}
			p.uids = append(p.uids, uid)
		case "group":
			gid, err := LookupGroup(name)
			if err != nil {
				return nil, fmt.Errorf("%q: no such group: %v", e, err)
			}
			p.gids = append(p.gids, gid)
		default:
			return nil, fmt.Errorf("%q: want a user (name or uid), \"user:NAME\" or \"group:NAME\", got the prefix %q", e, kind)
		}
	}
	return p, nil
}

// lookupID is a number as it is, or a name looked up.
func lookupID(name string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.ParseUint(name, 10, 31); err == nil {
		return int(n), nil
	}
	id, err := lookup(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return 0, fmt.Errorf("id %q is not a number (this system's ids are not numeric)", id)
	}
	return n, nil
}

// Admits reports whether a process with these credentials is in the
// set: its uid is listed, or its group or one of its supplementary
// groups is. A nil set admits everyone.
func (p *Principals) Admits(cr Cred) bool {
	if p == nil {
		return true
	}
	if slices.Contains(p.uids, cr.UID) {
		return true
	}
	if cr.GID >= 0 && slices.Contains(p.gids, cr.GID) {
		return true
	}
	for _, g := range cr.Groups {
		if slices.Contains(p.gids, g) {
			return true
		}
	}
	return false
}

// LookupGroup returns the id of a group given by name or number.
func LookupGroup(name string) (int, error) {
	return lookupID(name, func(s string) (string, error) {
		g, err := user.LookupGroup(s)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}
