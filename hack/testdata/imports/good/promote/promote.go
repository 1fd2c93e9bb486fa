package promote

import (
	_ "example.com/layered/environments"
	_ "example.com/layered/store"
)
