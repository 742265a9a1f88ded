package store

import "fmt"

// DeleteUserKeyBackups removes every server-side key backup of a user
// (versions and keys), for a deactivated account.
func (s *Store) DeleteUserKeyBackups(userID string) error {
	_, err := s.DB.Exec(`DELETE FROM key_backup_keys WHERE user_id = ?`, userID)
	if err == nil {
		_, err = s.DB.Exec(`DELETE FROM key_backup_versions WHERE user_id = ?`, userID)
	}
	if err != nil {
		return fmt.Errorf("store: delete key backups of %s: %w", userID, describe(err))
	}
	return nil
}
