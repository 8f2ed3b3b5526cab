package directory

import (
	"context"
	"time"
)

// Flavor names the LDAP dialect a directory speaks.
type Flavor string

// The supported flavors; the strings are the values of the directory.type
// configuration key.
const (
	OpenLDAP        Flavor = "openldap"
	ActiveDirectory Flavor = "activedirectory"
)

// Directory is what the rest of Latchkey uses. Every method maps failures to
// the sentinels in errors.go; none returns LDAP types or server text.
type Directory interface {
	// Lookup finds exactly one user by the configured filter, with username
	// escaped once. Empty or oversized input is ErrNotFound without a search;
	// several matches are ErrAmbiguous.
	Lookup(ctx context.Context, username string) (*User, error)
	// Refresh re-reads a user (status included) by its DN.
	Refresh(ctx context.Context, u *User) (*User, error)
	// VerifyPassword binds as the user on a connection that is never used by
	// the service account. An empty password never reaches the server.
	VerifyPassword(ctx context.Context, u *User, password string) error
	// Membership reports, for each group DN given, whether the user is a
	// member, nested groups resolved (on AD from the account's token, so
	// the primary group counts), and on AD the token itself. A group
	// whose membership cannot be told (it does not exist, the nesting is
	// too deep, the token is unreadable) has no answer: see Membership.
	Membership(ctx context.Context, u *User, groupDNs []string) (Membership, error)
	// SetPassword resets the password as the service account, so that the
	// directory's own policy (length, quality, history where the server
	// supports it) still applies.
	SetPassword(ctx context.Context, u *User, newPassword string, opts SetOptions) error
	// ChangePassword changes the password as the user: old and new. When
	// proven is not nil it is called once the old password is proven (the
	// user's bind succeeded) and before anything is written; its error
	// stops the change and is returned as is. One bind serves as the proof
	// and the change.
	ChangePassword(ctx context.Context, u *User, oldPassword, newPassword string, proven func() error) error
	// Unlock clears the lockout state only; it never enables a disabled
	// account (ErrAccountDisabled). It reports whether it ended a lock
	// (on OpenLDAP the write removed one: another unlock in between leaves
	// nothing to remove; on AD the account was locked when read just
	// before the write). Only then is the directory's count of wrong
	// passwords known to be forgotten on both kinds of directory.
	Unlock(ctx context.Context, u *User) (unlocked bool, err error)
	// EffectivePolicy is the directory's password policy for this user, to
	// show before the user types a new password. A User with no DN and no
	// PolicyDN (&User{}) gets the default policy: OpenLDAP's
	// default_policy_dn, the Active Directory domain's policy.
	EffectivePolicy(ctx context.Context, u *User) (PasswordPolicy, error)
	// Info describes the server found at startup.
	Info() ServerInfo
	// Ping checks that a service connection works (readiness).
	Ping(ctx context.Context) error
	// Close releases all connections.
	Close() error
}

// User is a directory account as Latchkey sees it.
type User struct {
	DN string
	// ID is the directory's stable identifier: entryUUID on OpenLDAP, the
	// objectGUID in its string form on AD. Rate limits and enrollment are
	// keyed by it, so every spelling of one account shares them.
	ID string
	// Username is the account's own name as stored (uid, sAMAccountName).
	Username    string
	DisplayName string
	Mail        string
	Mobile      string
	// UPN is the AD userPrincipalName (empty on OpenLDAP).
	UPN    string
	Status Status
	// PolicyDN is the OpenLDAP pwdPolicySubentry or the AD resultant PSO.
	PolicyDN string
}

// Status is the account state read from the directory at lookup time.
type Status struct {
	Disabled   bool
	Locked     bool
	MustChange bool
	// Privileged is AD adminCount=1 (protected accounts, as SDProp marks
	// them on Windows; Samba never sets it). Membership's token tells the
	// rest (policy.PrivilegedSID).
	Privileged bool
	// PasswordExpires is zero when the password does not expire or the
	// expiry cannot be computed.
	PasswordExpires time.Time
	// PasswordChanged is when the password was last set, if known.
	PasswordChanged time.Time
}

// SetOptions tune a reset.
type SetOptions struct {
	// Unlock clears the lockout in the same step. On OpenLDAP any successful
	// password change unlocks anyway (slapo-ppolicy); on AD it does not.
	Unlock bool
	// MustChange forces a change at next logon (AD pwdLastSet=0, OpenLDAP
	// pwdReset=TRUE).
	MustChange bool
}

// PasswordPolicy is the directory's effective password policy for a user.
type PasswordPolicy struct {
	// Known is false when no policy could be read; the other fields are then zero.
	Known bool
	// Source says where it came from: "ppolicy:<dn>", "domain", "pso:<dn>".
	Source        string
	MinLength     int
	HistoryLength int
	// Complexity is AD's "must meet complexity requirements" (three of four
	// character classes, not containing the account name).
	Complexity bool
	// CheckQuality is OpenLDAP's pwdCheckQuality (0 off, 1 lax, 2 strict).
	CheckQuality     int
	MinAge           time.Duration
	MaxAge           time.Duration
	LockoutThreshold int
	// FailureWindow is how long the directory remembers a wrong password
	// (OpenLDAP pwdFailureCountInterval, AD lockOutObservationWindow);
	// FailuresNeverExpire when it keeps them until a successful bind.
	FailureWindow       time.Duration
	FailuresNeverExpire bool
}

// ServerInfo is what RootDSE discovery found.
type ServerInfo struct {
	Flavor            Flavor
	URL               string
	Vendor            string
	NamingContext     string
	IsAD              bool
	PasswordModify    bool // RFC 3062 extended operation
	PPolicyControl    bool // draft-behera password policy control
	PolicyHintsOID    string
	SupportedControls []string
	Warnings          []string
}
