package event

import "fmt"

// RoomVersion names the rules one room version follows. Only the
// differences between versions 10, 11 and 12 are flags; everything common to
// them is simply how the code works. Spec: content/rooms/v10.md … v12.md.
type RoomVersion struct {
	// ID is the version string carried in m.room.create's room_version.
	ID string

	// NoFloats: canonical JSON in this version rejects non-integer numbers
	// and integers outside ±(2^53−1) anywhere in the event (v6 on).
	NoFloats bool

	// IntegerPowerLevels: power-level values must be JSON integers, not
	// strings (v10 on).
	IntegerPowerLevels bool

	// CreatorFromSender: the room creator is the create event's sender;
	// content.creator is gone and not checked (v11 on).
	CreatorFromSender bool

	// RedactsInContent: m.room.redaction's "redacts" lives in content, not
	// at the top level (v11 on).
	RedactsInContent bool

	// RedactionV11: use the v11 redaction algorithm (keeps all of the create
	// content, power levels' "invite", redaction's content.redacts and
	// member's third_party_invite.signed; drops top-level origin, membership
	// and prev_state). Member's join_authorised_via_users_server is kept by
	// both algorithms (v9 on).
	RedactionV11 bool

	// RoomIDFromCreate: the room ID is "!" + the create event's reference
	// hash; the create event has no room_id and is never listed in
	// auth_events (v12).
	RoomIDFromCreate bool

	// CreatorsHaveInfinitePower: the create event's sender and
	// content.additional_creators outrank every power level (v12).
	CreatorsHaveInfinitePower bool

	// StateResV21: state resolution with version 12's changes (the
	// conflicted state subgraph and starting iterative auth checks from an
	// empty state map).
	StateResV21 bool
}

var (
	// V10 is room version 10.
	V10 = &RoomVersion{ID: "10", NoFloats: true, IntegerPowerLevels: true}
	// V11 is room version 11.
	V11 = &RoomVersion{ID: "11", NoFloats: true, IntegerPowerLevels: true,
		CreatorFromSender: true, RedactsInContent: true, RedactionV11: true}
	// V12 is room version 12.
	V12 = &RoomVersion{ID: "12", NoFloats: true, IntegerPowerLevels: true,
		CreatorFromSender: true, RedactsInContent: true, RedactionV11: true,
		RoomIDFromCreate: true, CreatorsHaveInfinitePower: true, StateResV21: true}
)

// DefaultRoomVersion is the version new rooms get unless asked otherwise.
const DefaultRoomVersion = "10"

// LookupVersion returns the rules of a supported room version.
func LookupVersion(id string) (*RoomVersion, error) {
	switch id {
	case "10":
		return V10, nil
	case "11":
		return V11, nil
	case "12":
		return V12, nil
	}
	return nil, fmt.Errorf("event: unsupported room version %q", id)
}

// SupportedVersions lists the room versions this server implements.
func SupportedVersions() []*RoomVersion { return []*RoomVersion{V10, V11, V12} }
