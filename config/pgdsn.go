package config

import (
	"net/url"
	"slices"
	"strings"
)

// PostgreSQL sslmode values (libpq's; pgx accepts the same).
var pgSSLModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// pgDefaultSSLMode is what libpq and pgx use when the DSN names none: TLS
// if the server offers it, without verifying anything.
const pgDefaultSSLMode = "prefer"

func isPostgresURL(dsn string) bool {
	d := strings.ToLower(strings.TrimSpace(dsn))
	return strings.HasPrefix(d, "postgres://") || strings.HasPrefix(d, "postgresql://")
}

// checkPostgresDSN checks a PostgreSQL DSN without opening a socket: it can
// be parsed, and every host in it that is neither loopback nor a Unix
// socket is reached with sslmode=verify-full, unless allowPlaintext.
// Messages never quote the DSN (it may hold a password); host names are
// not secret and are named.
//
// PG* environment variables, which the driver also reads, are not seen
// here; the store applies the same rule when it connects.
func checkPostgresDSN(ch *checker, key, dsn string, allowPlaintext bool) {
	var (
		hosts []string
		mode  string
		ok    bool
	)
	if isPostgresURL(dsn) {
		hosts, mode, ok = parsePostgresURL(dsn)
	} else {
		hosts, mode, ok = parsePostgresKeywords(dsn)
	}
	if !ok {
		ch.add(key, "cannot be parsed as a PostgreSQL DSN: use postgres://user@host/db?sslmode=verify-full or host=... dbname=... keywords")
		return
	}
	if mode == "" {
		mode = pgDefaultSSLMode
	}
	if !slices.Contains(pgSSLModes, mode) {
		ch.add(key, "sslmode must be one of %s", strings.Join(pgSSLModes, ", "))
		return
	}
	if mode == "verify-full" || allowPlaintext {
		return
	}
	for _, h := range hosts {
		if isLocalPostgresHost(h) {
			continue
		}
		ch.add(key, "sslmode=%s to %s, which is neither loopback nor a Unix socket, does not verify the server: "+
			"use sslmode=verify-full (with sslrootcert= the server's CA file), or set store.allow_plaintext: true to accept that",
			mode, truncate(h))
		return
	}
}

// isLocalPostgresHost: a Unix socket directory, or a loopback name or address.
// An empty host is the driver's default: a local socket or localhost.
func isLocalPostgresHost(h string) bool {
	return h == "" || strings.HasPrefix(h, "/") || strings.HasPrefix(h, "@") || isLoopback(h)
}

// parsePostgresURL returns the hosts and the sslmode of a postgres:// URL,
// including several hosts (postgres://h1:5432,h2/db) and host= query
// parameters (socket directories).
func parsePostgresURL(dsn string) (hosts []string, sslmode string, ok bool) {
	rest := strings.TrimSpace(dsn)
	rest = rest[strings.Index(rest, "://")+3:]
	authority, query := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority = rest[:i]
		if q := strings.IndexByte(rest, '?'); q >= 0 {
			query = rest[q+1:]
		}
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:]
	}
	for _, hp := range strings.Split(authority, ",") {
		host := hp
		if strings.HasPrefix(hp, "[") {
			end := strings.IndexByte(hp, ']')
			if end < 0 {
				return nil, "", false
			}
			host = hp[1:end]
		} else if i := strings.IndexByte(hp, ':'); i >= 0 {
			host = hp[:i]
		}
		h, err := url.PathUnescape(host)
		if err != nil {
			return nil, "", false
		}
		hosts = append(hosts, h)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, "", false
	}
	if hs := q.Get("host"); hs != "" {
		hosts = strings.Split(hs, ",")
	}
	return hosts, q.Get("sslmode"), true
}

// parsePostgresKeywords returns the hosts and the sslmode of a libpq
// keyword/value string: host=db1,db2 sslmode=verify-full password='a b'.
func parsePostgresKeywords(dsn string) (hosts []string, sslmode string, ok bool) {
	s := strings.TrimSpace(dsn)
	values := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, "", false
		}
		k := strings.TrimSpace(s[:eq])
		if k == "" || strings.ContainsAny(k, " \t\n'") {
			return nil, "", false
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n")
		var v strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for i := 0; i < len(s); i++ {
				switch c := s[i]; {
				case c == '\\' && i+1 < len(s):
					i++
					v.WriteByte(s[i])
				case c == '\'':
					s, closed = s[i+1:], true
				default:
					v.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, "", false
			}
		} else {
			end := strings.IndexAny(s, " \t\n")
			if end < 0 {
				end = len(s)
			}
			raw := s[:end]
			for i := 0; i < len(raw); i++ {
				if raw[i] == '\\' && i+1 < len(raw) {
					i++
				}
				v.WriteByte(raw[i])
			}
			s = s[end:]
		}
		values[k] = v.String()
		s = strings.TrimLeft(s, " \t\n")
	}
	if h, set := values["host"]; set && h != "" {
		hosts = strings.Split(h, ",")
	} else {
		hosts = []string{""}
	}
	return hosts, values["sslmode"], true
}
