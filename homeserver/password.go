package homeserver

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// maxPasswordBytes is bcrypt's input limit; longer passwords are refused
// rather than silently truncated.
const maxPasswordBytes = 72

// HashPassword hashes a password with bcrypt at the given cost.
func HashPassword(password string, cost int) (string, error) {
	if err := checkPasswordShape(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

func checkPasswordShape(password string) error {
	if password == "" {
		return Errorf(400, ErrCodeWeakPassword, "password must not be empty")
	}
	if len(password) > maxPasswordBytes {
		return Errorf(400, ErrCodeInvalidParam, "password is longer than %d bytes", maxPasswordBytes)
	}
	return nil
}

// passwordMatches compares a password with a stored hash in constant time.
// An empty hash (no password set) never matches.
func passwordMatches(hash, password string) bool {
	if hash == "" || password == "" || len(password) > maxPasswordBytes {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
