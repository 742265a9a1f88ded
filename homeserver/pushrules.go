package homeserver

// Push rules. Spec: client-server-api "Push Rules" (the predefined
// server-default rules, in their order) and "Push Rules: API":
// GET /pushrules/, GET /pushrules/global/, GET/PUT/DELETE
// /pushrules/global/{kind}/{ruleId} (with before/after), and the
// /enabled and /actions sub-resources. The user's whole rule set is kept
// as the m.push_rules global account data event, which /sync delivers
// ("Push Rules: Events"); a user who changed nothing gets the defaults.

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

const pushRulesType = "m.push_rules"

// pushRule is one push rule.
type pushRule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Actions    []json.RawMessage `json:"actions"`
	Conditions *[]map[string]any `json:"conditions,omitempty"`
	Pattern    *string           `json:"pattern,omitempty"`
}

// pushRuleset is the rules of one scope ("global"), by kind, in priority
// order within each kind.
type pushRuleset struct {
	Override  []pushRule `json:"override"`
	Content   []pushRule `json:"content"`
	Room      []pushRule `json:"room"`
	Sender    []pushRule `json:"sender"`
	Underride []pushRule `json:"underride"`
}

type pushRules struct {
	Global pushRuleset `json:"global"`
}

// pushRuleKinds are the kinds in evaluation order.
var pushRuleKinds = []string{"override", "content", "room", "sender", "underride"}

func (r *pushRuleset) kind(k string) *[]pushRule {
	switch k {
	case "override":
		return &r.Override
	case "content":
		return &r.Content
	case "room":
		return &r.Room
	case "sender":
		return &r.Sender
	case "underride":
		return &r.Underride
	}
	return nil
}

// defaultPushRulesJSON is the spec's predefined rule set ("Predefined
// Rules"), with USER_ID and LOCALPART standing for the user's ID and its
// local part.
const defaultPushRulesJSON = `{"global":{
"override":[
 {"rule_id":".m.rule.master","default":true,"enabled":false,"conditions":[],"actions":[]},
 {"rule_id":".m.rule.suppress_notices","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}],"actions":[]},
 {"rule_id":".m.rule.invite_for_me","default":true,"enabled":true,"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.member"},{"key":"content.membership","kind":"event_match","pattern":"invite"},{"key":"state_key","kind":"event_match","pattern":"USER_ID"}],"actions":["notify",{"set_tweak":"sound","value":"default"}]},
 {"rule_id":".m.rule.member_event","default":true,"enabled":true,"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.member"}],"actions":[]},
 {"rule_id":".m.rule.is_user_mention","default":true,"enabled":true,"conditions":[{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"USER_ID"}],"actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]},
 {"rule_id":".m.rule.contains_display_name","default":true,"enabled":true,"conditions":[{"kind":"contains_display_name"}],"actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]},
 {"rule_id":".m.rule.is_room_mention","default":true,"enabled":true,"conditions":[{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true},{"kind":"sender_notification_permission","key":"room"}],"actions":["notify",{"set_tweak":"highlight"}]},
 {"rule_id":".m.rule.roomnotif","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"content.body","pattern":"@room"},{"kind":"sender_notification_permission","key":"room"}],"actions":["notify",{"set_tweak":"highlight"}]},
 {"rule_id":".m.rule.tombstone","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.tombstone"},{"kind":"event_match","key":"state_key","pattern":""}],"actions":["notify",{"set_tweak":"highlight"}]},
 {"rule_id":".m.rule.reaction","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"type","pattern":"m.reaction"}],"actions":[]},
 {"rule_id":".m.rule.room.server_acl","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.server_acl"},{"kind":"event_match","key":"state_key","pattern":""}],"actions":[]},
 {"rule_id":".m.rule.suppress_edits","default":true,"enabled":true,"conditions":[{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}],"actions":[]}
],
"content":[
 {"rule_id":".m.rule.contains_user_name","default":true,"enabled":true,"pattern":"LOCALPART","actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]}
],
"room":[],
"sender":[],
"underride":[
 {"rule_id":".m.rule.call","default":true,"enabled":true,"conditions":[{"key":"type","kind":"event_match","pattern":"m.call.invite"}],"actions":["notify",{"set_tweak":"sound","value":"ring"}]},
 {"rule_id":".m.rule.encrypted_room_one_to_one","default":true,"enabled":true,"conditions":[{"kind":"room_member_count","is":"2"},{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}],"actions":["notify",{"set_tweak":"sound","value":"default"}]},
 {"rule_id":".m.rule.room_one_to_one","default":true,"enabled":true,"conditions":[{"kind":"room_member_count","is":"2"},{"kind":"event_match","key":"type","pattern":"m.room.message"}],"actions":["notify",{"set_tweak":"sound","value":"default"}]},
 {"rule_id":".m.rule.message","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.message"}],"actions":["notify"]},
 {"rule_id":".m.rule.encrypted","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}],"actions":["notify"]}
]}}`

// defaultPushRules is the predefined rule set for a user.
func defaultPushRules(userID string) *pushRules {
	local := strings.TrimPrefix(userID, "@")
	local, _, _ = strings.Cut(local, ":")
	user, _ := json.Marshal(userID)
	lp, _ := json.Marshal(local)
	text := strings.NewReplacer(`"USER_ID"`, string(user), `"LOCALPART"`, string(lp)).Replace(defaultPushRulesJSON)
	var r pushRules
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		panic("homeserver: default push rules do not parse: " + err.Error())
	}
	return &r
}

func (rs *roomsModule) pushRulesRoutes() []Route {
	const p = "/_matrix/client/v3/pushrules"
	const rule = p + "/global/{kind}/{ruleId}"
	return []Route{
		{Method: "GET", Pattern: p + "/", Auth: AuthUser, Handle: rs.handleGetPushRules(false)},
		{Method: "GET", Pattern: p + "/global/", Auth: AuthUser, Handle: rs.handleGetPushRules(true)},
		{Method: "GET", Pattern: rule, Auth: AuthUser, Handle: rs.handleGetPushRule("")},
		{Method: "GET", Pattern: rule + "/enabled", Auth: AuthUser, Handle: rs.handleGetPushRule("enabled")},
		{Method: "GET", Pattern: rule + "/actions", Auth: AuthUser, Handle: rs.handleGetPushRule("actions")},
		{Method: "PUT", Pattern: rule, Auth: AuthUser, Handle: rs.handlePutPushRule},
		{Method: "DELETE", Pattern: rule, Auth: AuthUser, Handle: rs.handleDeletePushRule},
		{Method: "PUT", Pattern: rule + "/enabled", Auth: AuthUser, Handle: rs.handlePutPushRuleAttr("enabled")},
		{Method: "PUT", Pattern: rule + "/actions", Auth: AuthUser, Handle: rs.handlePutPushRuleAttr("actions")},
	}
}

// pushRulesOf returns the user's rule set.
func (rs *roomsModule) pushRulesOf(userID string) (*pushRules, error) {
	a, err := rs.st.GetAccountData(userID, "", pushRulesType)
	if errors.Is(err, store.ErrNotFound) {
		return defaultPushRules(userID), nil
	}
	if err != nil {
		return nil, err
	}
	var r pushRules
	if err := json.Unmarshal(a.Content, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (rs *roomsModule) savePushRules(userID string, r *pushRules) error {
	delete(rs.pushCache, userID)
	return rs.putAccountData(userID, "", pushRulesType, mustJSON(r))
}

func (rs *roomsModule) handleGetPushRules(globalOnly bool) func(c *Call) {
	return func(c *Call) {
		r, err := rs.pushRulesOf(c.UserID)
		if err != nil {
			c.Fail(err)
			return
		}
		if globalOnly {
			c.Reply(200, r.Global)
			return
		}
		c.Reply(200, r)
	}
}

// findRule locates a rule by kind and ID.
// ruleOfPath finds the caller's push rule named by the path's kind and
// ruleId.
func (rs *roomsModule) ruleOfPath(c *Call) (*pushRules, *[]pushRule, int, error) {
	r, err := rs.pushRulesOf(c.UserID)
	if err != nil {
		return nil, nil, 0, err
	}
	list, i, err := findRule(r, c.Req.Vars["kind"], c.Req.Vars["ruleId"])
	return r, list, i, err
}

func findRule(r *pushRules, kind, id string) (*[]pushRule, int, error) {
	list := r.Global.kind(kind)
	if list == nil {
		return nil, 0, Errorf(400, ErrCodeInvalidParam, "unknown push rule kind %q", kind)
	}
	for i, rule := range *list {
		if rule.RuleID == id {
			return list, i, nil
		}
	}
	return list, -1, Errorf(404, ErrCodeNotFound, "no push rule %s/%s", kind, id)
}

func (rs *roomsModule) handleGetPushRule(attr string) func(c *Call) {
	return func(c *Call) {
		_, list, i, err := rs.ruleOfPath(c)
		if err != nil {
			c.Fail(err)
			return
		}
		rule := (*list)[i]
		switch attr {
		case "enabled":
			c.Reply(200, map[string]bool{"enabled": rule.Enabled})
		case "actions":
			c.Reply(200, map[string]any{"actions": rule.Actions})
		default:
			c.Reply(200, rule)
		}
	}
}

func (rs *roomsModule) handlePutPushRule(c *Call) {
	kind, id := c.Req.Vars["kind"], c.Req.Vars["ruleId"]
	if strings.HasPrefix(id, ".") {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "server-default rules cannot be replaced"))
		return
	}
	var body struct {
		Actions    []json.RawMessage `json:"actions"`
		Conditions *[]map[string]any `json:"conditions"`
		Pattern    *string           `json:"pattern"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Actions == nil {
		c.Fail(Errorf(400, ErrCodeBadJSON, "actions is required"))
		return
	}
	rule := pushRule{RuleID: id, Enabled: true, Actions: body.Actions}
	switch kind {
	case "override", "underride":
		rule.Conditions = body.Conditions
		if rule.Conditions == nil {
			rule.Conditions = &[]map[string]any{}
		}
	case "content":
		if body.Pattern == nil {
			c.Fail(Errorf(400, ErrCodeBadJSON, "content rules need a pattern"))
			return
		}
		rule.Pattern = body.Pattern
	case "room", "sender":
	default:
		c.Fail(Errorf(400, ErrCodeInvalidParam, "unknown push rule kind %q", kind))
		return
	}
	r, err := rs.pushRulesOf(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	list, i, _ := findRule(r, kind, id)
	if i >= 0 {
		*list = append((*list)[:i], (*list)[i+1:]...)
	}
	// Position: before / after a user rule, else first among the user
	// rules (after .m.rule.master, before the other server defaults).
	pos := 0
	for pos < len(*list) && (*list)[pos].RuleID == ".m.rule.master" {
		pos++
	}
	if b, a := c.Req.Query.Get("before"), c.Req.Query.Get("after"); b != "" || a != "" {
		ref, after := b, false
		if b == "" {
			ref, after = a, true
		}
		_, j, err := findRule(r, kind, ref)
		if err != nil || strings.HasPrefix(ref, ".") {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "before/after must name one of your rules of kind %s", kind))
			return
		}
		pos = j
		if after {
			pos++
		}
	}
	*list = append((*list)[:pos], append([]pushRule{rule}, (*list)[pos:]...)...)
	if err := rs.savePushRules(c.UserID, r); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleDeletePushRule(c *Call) {
	kind, id := c.Req.Vars["kind"], c.Req.Vars["ruleId"]
	r, err := rs.pushRulesOf(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	list, i, err := findRule(r, kind, id)
	if err != nil {
		c.Fail(err)
		return
	}
	if (*list)[i].Default {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "server-default rules cannot be deleted"))
		return
	}
	*list = append((*list)[:i], (*list)[i+1:]...)
	if err := rs.savePushRules(c.UserID, r); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handlePutPushRuleAttr(attr string) func(c *Call) {
	return func(c *Call) {
		var body struct {
			Enabled *bool             `json:"enabled"`
			Actions []json.RawMessage `json:"actions"`
		}
		if err := c.DecodeJSON(&body); err != nil {
			c.Fail(err)
			return
		}
		r, list, i, err := rs.ruleOfPath(c)
		if err != nil {
			c.Fail(err)
			return
		}
		switch attr {
		case "enabled":
			if body.Enabled == nil {
				c.Fail(Errorf(400, ErrCodeBadJSON, "enabled is required"))
				return
			}
			(*list)[i].Enabled = *body.Enabled
		case "actions":
			if body.Actions == nil {
				c.Fail(Errorf(400, ErrCodeBadJSON, "actions is required"))
				return
			}
			(*list)[i].Actions = body.Actions
		}
		if err := rs.savePushRules(c.UserID, r); err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, struct{}{})
	}
}

// Push rule evaluation. Spec: client-server-api "Push Rules" (conditions
// event_match, event_property_is, event_property_contains,
// contains_display_name, room_member_count, sender_notification_permission;
// "dot-separated property paths" in appendices.md) and "Receiving
// notifications" (the counts in /sync follow the push rules).

// pushContext is what conditions look at besides the event.
type pushContext struct {
	userID       string
	displayName  string // the user's display name in the room
	memberCount  int    // joined members
	senderPower  int64
	notifyLevels map[string]int64 // power_levels.notifications
}

// pushOutcome is what the first matching rule's actions say: notify, the
// highlight tweak, and the sound tweak ("" for none).
type pushOutcome struct {
	notify, highlight bool
	sound             string
}

// evalPushRules runs the rules over an event (its JSON as decoded into
// ev) and returns the outcome of the first enabled rule that matches.
func evalPushRules(r *pushRules, ev map[string]any, pc *pushContext, globs *globCache) pushOutcome {
	roomID, _ := ev["room_id"].(string)
	sender, _ := ev["sender"].(string)
	_, hasMentions := propertyValue(ev, `content.m\.mentions`)
	for _, kind := range pushRuleKinds {
		for _, rule := range *r.Global.kind(kind) {
			if !rule.Enabled || (hasMentions && legacyMentionRules[rule.RuleID]) {
				continue
			}
			var match bool
			switch kind {
			case "override", "underride":
				match = true
				if rule.Conditions != nil {
					for _, c := range *rule.Conditions {
						if !condMatches(c, ev, pc, globs) {
							match = false
							break
						}
					}
				}
			case "content":
				body, isStr := propertyValue(ev, "content.body")
				match = isStr && rule.Pattern != nil && globs.matchWords(*rule.Pattern, body.(string))
			case "room":
				match = rule.RuleID == roomID
			case "sender":
				match = rule.RuleID == sender
			}
			if match {
				return actionsOutcome(rule.Actions)
			}
		}
	}
	return pushOutcome{}
}

// legacyMentionRules are the rules that apply only to events without an
// m.mentions property. Spec: client-server-api "Push Rules" (changed in
// v1.7) and "User and room mentions".
var legacyMentionRules = map[string]bool{
	".m.rule.contains_display_name": true,
	".m.rule.roomnotif":             true,
	".m.rule.contains_user_name":    true,
}

func actionsOutcome(actions []json.RawMessage) pushOutcome {
	var o pushOutcome
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			if s == "notify" {
				o.notify = true
			}
			continue
		}
		var tw struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &tw) != nil {
			continue
		}
		switch tw.SetTweak {
		case "highlight":
			var b bool
			o.highlight = len(tw.Value) == 0 || (json.Unmarshal(tw.Value, &b) == nil && b)
		case "sound":
			_ = json.Unmarshal(tw.Value, &o.sound)
		}
	}
	o.highlight = o.highlight && o.notify
	if !o.notify {
		o.sound = ""
	}
	return o
}

func condMatches(c map[string]any, ev map[string]any, pc *pushContext, globs *globCache) bool {
	kind, _ := c["kind"].(string)
	key, _ := c["key"].(string)
	switch kind {
	case "event_match":
		pattern, ok := c["pattern"].(string)
		v, found := propertyValue(ev, key)
		s, isStr := v.(string)
		if !ok || !found || !isStr {
			return false
		}
		if key == "content.body" {
			return globs.matchWords(pattern, s)
		}
		return globs.matchWhole(pattern, s)
	case "event_property_is":
		v, found := propertyValue(ev, key)
		return found && scalarEqual(v, c["value"])
	case "event_property_contains":
		v, found := propertyValue(ev, key)
		list, isList := v.([]any)
		if !found || !isList {
			return false
		}
		for _, x := range list {
			if scalarEqual(x, c["value"]) {
				return true
			}
		}
		return false
	case "contains_display_name":
		body, found := propertyValue(ev, "content.body")
		s, isStr := body.(string)
		return found && isStr && pc.displayName != "" && globs.matchWords(globEscape(pc.displayName), s)
	case "room_member_count":
		is, _ := c["is"].(string)
		return memberCountMatches(is, pc.memberCount)
	case "sender_notification_permission":
		need, ok := pc.notifyLevels[key]
		if !ok {
			need = 50
		}
		return pc.senderPower >= need
	}
	return false // unknown condition kinds never match
}

// scalarEqual compares canonical-JSON scalars (string, number, bool, null)
// exactly, without casting between types.
func scalarEqual(a, b any) bool {
	switch a.(type) {
	case string, float64, bool, nil:
	default:
		return false
	}
	switch b.(type) {
	case string, float64, bool, nil:
	default:
		return false
	}
	return a == b
}

// propertyValue follows a dot-separated property path ("content.m\.relates_to.rel_type":
// "\." is a literal dot, "\\" a backslash) into the event.
func propertyValue(ev map[string]any, path string) (any, bool) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(path); i++ {
		switch {
		case path[i] == '\\' && i+1 < len(path) && (path[i+1] == '.' || path[i+1] == '\\'):
			cur.WriteByte(path[i+1])
			i++
		case path[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(path[i])
		}
	}
	parts = append(parts, cur.String())
	var v any = ev
	for _, p := range parts {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

// memberCountMatches evaluates room_member_count's "is": an integer with
// an optional ==, <, >, <= or >= prefix.
func memberCountMatches(is string, n int) bool {
	op := "=="
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(is, p) {
			op, is = p, is[len(p):]
			break
		}
	}
	want, err := strconv.Atoi(is)
	if err != nil {
		return false
	}
	switch op {
	case "<":
		return n < want
	case ">":
		return n > want
	case "<=":
		return n <= want
	case ">=":
		return n >= want
	}
	return n == want
}

// globEscape makes a literal string safe to use as a glob pattern.
func globEscape(s string) string {
	return strings.NewReplacer("*", "[*]", "?", "[?]").Replace(s)
}

// globCache compiles push rule glob patterns (case-insensitive; "*" any
// run, "?" one character, "[*]"/"[?]" literal) into regular expressions.
type globCache struct{ m map[string]*regexp.Regexp }

// maxGlobCache bounds the cache; past it, it is emptied.
const maxGlobCache = 1024

func (g *globCache) compile(pattern string, words bool) *regexp.Regexp {
	key := pattern
	if words {
		key = "w:" + pattern
	}
	if re, ok := g.m[key]; ok {
		return re
	}
	var b strings.Builder
	b.WriteString("(?is)")
	if words {
		b.WriteString(`(?:^|[^\pL\pN_])`)
	} else {
		b.WriteString("^")
	}
	for i := 0; i < len(pattern); i++ {
		switch {
		case strings.HasPrefix(pattern[i:], "[*]"), strings.HasPrefix(pattern[i:], "[?]"):
			b.WriteString(regexp.QuoteMeta(pattern[i+1 : i+2]))
			i += 2
		case pattern[i] == '*':
			b.WriteString(".*?")
		case pattern[i] == '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	if words {
		b.WriteString(`(?:[^\pL\pN_]|$)`)
	} else {
		b.WriteString("$")
	}
	re := regexp.MustCompile(b.String())
	if g.m == nil || len(g.m) >= maxGlobCache {
		g.m = map[string]*regexp.Regexp{}
	}
	g.m[key] = re
	return re
}

func (g *globCache) matchWhole(pattern, s string) bool {
	return g.compile(pattern, false).MatchString(s)
}

func (g *globCache) matchWords(pattern, s string) bool {
	return g.compile(pattern, true).MatchString(s)
}
