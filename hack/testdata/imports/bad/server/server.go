package server

import _ "example.com/layered/test/testenv"
