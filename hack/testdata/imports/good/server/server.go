package server

import (
	_ "example.com/layered/environments/embedded"
	_ "example.com/layered/environments/kube"
	_ "example.com/layered/promote"
)
