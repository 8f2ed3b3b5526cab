package demodir

import (
	"errors"
	"strings"
)

// Lock locks the account uid=username as pwdMaxFailure wrong passwords
// would: pwdAccountLockedTime is now, so the lockout runs out after the
// policy's pwdLockoutDuration, or ends with an unlock or a password change.
// The demo's outbox page offers it, because the gateway never forwards
// enough wrong passwords to lock an account itself.
func (s *Server) Lock(username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.order {
		e := s.entries[n]
		if strings.EqualFold(e.first("uid"), username) && e.get("userPassword") != nil {
			e.set("pwdAccountLockedTime", formatTime(s.now()))
			s.log.Info("account locked from the demo page", "dn", e.dn)
			return nil
		}
	}
	return errors.New("demodir: no such account")
}
