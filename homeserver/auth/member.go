package auth

import (
	"slices"
)

// checkMember applies rule 4 (v12: 5), the rules for m.room.member.
// Spec: rooms/v10.md, v11.md, v12.md "Authorization rules" rule 4 (v12: 5).
func (c *checker) checkMember() error {
	ev := c.ev
	target, ok := ev.StateKey()
	if !ok {
		return c.reject("4.1", "member event has no state_key")
	}
	content := memberMemo.Get(ev)
	if content.err != nil {
		return c.reject("4.1", "content: %v", content.err)
	}
	membership := content.membership
	if !content.membershipOK {
		return c.reject("4.1", "content has no string membership")
	}
	// 4.2: join_authorised_via_users_server must be backed by a signature of
	// that user's server. Which key signed is checked on receipt with the
	// server's published keys; here the signature has to be present.
	authoriser := ""
	if content.hasAuthoriser {
		u := content.authoriser
		if !content.authoriserStr || !validUserID(u) {
			return c.reject("4.2.1", "join_authorised_via_users_server is not a user ID")
		}
		if len(ev.Signatures()[domainOf(u)]) == 0 {
			return c.reject("4.2.1", "event is not signed by %s, the server of the authorising user", domainOf(u))
		}
		authoriser = u
	}
	switch membership {
	case Join:
		return c.checkJoin(target, authoriser)
	case Invite:
		return c.checkInvite(target, content)
	case Leave:
		return c.checkLeave(target)
	case Ban:
		return c.checkBan(target)
	case Knock:
		return c.checkKnock(target)
	}
	return c.reject("4.8", "unknown membership %q", membership)
}

// checkJoin is rule 4.3 (v12: 5.3).
func (c *checker) checkJoin(target, authoriser string) error {
	ev := c.ev
	create := c.state[createKey]
	// 4.3.1: the creator's own join right after the create event. The
	// creator is content.creator in v10 and the create event's sender from
	// v11 on.
	if prev := ev.PrevEvents(); len(prev) == 1 && prev[0] == create.ID() {
		var creator string
		if c.v.CreatorFromSender {
			creator = create.Sender()
		} else if cs := creators(create); len(cs) == 1 {
			creator = cs[0]
		}
		if creator != "" && target == creator {
			return nil
		}
	}
	// 4.3.2
	if ev.Sender() != target {
		return c.reject("4.3.2", "sender %s cannot join %s", ev.Sender(), target)
	}
	current := c.membership(target)
	// 4.3.3
	if current == Ban {
		return c.reject("4.3.3", "%s is banned", target)
	}
	switch rule := c.joinRule(); rule {
	case JoinRuleInvite, JoinRuleKnock:
		// 4.3.4
		if current == Invite || current == Join {
			return nil
		}
		return c.reject("4.3.7", "join rule is %s and %s is neither invited nor joined", rule, target)
	case JoinRuleRestricted, JoinRuleKnockRestricted:
		// 4.3.5.1
		if current == Invite || current == Join {
			return nil
		}
		// 4.3.5.2
		if authoriser == "" {
			return c.reject("4.3.5.2", "join rule is %s and the join has no join_authorised_via_users_server", rule)
		}
		// NOTSPEC: the spec only asks for the authorising user's power
		// level; like Synapse and Dendrite we also require the authorising
		// user to be joined (its member event is among the auth events
		// selected for the join).
		if m := c.membership(authoriser); m != Join {
			return c.reject("4.3.5.2", "authorising user %s is not joined", authoriser)
		}
		inviteLevel := c.levels().get("invite", defaultInvite)
		if pl := c.level(authoriser); pl < inviteLevel {
			return c.reject("4.3.5.2", "authorising user %s has level %d, below the invite level %d", authoriser, pl, inviteLevel)
		}
		// 4.3.5.3
		return nil
	case JoinRulePublic:
		// 4.3.6
		return nil
	default:
		// 4.3.7
		return c.reject("4.3.7", "join rule %q does not allow joining", rule)
	}
}

// checkInvite is rule 4.4 (v12: 5.4).
func (c *checker) checkInvite(target string, content *memberContent) error {
	ev := c.ev
	if content.hasThirdPartyInvite {
		return c.checkThirdPartyInvite(target, content.thirdPartyInvite)
	}
	// 4.4.2
	if m := c.membership(ev.Sender()); m != Join {
		return c.reject("4.4.2", "inviter %s is not joined (membership %q)", ev.Sender(), m)
	}
	// 4.4.3
	if m := c.membership(target); m == Join || m == Ban {
		return c.reject("4.4.3", "%s cannot be invited: membership is %s", target, m)
	}
	// 4.4.4
	level := c.level(ev.Sender())
	inviteLevel := c.levels().get("invite", defaultInvite)
	if level >= inviteLevel {
		return nil
	}
	// 4.4.5
	return c.reject("4.4.5", "inviter level %d is below the invite level %d", level, inviteLevel)
}

// checkLeave is rule 4.5 (v12: 5.5).
func (c *checker) checkLeave(target string) error {
	ev := c.ev
	// 4.5.1
	if ev.Sender() == target {
		m := c.membership(target)
		if m == Invite || m == Join || m == Knock {
			return nil
		}
		return c.reject("4.5.1", "%s cannot leave with membership %q", target, m)
	}
	// 4.5.2
	if m := c.membership(ev.Sender()); m != Join {
		return c.reject("4.5.2", "sender %s is not joined (membership %q)", ev.Sender(), m)
	}
	l := c.levels()
	senderLevel := c.level(ev.Sender())
	// 4.5.3
	if c.membership(target) == Ban {
		if ban := l.get("ban", defaultBan); senderLevel < ban {
			return c.reject("4.5.3", "unbanning needs level %d, sender has %d", ban, senderLevel)
		}
	}
	// 4.5.4
	kick := l.get("kick", defaultKick)
	targetLevel := c.level(target)
	if senderLevel >= kick && targetLevel < senderLevel {
		return nil
	}
	// 4.5.5
	return c.reject("4.5.5", "sender level %d cannot kick %s (kick level %d, target level %d)",
		senderLevel, target, kick, targetLevel)
}

// checkBan is rule 4.6 (v12: 5.6).
func (c *checker) checkBan(target string) error {
	ev := c.ev
	// 4.6.1
	if m := c.membership(ev.Sender()); m != Join {
		return c.reject("4.6.1", "sender %s is not joined (membership %q)", ev.Sender(), m)
	}
	// 4.6.2
	ban := c.levels().get("ban", defaultBan)
	senderLevel := c.level(ev.Sender())
	targetLevel := c.level(target)
	if senderLevel >= ban && targetLevel < senderLevel {
		return nil
	}
	// 4.6.3
	return c.reject("4.6.3", "sender level %d cannot ban %s (ban level %d, target level %d)",
		senderLevel, target, ban, targetLevel)
}

// checkKnock is rule 4.7 (v12: 5.7).
func (c *checker) checkKnock(target string) error {
	ev := c.ev
	// 4.7.1
	if rule := c.joinRule(); rule != JoinRuleKnock && rule != JoinRuleKnockRestricted {
		return c.reject("4.7.1", "join rule %q does not allow knocking", rule)
	}
	// 4.7.2
	if ev.Sender() != target {
		return c.reject("4.7.2", "sender %s cannot knock for %s", ev.Sender(), target)
	}
	// 4.7.3
	m := c.membership(target)
	if !slices.Contains([]string{Ban, Invite, Join}, m) {
		return nil
	}
	// 4.7.4
	return c.reject("4.7.4", "%s cannot knock with membership %s", target, m)
}
