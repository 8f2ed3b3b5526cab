// Package notifytest provides test harnesses for code that sends mail and
// SMS through package notify. They are meant for this module's end-to-end
// suites (gateway, cmd) as much as for notify's own tests:
//
//   - StartMailpit runs the real mailpit binary (SMTP in, REST API out) on
//     free loopback ports, optionally with STARTTLS, implicit TLS and SMTP
//     AUTH, and reads what arrived.
//   - StartTwilio runs an httptest server that enforces Twilio's Messages API
//     request contract and records what it accepted (an SMS sink).
//   - StartWebhook runs a receiver for notify's signed JSON webhook that
//     verifies the bearer token and the HMAC signature.
//   - Recorder is an in-memory notify.Mailer and notify.SMSSender for fast
//     unit tests.
//
// Skips: when mailpit is not installed, StartMailpit skips the test, unless
// the CI environment variable is set (to anything but "" or "false"), in
// which case it fails it: CI must run the real thing.
package notifytest
