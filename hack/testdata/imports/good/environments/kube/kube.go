package kube

import _ "example.com/layered/environments"
