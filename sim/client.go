package sim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/homeserver"
)

// Client behaviour constants.
const (
	// retryDelay is how long a client waits before repeating a request
	// whose CoAP exchange failed (retransmissions exhausted), and before
	// observing /sync again after the observation ended.
	retryDelay = 30 * time.Second
	// maxAttempts bounds the tries of one request.
	maxAttempts = 8
	// syncFilter keeps /sync small on a slow link: no presence, members
	// loaded lazily, and a timeline long enough that a backlog after a
	// partition is not cut off (sync "limited").
	syncFilter = `{"presence":{"not_types":["*"]},"room":{"state":{"lazy_load_members":true},"timeline":{"limit":100}}}`
	// pollTimeout is the long-poll timeout of clients that poll /sync
	// (the CoAP front door caps it at gateway.DefaultMaxSyncWait).
	pollTimeout = 20 * time.Second
	// password is every simulated user's password.
	password = "sim-password"
)

// client is a user with a low-bandwidth client: a CoAPNode under Noise
// talking to its home server over the simulated links, observing /sync.
type client struct {
	s         *Sim
	spec      ClientSpec
	sv        *server
	ep        *endpoint
	userID    string
	token     string
	tokenSent bool // the server holds our token (MSC3079 stickiness)
	since     string
	observing bool
	joined    map[string]time.Duration // room ID → when the join was answered
	joining   map[string]bool
}

// newClient creates the account on its server directly (no bytes on any
// link) and logs in, so the run starts with an access token.
func (s *Sim) newClient(spec ClientSpec, sv *server, ep *endpoint) (*client, error) {
	c := &client{s: s, spec: spec, sv: sv, ep: ep, joined: map[string]time.Duration{}, joining: map[string]bool{}}
	var err error
	if c.userID, err = homeserver.CreateAccount(sv.store, sv.node.Config(), spec.User, password, false, s.clk.Now()); err != nil {
		return nil, fmt.Errorf("client %s: %w", spec.User, err)
	}
	body, _ := json.Marshal(map[string]any{"type": "m.login.password", "password": password,
		"identifier": map[string]string{"type": "m.id.user", "user": spec.User}})
	var resp *homeserver.Response
	sv.node.Dispatch(&homeserver.Request{Method: "POST", Path: "/_matrix/client/v3/login", Body: body}, func(r homeserver.Response) { resp = &r })
	if resp == nil || resp.Status != 200 {
		return nil, fmt.Errorf("client %s: login did not succeed: %+v", spec.User, resp)
	}
	raw, err := json.Marshal(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client %s: login: %w", spec.User, err)
	}
	var lr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &lr); err != nil || lr.AccessToken == "" {
		return nil, fmt.Errorf("client %s: login answer without a token: %s", spec.User, raw)
	}
	c.token = lr.AccessToken
	return c, nil
}

// do sends one API request and calls then with the answer, or with status
// 0 when every attempt failed. A request whose exchange fails is repeated
// after retryDelay (the same transaction ID makes sends idempotent).
func (c *client) do(method, uri string, body any, then func(a answer)) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			c.s.fail("%s: %s %s: %v", c.spec.User, method, uri, err)
			then(answer{})
			return
		}
	}
	c.attempt(method, uri, raw, 1, then)
}

func (c *client) attempt(method, uri string, body []byte, n int, then func(a answer)) {
	s := c.s
	tok := ""
	if !c.tokenSent {
		tok, c.tokenSent = c.token, true
	}
	m, err := apiMessage(method, uri, body, tok)
	if err != nil {
		s.fail("%s: %v", c.spec.User, err)
		then(answer{})
		return
	}
	retry := func(why string) {
		if n >= maxAttempts {
			s.fail("%s: %s %s: gave up after %d attempts: %s", c.spec.User, method, uri, n, why)
			then(answer{})
			return
		}
		s.after(retryDelay, func() { c.attempt(method, uri, body, n+1, then) })
	}
	_, err = c.ep.node.Send(s.clk.Now(), c.sv.name, m, coap.SendOptions{}, func(ev coap.Event) {
		if ev.Kind == coap.RequestFailed {
			retry(ev.Err.Error())
			return
		}
		a, err := decodeAnswer(ev.Msg)
		if err != nil {
			retry(err.Error())
			return
		}
		if a.Status == 401 && a.Errcode == homeserver.ErrCodeMissingToken && tok == "" {
			// The server forgot our token: send it again (MSC3079).
			c.tokenSent = false
			s.after(0, func() { c.attempt(method, uri, body, n+1, then) })
			return
		}
		then(a)
	})
	if err != nil {
		retry(err.Error())
		return
	}
	c.ep.flush()
}

// poll long-polls /sync: one GET with a timeout at a time, the next as
// soon as the answer is in.
func (c *client) poll() {
	uri := "/_matrix/client/v3/sync?timeout=" + strconv.FormatInt(pollTimeout.Milliseconds(), 10) + "&filter=" + url.QueryEscape(syncFilter)
	if c.since != "" {
		uri += "&since=" + url.QueryEscape(c.since)
	}
	c.do("GET", uri, nil, func(a answer) {
		if a.Status == 200 {
			c.onSync(a.JSON)
			c.s.after(0, c.poll)
			return
		}
		c.s.after(retryDelay, c.poll)
	})
}

// observe registers an observation of /sync (MSC3079 "HTTP long-polling
// -> CoAP OBSERVE"), from the last next_batch seen.
func (c *client) observe() {
	s := c.s
	if c.observing {
		return
	}
	uri := "/_matrix/client/v3/sync?filter=" + url.QueryEscape(syncFilter)
	if c.since != "" {
		uri += "&since=" + url.QueryEscape(c.since)
	}
	tok := ""
	if !c.tokenSent {
		tok, c.tokenSent = c.token, true
	}
	m, err := apiMessage("GET", uri, nil, tok)
	if err != nil {
		s.fail("%s: observe sync: %v", c.spec.User, err)
		return
	}
	m.Options, _, _ = m.Options.SetObserve(make([]byte, 4), 0)
	c.observing = true
	again := func() {
		c.observing = false
		s.after(retryDelay, c.observe)
	}
	_, err = c.ep.node.Send(s.clk.Now(), c.sv.name, m, coap.SendOptions{}, func(ev coap.Event) {
		if ev.Kind == coap.RequestFailed {
			again()
			return
		}
		a, err := decodeAnswer(ev.Msg)
		if err != nil {
			return
		}
		if a.Status == 401 && a.Errcode == homeserver.ErrCodeMissingToken {
			c.tokenSent = false
		}
		if a.Status == 200 {
			c.onSync(a.JSON)
		}
		if ev.Kind == coap.ResponseReceived && !ev.HasObserve || a.Status != 200 {
			again() // the observation ended
		}
	})
	if err != nil {
		again()
		return
	}
	c.ep.flush()
}

// syncBody is the part of a /sync response the simulator reads.
type syncBody struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					Type    string `json:"type"`
					Sender  string `json:"sender"`
					Content struct {
						Body string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
		Invite map[string]json.RawMessage `json:"invite"`
	} `json:"rooms"`
}

// onSync records the messages a /sync answer delivers and joins the rooms
// it invites to.
func (c *client) onSync(raw []byte) {
	s := c.s
	var b syncBody
	if err := json.Unmarshal(raw, &b); err != nil {
		s.fail("%s: sync answer: %v", c.spec.User, err)
		return
	}
	if b.NextBatch != "" {
		c.since = b.NextBatch
	}
	for _, roomID := range sortedKeys(b.Rooms.Join) {
		for _, ev := range b.Rooms.Join[roomID].Timeline.Events {
			if ev.Type != "m.room.message" || ev.Sender == c.userID {
				continue
			}
			m := s.messageByBody(ev.Content.Body)
			if m == nil || m.from.userID != ev.Sender || m.roomID != roomID {
				continue
			}
			if _, seen := m.delivered[c]; !seen {
				m.delivered[c] = s.elapsed()
			}
		}
	}
	if c.spec.NoAutoJoin {
		return
	}
	for _, roomID := range sortedKeys(b.Rooms.Invite) {
		c.join(roomID)
	}
}

// join joins a room unless it is joined or joining.
func (c *client) join(roomID string) {
	if _, ok := c.joined[roomID]; ok || c.joining[roomID] {
		return
	}
	c.joining[roomID] = true
	c.do("POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), map[string]any{}, func(a answer) {
		c.joining[roomID] = false
		if a.Status != 200 {
			c.s.fail("%s: join %s: %d %s", c.spec.User, roomID, a.Status, a.Errcode)
			return
		}
		c.joined[roomID] = c.s.elapsed()
	})
}

// messageBody is the body of message id: the text and a tag the receiving
// clients recognise it by.
func messageBody(text string, id int) string { return text + " #" + strconv.Itoa(id) }

func (s *Sim) messageByBody(body string) *simMessage {
	i := strings.LastIndex(body, " #")
	if i < 0 {
		return nil
	}
	id, err := strconv.Atoi(body[i+2:])
	if err != nil || id < 0 || id >= len(s.msgs) {
		return nil
	}
	return s.msgs[id]
}

// schedule puts the scenario's actions and the clients' first /sync on
// the event queue.
func (s *Sim) schedule() {
	for _, c := range s.clientList {
		if c.spec.Sync == SyncPoll {
			s.after(0, c.poll)
		} else {
			s.after(0, c.observe)
		}
	}
	for _, a := range s.sc.Actions {
		c := s.clients[a.User]
		switch a.Do {
		case DoSend:
			for i := range a.Count {
				s.after(a.At.D()+time.Duration(i)*a.Every.D(), func() { s.send(c, a) })
			}
		default:
			s.after(a.At.D(), func() { s.act(c, a) })
		}
	}
}

// act runs a create_room, invite or join action.
func (s *Sim) act(c *client, a ActionSpec) {
	invitees := make([]string, 0, len(a.Invite))
	for _, u := range a.Invite {
		invitees = append(invitees, s.clients[u].userID)
	}
	if a.Do == DoCreateRoom {
		body := map[string]any{"preset": "private_chat", "invite": invitees}
		c.do("POST", "/_matrix/client/v3/createRoom", body, func(ans answer) {
			var r struct {
				RoomID string `json:"room_id"`
			}
			if ans.Status != 200 || json.Unmarshal(ans.JSON, &r) != nil || r.RoomID == "" {
				s.fail("%s: create room %s: %d %s", c.spec.User, a.Room, ans.Status, ans.Errcode)
				return
			}
			s.rooms[a.Room] = r.RoomID
			c.joined[r.RoomID] = s.elapsed()
		})
		return
	}
	roomID, ok := s.rooms[a.Room]
	if !ok {
		s.fail("%s: %s %s: the room does not exist yet", c.spec.User, a.Do, a.Room)
		return
	}
	switch a.Do {
	case DoJoin:
		c.join(roomID)
	case DoInvite:
		c.invite(a.Room, roomID, invitees)
	}
}

// invite invites users to a room, one after the other.
func (c *client) invite(label, roomID string, users []string) {
	if len(users) == 0 {
		return
	}
	u := users[0]
	c.do("POST", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/invite", map[string]string{"user_id": u}, func(ans answer) {
		if ans.Status != 200 {
			c.s.fail("%s: invite %s to %s: %d %s", c.spec.User, u, label, ans.Status, ans.Errcode)
		}
		c.invite(label, roomID, users[1:])
	})
}

// send sends one message of a send action. Its expected recipients are
// the other clients joined to the room at this moment.
func (s *Sim) send(c *client, a ActionSpec) {
	m := &simMessage{id: len(s.msgs), from: c, sentAt: s.elapsed(), delivered: map[*client]time.Duration{}}
	s.msgs = append(s.msgs, m)
	roomID, ok := s.rooms[a.Room]
	if _, joined := c.joined[roomID]; !ok || !joined {
		m.failed = true
		s.fail("%s: send to %s: not in the room", c.spec.User, a.Room)
		return
	}
	m.roomID = roomID
	for _, o := range s.clientList {
		if _, in := o.joined[roomID]; in && o != c {
			m.expect = append(m.expect, o)
		}
	}
	text := a.Text
	if text == "" {
		text = "hello"
	}
	uri := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/s" + strconv.Itoa(m.id)
	c.do("PUT", uri, map[string]string{"msgtype": "m.text", "body": messageBody(text, m.id)}, func(ans answer) {
		if ans.Status != 200 {
			m.failed = true
			s.fail("%s: send #%d: %d %s", c.spec.User, m.id, ans.Status, ans.Errcode)
		}
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
