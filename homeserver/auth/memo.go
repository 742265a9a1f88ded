package auth

import (
	"encoding/json"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// The content the rules read from state events is decoded once per event
// and kept on the event (event.Memo): state resolution checks thousands of
// events against the same few power-levels, create and join-rules events.
// Every memo is a pure function of its event, so using it gives exactly
// what decoding afresh would.
var (
	// levelsMemo: the lenient decoding of an m.room.power_levels event's
	// content, nil when the content is not an object.
	levelsMemo = event.NewMemo("auth: power levels", func(e *event.Event) *levels {
		l, _, _ := parseLevels(e.Content(), false)
		return l
	})
	// strictLevelsMemo: the strict decoding (rules 9.1–9.3, v12: 10.1–10.3)
	// of an m.room.power_levels event being checked.
	strictLevelsMemo = event.NewMemo("auth: strict power levels", func(e *event.Event) *strictLevels {
		l, rule, err := parseLevels(e.Content(), true)
		return &strictLevels{levels: l, rule: rule, err: err}
	})
	createMemo = event.NewMemo("auth: create content", parseCreateInfo)
	memberMemo = event.NewMemo("auth: member content", func(e *event.Event) *memberContent {
		return parseMemberContent(e.Content())
	})
	joinRuleMemo = event.NewMemo("auth: join rule", func(e *event.Event) string {
		m, err := object(e.Content())
		if err != nil {
			return ""
		}
		r, _ := str(m["join_rule"])
		return r
	})
)

// strictLevels is parseLevels(content, true)'s result.
type strictLevels struct {
	levels *levels
	rule   string
	err    error
}

// createInfo is what the rules read from an m.room.create event.
type createInfo struct {
	creators []string // see creators
	// noFederate: content["m.federate"] is false.
	noFederate bool
}

func parseCreateInfo(create *event.Event) *createInfo {
	cc := &createInfo{creators: parseCreators(create)}
	if m, err := object(create.Content()); err == nil {
		if f, ok := m["m.federate"]; ok && strings.TrimSpace(string(f)) == "false" {
			cc.noFederate = true
		}
	}
	return cc
}

// memberContent is what the rules and the auth events selection read from
// the content of an m.room.member event.
type memberContent struct {
	err error // the content is not a JSON object; nothing else is set

	membership   string
	membershipOK bool // membership is a string

	// join_authorised_via_users_server: present, and a string.
	authoriser                   string
	hasAuthoriser, authoriserStr bool

	thirdPartyInvite    json.RawMessage // third_party_invite, raw
	hasThirdPartyInvite bool
	// third_party_invite.signed.token, when those are an object, an object
	// and a string.
	inviteToken   string
	inviteTokenOK bool
}

func parseMemberContent(content json.RawMessage) *memberContent {
	m, err := object(content)
	if err != nil {
		return &memberContent{err: err}
	}
	mc := &memberContent{}
	mc.membership, mc.membershipOK = str(m["membership"])
	var raw json.RawMessage
	if raw, mc.hasAuthoriser = m["join_authorised_via_users_server"]; mc.hasAuthoriser {
		mc.authoriser, mc.authoriserStr = str(raw)
	}
	mc.thirdPartyInvite, mc.hasThirdPartyInvite = m["third_party_invite"]
	if tpi, err := object(mc.thirdPartyInvite); err == nil {
		if signed, err := object(tpi["signed"]); err == nil {
			mc.inviteToken, mc.inviteTokenOK = str(signed["token"])
		}
	}
	return mc
}
