package demodir

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// OIDs this server knows; literals where go-ldap exports no constant.
const (
	oidPasswordModify = "1.3.6.1.4.1.4203.1.11.1"            // RFC 3062
	oidWhoAmI         = ldap.ControlTypeWhoAmI               // RFC 4532 (go-ldap files the extended operation under controls)
	oidStartTLS       = "1.3.6.1.4.1.1466.20037"             // RFC 4511
	oidPPolicy        = ldap.ControlTypeBeheraPasswordPolicy // 1.3.6.1.4.1.42.2.27.8.5.1
	oidManageDsaIT    = ldap.ControlTypeManageDsaIT          // RFC 3296
)

// Behera ppolicy error numbers.
const (
	ppNone              = -1
	ppPasswordExpired   = 0
	ppAccountLocked     = 1
	ppChangeAfterReset  = 2
	ppModNotAllowed     = 3
	ppTooShort          = 6
	ppTooYoung          = 7
	ppInHistory         = 8
	restrictedOperation = "Operations are restricted to bind/unbind/abandon/StartTLS/modify password"
)

// LDAP application tags used here.
const (
	appBindRequest    = 0
	appBindResponse   = 1
	appUnbindRequest  = 2
	appSearchRequest  = 3
	appSearchEntry    = 4
	appSearchDone     = 5
	appModifyRequest  = 6
	appModifyResponse = 7
	appAddRequest     = 8
	appAddResponse    = 9
	appDelRequest     = 10
	appDelResponse    = 11
	appModDNRequest   = 12
	appModDNResponse  = 13
	appCompareRequest = 14
	appCompareResp    = 15
	appAbandonRequest = 16
	appExtRequest     = 23
	appExtResponse    = 24
)

type role int

const (
	roleAnonymous role = iota
	roleUser
	roleService
	roleAdmin
)

func (r role) String() string {
	return [...]string{"anonymous", "user", "service", "admin"}[r]
}

// conn is one client connection. Requests are handled one at a time.
type conn struct {
	s     *Server
	nc    net.Conn // guarded by s.mu when swapped (StartTLS)
	tls   bool
	role  role
	bound string // normalized DN of the bound identity
	// mustChange: bound with pwdReset, only Password Modify (of itself) allowed.
	mustChange bool
}

func (s *Server) serve(l net.Listener, isTLS bool) {
	defer s.wg.Done()
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		c := &conn{s: s, nc: nc, tls: isTLS}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
			s.mu.Lock()
			delete(s.conns, c)
			nc := c.nc
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

func (c *conn) run() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		// a deadline that cannot be set shows as a failed handshake
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.s.log.Debug("TLS handshake failed", "error", err.Error())
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	for {
		p, err := ber.ReadPacket(c.nc)
		if err != nil {
			return
		}
		if len(p.Children) < 2 {
			return // not an LDAPMessage: drop the connection, as slapd does
		}
		id, ok := p.Children[0].Value.(int64)
		if !ok {
			return
		}
		op := p.Children[1]
		if op.ClassType != ber.ClassApplication {
			return
		}
		var ctrls []*ber.Packet
		if len(p.Children) > 2 && p.Children[2].ClassType == ber.ClassContext && p.Children[2].Tag == 0 {
			ctrls = p.Children[2].Children
		}
		if !c.handle(id, op, ctrls) {
			return
		}
	}
}

// handle serves one request; false ends the connection.
func (c *conn) handle(id int64, op *ber.Packet, ctrls []*ber.Packet) bool {
	ppolicy := false
	for _, ctl := range ctrls {
		if len(ctl.Children) == 0 {
			c.result(id, responseTag(op.Tag), ldap.LDAPResultProtocolError, "invalid control")
			return true
		}
		switch str(ctl.Children[0]) {
		case oidPPolicy:
			ppolicy = true
		case oidManageDsaIT:
		default:
			if len(ctl.Children) > 1 {
				if crit, ok := ctl.Children[1].Value.(bool); ok && crit {
					c.result(id, responseTag(op.Tag), ldap.LDAPResultUnavailableCriticalExtension, "critical extension is unavailable")
					return true
				}
			}
		}
	}
	switch op.Tag {
	case appBindRequest:
		c.bind(id, op, ppolicy)
	case appUnbindRequest:
		return false
	case appAbandonRequest:
	case appSearchRequest:
		c.search(id, op)
	case appModifyRequest:
		c.modify(id, op)
	case appAddRequest:
		c.add(id, op)
	case appDelRequest:
		c.del(id, op)
	case appModDNRequest, appCompareRequest:
		c.result(id, op.Tag+1, ldap.LDAPResultUnwillingToPerform, "operation not supported by the demo directory")
	case appExtRequest:
		return c.extended(id, op, ppolicy)
	default:
		return false
	}
	return true
}

func responseTag(req ber.Tag) ber.Tag {
	switch req {
	case appExtRequest:
		return appExtResponse
	case appSearchRequest:
		return appSearchDone
	}
	return req + 1
}

// send writes one LDAPMessage.
func (c *conn) send(id int64, op *ber.Packet, ctrls ...*ber.Packet) error {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	env.AppendChild(op)
	if len(ctrls) > 0 {
		cp := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
		for _, ctl := range ctrls {
			cp.AppendChild(ctl)
		}
		env.AppendChild(cp)
	}
	_, err := c.nc.Write(env.Bytes())
	return err
}

// ldapResult starts a response of the given application tag with an LDAPResult.
func ldapResult(tag ber.Tag, code int, diag string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "Response")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	return p
}

func (c *conn) result(id int64, tag ber.Tag, code int, diag string, ctrls ...*ber.Packet) {
	if err := c.send(id, ldapResult(tag, code, diag), ctrls...); err != nil && !errors.Is(err, net.ErrClosed) {
		c.s.log.Debug("write failed", "error", err.Error())
	}
}

// ppolicyControl is the Behera password policy response control; pp < 0
// sends it without an error. Built here: go-ldap's ControlBeheraPasswordPolicy
// encodes only the request form (no value).
func ppolicyControl(pp int) *ber.Packet {
	val := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PasswordPolicyResponseValue")
	if pp >= 0 {
		val.AppendChild(ber.NewInteger(ber.ClassContext, ber.TypePrimitive, 1, int64(pp), "error"))
	}
	ctl := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	ctl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oidPPolicy, "controlType"))
	ctl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(val.Bytes()), "controlValue"))
	return ctl
}

// intOf reads an INTEGER or ENUMERATED.
func intOf(p *ber.Packet) (int64, bool) {
	if p == nil {
		return 0, false
	}
	if v, ok := p.Value.(int64); ok {
		return v, true
	}
	v, err := ber.ParseInt64(p.Data.Bytes())
	return v, err == nil
}
