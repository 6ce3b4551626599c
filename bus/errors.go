package bus

import (
	"errors"
	"fmt"

	"github.com/netcluster/netcluster/internal/wire"
)

// Errors a caller can branch on.
var (
	// ErrClosed is returned by calls on a client after Close.
	ErrClosed = errors.New("bus: client closed")
	// ErrNoServer means no ncserver is listening on the channel's socket.
	ErrNoServer = errors.New("bus: no server is serving the channel")
	// ErrDisconnected is returned by Emit once the client has ended
	// because its connection broke (the cause went to the ErrorHandler),
	// and by Request when the connection breaks before the reply comes
	// or while the client is reconnecting.
	ErrDisconnected = errors.New("bus: disconnected from the server")
	// ErrBufferFull is returned by Emit while the client is disconnected
	// and reconnecting, when the event does not fit in what is left of
	// the reconnect buffer (ReconnectBuffer): the event is not sent.
	// errors.Is(ErrBufferFull, ErrDisconnected) is true.
	ErrBufferFull error = bufferFullError{}
	// ErrPingTimeout is why a connection ended when the server sent
	// nothing, not even the answer to a ping, for the ping timeout (option
	// Ping). The ErrorHandler and OnDisconnect get it wrapped.
	ErrPingTimeout = errors.New("bus: the server stopped answering")
	// ErrFrameTooBig is returned by Emit for an event over the server's
	// maxframe, and is why a connection ends when the server sends one
	// over the client's.
	ErrFrameTooBig = wire.ErrFrameTooBig
	// ErrWrongServer means the socket is served by a process of another
	// user than the one the ServerUID option names; the error is a
	// *ServerUIDError. Dial returns it before it has sent anything.
	ErrWrongServer = errors.New("bus: the socket is served by another user")
)

// errNoPeerCred is why ServerUID fails on a system that does not tell a
// socket's peer credentials.
var errNoPeerCred = errors.New("this system does not tell who serves a socket")

// ServerUIDError is Dial's error when the process that serves the socket
// runs as another user than the ServerUID option names. It matches
// ErrWrongServer with errors.Is.
type ServerUIDError struct {
	Path      string // the socket
	Want, Got int    // the uid ServerUID names, the server's
}

func (e *ServerUIDError) Error() string {
	return fmt.Sprintf("bus: socket %s is served by a process of uid %d, not of uid %d (option ServerUID): not connecting", e.Path, e.Got, e.Want)
}

// Is makes errors.Is(err, ErrWrongServer) true.
func (e *ServerUIDError) Is(target error) bool { return target == ErrWrongServer }

type bufferFullError struct{}

func (bufferFullError) Error() string { return "bus: disconnected, and the reconnect buffer is full" }

// Is makes errors.Is(ErrBufferFull, ErrDisconnected) true.
func (bufferFullError) Is(target error) bool { return target == ErrDisconnected }

// ServerError is an error frame from the server: the reason it closed the
// connection.
type ServerError struct {
	Code    ErrorCode
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("bus: server closed the connection: %v: %s", e.Code, e.Message)
}

// MaxEventName is the longest event name, in bytes.
const MaxEventName = wire.MaxEventName

// ErrorCode classifies a ServerError: why the server closed the
// connection. PROTOCOL.md lists the codes.
type ErrorCode = wire.ErrorCode

// The codes a ServerError carries.
const (
	CodeProtocol     = wire.CodeProtocol     // the client sent a malformed frame
	CodeFrameTooBig  = wire.CodeFrameTooBig  // a frame over the server's maxframe
	CodeVersion      = wire.CodeVersion      // no protocol version in common
	CodeSlowConsumer = wire.CodeSlowConsumer // the client fell too far behind its channel
	CodeShutdown     = wire.CodeShutdown     // the server is shutting down
	CodeChannelGone  = wire.CodeChannelGone  // the channel was removed from the configuration
	CodeHandshake    = wire.CodeHandshake    // no hello within the handshake time
	CodePingTimeout  = wire.CodePingTimeout  // nothing from the client for the server's ping timeout
	// The channel's access rules refuse the client: its user may not
	// connect (allow), or may not publish (publish). The client does not
	// reconnect.
	CodeForbidden = wire.CodeForbidden
	// The channel or the client's user has as many clients as the
	// server allows (maxclients, maxclientsperuid). The client keeps
	// trying to reconnect, with its backoff.
	CodeTooManyClients = wire.CodeTooManyClients
)
