package directory

import (
	"context"
	"encoding/binary"
	"errors"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

// VerifyPassword binds as u with password on a user-bind connection. It
// returns nil, ErrInvalidCredentials, ErrAccountLocked, ErrAccountDisabled,
// ErrPasswordExpired or ErrPasswordMustChange (the password was right but
// must be changed), or ErrUnavailable. An empty password is
// ErrInvalidCredentials and is never sent: many servers treat an empty
// simple bind as an anonymous bind that "succeeds".
func (c *Client) VerifyPassword(ctx context.Context, u *User, password string) error {
	if u == nil || u.DN == "" {
		return newErr("verify password", ErrNotFound)
	}
	if password == "" {
		return newErr("verify password", ErrInvalidCredentials)
	}
	return c.withUserConn(ctx, func(conn *ldap.Conn) error {
		return c.userBind(conn, "verify password", u, password)
	})
}

// userBind binds conn as u and reports the outcome, reading the ppolicy
// response control on OpenLDAP (sent with the request: slapd only answers
// with it when asked, and "must change" is only visible there).
func (c *Client) userBind(conn *ldap.Conn, op string, u *User, password string) error {
	var ctrls []ldap.Control
	if c.cfg.Flavor == OpenLDAP {
		ctrls = []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}
	}
	res, err := conn.SimpleBind(ldap.NewSimpleBindRequest(u.DN, password, ctrls))
	var resCtrls []ldap.Control
	if res != nil {
		resCtrls = res.Controls
	}
	if err != nil {
		return classify(op, err, resCtrls)
	}
	if ppolicyError(resCtrls) == ppChangeAfterReset {
		return newErr(op, ErrPasswordMustChange)
	}
	return nil
}

// SetPassword resets u's password as the service account.
//
// OpenLDAP: the Password Modify extended operation with the ppolicy request
// control, so slapd applies quality, length and history as long as the
// service account has write but not manage access to userPassword (manage
// makes it a "password administrator" and skips every check). Any successful
// change also clears pwdAccountLockedTime (slapo-ppolicy).
//
// AD: replace unicodePwd over TLS, with the policy hints control when the DC
// advertises it, so history applies to resets too. Samba 4.17 does not
// advertise it: its resets skip history (see ServerInfo.Warnings).
func (c *Client) SetPassword(ctx context.Context, u *User, newPassword string, opts SetOptions) error {
	const op = "set password"
	if u == nil || u.DN == "" {
		return newErr(op, ErrNotFound)
	}
	if newPassword == "" {
		return &Error{Op: op, Kind: ErrPolicyRejected, Reason: ReasonTooShort}
	}
	if c.cfg.Flavor == ActiveDirectory {
		return c.withService(ctx, op, false, func(conn *ldap.Conn) error {
			if _, ok := conn.TLSConnectionState(); !ok {
				return newErr(op, ErrInsecure)
			}
			var ctrls []ldap.Control
			if c.hints != nil {
				ctrls = []ldap.Control{c.hints}
			}
			m := ldap.NewModifyRequest(u.DN, ctrls)
			m.Replace("unicodePwd", []string{encodeUnicodePwd(newPassword)})
			if opts.Unlock {
				m.Replace("lockoutTime", []string{"0"})
			}
			if opts.MustChange {
				m.Replace("pwdLastSet", []string{"0"})
			}
			return conn.Modify(m)
		})
	}
	return c.withService(ctx, op, false, func(conn *ldap.Conn) error {
		req := passwordModifyRequest(u.DN, "", newPassword, []ldap.Control{ldap.NewControlBeheraPasswordPolicy()})
		if _, err := conn.Extended(req); err != nil {
			return err
		}
		if opts.MustChange {
			m := ldap.NewModifyRequest(u.DN, nil)
			m.Replace("pwdReset", []string{"TRUE"})
			return conn.Modify(m)
		}
		return nil
	})
}

// ChangePassword changes u's password as u: the directory applies its
// self-change rules (history, minimum age, pwdAllowUserChange). proven, if
// not nil, runs between the user's bind and the write (see Directory).
func (c *Client) ChangePassword(ctx context.Context, u *User, oldPassword, newPassword string, proven func() error) error {
	const op = "change password"
	if u == nil || u.DN == "" {
		return newErr(op, ErrNotFound)
	}
	if oldPassword == "" {
		return newErr(op, ErrInvalidCredentials)
	}
	if newPassword == "" {
		return &Error{Op: op, Kind: ErrPolicyRejected, Reason: ReasonTooShort}
	}
	if proven == nil {
		proven = func() error { return nil }
	}
	if c.cfg.Flavor == ActiveDirectory {
		return c.adChange(ctx, u, oldPassword, newPassword, proven)
	}
	return c.withUserConn(ctx, func(conn *ldap.Conn) error {
		// A must-change bind succeeds (with ppolicy error 2) and may then
		// only modify its own password, which is what follows.
		if err := c.userBind(conn, op, u, oldPassword); err != nil && !errors.Is(err, ErrPasswordMustChange) {
			return err
		}
		if err := proven(); err != nil {
			return err
		}
		req := passwordModifyRequest(u.DN, oldPassword, newPassword, []ldap.Control{ldap.NewControlBeheraPasswordPolicy()})
		if _, err := conn.Extended(req); err != nil {
			return classify(op, err, nil)
		}
		return nil
	})
}

// adChange deletes the old unicodePwd value and adds the new one, bound as
// the user. A user whose password must be changed cannot bind (data 773,
// which AD only answers when the password is right); then the same
// old-and-new change is sent on a service connection: the DC still verifies
// the old password and applies the user-change rules.
func (c *Client) adChange(ctx context.Context, u *User, oldPassword, newPassword string, proven func() error) error {
	const op = "change password"
	modify := func(conn *ldap.Conn) error {
		if _, ok := conn.TLSConnectionState(); !ok {
			return newErr(op, ErrInsecure)
		}
		m := ldap.NewModifyRequest(u.DN, nil)
		m.Delete("unicodePwd", []string{encodeUnicodePwd(oldPassword)})
		m.Add("unicodePwd", []string{encodeUnicodePwd(newPassword)})
		return conn.Modify(m)
	}
	mustChange := false
	err := c.withUserConn(ctx, func(conn *ldap.Conn) error {
		if err := c.userBind(conn, op, u, oldPassword); err != nil {
			if errors.Is(err, ErrPasswordMustChange) {
				mustChange = true
				return proven() // data 773 comes only with the right password
			}
			return err
		}
		if err := proven(); err != nil {
			return err
		}
		if err := modify(conn); err != nil {
			return classify(op, err, nil)
		}
		return nil
	})
	if err != nil || !mustChange {
		return err
	}
	return c.withService(ctx, op, false, modify)
}

// Unlock clears the lockout state of u and nothing else. A disabled account
// (AD userAccountControl, or OpenLDAP's administrative lock 000001010000Z)
// stays as it is and ErrAccountDisabled is returned. unlocked is whether
// the write ended a lock. On OpenLDAP the delete of pwdAccountLockedTime
// says so itself (noSuchAttribute: nothing to remove), also for a lock
// whose duration has run out or that a lagging replica's read missed, and
// ppolicy forgets the failures (pwdFailureTime) with it. AD's lockoutTime
// of 0 is written whatever it was, so the read right before it tells (and
// AD forgets its badPwdCount at that write either way).
func (c *Client) Unlock(ctx context.Context, u *User) (unlocked bool, err error) {
	const op = "unlock"
	fresh, err := c.Refresh(ctx, u)
	if err != nil {
		return false, err
	}
	if fresh.Status.Disabled {
		return false, newErr(op, ErrAccountDisabled)
	}
	removed := true
	err = c.withService(ctx, op, false, func(conn *ldap.Conn) error {
		m := ldap.NewModifyRequest(fresh.DN, nil)
		if c.cfg.Flavor == ActiveDirectory {
			m.Replace("lockoutTime", []string{"0"})
		} else {
			m.Delete("pwdAccountLockedTime", nil)
		}
		err := conn.Modify(m)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
			removed = false // not locked
			return nil
		}
		return err
	})
	if err != nil {
		return false, err
	}
	if c.cfg.Flavor == ActiveDirectory {
		return fresh.Status.Locked, nil
	}
	return removed, nil
}

// encodeUnicodePwd is the AD unicodePwd value: UTF-16LE of the password in
// double quotes.
func encodeUnicodePwd(pw string) string {
	u := utf16.Encode([]rune("\"" + pw + "\""))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}
