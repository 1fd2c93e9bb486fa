package testenv

import _ "example.com/layered/environments/embedded"
