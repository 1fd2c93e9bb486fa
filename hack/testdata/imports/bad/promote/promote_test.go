package promote_test

import _ "example.com/layered/environments/kube"
