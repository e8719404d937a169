// Matrix driver for godbus (Go). usage: godbus-driver SCENARIO
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus"
)

const (
	iface     = "org.kdbusbridge.Compat"
	opath     = dbus.ObjectPath("/org/kdbusbridge/Compat")
	busName   = "org.freedesktop.DBus"
	busPath   = dbus.ObjectPath("/org/freedesktop/DBus")
	propIface = "org.freedesktop.DBus.Properties"
	large     = 32 * 1024 * 1024
)

var (
	fixture       = envOr("COMPAT_FIXTURE", iface+".Fixture")
	callee        = envOr("COMPAT_CALLEE", iface+".Callee")
	matchRule     = fmt.Sprintf("type='signal',interface='%s',member='Tick',arg0='yes',arg1='b1',path_namespace='%s/ns'", iface, opath)
	endRule       = fmt.Sprintf("type='signal',interface='%s',member='End'", iface)
	expectedTicks = []string{string(opath) + "/ns", string(opath) + "/ns/a/b"}
)

type failure string

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func check(cond bool, format string, args ...interface{}) {
	if !cond {
		panic(failure(fmt.Sprintf(format, args...)))
	}
}

func must(err error, what string) {
	if err != nil {
		panic(failure(fmt.Sprintf("%s: %v", what, err)))
	}
}

func equal(got, want interface{}, what string) {
	check(reflect.DeepEqual(got, want), "%s: got %v, want %v", what, got, want)
}

func token() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

func connect(address string) *dbus.Conn {
	uid := strconv.Itoa(os.Geteuid())
	methods := []dbus.Auth{dbus.AuthExternal(uid), dbus.AuthCookieSha1(uid, os.Getenv("HOME"))}
	if strings.HasPrefix(address, "tcp:") {
		// A tcp peer has no credentials to check EXTERNAL against: dbus-daemon
		// accepts it and then drops the connection at Hello.
		methods = []dbus.Auth{dbus.AuthCookieSha1(uid, os.Getenv("HOME")), dbus.AuthAnonymous()}
	}
	conn, err := dbus.Connect(address, dbus.WithAuth(methods...))
	must(err, "connect "+address)
	return conn
}

func unique(c *dbus.Conn) string { return c.Names()[0] }

func driverCall(c *dbus.Conn, member string, out interface{}, args ...interface{}) error {
	call := c.BusObject().Call(busName+"."+member, 0, args...)
	if call.Err != nil || out == nil {
		return call.Err
	}
	return call.Store(out)
}

func fix(c *dbus.Conn) dbus.BusObject { return c.Object(fixture, opath) }

func errorName(err error) (string, string) {
	if e, ok := err.(dbus.Error); ok {
		msg := ""
		if len(e.Body) > 0 {
			msg, _ = e.Body[0].(string)
		}
		return e.Name, msg
	}
	return "", ""
}

func signalChan(c *dbus.Conn) chan *dbus.Signal {
	ch := make(chan *dbus.Signal, 256)
	c.Signal(ch)
	return ch
}

// waitSignal returns the signals received until one satisfies stop, or fails.
func waitSignal(ch chan *dbus.Signal, stop func(*dbus.Signal) bool, what string) []*dbus.Signal {
	var seen []*dbus.Signal
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			seen = append(seen, s)
			if stop(s) {
				return seen
			}
		case <-deadline:
			panic(failure(what))
		}
	}
}

func hello(address string) {
	c := connect(address)
	check(strings.HasPrefix(unique(c), ":"), "unique name %q", unique(c))
	var owner string
	must(driverCall(c, "GetNameOwner", &owner, unique(c)), "GetNameOwner")
	equal(owner, unique(c), "GetNameOwner(self)")
	var names []string
	must(driverCall(c, "ListNames", &names), "ListNames")
	found := false
	for _, n := range names {
		found = found || n == busName
	}
	check(found, "ListNames lacks the driver")
}

func names() {
	a, b, c := connect(os.Getenv("COMPAT_ADDRESS")), connect(os.Getenv("COMPAT_ADDRESS")), connect(os.Getenv("COMPAT_ADDRESS"))
	sa, sb := signalChan(a), signalChan(b)
	name := "org.kdbusbridge.Compat.N" + token()
	r, err := a.RequestName(name, dbus.NameFlagAllowReplacement|dbus.NameFlagDoNotQueue)
	must(err, "A RequestName")
	equal(r, dbus.RequestNameReplyPrimaryOwner, "A RequestName")
	r, err = b.RequestName(name, dbus.NameFlagDoNotQueue)
	must(err, "B RequestName")
	equal(r, dbus.RequestNameReplyExists, "B RequestName DO_NOT_QUEUE")
	r, err = b.RequestName(name, 0)
	must(err, "B RequestName")
	equal(r, dbus.RequestNameReplyInQueue, "B RequestName queued")
	var queued []string
	must(driverCall(a, "ListQueuedOwners", &queued, name), "ListQueuedOwners")
	equal(queued, []string{unique(a), unique(b)}, "ListQueuedOwners")
	r, err = c.RequestName(name, dbus.NameFlagReplaceExisting|dbus.NameFlagDoNotQueue)
	must(err, "C RequestName")
	equal(r, dbus.RequestNameReplyPrimaryOwner, "C RequestName REPLACE_EXISTING")
	var owner string
	must(driverCall(a, "GetNameOwner", &owner, name), "GetNameOwner")
	equal(owner, unique(c), "owner after replacement")
	rr, err := c.ReleaseName(name)
	must(err, "C ReleaseName")
	equal(rr, dbus.ReleaseNameReplyReleased, "C ReleaseName")
	must(driverCall(a, "GetNameOwner", &owner, name), "GetNameOwner")
	equal(owner, unique(b), "owner after release")
	waitSignal(sa, func(s *dbus.Signal) bool {
		return s.Name == busName+".NameLost" && s.Body[0] == name
	}, "A got no NameLost")
	waitSignal(sb, func(s *dbus.Signal) bool {
		return s.Name == busName+".NameAcquired" && s.Body[0] == name
	}, "B got no NameAcquired")
}

func call() {
	c := connect(os.Getenv("COMPAT_ADDRESS"))
	t := token()
	var s string
	must(fix(c).Call(iface+".Echo", 0, t).Store(&s), "Echo")
	equal(s, t, "Echo")
	var n int32
	must(fix(c).Call(iface+".Add", 0, int32(40), int32(2)).Store(&n), "Add")
	equal(n, int32(42), "Add")
	err := fix(c).Call(iface+".Fail", 0, "boom").Err
	check(err != nil, "Fail() returned")
	name, msg := errorName(err)
	equal([]string{name, msg}, []string{iface + ".Error.Failed", "boom"}, "error")
	err = driverCall(c, "GetNameOwner", &s, "org.kdbusbridge.Nobody")
	name, _ = errorName(err)
	equal(name, busName+".Error.NameHasNoOwner", "GetNameOwner(nobody)")
}

func addMatch(c *dbus.Conn, rule string) {
	must(driverCall(c, "AddMatch", nil, rule), "AddMatch")
}

func signals() {
	c := connect(os.Getenv("COMPAT_ADDRESS"))
	ch := signalChan(c)
	addMatch(c, matchRule)
	addMatch(c, endRule)
	must(fix(c).Call(iface+".EmitMatches", 0).Err, "EmitMatches")
	seen := waitSignal(ch, func(s *dbus.Signal) bool { return s.Name == iface+".End" }, "no End signal")
	var ticks []string
	for _, s := range seen {
		if s.Name == iface+".Tick" || s.Name == iface+".Tock" {
			ticks = append(ticks, string(s.Path))
		}
	}
	equal(ticks, expectedTicks, "matched signals")
}

func unicast() {
	c, observer := connect(os.Getenv("COMPAT_ADDRESS")), connect(os.Getenv("COMPAT_ADDRESS"))
	got, watched := signalChan(c), signalChan(observer)
	addMatch(observer, fmt.Sprintf("type='signal',interface='%s'", iface))
	t := token()
	must(fix(c).Call(iface+".EmitTo", 0, unique(c), t).Err, "EmitTo")
	seen := waitSignal(got, func(s *dbus.Signal) bool { return s.Name == iface+".Unicast" }, "unicast signal missing")
	equal(seen[len(seen)-1].Body, []interface{}{t}, "unicast body")
	for _, s := range waitSignal(watched, func(s *dbus.Signal) bool { return s.Name == iface+".End" }, "observer saw no End") {
		check(s.Name != iface+".Unicast", "a unicast signal reached a non-recipient")
	}
}

func fds() {
	c := connect(os.Getenv("COMPAT_ADDRESS"))
	check(c.SupportsUnixFDs(), "fd passing not negotiated")
	t := token()
	var p [2]int
	must(syscall.Pipe(p[:]), "pipe")
	_, _ = syscall.Write(p[1], []byte(t))
	syscall.Close(p[1])
	var s string
	must(fix(c).Call(iface+".ReadFd", 0, dbus.UnixFD(p[0])).Store(&s), "ReadFd")
	equal(s, t, "ReadFd")
	var fd dbus.UnixFD
	must(fix(c).Call(iface+".MakeFd", 0, t).Store(&fd), "MakeFd")
	f := os.NewFile(uintptr(fd), "fd")
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	equal(string(buf[:n]), t, "MakeFd content")
}

func properties() {
	c := connect(os.Getenv("COMPAT_ADDRESS"))
	v, err := fix(c).GetProperty(iface + ".Name")
	must(err, "Get Name")
	equal(v.Value(), "compat-fixture", "Get Name")
	must(fix(c).SetProperty(iface+".Count", dbus.MakeVariant(int32(42))), "Set Count")
	v, err = fix(c).GetProperty(iface + ".Count")
	must(err, "Get Count")
	equal(v.Value(), int32(42), "Get Count after Set")
	var all map[string]dbus.Variant
	must(fix(c).Call(propIface+".GetAll", 0, iface).Store(&all), "GetAll")
	equal(all["Count"].Value(), int32(42), "GetAll Count")
	var xml string
	must(fix(c).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml), "Introspect")
	check(strings.Contains(xml, `<interface name="`+iface+`">`) && strings.Contains(xml, `name="Echo"`), "Introspect lacks the interface")
}

func pattern(size int) []byte {
	out := make([]byte, size)
	for i := range out {
		out[i] = byte((i % (251 * 64)) % 251)
	}
	return out
}

func large_() {
	c := connect(os.Getenv("COMPAT_ADDRESS"))
	data := pattern(large)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	var n uint32
	var d string
	must(fix(c).Call(iface+".Digest", 0, data).Store(&n, &d), "Digest")
	equal([]interface{}{n, d}, []interface{}{uint32(large), digest}, "Digest of 32 MiB")
	var blob []byte
	must(fix(c).Call(iface+".Blob", 0, uint32(large)).Store(&blob), "Blob")
	check(len(blob) == large && bytes.Equal(blob, data), "32 MiB reply: %d bytes differ", len(blob))
}

func monitor() {
	mon, c := connect(os.Getenv("COMPAT_ADDRESS")), connect(os.Getenv("COMPAT_ADDRESS"))
	ch := make(chan *dbus.Message, 1024)
	// Eavesdrop hands every message to us; a monitor must never answer calls.
	mon.Eavesdrop(ch)
	must(mon.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", dbus.FlagNoReplyExpected, []string{}, uint32(0)).Err, "BecomeMonitor")
	time.Sleep(200 * time.Millisecond)
	t := token()
	var s string
	must(fix(c).Call(iface+".Echo", 0, t).Store(&s), "Echo")
	got := map[dbus.Type]bool{}
	deadline := time.After(5 * time.Second)
	for !(got[dbus.TypeMethodCall] && got[dbus.TypeMethodReply]) {
		select {
		case m := <-ch:
			if len(m.Body) == 1 && m.Body[0] == t {
				got[m.Type] = true
			}
		case <-deadline:
			check(got[dbus.TypeMethodCall], "monitor did not see the call")
			check(false, "monitor did not see the reply")
		}
	}
}

func noreply() {
	c := connect(os.Getenv("COMPAT_ADDRESS"))
	ch := signalChan(c)
	addMatch(c, fmt.Sprintf("type='signal',sender='%s',member='NameOwnerChanged',arg0='%s'", busName, callee))
	var owner string
	must(driverCall(c, "GetNameOwner", &owner, callee), "GetNameOwner(callee)")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := c.Object(callee, opath).CallWithContext(ctx, iface+".Hang", 0).Err
	check(err != nil, "Hang() returned")
	name, _ := errorName(err)
	equal(name, busName+".Error.NoReply", "error of the pending call")
	seen := waitSignal(ch, func(s *dbus.Signal) bool { return s.Name == busName+".NameOwnerChanged" }, "no NameOwnerChanged")
	equal(seen[len(seen)-1].Body, []interface{}{callee, owner, ""}, "NameOwnerChanged")
}

func main() {
	scenarios := map[string]func(){
		"hello-unix": func() { hello(os.Getenv("COMPAT_ADDRESS")) },
		"hello-tcp":  func() { hello(os.Getenv("COMPAT_TCP_ADDRESS")) },
		"names":      names, "call": call, "signals": signals, "unicast": unicast, "fds": fds,
		"properties": properties, "large": large_, "monitor": monitor, "noreply": noreply,
	}
	fn, ok := scenarios[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, "not expressible with this client")
		os.Exit(77)
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, strings.ReplaceAll(fmt.Sprint(r), "\n", " "))
			os.Exit(1)
		}
	}()
	fn()
}
