package homeserver

// routeGroups builds the node's route table: one function per area, each
// returning its routes (and keeping its per-node state in closures or in
// Node.SetModule). Add a group by adding its function to this list.
var routeGroups = []func(n *Node) ([]Route, error){
	infoRoutes,
	accountRoutes,
	roomRoutes,
	federationRoutes,
	e2eeRoutes,
	crossSigningRoutes, // cross-signing (e2ee_xsign.go); needs e2eeRoutes first
	mediaRoutes,
	relationRoutes, // relations, threads, search (relations.go); needs roomRoutes first
	userRoutes,     // user directory, content reports (user_directory.go, report.go); needs roomRoutes first
	// server-side key backups, /room_keys (keybackup.go)
	keyBackupRoutes,
	pusherRoutes, // pushers and push notifications (pushers.go, pushers_send.go)
	// room upgrades (room_upgrade.go), jump to date (timestamp.go); needs roomRoutes first
	roomUpgradeRoutes,
	slidingSyncRoutes, // simplified sliding sync, MSC4186 (slidingsync.go); needs roomRoutes first
}
