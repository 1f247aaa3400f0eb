// Package archtest holds the architecture rules of DESIGN.md written as
// tests, so that a future change cannot break a fence silently: the core
// never shells out but to launch verified plugins, the privileged runner
// makes no HTTP calls, plugins and the SDK never reach into the core, and
// the production binary links no simulator.
package archtest
