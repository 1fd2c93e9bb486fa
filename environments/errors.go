package environments

import "errors"

// ErrRefusedImage is wrapped by the error of an image refused for what it
// is, not for where it is: a layer the unpacker will not write (a name
// climbing out of the root, a link escaping it, a device file), bytes
// whose digest is not the one asked for, a manifest that is not an
// image, an image over the size limits. Trying again cannot help; the API
// answers 422 with the reason. A registry that cannot be reached is not
// a refusal.
var ErrRefusedImage = errors.New("image refused")

// RefusedImage marks err as a refusal of the image itself; its message
// stays err's.
func RefusedImage(err error) error {
	if err == nil {
		return nil
	}
	return refusal{err}
}

type refusal struct{ err error }

func (r refusal) Error() string        { return r.err.Error() }
func (r refusal) Unwrap() error        { return r.err }
func (r refusal) Is(target error) bool { return target == ErrRefusedImage }
