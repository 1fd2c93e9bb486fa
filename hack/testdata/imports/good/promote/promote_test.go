package promote_test

import (
	_ "example.com/layered/promote"
	_ "example.com/layered/test/testenv"
)
