package gitauth_test

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferrycd/ferry/internal/gitauth"
)

// A password in the URL is refused, and not shown.
func ExampleCheck() {
	_, err := gitauth.Check("https://alice:s3cret@git.example.com/app.git", gitauth.Credentials{}, gitauth.Use{Holder: "the source"})
	fmt.Println(err)
	// Output: url "https://REDACTED@git.example.com/app.git" holds credentials; give them as the username and password instead, so that they are never shown
}

// A push refused for want of credentials says what to give, and to whom.
func ExampleRemote_Explain() {
	r, err := gitauth.Check("https://git.example.com/gitops.git", gitauth.Credentials{}, gitauth.Use{Push: true, Holder: "the exporter"})
	if err != nil {
		panic(err)
	}
	reason, advice, _ := r.Explain(fmt.Errorf("pushing: %w", transport.ErrAuthenticationRequired))
	fmt.Println(reason + "; " + advice)
	// Output: authentication required; give the exporter a username and a token (as its password) that may push to the repository
}
