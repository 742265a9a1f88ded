package auth

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

func allCases() []ruleCase {
	return slices.Concat(createCases, signedCases, authEventsCases, federateCases,
		memberShapeCases, joinCases, thirdPartyInviteCases, inviteCases, leaveCases, banCases, knockCases,
		senderJoinedCases, tpiEventCases, requiredLevelCases, atStateKeyCases, powerLevelsCases, creatorCases)
}

// specRules lists every numbered rule of room versions 10 and 11
// (rooms/v10.md, v11.md "Authorization rules") that decides an outcome,
// with the side that cannot occur: "allow" for rules that only allow,
// "reject" for rules that only reject, "" for rules with both outcomes.
// For "allow" rules the reject side is the case where their condition
// fails and a later rule rejects; it must still be tested.
var specRules = []struct{ rule, only string }{
	{"1.1", ""}, {"1.2", ""}, {"1.3", ""}, {"1.4", ""},
	{"2.1", ""}, {"2.2", ""}, {"2.3", ""}, {"2.4", ""},
	{"3", ""},
	{"4.1", ""}, {"4.2.1", ""},
	{"4.3.1", ""}, {"4.3.2", ""}, {"4.3.3", ""}, {"4.3.4", ""}, {"4.3.5.1", ""}, {"4.3.5.2", ""},
	{"4.3.5.3", ""}, {"4.3.6", ""}, {"4.3.7", "reject"},
	{"4.4.1.1", ""}, {"4.4.1.2", ""}, {"4.4.1.3", ""}, {"4.4.1.4", ""}, {"4.4.1.5", ""}, {"4.4.1.6", ""},
	{"4.4.1.7", ""}, {"4.4.1.8", "reject"},
	{"4.4.2", ""}, {"4.4.3", ""}, {"4.4.4", ""}, {"4.4.5", "reject"},
	{"4.5.1", ""}, {"4.5.2", ""}, {"4.5.3", ""}, {"4.5.4", ""}, {"4.5.5", "reject"},
	{"4.6.1", ""}, {"4.6.2", ""}, {"4.6.3", "reject"},
	{"4.7.1", ""}, {"4.7.2", ""}, {"4.7.3", ""}, {"4.7.4", "reject"},
	{"4.8", "reject"},
	{"5", ""}, {"6.1", ""}, {"7", ""}, {"8", ""},
	{"9.1", ""}, {"9.2", ""}, {"9.3", ""}, {"9.4", ""}, {"9.5.1", ""}, {"9.5.2", ""}, {"9.6.1", ""},
	{"9.7.1", ""}, {"9.8.1", ""}, {"9.9.1", ""}, {"9.10", "allow"},
	{"10", "allow"},
}

// rulesFor lists the rules of v with their one-sided marks. Version 11
// drops 1.4; version 12 renumbers (a second copy of the mapping in
// auth.go, written out by hand here) and adds 2, 3.4 and 10.4.
func rulesFor(v *event.RoomVersion) map[string]string {
	out := map[string]string{"signed-by-sender": "", "auth-events-missing": "reject"}
	for _, r := range specRules {
		out[r.rule] = r.only
	}
	if v == event.V10 {
		out["auth-events-room"] = ""
		return out
	}
	if v == event.V11 {
		out["1.4"] = "allow" // rule 1.4 is "otherwise, allow" in v11
		out["auth-events-room"] = ""
		return out
	}
	v12 := map[string]string{"signed-by-sender": "", "auth-events-missing": "reject",
		"1.1": "", "1.2": "", "1.3": "", "1.4": "", "2": "", "3.4": "", "10.4": ""}
	for _, r := range specRules {
		if strings.HasPrefix(r.rule, "1.") || r.rule == "2.4" {
			continue
		}
		parts := strings.Split(r.rule, ".")
		top, _ := strconv.Atoi(parts[0])
		if top == 9 && len(parts) > 1 {
			if sub, _ := strconv.Atoi(parts[1]); sub >= 4 {
				parts[1] = strconv.Itoa(sub + 1)
			}
		}
		parts[0] = strconv.Itoa(top + 1)
		v12[strings.Join(parts, ".")] = r.only
	}
	return v12
}

// TestRuleCoverage checks that every rule of every room version has a case
// that it accepts and one that it rejects.
func TestRuleCoverage(t *testing.T) {
	cases := allCases()
	for _, v := range versions {
		accept, reject := map[string]bool{}, map[string]bool{}
		for _, c := range cases {
			if !c.applies(v) {
				continue
			}
			if c.reject {
				reject[c.ruleFor(v)] = true
			} else {
				accept[c.ruleFor(v)] = true
			}
		}
		rules := rulesFor(v)
		for rule, only := range rules {
			if only != "reject" && !accept[rule] {
				t.Errorf("v%s rule %s: no accept case", v.ID, rule)
			}
			if only != "allow" && !reject[rule] {
				t.Errorf("v%s rule %s: no reject case", v.ID, rule)
			}
		}
		for rule := range accept {
			if _, ok := rules[rule]; !ok {
				t.Errorf("v%s: accept case for unknown rule %s", v.ID, rule)
			}
		}
		for rule := range reject {
			if _, ok := rules[rule]; !ok {
				t.Errorf("v%s: reject case for unknown rule %s", v.ID, rule)
			}
		}
	}
}
