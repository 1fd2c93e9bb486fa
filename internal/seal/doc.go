// Package seal keeps secrets unreadable at rest: it seals a value with
// AES-256-GCM under ferry's secret key before the store writes it, and
// opens it again when ferry needs it.
//
// The key comes from FERRY_SECRET_KEY (32 bytes in base64) when that is set,
// else from the file secret.key in the data folder, created with mode 0600
// the first time. Losing the key loses the sealed secrets (the sources added
// through the API must be given them again); a copy of the data folder
// without the key reveals none of them.
//
// AES-GCM from the standard library is used rather than a home-made scheme:
// each value gets a fresh random nonce, and the associated data names where
// the value belongs ("source/demo/password"), so a sealed value copied into
// another row or field does not open there.
package seal
