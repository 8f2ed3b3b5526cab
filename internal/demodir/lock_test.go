package demodir

import (
	"context"
	"testing"
)

func TestLockLocksUntilUnlockedOrChanged(t *testing.T) {
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pw string
	for _, u := range s.Users() {
		if u.Username == "carol" {
			pw = u.Password
		}
	}
	if !s.CheckPassword("carol", pw) {
		t.Fatal("carol's seeded password does not bind")
	}
	if err := s.Lock("CAROL"); err != nil {
		t.Fatal(err)
	}
	if s.CheckPassword("carol", pw) {
		t.Fatal("a locked account binds")
	}
	if err := s.Lock("nobody"); err == nil {
		t.Fatal("locked an account that does not exist")
	}
	if !s.CheckPassword("alice", passwordOf(s, "alice")) {
		t.Fatal("locking carol locked alice")
	}
}

func passwordOf(s *Server, name string) string {
	for _, u := range s.Users() {
		if u.Username == name {
			return u.Password
		}
	}
	return ""
}
