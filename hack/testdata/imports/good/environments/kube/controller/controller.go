package controller

import _ "example.com/layered/environments/kube"
