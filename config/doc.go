// Package config loads and validates Latchkey's configuration file. It is the
// only package that imports viper.
//
// Sources, later ones winning: built-in defaults (Default), the YAML file,
// then environment variables LATCHKEY_<SECTION>_<KEY> (nested sections are
// joined with "_": sms.twilio.account_sid is LATCHKEY_SMS_TWILIO_ACCOUNT_SID).
// Every secret can also be given as <key>_file, a path whose content (minus
// one trailing newline) becomes the secret; giving both is an error.
//
// List values in the environment are either a JSON array
// (["a","b"]) or a plain string split on commas; lists of DNs (the *groups
// keys) are split on semicolons instead, because DNs contain commas and an
// unescaped ";" cannot appear in an RFC 4514 DN. policy.tiers can only be set
// from the environment as a JSON array of objects.
//
// Load reads and decodes, rejecting unknown keys; Validate checks the result
// and reports every problem with its key path. Neither opens sockets, and no
// error or problem ever quotes a secret.
//
// This package is the one place defaults are written: every key's in
// Default, the settings without a key (FlowTTL, SessionTTL, MaxMethods, …)
// as constants, and what follows from several keys as methods
// (AvailableMethods, Eligibility, Policy.UnlockOnReset,
// Server.TrustedProxyPrefixes, Policy.GroupDNs). A value out of range is a
// Validate problem naming the key and the value, never replaced by another;
// cmd/latchkey copies a validated Config into the packages it wires and
// decides nothing itself.
package config
