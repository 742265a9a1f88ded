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
		r, err := rs.pushRulesOf(c.UserID)
		if err != nil {
			c.Fail(err)
			return
		}
		list, i, err := findRule(r, c.Req.Vars["kind"], c.Req.Vars["ruleId"])
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
		r, err := rs.pushRulesOf(c.UserID)
		if err != nil {
			c.Fail(err)
			return
		}
		list, i, err := findRule(r, c.Req.Vars["kind"], c.Req.Vars["ruleId"])
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
