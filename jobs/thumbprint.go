package jobs

import (
	"crypto/sha1" //nolint:gosec // Apinizer identifies certificates by SHA-1 thumbprint.
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
)

// ErrNoCertificate: a PEM text holds no CERTIFICATE block.
var ErrNoCertificate = errors.New("no CERTIFICATE block in the PEM text")

// FirstCertificate is the DER of the first CERTIFICATE block in pemText, nil
// if there is none: the certificate a job uploads, whose thumbprint
// expectedThumbprint and live speak of.
func FirstCertificate(pemText string) []byte {
	rest := []byte(pemText)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil
		}
		if block.Type == "CERTIFICATE" {
			return block.Bytes
		}
	}
}

// Thumbprint is the SHA-1 thumbprint of the first CERTIFICATE block in
// pemText, upper-case hex without separators, as Apinizer shows it.
func Thumbprint(pemText string) (string, error) {
	der := FirstCertificate(pemText)
	if der == nil {
		return "", ErrNoCertificate
	}
	return DERThumbprint(der), nil
}

// DERThumbprint is the SHA-1 thumbprint of a DER certificate, as Apinizer
// shows it.
func DERThumbprint(der []byte) string {
	sum := sha1.Sum(der) //nolint:gosec // a thumbprint, not a signature
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
