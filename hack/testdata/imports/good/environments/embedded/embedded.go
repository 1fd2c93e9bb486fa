package embedded

import _ "example.com/layered/environments"
