//! Matrix driver for zbus (Rust). usage: zbus-driver SCENARIO
use std::convert::TryFrom;
use std::io::{Read, Write};
use std::os::unix::io::FromRawFd;
use std::process::{exit, Command, Stdio};
use std::time::Duration;

use zbus::{Connection, Message, MessageType};
use zvariant::{Fd, OwnedValue};

const IFACE: &str = "org.kdbusbridge.Compat";
const OPATH: &str = "/org/kdbusbridge/Compat";
const DBUS: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";
const PROPS: &str = "org.freedesktop.DBus.Properties";
const LARGE: usize = 32 * 1024 * 1024;

type R = Result<(), String>;

fn env(key: &str, fallback: &str) -> String {
    std::env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| fallback.to_string())
}
fn fixture() -> String { env("COMPAT_FIXTURE", &format!("{}.Fixture", IFACE)) }
fn callee() -> String { env("COMPAT_CALLEE", &format!("{}.Callee", IFACE)) }
fn address() -> String { env("COMPAT_ADDRESS", "") }

fn check(cond: bool, what: &str) -> R {
    if cond { Ok(()) } else { Err(what.to_string()) }
}
fn equal<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> R {
    if got == want { Ok(()) } else { Err(format!("{}: got {:?}, want {:?}", what, got, want)) }
}
fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{}: {}", what, err)
}

fn token() -> String {
    let mut b = [0u8; 6];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("urandom");
    format!("t{}", b.iter().map(|x| format!("{:02x}", x)).collect::<String>())
}

// zbus receives without a timeout: a watchdog turns a missing message into a failure.
fn deadline(what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        eprintln!("{}", what);
        exit(1);
    });
}

fn connect() -> Result<Connection, String> {
    Connection::new_for_address(&address(), true).map_err(e("connect"))
}

fn call<B: serde::Serialize + zvariant::Type>(c: &Connection, dest: &str, path: &str, iface: &str, member: &str, body: &B) -> zbus::Result<Message> {
    c.call_method(Some(dest), path, Some(iface), member, body)
}
fn driver<B: serde::Serialize + zvariant::Type>(c: &Connection, member: &str, body: &B) -> zbus::Result<Message> {
    call(c, DBUS, DBUS_PATH, DBUS, member, body)
}
fn fix<B: serde::Serialize + zvariant::Type>(c: &Connection, member: &str, body: &B) -> zbus::Result<Message> {
    call(c, &fixture(), OPATH, IFACE, member, body)
}
fn unique(c: &Connection) -> String { c.unique_name().unwrap_or("").to_string() }

fn name_owner(c: &Connection, name: &str) -> Result<String, String> {
    driver(c, "GetNameOwner", &name).map_err(e("GetNameOwner"))?.body::<String>().map_err(e("GetNameOwner body"))
}

fn method_error(r: zbus::Result<Message>) -> Result<(String, String), String> {
    match r {
        Err(zbus::Error::MethodError(name, detail, _)) => Ok((name, detail.unwrap_or_default())),
        Err(other) => Err(format!("unexpected error {}", other)),
        Ok(_) => Err("call returned".to_string()),
    }
}

struct Info { kind: MessageType, path: String, iface: String, member: String }
fn info(m: &Message) -> Info {
    let h = m.header().expect("header");
    Info {
        kind: h.message_type().expect("type"),
        path: h.path().ok().flatten().map(|p| p.as_str().to_string()).unwrap_or_default(),
        iface: h.interface().ok().flatten().unwrap_or("").to_string(),
        member: h.member().ok().flatten().unwrap_or("").to_string(),
    }
}
fn is_signal(i: &Info, iface: &str, member: &str) -> bool {
    i.kind == MessageType::Signal && i.iface == iface && i.member == member
}

fn hello() -> R {
    let c = connect()?;
    let me = unique(&c);
    check(me.starts_with(':'), &format!("unique name {:?}", me))?;
    equal(name_owner(&c, &me)?, me.clone(), "GetNameOwner(self)")?;
    let names: Vec<String> = driver(&c, "ListNames", &()).map_err(e("ListNames"))?.body().map_err(e("ListNames body"))?;
    check(names.iter().any(|n| n == DBUS), "ListNames lacks the driver")
}

fn wait_name_signal(c: &Connection, member: &str, name: &str) -> R {
    loop {
        let m = c.receive_message().map_err(e("receive"))?;
        if is_signal(&info(&m), DBUS, member) && m.body::<String>().ok().as_deref() == Some(name) {
            return Ok(());
        }
    }
}

fn names() -> R {
    let (a, b, c) = (connect()?, connect()?, connect()?);
    let name = format!("org.kdbusbridge.Compat.N{}", token());
    let request = |conn: &Connection, flags: u32| -> Result<u32, String> {
        driver(conn, "RequestName", &(name.as_str(), flags)).map_err(e("RequestName"))?.body::<u32>().map_err(e("RequestName body"))
    };
    equal(request(&a, 1 | 4)?, 1, "A RequestName")?;
    equal(request(&b, 4)?, 3, "B RequestName DO_NOT_QUEUE")?;
    equal(request(&b, 0)?, 2, "B RequestName queued")?;
    let queued: Vec<String> = driver(&a, "ListQueuedOwners", &name.as_str()).map_err(e("ListQueuedOwners"))?.body().map_err(e("body"))?;
    equal(queued, vec![unique(&a), unique(&b)], "ListQueuedOwners")?;
    equal(request(&c, 2 | 4)?, 1, "C RequestName REPLACE_EXISTING")?;
    equal(name_owner(&a, &name)?, unique(&c), "owner after replacement")?;
    let released: u32 = driver(&c, "ReleaseName", &name.as_str()).map_err(e("ReleaseName"))?.body().map_err(e("body"))?;
    equal(released, 1, "C ReleaseName")?;
    equal(name_owner(&a, &name)?, unique(&b), "owner after release")?;
    deadline("A got no NameLost or B no NameAcquired");
    wait_name_signal(&a, "NameLost", &name)?;
    wait_name_signal(&b, "NameAcquired", &name)
}

fn call_scenario() -> R {
    let c = connect()?;
    let t = token();
    equal(fix(&c, "Echo", &t.as_str()).map_err(e("Echo"))?.body::<String>().map_err(e("Echo body"))?, t.clone(), "Echo")?;
    equal(fix(&c, "Add", &(40i32, 2i32)).map_err(e("Add"))?.body::<i32>().map_err(e("Add body"))?, 42, "Add")?;
    equal(method_error(fix(&c, "Fail", &"boom"))?, (format!("{}.Error.Failed", IFACE), "boom".to_string()), "error")?;
    let (name, _) = method_error(driver(&c, "GetNameOwner", &"org.kdbusbridge.Nobody"))?;
    equal(name, format!("{}.Error.NameHasNoOwner", DBUS), "GetNameOwner(nobody)")
}

fn add_match(c: &Connection, rule: &str) -> R {
    driver(c, "AddMatch", &rule).map(|_| ()).map_err(e("AddMatch"))
}

fn signals() -> R {
    let c = connect()?;
    add_match(&c, &format!("type='signal',interface='{}',member='Tick',arg0='yes',arg1='b1',path_namespace='{}/ns'", IFACE, OPATH))?;
    add_match(&c, &format!("type='signal',interface='{}',member='End'", IFACE))?;
    // Not call_method: zbus 1.x hands back messages queued during a call
    // newest first, which would hide the order the bus delivered them in.
    let m = Message::method(c.unique_name(), Some(&fixture()), OPATH, Some(IFACE), "EmitMatches", &()).map_err(e("EmitMatches"))?;
    c.send_message(m).map_err(e("EmitMatches"))?;
    deadline("no End signal");
    let mut ticks = Vec::new();
    loop {
        let i = info(&c.receive_message().map_err(e("receive"))?);
        if is_signal(&i, IFACE, "End") { break; }
        if is_signal(&i, IFACE, "Tick") || is_signal(&i, IFACE, "Tock") { ticks.push(i.path); }
    }
    equal(ticks, vec![format!("{}/ns", OPATH), format!("{}/ns/a/b", OPATH)], "matched signals")
}

fn unicast() -> R {
    let (c, observer) = (connect()?, connect()?);
    add_match(&observer, &format!("type='signal',interface='{}'", IFACE))?;
    let t = token();
    fix(&c, "EmitTo", &(unique(&c).as_str(), t.as_str())).map_err(e("EmitTo"))?;
    deadline("unicast signal or End missing");
    loop {
        let m = c.receive_message().map_err(e("receive"))?;
        if is_signal(&info(&m), IFACE, "Unicast") {
            equal(m.body::<String>().map_err(e("body"))?, t.clone(), "unicast body")?;
            break;
        }
    }
    loop {
        let i = info(&observer.receive_message().map_err(e("receive"))?);
        check(!is_signal(&i, IFACE, "Unicast"), "a unicast signal reached a non-recipient")?;
        if is_signal(&i, IFACE, "End") { return Ok(()); }
    }
}

fn fds() -> R {
    let c = connect()?;
    let t = token();
    let mut p = [0i32; 2];
    check(unsafe { libc_pipe(p.as_mut_ptr()) } == 0, "pipe")?;
    let mut w = unsafe { std::fs::File::from_raw_fd(p[1]) };
    w.write_all(t.as_bytes()).map_err(e("write"))?;
    drop(w);
    let reply = fix(&c, "ReadFd", &Fd::from(p[0])).map_err(e("ReadFd"))?;
    unsafe { libc_close(p[0]) };
    equal(reply.body::<String>().map_err(e("ReadFd body"))?, t.clone(), "ReadFd")?;
    let reply = fix(&c, "MakeFd", &t.as_str()).map_err(e("MakeFd"))?;
    let fd: Fd = reply.body().map_err(e("MakeFd body"))?;
    let mut f = unsafe { std::fs::File::from_raw_fd(libc_dup(fd.as_raw_fd_value())) };
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(e("read"))?;
    equal(s, t, "MakeFd content")
}

extern "C" {
    #[link_name = "pipe"]
    fn libc_pipe(fds: *mut i32) -> i32;
    #[link_name = "close"]
    fn libc_close(fd: i32) -> i32;
    #[link_name = "dup"]
    fn libc_dup(fd: i32) -> i32;
}
trait RawValue { fn as_raw_fd_value(&self) -> i32; }
impl RawValue for Fd {
    fn as_raw_fd_value(&self) -> i32 { std::os::unix::io::AsRawFd::as_raw_fd(self) }
}

fn properties() -> R {
    let c = connect()?;
    let get = |name: &str| -> Result<OwnedValue, String> {
        call(&c, &fixture(), OPATH, PROPS, "Get", &(IFACE, name)).map_err(e("Get"))?.body::<OwnedValue>().map_err(e("Get body"))
    };
    equal(String::try_from(get("Name")?).ok(), Some("compat-fixture".to_string()), "Get Name")?;
    call(&c, &fixture(), OPATH, PROPS, "Set", &(IFACE, "Count", zvariant::Value::from(42i32))).map_err(e("Set"))?;
    equal(i32::try_from(get("Count")?).ok(), Some(42), "Get Count after Set")?;
    let all: std::collections::HashMap<String, OwnedValue> =
        call(&c, &fixture(), OPATH, PROPS, "GetAll", &IFACE).map_err(e("GetAll"))?.body().map_err(e("GetAll body"))?;
    equal(all.get("Count").cloned().and_then(|v| i32::try_from(v).ok()), Some(42), "GetAll Count")?;
    let xml: String = call(&c, &fixture(), OPATH, "org.freedesktop.DBus.Introspectable", "Introspect", &())
        .map_err(e("Introspect"))?.body().map_err(e("Introspect body"))?;
    check(xml.contains(&format!("<interface name=\"{}\">", IFACE)) && xml.contains("name=\"Echo\""), "Introspect lacks the interface")
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i % (251 * 64)) % 251) as u8).collect()
}

fn sha256_hex(data: &[u8]) -> Result<String, String> {
    // No hashing crate is packaged alongside zbus; coreutils does the job.
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().map_err(e("sha256sum"))?;
    child.stdin.take().unwrap().write_all(data).map_err(e("sha256sum"))?;
    let out = child.wait_with_output().map_err(e("sha256sum"))?;
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string())
}

fn large() -> R {
    let c = connect()?;
    let data = pattern(LARGE);
    let digest = sha256_hex(&data)?;
    let got: (u32, String) = fix(&c, "Digest", &data).map_err(e("Digest"))?.body().map_err(e("Digest body"))?;
    equal(got, (LARGE as u32, digest), "Digest of 32 MiB")?;
    let blob: Vec<u8> = fix(&c, "Blob", &(LARGE as u32)).map_err(e("Blob"))?.body().map_err(e("Blob body"))?;
    equal(blob.len(), LARGE, "32 MiB reply length")?;
    check(blob == data, "32 MiB reply differs")
}

fn monitor() -> R {
    let (mon, c) = (connect()?, connect()?);
    call(&mon, DBUS, DBUS_PATH, "org.freedesktop.DBus.Monitoring", "BecomeMonitor", &(Vec::<String>::new(), 0u32))
        .map_err(e("BecomeMonitor"))?;
    let t = token();
    fix(&c, "Echo", &t.as_str()).map_err(e("Echo"))?;
    deadline("monitor did not see the call and its reply");
    let (mut seen_call, mut seen_reply) = (false, false);
    while !(seen_call && seen_reply) {
        let m = mon.receive_message().map_err(e("receive"))?;
        if m.body::<String>().ok().as_deref() == Some(t.as_str()) {
            let kind = info(&m).kind;
            seen_call |= kind == MessageType::MethodCall;
            seen_reply |= kind == MessageType::MethodReturn;
        }
    }
    Ok(())
}

fn noreply() -> R {
    let c = connect()?;
    let callee = callee();
    add_match(&c, &format!("type='signal',sender='{}',member='NameOwnerChanged',arg0='{}'", DBUS, callee))?;
    let owner = name_owner(&c, &callee)?;
    let (name, _) = method_error(call(&c, &callee, OPATH, IFACE, "Hang", &()))?;
    equal(name, format!("{}.Error.NoReply", DBUS), "error of the pending call")?;
    deadline("no NameOwnerChanged");
    loop {
        let m = c.receive_message().map_err(e("receive"))?;
        if is_signal(&info(&m), DBUS, "NameOwnerChanged") {
            let args: (String, String, String) = m.body().map_err(e("NameOwnerChanged body"))?;
            return equal(args, (callee.clone(), owner, String::new()), "NameOwnerChanged");
        }
    }
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let result = match scenario.as_str() {
        "hello-unix" => hello(),
        "names" => names(),
        "call" => call_scenario(),
        "signals" => signals(),
        "unicast" => unicast(),
        "fds" => fds(),
        "properties" => properties(),
        "large" => large(),
        "monitor" => monitor(),
        "noreply" => noreply(),
        _ => {
            // zbus 1.x has no tcp transport.
            eprintln!("not expressible with this client");
            exit(77);
        }
    };
    if let Err(why) = result {
        eprintln!("{}", why.replace('\n', " "));
        exit(1);
    }
}
