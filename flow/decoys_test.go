package flow

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
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

// addDirUser adds an eligible staff member to the fake directory.
func (tb *testbed) addDirUser(name string) {
	tb.dir.AddUser(directory.User{DN: "uid=" + name + ",ou=people,dc=x", ID: "id-" + name, Username: name, Mail: name + "@corp.example"},
		"Some-Pass1!", "cn=staff")
}

// plantMethods stores verified methods of the given types for account, in
// that registration order, verified before today (so the decoy counts
// include them).
func plantMethods(t *testing.T, tb *testbed, account string, types []string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	for j, typ := range types {
		m := store.Method{ID: fmt.Sprintf("%s-m%d", account, j), AccountID: account, Type: typ, CreatedAt: at.Add(time.Duration(j) * time.Second)}
		switch typ {
		case store.MethodEmail:
			m.Address = account + "@home.example"
		case store.MethodSMS:
			m.Address = fmt.Sprintf("+4477009002%02d", j)
		default:
			m.Secret = "{}" // the hint of an app, passkey or questions does not depend on it
		}
		if err := tb.st.AddMethod(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := tb.st.VerifyMethod(ctx, account, m.ID, at); err != nil {
			t.Fatal(err)
		}
	}
}

func typesOf(ms []Offered) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Type
	}
	return out
}

// TestDecoyOrderMatchesRealOrder: once fakes are learned from registered
// users who hold apps, passkeys and security questions, a fake list of a
// given mix of kinds shows them in the same order as a real account with
// that mix, whatever order the real user registered them in (a real
// [webauthn, email] that no fake ever shows proves the account exists);
// and every learned kind appears among the fakes in its proportion.
func TestDecoyOrderMatchesRealOrder(t *testing.T) {
	tb := newTestbed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp", "webauthn", "questions"}
		o.Questions = QuestionOptions{List: flowtest.Questions, Required: 3, Ask: 2}
		o.Limits.StartsPerAccount = 100
	})
	ctx := context.Background()
	yesterday := time.Now().Add(-30 * time.Hour)
	// registration orders no alphabetical or kind order gives
	shapes := [][]string{
		{"email", "sms", "questions"},
		{"email", "totp", "sms"},
		{"webauthn", "email"},
	}
	for i := range 3 * decoyMinAccounts {
		plantMethods(t, tb, fmt.Sprintf("acct-%02d", i), shapes[i%len(shapes)], yesterday)
	}
	// real accounts with the same mixes, registered in the same orders
	real := map[string][]string{} // mix (sorted kinds) -> order shown
	for i, shape := range shapes {
		name := fmt.Sprintf("real%d", i)
		tb.addDirUser(name)
		plantMethods(t, tb, "id-"+name, shape, yesterday)
		f, err := tb.svc.StartFlow(ctx, "reset", name, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.Methods {
			if !m.real {
				t.Fatalf("%s: a fake method among %+v", name, f.Methods)
			}
		}
		if len(f.Methods) != len(shape) {
			t.Fatalf("%s: offered %v", name, typesOf(f.Methods))
		}
		real[strings.Join(slices.Sorted(slices.Values(shape)), "+")] = typesOf(f.Methods)
	}
	const names = 300
	seen := map[string]int{}
	holding := map[string]int{}
	for i := range names {
		name := fmt.Sprintf("nobody-%d", i)
		set := fakeSet(t, tb, name)
		types := typesOf(set)
		mix := strings.Join(slices.Sorted(slices.Values(types)), "+")
		want, ok := real[mix]
		if !ok {
			t.Fatalf("%s: fake mix %v, registered users have %v", name, types, shapes)
		}
		if !slices.Equal(types, want) {
			t.Fatalf("%s: fake order %v, a real account with these kinds shows %v", name, types, want)
		}
		seen[mix]++
		for _, m := range set {
			holding[m.Type]++
			switch m.Type {
			case MethodTOTP:
				if m.Hint != totpHint {
					t.Fatalf("fake app hint %q", m.Hint)
				}
			case MethodWebAuthn:
				if m.Hint != passkeyHint {
					t.Fatalf("fake passkey hint %q", m.Hint)
				}
			case MethodQuestions:
				if m.Hint != questionsHint {
					t.Fatalf("fake questions hint %q", m.Hint)
				}
			}
		}
	}
	// each mix is a third of the registered accounts: a third of the fakes
	// hold an app, a third a passkey, a third security questions
	if len(seen) != len(shapes) {
		t.Fatalf("fake mixes %v", seen)
	}
	for _, typ := range []string{MethodTOTP, MethodWebAuthn, MethodQuestions} {
		if n := holding[typ]; n < names/5 || n > names/2 {
			t.Errorf("%d of %d fake sets hold %s, want about a third", n, names, typ)
		}
	}
}
