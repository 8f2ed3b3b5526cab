// Package templates holds Latchkey's embedded HTML pages and message bodies.
// The gateway defines the data each one receives.
package templates

import "embed"

// FS holds pages/*.html (one layout, one file per page), mail/*.txt and
// mail/*.html (email bodies; the .txt file also defines "subject") and
// mail/*.sms (text messages).
//
//go:embed pages/*.html mail/*.txt mail/*.html mail/*.sms static/*
var FS embed.FS
