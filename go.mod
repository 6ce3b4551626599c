module github.com/netcluster/netcluster

go 1.26.0

require (
	github.com/Microsoft/go-winio v0.6.4
	github.com/google/uuid v1.6.0
	github.com/tailscale/hujson v0.0.0-20260727124030-b80ff77dac4f
	github.com/vmihailenco/msgpack/v5 v5.4.1
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.49.0
)

require github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
