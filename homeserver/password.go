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

// hashForCall hashes password away from the loop (Node.Offload) and then,
// back in the loop, calls then with the hash unless c was answered or
// cancelled meanwhile; a hashing error (an empty or too long password
// included) fails c.
func (n *Node) hashForCall(c *Call, password string, then func(hash string)) {
	var hash string
	n.Offload(func() (err error) {
		hash, err = HashPassword(password, n.cfg.BcryptCost)
		return err
	}, func(err error) {
		if c.Done() {
			return
		}
		if err != nil {
			c.Fail(err)
			return
		}
		then(hash)
	})
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
