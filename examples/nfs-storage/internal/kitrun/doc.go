// Package kitrun runs the conformance kit on a plugin binary named by the
// environment, in a `go test` process of its own. broken_test.go uses it
// to show that the kit fails a non-conforming plugin, and with what
// message, without failing its own test: plugintest.Run reports through
// the *testing.T it is given, so a failure can only be observed from
// outside the test process.
package kitrun

// EnvBinary names the plugin binary TestKit runs the kit on.
const EnvBinary = "FELHOM_KITRUN_BINARY"
