package directory_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// The conformance suite runs unchanged against a real slapd and a real
// Samba AD DC, both started by the test (see directory/dirtest), and
// against the in-memory directory the unit tests of the other packages
// use (dirtest.Memory), skipping by name what it does not model.

func TestOpenLDAP(t *testing.T) {
	runConformance(t, dirtest.StartOpenLDAP(t))
}

func TestActiveDirectory(t *testing.T) {
	runConformance(t, dirtest.StartSamba(t))
}

// TestEmbedded runs the suite against the in-process directory that
// `latchkey demo` uses (internal/demodir), seeded like the slapd one.
func TestEmbedded(t *testing.T) {
	runConformance(t, dirtest.StartEmbedded(t))
}

// TestMemory runs the suite against dirtest.Memory, seeded like the slapd
// one, so that the fake every unit test uses behaves as the servers do.
func TestMemory(t *testing.T) {
	runConformance(t, dirtest.StartMemory(t))
}

// memberOf is Client.MemberOf for any directory.Directory.
func memberOf(ctx context.Context, d directory.Directory, u *directory.User, groups []string) (map[string]bool, error) {
	m, err := d.Membership(ctx, u, groups)
	return m.MemberOf, err
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func open(t *testing.T, cfg directory.Config) *directory.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := directory.Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantErr checks err against a sentinel and that nothing from the server
// or any secret leaks into its text.
func wantErr(t *testing.T, err, want error, secrets ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	if err == nil {
		return
	}
	msg := err.Error()
	for _, bad := range append([]string{"LDAP Result Code", "check_password", "AcceptSecurityContext",
		"DSID-", "quality", "Constraint Violation", "Invalid Credentials"}, secrets...) {
		if bad != "" && strings.Contains(msg, bad) {
			t.Fatalf("error text %q leaks %q", msg, bad)
		}
	}
	var de *directory.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %T is not a *directory.Error", err)
	}
}

func lookup(t *testing.T, d directory.Directory, name string) *directory.User {
	t.Helper()
	u, err := d.Lookup(context.Background(), name)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", name, err)
	}
	return u
}

func runConformance(t *testing.T, srv *dirtest.Server) {
	ctx := context.Background()
	var d directory.Directory
	mem := srv.Memory != nil
	if mem {
		d = srv.Memory
	} else {
		d = open(t, srv.Config())
	}
	isAD := srv.Flavor == directory.ActiveDirectory
	// notModelled skips, on dirtest.Memory only, a case it documents as
	// not modelled.
	notModelled := func(t *testing.T, why string) {
		t.Helper()
		if mem {
			t.Skip("dirtest.Memory does not model " + why)
		}
	}

	t.Run("discovery", func(t *testing.T) {
		notModelled(t, "LDAP discovery (RootDSE): its Info is fixed")
		info := d.Info()
		if info.IsAD != isAD {
			t.Fatalf("IsAD = %v", info.IsAD)
		}
		if isAD {
			if info.PolicyHintsOID == "" && !hasWarning(info, "history") {
				t.Fatalf("no warning about resets skipping history: %v", info.Warnings)
			}
		} else {
			if !info.PasswordModify || !info.PPolicyControl {
				t.Fatalf("PasswordModify=%v PPolicyControl=%v", info.PasswordModify, info.PPolicyControl)
			}
			if len(info.Warnings) != 0 {
				t.Fatalf("unexpected warnings: %v", info.Warnings)
			}
		}
		if err := d.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("connect", func(t *testing.T) {
		notModelled(t, "LDAP connections (StartTLS, plaintext, certificates, failover, service bind)")
		// StartTLS on ldap://
		cfg := srv.Config()
		cfg.URLs = []string{srv.URL}
		cfg.StartTLS = true
		c := open(t, cfg)
		if u := lookup(t, c, "alice"); u.Username == "" {
			t.Fatal("no username")
		}
		// plain ldap:// needs an explicit opt-in
		cfg.StartTLS = false
		if _, err := directory.Open(ctx, cfg, nil); err == nil || !strings.Contains(err.Error(), "allow_plaintext") {
			t.Fatalf("plain ldap:// without allow_plaintext: err = %v", err)
		}
		cfg.AllowPlaintext = true
		if isAD {
			// Samba refuses simple binds without TLS (strong auth required);
			// either way, no password operation runs in clear.
			_, err := directory.Open(ctx, cfg, nil)
			wantErr(t, err, directory.ErrInsecure, srv.ServicePassword)
		} else {
			c := open(t, cfg)
			if !hasWarning(c.Info(), "not encrypted") {
				t.Fatalf("no plaintext warning: %v", c.Info().Warnings)
			}
			lookup(t, c, "alice")
		}
		// wrong CA: verification fails
		other, err := dirtest.WriteCerts(filepath.Join(t.TempDir(), "other"))
		if err != nil {
			t.Fatal(err)
		}
		cfg = srv.Config()
		cfg.CAFile = other.CAFile
		_, err = directory.Open(ctx, cfg, nil)
		wantErr(t, err, directory.ErrCertificate)
		// failover: first URL dead
		dead := deadURL(t)
		cfg = srv.Config()
		cfg.URLs = []string{dead, srv.LDAPSURL}
		c = open(t, cfg)
		if c.Info().URL != srv.LDAPSURL {
			t.Fatalf("connected to %s", c.Info().URL)
		}
		lookup(t, c, "bob")
		// nothing reachable
		cfg.URLs = []string{dead}
		_, err = directory.Open(ctx, cfg, nil)
		wantErr(t, err, directory.ErrUnavailable)
		// a server that accepts connections and never answers: the dial
		// (TCP + TLS handshake) times out and the next URL is used
		hang := hangingServer(t)
		cfg = srv.Config()
		cfg.URLs = []string{hang, srv.LDAPSURL}
		cfg.DialTimeout = 300 * time.Millisecond
		start := time.Now()
		c = open(t, cfg)
		if c.Info().URL != srv.LDAPSURL || time.Since(start) > 10*time.Second {
			t.Fatalf("connected to %s after %s", c.Info().URL, time.Since(start))
		}
		// wrong service password
		cfg = srv.Config()
		cfg.BindPassword = "not-the-password"
		_, err = directory.Open(ctx, cfg, nil)
		wantErr(t, err, directory.ErrInvalidCredentials, "not-the-password")
	})

	t.Run("lookup", func(t *testing.T) {
		alice := lookup(t, d, "alice")
		if alice.ID == "" || alice.DN == "" || alice.Mail == "" || alice.Mobile != "+15550100001" || alice.DisplayName == "" {
			t.Fatalf("alice = %+v", alice)
		}
		if !strings.EqualFold(alice.DN, srv.UserDN("alice")) {
			t.Fatalf("DN = %s", alice.DN)
		}
		if isAD && alice.UPN != "alice@example.test" {
			t.Fatalf("UPN = %q", alice.UPN)
		}
		if upper := lookup(t, d, "ALICE"); upper.ID != alice.ID {
			t.Fatalf("ALICE has another ID: %s vs %s", upper.ID, alice.ID)
		}
		sp := lookup(t, d, srv.SpecialUser)
		if sp.Username != srv.SpecialUser {
			t.Fatalf("special user = %q", sp.Username)
		}
		if u := lookup(t, d, srv.UnicodeUser); u.Username != srv.UnicodeUser {
			t.Fatalf("unicode user = %q", u.Username)
		}
		for _, bad := range []string{"", "*", "a*", "alice)(uid=*", "a(b", `\`, "alice\x00", "nobody", "al*ce", "\xff\xfe",
			strings.Repeat("a", 300), "jos\u0065\u0301x"} {
			u, err := d.Lookup(ctx, bad)
			if err == nil {
				t.Fatalf("Lookup(%q) found %s", bad, u.DN)
			}
			wantErr(t, err, directory.ErrNotFound)
		}
		if mem {
			return // search filters are not modelled, so no lookup is ambiguous
		}
		cfg := srv.Config()
		cfg.UserFilter = strings.Replace(srv.UserFilter, "uid={username}", "sn={username}", 1)
		cfg.UserFilter = strings.Replace(cfg.UserFilter, "sAMAccountName={username}", "sn={username}", 1)
		_, err := open(t, cfg).Lookup(ctx, "Twin")
		wantErr(t, err, directory.ErrAmbiguous)
	})

	t.Run("status", func(t *testing.T) {
		ivan := lookup(t, d, "ivan")
		if !ivan.Status.Disabled {
			t.Fatalf("ivan not disabled: %+v", ivan.Status)
		}
		// a disabled account does not bind, even with its password; slapd
		// (ivan is administratively locked, pwdAccountLockedTime) says
		// locked, AD says disabled
		err := d.VerifyPassword(ctx, ivan, srv.Password("ivan"))
		if isAD {
			wantErr(t, err, directory.ErrAccountDisabled, srv.Password("ivan"))
		} else {
			wantErr(t, err, directory.ErrAccountLocked, srv.Password("ivan"))
		}
		alice := lookup(t, d, "alice")
		if alice.Status.Disabled || alice.Status.Locked || alice.Status.MustChange {
			t.Fatalf("alice status %+v", alice.Status)
		}
		if isAD {
			admin := lookup(t, d, "Administrator")
			if !admin.Status.Privileged {
				t.Fatalf("Administrator not privileged: %+v", admin.Status)
			}
		}
	})

	t.Run("groups", func(t *testing.T) {
		staff, eng, admins := srv.Group("staff"), srv.Group("engineering"), srv.Group("sspr-admins")
		cycA, cycB := srv.Group("cycle-a"), srv.Group("cycle-b")
		missingGroup := strings.Replace(staff, "staff", "nosuchgroup", 1)
		missingGroup = strings.Replace(missingGroup, "Staff", "NoSuchGroup", 1)
		all := []string{staff, eng, admins, cycA, cycB, missingGroup}
		cases := map[string][]string{
			"carol": {staff, eng},
			"bob":   {staff, eng},
			"alice": {staff, admins},
			"erin":  {},
			"judy":  {cycA, cycB},
		}
		for name, want := range cases {
			u := lookup(t, d, name)
			got, err := memberOf(ctx, d, u, all)
			if err != nil {
				t.Fatalf("MemberOf(%s): %v", name, err)
			}
			for _, g := range all {
				if got[g] != contains(want, g) {
					t.Errorf("%s in %s = %v, want %v", name, g, got[g], contains(want, g))
				}
			}
			// a group that does not exist is "cannot tell", never "no"
			if v, ok := got[missingGroup]; ok {
				t.Errorf("%s: the missing group %s has an answer: %v", name, missingGroup, v)
			}
		}
		// DNs compare case-insensitively; the result is keyed as given
		carol := lookup(t, d, "carol")
		upper := strings.ToUpper(staff)
		got, err := memberOf(ctx, d, carol, []string{upper})
		if err != nil || !got[upper] {
			t.Fatalf("carol in %s = %v (%v)", upper, got[upper], err)
		}
		if isAD {
			admin := lookup(t, d, "Administrator")
			got, err := memberOf(ctx, d, admin, []string{srv.Group("domain-admins")})
			if err != nil || !got[srv.Group("domain-admins")] {
				t.Fatalf("Administrator in Domain Admins = %v (%v)", got, err)
			}
		} else {
			us := srv.Group("unique-staff")
			got, err := memberOf(ctx, d, carol, []string{us})
			if err != nil || !got[us] {
				t.Fatalf("carol in unique-staff (uniqueMember -> staff -> engineering) = %v (%v)", got, err)
			}
		}
	})

	t.Run("lister", func(t *testing.T) { testLister(t, srv, d) })

	t.Run("verify password", func(t *testing.T) {
		alice := lookup(t, d, "alice")
		if err := d.VerifyPassword(ctx, alice, srv.Password("alice")); err != nil {
			t.Fatal(err)
		}
		wantErr(t, d.VerifyPassword(ctx, alice, "wrong-Password1"), directory.ErrInvalidCredentials, "wrong-Password1")
		// Empty passwords never reach the server: many empty tries do not
		// lock twin1 out (the threshold is 3).
		twin := lookup(t, d, "twin1")
		for i := 0; i < 5; i++ {
			wantErr(t, d.VerifyPassword(ctx, twin, ""), directory.ErrInvalidCredentials)
		}
		if err := d.VerifyPassword(ctx, twin, srv.Password("twin1")); err != nil {
			t.Fatalf("twin1 after empty tries: %v", err)
		}
	})

	t.Run("reset", func(t *testing.T) {
		bob := lookup(t, d, "bob")
		if err := d.SetPassword(ctx, bob, "Bob-Reset-1!", directory.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := srv.UserBind("bob", "Bob-Reset-1!"); err != nil {
			t.Fatalf("bind with the new password: %v", err)
		}
		if err := srv.UserBind("bob", srv.Password("bob")); err == nil {
			t.Fatal("the old password still binds")
		}
		err := d.SetPassword(ctx, bob, "Sh0rt!", directory.SetOptions{})
		wantErr(t, err, directory.ErrPolicyRejected, "Sh0rt!")
		if r := directory.ReasonOf(err); r != directory.ReasonTooShort {
			t.Fatalf("reason = %q", r)
		}
		if isAD {
			err := d.SetPassword(ctx, bob, "alllowercaseletters", directory.SetOptions{})
			wantErr(t, err, directory.ErrPolicyRejected)
			if r := directory.ReasonOf(err); r != directory.ReasonNotComplex {
				t.Fatalf("reason = %q", r)
			}
		}
		if err := d.SetPassword(ctx, bob, "Bob-Reset-2!", directory.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		err = d.SetPassword(ctx, bob, "Bob-Reset-1!", directory.SetOptions{})
		if d.Info().IsAD && d.Info().PolicyHintsOID == "" {
			// Samba 4.17 cannot be asked to check history on a reset.
			if err != nil {
				t.Fatalf("reset to a previous password on a DC without policy hints: %v", err)
			}
		} else {
			wantErr(t, err, directory.ErrPolicyRejected, "Bob-Reset-1!")
			if r := directory.ReasonOf(err); r != directory.ReasonInHistory {
				t.Fatalf("reason = %q", r)
			}
		}
		wantErr(t, d.SetPassword(ctx, bob, "", directory.SetOptions{}), directory.ErrPolicyRejected)
	})

	t.Run("change", func(t *testing.T) {
		carol := lookup(t, d, "carol")
		old := srv.Password("carol")
		calls := 0
		proven := func() error { calls++; return nil }
		wantErr(t, d.ChangePassword(ctx, carol, "Wrong-Old-1!", "Carol-New-1!", proven), directory.ErrInvalidCredentials, "Wrong-Old-1!", "Carol-New-1!")
		if calls != 0 {
			t.Fatal("proven called for a wrong old password")
		}
		// proven runs after the bind and can stop the change
		stop := errors.New("stop here")
		if err := d.ChangePassword(ctx, carol, old, "Carol-Stopped-1!", func() error { calls++; return stop }); err != stop || calls != 1 {
			t.Fatalf("stopped change: %v, %d calls", err, calls)
		}
		if err := srv.UserBind("carol", old); err != nil {
			t.Fatalf("a stopped change changed the password: %v", err)
		}
		err := d.ChangePassword(ctx, carol, old, "Sh0rt!", nil)
		wantErr(t, err, directory.ErrPolicyRejected, old)
		if r := directory.ReasonOf(err); r != directory.ReasonTooShort {
			t.Fatalf("reason = %q", r)
		}
		err = d.ChangePassword(ctx, carol, old, old, nil)
		wantErr(t, err, directory.ErrPolicyRejected, old)
		if r := directory.ReasonOf(err); r != directory.ReasonInHistory {
			t.Fatalf("reason = %q", r)
		}
		if err := d.ChangePassword(ctx, carol, old, "Carol-New-1!", nil); err != nil {
			t.Fatal(err)
		}
		if err := srv.UserBind("carol", "Carol-New-1!"); err != nil {
			t.Fatalf("bind after change: %v", err)
		}
		err = d.ChangePassword(ctx, carol, "Carol-New-1!", old, nil)
		wantErr(t, err, directory.ErrPolicyRejected)
		if r := directory.ReasonOf(err); r != directory.ReasonInHistory {
			t.Fatalf("back to the previous password: reason = %q", r)
		}
		wantErr(t, d.ChangePassword(ctx, carol, "", "Carol-New-2!", nil), directory.ErrInvalidCredentials)
	})

	t.Run("lockout and unlock", func(t *testing.T) {
		frank := lookup(t, d, "frank")
		for i := 0; i < 3; i++ {
			wantErr(t, d.VerifyPassword(ctx, frank, "Bad-Guess-"+strconv.Itoa(i)), directory.ErrInvalidCredentials)
		}
		wantErr(t, d.VerifyPassword(ctx, frank, srv.Password("frank")), directory.ErrAccountLocked)
		if f := lookup(t, d, "frank"); !f.Status.Locked || f.Status.Disabled {
			t.Fatalf("frank status after lockout: %+v", f.Status)
		}
		if unlocked, err := d.Unlock(ctx, frank); err != nil || !unlocked {
			t.Fatalf("unlock of a locked account: unlocked %v, %v", unlocked, err)
		}
		if f := lookup(t, d, "frank"); f.Status.Locked {
			t.Fatalf("frank still locked: %+v", f.Status)
		}
		if err := d.VerifyPassword(ctx, frank, srv.Password("frank")); err != nil {
			t.Fatalf("frank after unlock: %v", err)
		}
		// unlocking an unlocked account is fine, and ends no lock
		if unlocked, err := d.Unlock(ctx, frank); err != nil || unlocked {
			t.Fatalf("unlock of an account not locked: unlocked %v, %v", unlocked, err)
		}
		// a disabled account stays disabled
		ivan := lookup(t, d, "ivan")
		unlocked, err := d.Unlock(ctx, ivan)
		wantErr(t, err, directory.ErrAccountDisabled)
		if unlocked {
			t.Fatal("unlock of a disabled account reported a lock ended")
		}
		if i := lookup(t, d, "ivan"); !i.Status.Disabled {
			t.Fatal("ivan got enabled")
		}
		// reset with unlock in the same step
		twin := lookup(t, d, "twin2")
		for i := 0; i < 3; i++ {
			d.VerifyPassword(ctx, twin, "Bad-Guess-"+strconv.Itoa(i))
		}
		wantErr(t, d.VerifyPassword(ctx, twin, srv.Password("twin2")), directory.ErrAccountLocked)
		if err := d.SetPassword(ctx, twin, "Twin2-Reset-1!", directory.SetOptions{Unlock: true}); err != nil {
			t.Fatal(err)
		}
		if err := d.VerifyPassword(ctx, twin, "Twin2-Reset-1!"); err != nil {
			t.Fatalf("twin2 after reset+unlock: %v", err)
		}
	})

	// The directory forgets the wrong passwords it counted when the
	// account is reset (with the unlock, as flow's resets do) or a locked
	// account is unlocked: two wrong ones after it do not reach the
	// threshold of 3. The gateway clears its own count of the account then
	// too (flow's passwordWritten), which is safe only because of this. An
	// unlock of an account that is not locked changes nothing on OpenLDAP
	// (its count stays), and the gateway keeps its count then.
	t.Run("failures forgotten after a reset and an unlock", func(t *testing.T) {
		frank := lookup(t, d, "frank")
		twin := lookup(t, d, "twin2")
		wrong := func(u *directory.User, what string, n int, want error) {
			t.Helper()
			for i := range n {
				wantErr(t, d.VerifyPassword(ctx, u, what+"-Bad-"+strconv.Itoa(i)), want)
			}
		}
		wrong(twin, "before-reset", 2, directory.ErrInvalidCredentials)
		if err := d.SetPassword(ctx, twin, "Twin2-Reset-2!", directory.SetOptions{Unlock: true}); err != nil {
			t.Fatal(err)
		}
		wrong(twin, "after-reset", 2, directory.ErrInvalidCredentials)
		if err := d.VerifyPassword(ctx, twin, "Twin2-Reset-2!"); err != nil {
			t.Fatalf("twin2 after 2 wrong passwords, a reset and 2 more: %v", err)
		}
		wrong(frank, "lock", 3, directory.ErrInvalidCredentials)
		if unlocked, err := d.Unlock(ctx, lookup(t, d, "frank")); err != nil || !unlocked {
			t.Fatalf("unlock after 3 wrong passwords: unlocked %v, %v", unlocked, err)
		}
		wrong(frank, "after-unlock", 2, directory.ErrInvalidCredentials)
		if err := d.VerifyPassword(ctx, frank, srv.Password("frank")); err != nil {
			t.Fatalf("frank after a lockout, an unlock and 2 wrong passwords: %v", err)
		}
	})

	t.Run("must change", func(t *testing.T) {
		grace := lookup(t, d, "grace")
		if err := d.SetPassword(ctx, grace, "Grace-Temp-1!", directory.SetOptions{MustChange: true}); err != nil {
			t.Fatal(err)
		}
		if g := lookup(t, d, "grace"); !g.Status.MustChange {
			t.Fatalf("grace status %+v", g.Status)
		}
		wantErr(t, d.VerifyPassword(ctx, grace, "Grace-Temp-1!"), directory.ErrPasswordMustChange)
		wantErr(t, d.VerifyPassword(ctx, grace, "Grace-Wrong-1!"), directory.ErrInvalidCredentials)
		if err := d.ChangePassword(ctx, grace, "Grace-Temp-1!", "Grace-Mine-1!", nil); err != nil {
			t.Fatal(err)
		}
		if err := d.VerifyPassword(ctx, grace, "Grace-Mine-1!"); err != nil {
			t.Fatal(err)
		}
		if g := lookup(t, d, "grace"); g.Status.MustChange {
			t.Fatalf("grace still must change: %+v", g.Status)
		}
	})

	t.Run("effective policy", func(t *testing.T) {
		p, err := d.EffectivePolicy(ctx, lookup(t, d, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		if !p.Known || p.MinLength != 8 || p.HistoryLength != 3 || p.LockoutThreshold != 3 {
			t.Fatalf("alice policy %+v", p)
		}
		if isAD != p.Complexity {
			t.Fatalf("complexity = %v", p.Complexity)
		}
		heidi := lookup(t, d, "heidi")
		if err := d.SetPassword(ctx, heidi, "Heidi-Long-Pass-1!", directory.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		heidi = lookup(t, d, "heidi")
		p, err = d.EffectivePolicy(ctx, heidi)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Known || p.MinLength != 14 || p.HistoryLength != 5 || p.MaxAge != 90*24*time.Hour || !strings.Contains(strings.ToLower(p.Source), "cn=strict") {
			t.Fatalf("heidi policy %+v", p)
		}
		if !isAD && heidi.Status.PasswordExpires.IsZero() {
			t.Fatalf("heidi has a max age but no expiry: %+v", heidi.Status)
		}
		// the stricter policy is enforced by the directory too
		err = d.SetPassword(ctx, heidi, "Heidi-Short1!", directory.SetOptions{})
		wantErr(t, err, directory.ErrPolicyRejected)
	})

	t.Run("insufficient rights", func(t *testing.T) {
		notModelled(t, "access rights: every caller is the service account")
		// alice as the "service account" may not reset bob
		cfg := srv.Config()
		cfg.BindDN = srv.UserDN("alice")
		cfg.BindPassword = srv.Password("alice")
		weak := open(t, cfg)
		erin := lookup(t, d, "erin")
		wantErr(t, weak.SetPassword(ctx, erin, "Erin-Reset-1!", directory.SetOptions{}), directory.ErrInsufficientRights)
		if isAD {
			// outside the OU the service account is delegated on
			admin := lookup(t, d, "Administrator")
			wantErr(t, d.SetPassword(ctx, admin, "Admin-Reset-1!", directory.SetOptions{}), directory.ErrInsufficientRights)
		}
	})

	t.Run("concurrent pool", func(t *testing.T) {
		// dirtest.Memory has no pool: the same concurrent calls on it
		c := d
		if !mem {
			cfg := srv.Config()
			cfg.PoolSize = 2
			c = open(t, cfg)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				name := dirtest.People[i%len(dirtest.People)]
				u, err := c.Lookup(ctx, name)
				if err == nil && name == "erin" {
					err = c.VerifyPassword(ctx, u, srv.Password("erin"))
				}
				errs <- err
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func hasWarning(info directory.ServerInfo, sub string) bool {
	for _, w := range info.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hangingServer accepts TCP connections and never says a word.
func hangingServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ldaps://" + l.Addr().String()
}

// deadURL is an ldaps URL on a loopback port nobody listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	// Port 1 on loopback: connection refused at once, nothing listens there.
	return "ldaps://127.0.0.1:1"
}
