package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runPKI issues the test cluster's keys and certificates:
//
//	pki ca   --out PREFIX --cn NAME                 (PREFIX.crt, PREFIX.key)
//	pki cert --ca PREFIX --out PREFIX --cn CN [--org O]... [--san HOST|IP]... [--server] [--client]
//	pki rsa  --out PREFIX                           (PREFIX.key, PREFIX.pub: service-account keys)
func runPKI(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: kcluster pki ca|cert|rsa [flags]")
		return 2
	}
	fs := flag.NewFlagSet("pki "+args[0], flag.ExitOnError)
	out := fs.String("out", "", "output path prefix")
	cn := fs.String("cn", "", "subject common name")
	caPrefix := fs.String("ca", "", "CA path prefix (cert)")
	server := fs.Bool("server", false, "server auth usage")
	client := fs.Bool("client", false, "client auth usage")
	var orgs, sans multiFlag
	fs.Var(&orgs, "org", "subject organization (repeatable)")
	fs.Var(&sans, "san", "subject alternative name (repeatable)")
	_ = fs.Parse(args[1:])
	if *out == "" {
		fmt.Fprintln(os.Stderr, "pki: --out is required")
		return 2
	}
	var err error
	switch args[0] {
	case "ca":
		err = issueCA(*out, *cn)
	case "cert":
		err = issueCert(*caPrefix, *out, *cn, orgs, sans, *server, *client)
	case "rsa":
		err = writeRSA(*out)
	default:
		err = fmt.Errorf("unknown pki command %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pki:", err)
		return 1
	}
	return 0
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func issueCA(out, cn string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writePair(out, der, key)
}

func issueCert(caPrefix, out, cn string, orgs, sans []string, server, client bool) error {
	caCert, caKey, err := readPair(caPrefix)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writePair(out, der, key)
}

func writeRSA(out string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(out+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func writePair(out string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(out+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

func readPair(prefix string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(prefix + ".crt")
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(prefix + ".key")
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("bad PEM in %s.crt/.key", prefix)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}
