// Package blackbox is the support the black-box suites share: the e2e
// tests and internal/bench drive the built latchkey binary over HTTP with
// one API client (Client), read the mail it sends with one mailbox reader
// (Mailbox, and Collector for thousands of mails), and configure it with
// one config writer (Config, WriteConfig) that fills config's own types
// and writes them as YAML, so that a configuration key renamed in config
// cannot go unnoticed here.
//
// It is a normal package so that internal/bench (a command's library) can
// use it; only tests and internal/bench import it.
package blackbox
