package policy

import (
	"strconv"
	"strings"
)

// privilegedBuiltin are the well-known SIDs of the built-in domain's
// protected groups (the same in every domain).
var privilegedBuiltin = map[string]string{
	"S-1-5-32-544": "Administrators",
	"S-1-5-32-548": "Account Operators",
	"S-1-5-32-549": "Server Operators",
	"S-1-5-32-550": "Print Operators",
	"S-1-5-32-551": "Backup Operators",
	"S-1-5-32-552": "Replicator",
}

// privilegedRIDs are the relative identifiers of a domain's protected
// accounts and groups (S-1-5-21-<domain>-<RID>): the accounts and groups
// AdminSDHolder protects, and Group Policy Creator Owners. RIDs below 1000
// are reserved for well-known principals, so the RID names the group in any
// domain of any forest (Enterprise and Schema Admins live in the forest
// root domain).
var privilegedRIDs = map[uint64]string{
	498: "Enterprise Read-only Domain Controllers",
	500: "Administrator (built-in account)",
	502: "krbtgt",
	512: "Domain Admins",
	516: "Domain Controllers",
	518: "Schema Admins",
	519: "Enterprise Admins",
	520: "Group Policy Creator Owners",
	521: "Read-only Domain Controllers",
	526: "Key Admins",
	527: "Enterprise Key Admins",
}

// PrivilegedSID names the well-known privileged account or group a SID
// (S-1-… form) stands for, if it is one: a built-in protected group
// (Administrators, Account, Server, Print and Backup Operators,
// Replicator) or a domain's protected RID (Domain, Enterprise and Schema
// Admins, Domain Controllers, Read-only Domain Controllers, Enterprise
// Read-only Domain Controllers, Key Admins, Enterprise Key Admins, Group
// Policy Creator Owners, krbtgt, the built-in Administrator).
func PrivilegedSID(sid string) (string, bool) {
	sid = strings.ToUpper(strings.TrimSpace(sid))
	if name, ok := privilegedBuiltin[sid]; ok {
		return name, true
	}
	// S-1-5-21-<three sub-authorities>-<RID>
	parts := strings.Split(sid, "-")
	if len(parts) != 8 || parts[0] != "S" || parts[1] != "1" || parts[2] != "5" || parts[3] != "21" {
		return "", false
	}
	rid, err := strconv.ParseUint(parts[7], 10, 32)
	if err != nil {
		return "", false
	}
	name, ok := privilegedRIDs[rid]
	return name, ok
}
