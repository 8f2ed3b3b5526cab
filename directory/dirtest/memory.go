package dirtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
)

// Memory is an in-memory directory.Directory for fast unit tests, the one
// every package's tests share (flow, gateway, docs). It behaves, for what
// it models, as the real servers do: the directory conformance suite runs
// against it (TestMemory in package directory) next to slapd, Samba AD and
// the embedded directory, and skips by name only what it does not model.
//
// It models, OpenLDAP-style (slapo-ppolicy):
//   - Lookup by username, case-insensitively; input that names no one
//     (empty, too long, not UTF-8, filter metacharacters that match nobody)
//     is ErrNotFound. Refresh by DN.
//   - VerifyPassword as a bind: an empty password never "reaches the
//     server" (no bind counted, no failure counted); wrong passwords count
//     toward the lockout threshold of the user's policy, a success clears
//     the count (wrong ones older than the policy's FailureWindow are
//     forgotten, by the clock of WithClock); a locked account answers
//     ErrAccountLocked; a disabled one ErrAccountLocked as slapd does for
//     its administrative lock (on the ActiveDirectory flavor: a right
//     password gets ErrAccountDisabled, as AD's data 533); a right
//     password that must be changed ErrPasswordMustChange.
//   - Membership over groups that exist (AddGroup), nested groups and
//     cycles resolved, DNs compared case-insensitively and keyed as asked;
//     a group that does not exist has no key ("cannot tell"). SIDs are the
//     token set with SetSIDs (nil: an OpenLDAP-like account).
//   - SetPassword / ChangePassword with the user's policy: minimum length
//     (ReasonTooShort), history of the current and the last HistoryLength
//     passwords (ReasonInHistory). A successful write records the change
//     time (the clock of WithClock), clears the lockout (as ppolicy does on
//     any password change; see WithFlavor for AD resets) and sets or
//     clears MustChange.
//   - Unlock clears the lockout and never enables a disabled account.
//   - EffectivePolicy per user (SetUserPolicy) or the default (SetPolicy);
//     a policy with MaxAge gives the user a PasswordExpires.
//   - directory.Lister: Users (every account), NestedMembers (down the
//     groups, cycles resolved; a missing group is ErrNotFound) and
//     SearchGroups (by the name in the DN's first RDN).
//
// It does not model: LDAP itself (connections, TLS, failover, pools,
// RootDSE discovery: Info is fixed, of the flavor of WithFlavor), search
// filters (so no ErrAmbiguous), access rights (no ErrInsufficientRights),
// password quality/complexity checks beyond length, minimum age and timed
// lockouts (a lockout lasts until unlocked or reset).
//
// For tests of the layers above it also counts binds, writes and unlock
// calls, and can inject faults: SetWriteDown, SetReplyLost, SetDuringWrite,
// SetPingError.
type Memory struct {
	mu       sync.Mutex
	users    map[string]*memUser // by lower-case DN
	groups   map[string][]string // lower-case group DN -> member DNs
	groupDNs map[string]string   // lower-case group DN -> the DN as first given
	policy   MemoryPolicy
	policies map[string]MemoryPolicy // by lower-case user DN
	now      func() time.Time
	flavor   directory.Flavor
	delay    time.Duration

	binds, writes, unlocks int

	writeDown, replyLost bool
	down                 bool
	duringWrite          func()
	beforeUnlock         func()
	pingErr              error
}

// MemoryPolicy is a password policy of the in-memory directory.
type MemoryPolicy struct {
	// Source is what EffectivePolicy reports ("ppolicy:<dn>" by convention).
	Source           string
	MinLength        int
	HistoryLength    int
	LockoutThreshold int // 0: no lockout
	// FailureWindow is how long a wrong password counts toward the
	// lockout (pwdFailureCountInterval); 0: until a right one.
	FailureWindow time.Duration
	MaxAge        time.Duration
}

type memUser struct {
	user     directory.User
	password string
	history  []string    // previous passwords, newest last
	failures []time.Time // wrong binds since the last right one
	sids     []string
}

// MemoryOption configures NewMemory.
type MemoryOption func(*Memory)

// WithClock sets the clock that stamps password changes (default time.Now).
func WithClock(now func() time.Time) MemoryOption { return func(m *Memory) { m.now = now } }

// WithWriteDelay makes every password write take d while holding the
// directory, to widen race windows in tests of concurrent callers.
func WithWriteDelay(d time.Duration) MemoryOption { return func(m *Memory) { m.delay = d } }

// WithFlavor sets the flavor Info reports (default OpenLDAP) and, on
// ActiveDirectory, two AD ways: a reset clears the lockout only when
// SetOptions.Unlock asks (on OpenLDAP any password change unlocks), and a
// disabled account's bind with its right password is ErrAccountDisabled
// (slapd says locked). Nothing else about AD (complexity, tokens unless
// SetSIDs, UPNs) is modelled.
func WithFlavor(f directory.Flavor) MemoryOption { return func(m *Memory) { m.flavor = f } }

// WithPolicy sets the default policy (see SetPolicy).
func WithPolicy(p MemoryPolicy) MemoryOption { return func(m *Memory) { m.policy = p } }

// DefaultMemoryPolicy is the policy of a new Memory, that of the seeded
// real servers (cn=default): 8 characters, 3 in history, lockout at 3.
var DefaultMemoryPolicy = MemoryPolicy{Source: "ppolicy:cn=default", MinLength: 8, HistoryLength: 3, LockoutThreshold: 3}

// NewMemory returns an empty in-memory directory with DefaultMemoryPolicy.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{users: map[string]*memUser{}, groups: map[string][]string{}, groupDNs: map[string]string{}, policies: map[string]MemoryPolicy{},
		policy: DefaultMemoryPolicy, now: time.Now, flavor: directory.OpenLDAP}
	for _, o := range opts {
		o(m)
	}
	return m
}

var _ directory.Directory = (*Memory)(nil)

// AddUser adds (or replaces) an account with its password, a direct
// member of the given groups (which are created when missing). u.DN and
// u.Username must be set.
func (m *Memory) AddUser(u directory.User, password string, groups ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[strings.ToLower(u.DN)] = &memUser{user: u, password: password}
	for _, g := range groups {
		m.addMember(g, u.DN)
	}
}

// AddGroup creates a group (when missing) with the given member DNs
// (users or groups).
func (m *Memory) AddGroup(dn string, members ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[strings.ToLower(dn)]; !ok {
		m.groups[strings.ToLower(dn)] = nil
		m.groupDNs[strings.ToLower(dn)] = dn
	}
	for _, x := range members {
		m.addMember(dn, x)
	}
}

func (m *Memory) addMember(group, member string) {
	k := strings.ToLower(group)
	if _, ok := m.groupDNs[k]; !ok {
		m.groupDNs[k] = group
	}
	m.groups[k] = append(m.groups[k], member)
}

// Edit changes an account out of band (as an administrator would), by
// username: its User (Status included) and its password.
func (m *Memory) Edit(username string, f func(u *directory.User, password *string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.byName(username); u != nil {
		f(&u.user, &u.password)
	}
}

// SetSIDs sets an account's AD security token as Membership reports it.
func (m *Memory) SetSIDs(username string, sids ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.byName(username); u != nil {
		u.sids = sids
	}
}

// SetPolicy replaces the default password policy.
func (m *Memory) SetPolicy(p MemoryPolicy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policy = p
}

// SetUserPolicy gives one account its own policy (a pwdPolicySubentry).
func (m *Memory) SetUserPolicy(username string, p MemoryPolicy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.byName(username); u != nil {
		m.policies[strings.ToLower(u.user.DN)] = p
		u.user.PolicyDN = strings.TrimPrefix(p.Source, "ppolicy:")
	}
}

// Password is an account's current password, by username.
func (m *Memory) Password(username string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.byName(username); u != nil {
		return u.password
	}
	return ""
}

// Binds counts the binds that reached the directory (not empty passwords).
func (m *Memory) Binds() int { m.mu.Lock(); defer m.mu.Unlock(); return m.binds }

// Writes counts the password writes that were applied.
func (m *Memory) Writes() int { m.mu.Lock(); defer m.mu.Unlock(); return m.writes }

// Unlocks counts the calls of Unlock.
func (m *Memory) Unlocks() int { m.mu.Lock(); defer m.mu.Unlock(); return m.unlocks }

// SetWriteDown makes every password write fail (ErrUnavailable) before it
// is applied.
func (m *Memory) SetWriteDown(on bool) { m.mu.Lock(); m.writeDown = on; m.mu.Unlock() }

// SetDown makes every call of the directory interface (reads, binds,
// writes, ping) fail as unreachable, as a directory server that is down.
func (m *Memory) SetDown(on bool) { m.mu.Lock(); m.down = on; m.mu.Unlock() }

// downErr is the error of every call while the directory is down (m.mu held).
func (m *Memory) downErr(op string) error {
	if m.down {
		return memErr(op, directory.ErrUnavailable, "")
	}
	return nil
}

// SetReplyLost makes every password write apply and then fail
// (ErrUnavailable), as when the answer never came back.
func (m *Memory) SetReplyLost(on bool) { m.mu.Lock(); m.replyLost = on; m.mu.Unlock() }

// SetDuringWrite runs f after each successful password write, before
// SetPassword or ChangePassword returns: what happens while a slow write
// is under way. Nil removes it.
func (m *Memory) SetDuringWrite(f func()) { m.mu.Lock(); m.duringWrite = f; m.mu.Unlock() }

// SetBeforeUnlock runs f once, at the next Unlock, before it reads the
// account: what happens elsewhere between the gateway's read of the
// account and its unlock. f may call the Memory's own methods.
func (m *Memory) SetBeforeUnlock(f func()) { m.mu.Lock(); m.beforeUnlock = f; m.mu.Unlock() }

// SetPingError makes Ping fail with err (nil: healthy).
func (m *Memory) SetPingError(err error) { m.mu.Lock(); m.pingErr = err; m.mu.Unlock() }

// UserBind is a plain bind as a user straight to the directory, not
// through the code under test (as Server.UserBind on a real server): it
// counts toward the lockout but not in Binds.
func (m *Memory) UserBind(username, password string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.byName(username)
	if u == nil {
		return memErr("bind", directory.ErrInvalidCredentials, "")
	}
	return m.bind("bind", &u.user, password, false)
}

func (m *Memory) byName(name string) *memUser {
	if name == "" || len(name) > 256 {
		return nil
	}
	for _, u := range m.users {
		if strings.EqualFold(u.user.Username, name) {
			return u
		}
	}
	return nil
}

func (m *Memory) byDN(dn string) *memUser { return m.users[strings.ToLower(dn)] }

func (m *Memory) policyOf(u *memUser) MemoryPolicy {
	if p, ok := m.policies[strings.ToLower(u.user.DN)]; ok {
		return p
	}
	return m.policy
}

// view is the User as a lookup reads it (a copy).
func (m *Memory) view(u *memUser) *directory.User {
	c := u.user
	if p := m.policyOf(u); p.MaxAge > 0 && !c.Status.PasswordChanged.IsZero() {
		c.Status.PasswordExpires = c.Status.PasswordChanged.Add(p.MaxAge)
	}
	return &c
}

func memErr(op string, kind error, r directory.Reason) error {
	return &directory.Error{Op: op, Kind: kind, Reason: r}
}

// Lookup implements directory.Directory.
func (m *Memory) Lookup(_ context.Context, username string) (*directory.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("lookup"); err != nil {
		return nil, err
	}
	if u := m.byName(username); u != nil {
		return m.view(u), nil
	}
	return nil, memErr("lookup", directory.ErrNotFound, "")
}

// Refresh implements directory.Directory.
func (m *Memory) Refresh(_ context.Context, u *directory.User) (*directory.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("refresh"); err != nil {
		return nil, err
	}
	if x := m.byDN(u.DN); x != nil {
		return m.view(x), nil
	}
	return nil, memErr("refresh", directory.ErrNotFound, "")
}

// VerifyPassword implements directory.Directory.
func (m *Memory) VerifyPassword(_ context.Context, u *directory.User, password string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("verify password"); err != nil {
		return err
	}
	return m.bind("verify password", u, password, true)
}

// bind is a simple bind as u; counted binds are those of the code under
// test (Binds).
func (m *Memory) bind(op string, u *directory.User, password string, counted bool) error {
	if password == "" {
		return memErr(op, directory.ErrInvalidCredentials, "")
	}
	if counted {
		m.binds++
	}
	x := m.byDN(u.DN)
	if x == nil {
		return memErr(op, directory.ErrInvalidCredentials, "")
	}
	// OpenLDAP disables by an administrative lock (pwdAccountLockedTime
	// 000001010000Z): a bind says locked, whatever the password
	if x.user.Status.Locked || (x.user.Status.Disabled && m.flavor != directory.ActiveDirectory) {
		return memErr(op, directory.ErrAccountLocked, "")
	}
	if x.password != password {
		p, now := m.policyOf(x), m.now()
		kept := x.failures[:0]
		for _, f := range x.failures {
			if p.FailureWindow == 0 || now.Sub(f) < p.FailureWindow {
				kept = append(kept, f)
			}
		}
		x.failures = append(kept, now)
		if p.LockoutThreshold > 0 && len(x.failures) >= p.LockoutThreshold {
			x.user.Status.Locked = true
		}
		return memErr(op, directory.ErrInvalidCredentials, "")
	}
	if x.user.Status.Disabled {
		return memErr(op, directory.ErrAccountDisabled, "")
	}
	x.failures = nil
	if x.user.Status.MustChange {
		return memErr(op, directory.ErrPasswordMustChange, "")
	}
	return nil
}

// Membership implements directory.Directory.
func (m *Memory) Membership(_ context.Context, u *directory.User, groupDNs []string) (directory.Membership, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("membership"); err != nil {
		return directory.Membership{}, err
	}
	x := m.byDN(u.DN)
	if x == nil {
		return directory.Membership{}, memErr("membership", directory.ErrNotFound, "")
	}
	// every group the account is in, at any depth
	in := map[string]bool{}
	level := []string{strings.ToLower(u.DN)}
	for len(level) > 0 {
		var next []string
		for g, members := range m.groups {
			if in[g] {
				continue
			}
			for _, mem := range members {
				if containsFold(level, mem) {
					in[g] = true
					next = append(next, g)
					break
				}
			}
		}
		level = next
	}
	out := map[string]bool{}
	for _, g := range groupDNs {
		if _, exists := m.groups[strings.ToLower(g)]; exists {
			out[g] = in[strings.ToLower(g)]
		}
	}
	return directory.Membership{MemberOf: out, SIDs: append([]string(nil), x.sids...)}, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// SetPassword implements directory.Directory.
func (m *Memory) SetPassword(_ context.Context, u *directory.User, newPassword string, opts directory.SetOptions) error {
	m.mu.Lock()
	err := m.downErr("set password")
	m.mu.Unlock()
	if err != nil {
		return err
	}
	err = m.write("set password", u, newPassword, opts)
	m.afterWrite(err)
	return err
}

// ChangePassword implements directory.Directory.
func (m *Memory) ChangePassword(_ context.Context, u *directory.User, oldPassword, newPassword string, proven func() error) error {
	m.mu.Lock()
	err := m.downErr("change password")
	if err == nil {
		err = m.bind("change password", u, oldPassword, true)
	}
	m.mu.Unlock()
	if err != nil && !errorsIs(err, directory.ErrPasswordMustChange) {
		return err
	}
	if proven != nil {
		if err := proven(); err != nil {
			return err
		}
	}
	err = m.write("change password", u, newPassword, directory.SetOptions{Unlock: true})
	m.afterWrite(err)
	return err
}

func errorsIs(err, kind error) bool {
	de, ok := err.(*directory.Error)
	return ok && de.Kind == kind
}

func (m *Memory) afterWrite(err error) {
	m.mu.Lock()
	hook := m.duringWrite
	m.mu.Unlock()
	if hook != nil && err == nil {
		hook()
	}
}

func (m *Memory) write(op string, u *directory.User, pw string, opts directory.SetOptions) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	if m.writeDown {
		return memErr(op, directory.ErrUnavailable, "")
	}
	x := m.byDN(u.DN)
	if x == nil {
		return memErr(op, directory.ErrNotFound, "")
	}
	p := m.policyOf(x)
	if len(pw) < p.MinLength || pw == "" {
		return memErr(op, directory.ErrPolicyRejected, directory.ReasonTooShort)
	}
	recent := x.history
	if n := p.HistoryLength; len(recent) > n {
		recent = recent[len(recent)-n:]
	}
	if pw == x.password || (p.HistoryLength > 0 && containsExact(recent, pw)) {
		return memErr(op, directory.ErrPolicyRejected, directory.ReasonInHistory)
	}
	x.history = append(x.history, x.password)
	x.password = pw
	if opts.Unlock || m.flavor != directory.ActiveDirectory {
		x.failures = nil
		x.user.Status.Locked = false
	}
	x.user.Status.MustChange = opts.MustChange
	x.user.Status.PasswordChanged = m.now()
	m.writes++
	if m.replyLost {
		return memErr(op, directory.ErrUnavailable, "")
	}
	return nil
}

func containsExact(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Unlock implements directory.Directory. Like OpenLDAP, it forgets the
// count of wrong passwords only when it ends a lock.
func (m *Memory) Unlock(_ context.Context, u *directory.User) (bool, error) {
	m.mu.Lock()
	hook := m.beforeUnlock
	m.beforeUnlock = nil
	m.mu.Unlock()
	if hook != nil {
		hook()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("unlock"); err != nil {
		return false, err
	}
	m.unlocks++
	x := m.byDN(u.DN)
	if x == nil {
		return false, memErr("unlock", directory.ErrNotFound, "")
	}
	if x.user.Status.Disabled {
		return false, memErr("unlock", directory.ErrAccountDisabled, "")
	}
	locked := x.user.Status.Locked
	if locked {
		x.failures = nil
	}
	x.user.Status.Locked = false
	return locked, nil
}

// EffectivePolicy implements directory.Directory.
func (m *Memory) EffectivePolicy(_ context.Context, u *directory.User) (directory.PasswordPolicy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("effective policy"); err != nil {
		return directory.PasswordPolicy{}, err
	}
	p := m.policy
	if x := m.byDN(u.DN); x != nil {
		p = m.policyOf(x)
	}
	return directory.PasswordPolicy{Known: true, Source: p.Source, MinLength: p.MinLength, HistoryLength: p.HistoryLength,
		LockoutThreshold: p.LockoutThreshold, MaxAge: p.MaxAge, FailureWindow: p.FailureWindow,
		FailuresNeverExpire: p.LockoutThreshold > 0 && p.FailureWindow == 0}, nil
}

// Info implements directory.Directory: a fixed OpenLDAP-like description.
func (m *Memory) Info() directory.ServerInfo {
	return directory.ServerInfo{Flavor: m.flavor, IsAD: m.flavor == directory.ActiveDirectory, URL: "memory:", Vendor: "dirtest.Memory"}
}

// Ping implements directory.Directory.
func (m *Memory) Ping(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("ping"); err != nil {
		return err
	}
	return m.pingErr
}

// Close implements directory.Directory.
func (m *Memory) Close() error { return nil }

// StartMemory returns a Server whose directory is a Memory (Server.Memory)
// seeded like StartOpenLDAP: the same people, passwords, groups (nesting
// and the cycle included) and policies (cn=default; cn=strict for heidi),
// ivan disabled. It has no URLs: a suite uses Server.Memory as its
// directory.Directory and skips what needs LDAP.
func StartMemory(t testing.TB, opts ...MemoryOption) *Server {
	t.Helper()
	s := &Server{
		Flavor:          directory.OpenLDAP,
		BaseDN:          "dc=example,dc=org",
		UserFilter:      "(&(objectClass=inetOrgPerson)(uid={username}))",
		DefaultPolicyDN: "cn=default,ou=policies,dc=example,dc=org",
		SpecialUser:     `d*v(e)\`,
		UnicodeUser:     "josé",
	}
	m := NewMemory(append([]MemoryOption{WithPolicy(MemoryPolicy{Source: "ppolicy:" + s.DefaultPolicyDN,
		MinLength: 8, HistoryLength: 3, LockoutThreshold: 3})}, opts...)...)
	s.Memory = m
	surname := map[string]string{"alice": "Archer", "bob": "Baker", "carol": "Chen", "erin": "Evans", "frank": "Fisher",
		"grace": "Green", "heidi": "Hall", "ivan": "Irons", "judy": "Jones", "twin1": "Twin", "twin2": "Twin"}
	for i, name := range append(append([]string(nil), People...), s.SpecialUser, s.UnicodeUser) {
		u := directory.User{DN: s.UserDN(name), ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), Username: name,
			DisplayName: strings.ToUpper(name[:1]) + name[1:] + " " + surname[name], Mail: name + "@example.org"}
		if name == "alice" {
			u.Mobile = "+15550100001"
		}
		if name == "ivan" {
			u.Status.Disabled = true
		}
		m.AddUser(u, s.Password(name))
	}
	m.AddGroup(s.Group("engineering"), s.UserDN("carol"), s.UserDN("bob"))
	m.AddGroup(s.Group("staff"), s.Group("engineering"), s.UserDN("alice"))
	m.AddGroup(s.Group("sspr-admins"), s.UserDN("alice"))
	m.AddGroup(s.Group("cycle-a"), s.UserDN("judy"), s.Group("cycle-b"))
	m.AddGroup(s.Group("cycle-b"), s.Group("cycle-a"))
	m.AddGroup(s.Group("unique-staff"), s.Group("staff"))
	m.SetUserPolicy("heidi", MemoryPolicy{Source: "ppolicy:cn=strict,ou=policies," + s.BaseDN,
		MinLength: 14, HistoryLength: 5, LockoutThreshold: 5, MaxAge: 90 * 24 * time.Hour})
	return s
}

// NewStaffMemory is the small directory the flow and gateway unit tests
// share: carol (cn=staff), alice (cn=staff, cn=admins), erin (in no
// group) and ivan (cn=staff, disabled), DNs uid=<name>,ou=people,dc=x, IDs
// id-<name>, mail <name>@corp.example, passwords as Server.Password
// ("Carol-Pass1!"), set long ago in a zone other than UTC. Its policy is 8
// characters, 3 in history and no lockout; opts may change it.
func NewStaffMemory(opts ...MemoryOption) *Memory {
	m := NewMemory(append([]MemoryOption{WithPolicy(MemoryPolicy{MinLength: 8, HistoryLength: 3})}, opts...)...)
	m.AddGroup("cn=staff")
	m.AddGroup("cn=admins")
	add := func(name string, disabled bool, groups ...string) {
		u := directory.User{DN: "uid=" + name + ",ou=people,dc=x", ID: "id-" + name, Username: name,
			DisplayName: strings.ToUpper(name[:1]) + name[1:] + " Test", Mail: name + "@corp.example"}
		u.Status.PasswordChanged = time.Date(2026, 1, 5, 9, 30, 0, 0, time.FixedZone("CET", 3600))
		u.Status.Disabled = disabled
		m.AddUser(u, strings.ToUpper(name[:1])+name[1:]+"-Pass1!", groups...)
	}
	add("carol", false, "cn=staff")
	add("alice", false, "cn=staff", "cn=admins")
	add("erin", false)
	add("ivan", true, "cn=staff")
	return m
}
