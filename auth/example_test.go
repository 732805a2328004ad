package auth_test

import (
	"errors"
	"fmt"

	"github.com/tollgate-dev/tollgate/auth"
)

func ExampleNewKey() {
	secret, err := auth.NewKey(true)
	if err != nil {
		panic(err)
	}
	// Show secret to its owner once; keep only these two.
	hash := auth.Hash(secret)
	start := auth.Start(secret)

	fmt.Println(len(secret), len(hash), start[:8], len(start))
	// Output: 46 32 tg_live_ 12
}

func ExampleParseKey() {
	secret, err := auth.NewKey(false)
	if err != nil {
		panic(err)
	}
	p, err := auth.ParseKey(secret)
	fmt.Println(p.Prefix, p.Live(), err)

	// One changed character fails the checksum, without any store lookup.
	typo := secret[:20] + "!" + secret[21:]
	_, err = auth.ParseKey(typo)
	fmt.Println(errors.Is(err, auth.ErrMalformed))
	// Output:
	// tg_test_ false <nil>
	// true
}
