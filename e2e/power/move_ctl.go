package power

import (
	"fmt"

	"github.com/migrated/migrated/e2e/power/ctl"
)

// ctlPut is the request writing data to path in a guest with mtime st.
func ctlPut(path string, st fileStamp, data []byte) ctl.Request {
	return ctl.Request{Argv: []string{"/bin/movefs", "put", path, fmt.Sprint(st.Sec), fmt.Sprint(st.Nsec)}, Stdin: data}
}
