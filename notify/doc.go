// Package notify delivers messages that other packages have already written:
// e-mail over SMTP (go-mail) and SMS through a provider (Twilio's Messages API
// or a generic signed JSON webhook).
//
// notify does not know why a message is sent. It has no templates, no codes
// and no flow logic: the gateway renders the subject, text and HTML (or the SMS
// body) and passes them in, together with a recipient it has read from the
// store. notify validates what it is given (no header injection, one recipient,
// E.164 numbers, bounded sizes), sends it, and returns an error that never
// contains a password, token or shared secret.
//
// The package also holds the small, pure helpers that belong to contact
// addresses: [ParsePhone] (normalise and check a phone number against an
// allow-list of countries) and [MaskPhone] / [MaskEmail] (the hints shown to a
// user who must choose a method, e.g. "+44 •••• ••12" and "j•••@g•••.com").
// They live here because notify is the package that knows what a valid address
// is; they do no I/O.
//
// Only this package imports go-mail. Test harnesses (a real mailpit process, a
// fake that enforces Twilio's request contract, a webhook receiver that
// verifies signatures) live in notify/notifytest.
package notify
