package gateway

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

func fakeSet(t *testing.T, tb *testbed, name string) []Offered {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", name, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Required != 1 {
		t.Fatalf("%s: required %d", name, f.Required)
	}
	for _, m := range f.Methods {
		if m.real {
			t.Fatalf("%s: a real method in a fake set", name)
		}
	}
	return f.Methods
}

// TestDecoysBeforeAnyoneRegistered: with too few registered accounts to
// learn from, fakes follow the built-in pattern, and the same name gets the
// same set every time.
func TestDecoysBeforeAnyoneRegistered(t *testing.T) {
	tb := newTestbed(t, nil)
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("nobody-%d", i)
		a, b := fakeSet(t, tb, name), fakeSet(t, tb, strings.ToUpper(name))
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: %v then %v", name, a, b)
		}
		if len(a) < 1 || len(a) > 2 {
			t.Fatalf("%s: %d fake methods", name, len(a))
		}
		for _, m := range a {
			switch m.Type {
			case store.MethodEmail:
				if !strings.Contains(m.Hint, "•••@") {
					t.Fatalf("%s: email hint %q", name, m.Hint)
				}
			case store.MethodSMS:
				if !strings.HasPrefix(m.Hint, "+44 •••• ••") {
					t.Fatalf("%s: phone hint %q", name, m.Hint)
				}
			default:
				t.Fatalf("%s: type %q", name, m.Type)
			}
		}
	}
}

// TestDecoysLookLikeRegisteredUsers: once enough accounts have registered,
// fake sets take the shapes real users have (here: three methods, two of
// them email, with an unusual masked address), so that an unusual real hint
// does not prove the account exists.
func TestDecoysLookLikeRegisteredUsers(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	yesterday := time.Now().Add(-30 * time.Hour)
	for i := 0; i < decoyMinAccounts; i++ {
		acct := fmt.Sprintf("acct-%02d", i)
		for j, m := range []store.Method{
			{ID: "e1", Type: store.MethodEmail, Address: fmt.Sprintf("Quill.%d@zebra-%d.museum", i, i)},
			{ID: "e2", Type: store.MethodEmail, Address: fmt.Sprintf("Quinn.%d@zoo-%d.museum", i, i)},
			{ID: "s1", Type: store.MethodSMS, Address: fmt.Sprintf("+4477009001%02d", i)},
		} {
			m.AccountID, m.CreatedAt = acct, yesterday.Add(time.Duration(j)*time.Second)
			if err := tb.st.AddMethod(ctx, m); err != nil {
				t.Fatal(err)
			}
			if err := tb.st.VerifyMethod(ctx, acct, m.ID, yesterday); err != nil {
				t.Fatal(err)
			}
		}
	}
	// methods verified today are not counted until tomorrow: all instances
	// sharing the store draw from the same counts for the whole day
	tb.enroll(t, "carol", "carol@home.example")
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("nobody-%d", i)
		set := fakeSet(t, tb, name)
		var types []string
		for _, m := range set {
			types = append(types, m.Type)
			if m.Type == store.MethodEmail && m.Hint != "Q•••@z•••.museum" {
				t.Fatalf("%s: email hint %q is not one registered users have", name, m.Hint)
			}
			if m.Type == store.MethodSMS && !strings.HasPrefix(m.Hint, "+44 •••• ••") {
				t.Fatalf("%s: phone hint %q", name, m.Hint)
			}
		}
		if !reflect.DeepEqual(types, []string{"email", "email", "sms"}) {
			t.Fatalf("%s: fake types %v, registered users have email+email+sms", name, types)
		}
	}
	// a real user still sees their own methods
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if len(f.Methods) != 1 || !f.Methods[0].real || f.Methods[0].Hint != "c•••@h•••.example" {
		t.Fatalf("carol's flow %+v", f)
	}
}
