#!/bin/sh
# Provisions and seeds a throwaway Samba 4 AD DC (realm EXAMPLE.TEST) entirely
# inside $1, which must already hold certs/{ca.crt,server.crt,server.key}.
# Used by dirtest to build a template once per machine; nothing is written to
# /etc, /var or /run. Recipe and gotchas: shared/notes/directories.md, section 3.
set -eu
T=$1
mkdir -p "$T/run" "$T/log"
samba-tool domain provision -s /dev/null \
  --targetdir="$T" \
  --realm=EXAMPLE.TEST --domain=EXAMPLE --server-role=dc \
  --host-name=dc1 --host-ip=127.0.0.1 \
  --use-rfc2307 --dns-backend=NONE \
  --adminpass='Admin-Pass1!' \
  --option="interfaces = 127.0.0.1" \
  --option="bind interfaces only = yes" \
  --option="server services = ldap" \
  --option="pid directory = $T/run" \
  --option="ncalrpc dir = $T/run/ncalrpc" \
  --option="winbindd socket directory = $T/run/winbindd" \
  --option="ntp signd socket directory = $T/run/ntp_signd" \
  --option="log file = $T/log/samba.log" \
  --option="logging = file" \
  --option="tls enabled = yes" \
  --option="tls keyfile = $T/certs/server.key" \
  --option="tls certfile = $T/certs/server.crt" \
  --option="tls cafile = $T/certs/ca.crt" \
  > "$T/provision.log" 2>&1 || { cat "$T/provision.log" >&2; exit 1; }
# provision drops this option; 0 = the previous password stops working at once
sed -i "/^\[global\]/a\\	old password allowed period = 0" "$T/etc/smb.conf"

st() { samba-tool "$@" -s "$T/etc/smb.conf" >/dev/null; }
BASE=DC=example,DC=test
st domain passwordsettings set --complexity=on --history-length=3 \
   --min-pwd-length=8 --min-pwd-age=0 --max-pwd-age=0 \
   --account-lockout-threshold=3 --account-lockout-duration=0 \
   --reset-account-lockout-after=0
st ou add OU=People
st ou add OU=Groups
st ou add OU=Services
st user add sspr 'Sspr-Svc-Pass1!' --userou=OU=Services --use-username-as-cn --description="SSPR service account"
# the service account's own PSO, as docs/active-directory.md says: never
# locked out, its password never expires (check says so)
st domain passwordsettings pso create sspr-service 2 --account-lockout-threshold=0 --max-pwd-age=0 --min-pwd-age=0
st domain passwordsettings pso apply sspr-service sspr
for spec in "alice Alice Archer" "bob Bob Baker" "carol Carol Chen" "erin Erin Evans" \
            "frank Frank Fisher" "grace Grace Green" "heidi Heidi Hall" "ivan Ivan Irons" \
            "judy Judy Jones" "twin1 Tom Twin" "twin2 Tim Twin"; do
  set -- $spec
  pw="$(echo "$1" | sed 's/./\U&/')-Pass1!"
  st user add "$1" "$pw" --userou=OU=People --use-username-as-cn \
     --given-name="$2" --surname="$3" --mail-address="$1@example.test"
done
st user add 'dave(qa)' 'Dave-Pass1!' --userou=OU=People --use-username-as-cn \
   --given-name=Dave --surname=Special --mail-address=dave@example.test
st user add 'josé' 'Jose-Pass1!' --userou=OU=People --use-username-as-cn \
   --given-name='José' --surname='Núñez' --mail-address=jose@example.test
st user disable ivan
st group add Staff --groupou=OU=Groups
st group add Engineering --groupou=OU=Groups
st group add SSPR-Admins --groupou=OU=Groups
st group add Cycle-A --groupou=OU=Groups
st group add Cycle-B --groupou=OU=Groups
st group addmembers Engineering carol,bob
st group addmembers Staff Engineering,alice
st group addmembers SSPR-Admins alice
st group addmembers Cycle-A judy,Cycle-B
st group addmembers Cycle-B Cycle-A

# a fine-grained password policy (PSO) for heidi
st domain passwordsettings pso create strict 10 --min-pwd-length=14 --history-length=5 \
   --complexity=on --min-pwd-age=0 --max-pwd-age=90 --account-lockout-threshold=5
st domain passwordsettings pso apply strict heidi

cat > "$T/seed-extra.ldif" <<LDIF
dn: CN=alice,OU=People,$BASE
changetype: modify
replace: mobile
mobile: +15550100001
LDIF
ldbmodify -H "$T/private/sam.ldb" "$T/seed-extra.ldif" >/dev/null

# Delegate to sspr on OU=People (inherited by user objects only):
#  CR 00299570-... Reset Password; WP 28630ebf-... lockoutTime; WP bf967a0a-... pwdLastSet
# and read access to the Password Settings Container (msDS-ResultantPSO targets).
SID=$(ldbsearch -H "$T/private/sam.ldb" -b "CN=sspr,OU=Services,$BASE" -s base objectSid | sed -n 's/^objectSid: //p')
U=bf967aba-0de6-11d0-a285-00aa003049e2
st dsacl set --objectdn="OU=People,$BASE" --trusteedn="CN=sspr,OU=Services,$BASE" \
   --sddl="(OA;CIIO;CR;00299570-246d-11d0-a768-00aa006e0529;$U;$SID)(OA;CIIO;WP;28630ebf-41d5-11d1-a9c1-0000f80367c1;$U;$SID)(OA;CIIO;WP;bf967a0a-0de6-11d0-a285-00aa003049e2;$U;$SID)"
st dsacl set --objectdn="CN=Password Settings Container,CN=System,$BASE" --trusteedn="CN=sspr,OU=Services,$BASE" \
   --sddl="(A;CI;RPLCLORC;;;$SID)"
