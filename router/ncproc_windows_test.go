package router_test

// removeNcserver: the tests that run ncserver processes are Unix-only.
func removeNcserver() {}
