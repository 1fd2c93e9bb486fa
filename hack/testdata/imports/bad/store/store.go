package store

import _ "example.com/layered/promote"
