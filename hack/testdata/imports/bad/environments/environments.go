package environments

import _ "example.com/layered/watcher"
