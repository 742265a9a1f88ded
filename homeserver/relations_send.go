package homeserver

// Checks on relations a client sends. Spec: client-server-api "Event
// annotations and reactions" (a second annotation with the same key by
// the same sender on the same event is refused, 400
// M_DUPLICATE_ANNOTATION) and "Threading" (a thread cannot start from an
// event that itself has a relation: 400 M_UNKNOWN).

import "encoding/json"

// ErrCodeDuplicateAnnotation refuses a repeated annotation.
const ErrCodeDuplicateAnnotation = "M_DUPLICATE_ANNOTATION"

// checkSentRelation checks the m.relates_to of an event a local user
// sends.
func (rs *roomsModule) checkSentRelation(sender string, content json.RawMessage) error {
	var c struct {
		RelatesTo *struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
			Key     string `json:"key"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || c.RelatesTo == nil || c.RelatesTo.EventID == "" {
		return nil
	}
	r := c.RelatesTo
	switch r.RelType {
	case "m.annotation":
		if r.Key == "" {
			return nil
		}
		dup, err := rs.st.HasAnnotation(r.EventID, sender, r.Key)
		if err != nil {
			return err
		}
		if dup {
			return Errorf(400, ErrCodeDuplicateAnnotation, "you already annotated %s with %q", r.EventID, r.Key)
		}
	case "m.thread":
		child, err := rs.st.IsRelationChild(r.EventID)
		if err != nil {
			return err
		}
		if child {
			return Errorf(400, ErrCodeUnknown, "%s has a relation itself and cannot start a thread", r.EventID)
		}
	}
	return nil
}
