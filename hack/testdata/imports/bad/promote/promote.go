package promote

import _ "example.com/layered/environments/embedded"
