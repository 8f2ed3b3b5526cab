//go:build upgradeprobe

package store

// This file is built only with the tag upgradeprobe: the e2e suite's
// rolling upgrade test (TestHAProxyRollingUpgrade) builds the binary with
// it as "the next release", one schema version ahead of this one. Its
// migration only adds a table no query uses, as a release's additive
// migration does, so the oldest version it serves on (MinSchemaVersion)
// stays where this build has it: the two builds overlap on that version,
// and the upgrade procedure of docs/store.md runs between them.
func init() {
	migrations = append(migrations, `CREATE TABLE upgrade_probe (id INTEGER PRIMARY KEY);`)
	pgMigrations = append(pgMigrations, `CREATE TABLE upgrade_probe (id bigint PRIMARY KEY);`)
}
