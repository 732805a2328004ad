package testenv

import "net/http"

// EchoUpgrade is an upstream that switches every request to a line echo
// protocol ("Upgrade: echo", answered 101 Switching Protocols), then
// echoes each line it reads until the connection ends, which it reports
// on ended (without blocking when ended is full).
func EchoUpgrade(ended chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				select {
				case ended <- struct{}{}:
				default:
				}
				return
			}
			brw.WriteString(line)
			brw.Flush()
		}
	}
}
