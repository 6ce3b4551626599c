//go:build windows

package main

import (
	"golang.org/x/sys/windows/svc"
)

// serviceName is the name ncserver gives the service manager. A service
// in a process of its own, as ncserver is, is known by the name it was
// created with (sc.exe create <name>), whatever this says.
const serviceName = "ncserver"

// runAsService runs a under the Windows service manager when that is
// what started ncserver, and reports whether it was.
func runAsService(a *app) (code int, ok bool) {
	is, err := svc.IsWindowsService()
	if err != nil {
		a.log.Warn("cannot tell whether ncserver runs as a service; running as a console program", "err", err)
		return 0, false
	}
	if !is {
		return 0, false
	}
	h := &service{a: a}
	if err := svc.Run(serviceName, h); err != nil {
		a.log.Error("the service manager did not run ncserver as a service", "err", err)
		return exitFailed, true
	}
	return h.code, true
}

// service is ncserver's handler of the service manager's requests.
type service struct {
	a    *app
	code int // the exit status, once Execute has returned
}

// accepts are the requests ncserver takes once it runs.
const accepts = svc.AcceptStop | svc.AcceptShutdown | svc.AcceptParamChange

// Execute runs the server as runUntilStopped does for the console, and
// reports its state to the service manager: StartPending until the
// channels are served, then Running, StopPending once asked to stop.
// Stop and Shutdown stop it gracefully, as SIGTERM does; ParamChange
// reloads the configuration file, as SIGHUP does.
func (h *service) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (svcSpecificEC bool, exitCode uint32) {
	status := svc.Status{State: svc.StartPending}
	s <- status
	stop := make(chan struct{})
	reload := make(chan struct{}, 1)
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		code, _ := h.a.runUntilStopped(controls{stop: stop, reload: reload}, func() { close(ready) })
		done <- code
	}()
	stopping := false
	for {
		select {
		case <-ready:
			ready = nil
			if !stopping {
				status = svc.Status{State: svc.Running, Accepts: accepts}
				s <- status
			}
		case code := <-done:
			h.code = code
			// Execute returning tells the service manager it has stopped.
			return code != exitOK, uint32(code)
		case c := <-r:
			switch c.Cmd {
			case svc.Interrogate:
				s <- status
			case svc.Stop, svc.Shutdown:
				if !stopping {
					stopping = true
					status = svc.Status{State: svc.StopPending}
					s <- status
					close(stop)
				}
			case svc.ParamChange:
				select {
				case reload <- struct{}{}:
				default: // a reload is pending already
				}
			}
		}
	}
}
