//! Matrix driver for zbus 5.x (Rust), on its blocking API. usage: zbus-driver SCENARIO
//! zbus1/main.rs is the same driver for zbus 1.x: the two APIs share too
//! little (message headers, bodies, fds, receiving) for one source.
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::{exit, Command, Stdio};
use std::time::Duration;

use zbus::blocking::{connection, Connection, MessageIterator};
use zbus::message::Type as MessageType;
use zbus::Message;
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

// The iterator waits without a timeout: a watchdog turns a missing message into a failure.
fn deadline(what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        eprintln!("{}", what);
        exit(1);
    });
}

fn connect() -> Result<Connection, String> {
    connection::Builder::address(address().as_str()).map_err(e("address"))?.build().map_err(e("connect"))
}

// zbus 5 hands a received message only to the streams that exist when it
// arrives: a scenario makes its iterator before it causes the messages.
fn messages(c: &Connection) -> MessageIterator { MessageIterator::from(c) }
fn next(it: &mut MessageIterator) -> Result<Message, String> {
    it.next().ok_or_else(|| "connection closed".to_string())?.map_err(e("receive"))
}

fn call<B: serde::Serialize + zvariant::DynamicType>(c: &Connection, dest: &str, path: &str, iface: &str, member: &str, body: &B) -> zbus::Result<Message> {
    c.call_method(Some(dest), path, Some(iface), member, body)
}
fn driver<B: serde::Serialize + zvariant::DynamicType>(c: &Connection, member: &str, body: &B) -> zbus::Result<Message> {
    call(c, DBUS, DBUS_PATH, DBUS, member, body)
}
fn fix<B: serde::Serialize + zvariant::DynamicType>(c: &Connection, member: &str, body: &B) -> zbus::Result<Message> {
    call(c, &fixture(), OPATH, IFACE, member, body)
}
fn unique(c: &Connection) -> String { c.unique_name().map(|n| n.to_string()).unwrap_or_default() }
fn body<T>(m: &Message) -> zbus::Result<T> where T: serde::de::DeserializeOwned + zvariant::Type {
    m.body().deserialize::<T>()
}

fn name_owner(c: &Connection, name: &str) -> Result<String, String> {
    body::<String>(&driver(c, "GetNameOwner", &name).map_err(e("GetNameOwner"))?).map_err(e("GetNameOwner body"))
}

fn method_error(r: zbus::Result<Message>) -> Result<(String, String), String> {
    match r {
        Err(zbus::Error::MethodError(name, detail, _)) => Ok((name.to_string(), detail.unwrap_or_default())),
        Err(other) => Err(format!("unexpected error {}", other)),
        Ok(_) => Err("call returned".to_string()),
    }
}

struct Info { kind: MessageType, path: String, iface: String, member: String }
fn info(m: &Message) -> Info {
    let h = m.header();
    Info {
        kind: h.message_type(),
        path: h.path().map(|p| p.as_str().to_string()).unwrap_or_default(),
        iface: h.interface().map(|i| i.to_string()).unwrap_or_default(),
        member: h.member().map(|m| m.to_string()).unwrap_or_default(),
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
    let names: Vec<String> = body(&driver(&c, "ListNames", &()).map_err(e("ListNames"))?).map_err(e("ListNames body"))?;
    check(names.iter().any(|n| n == DBUS), "ListNames lacks the driver")
}

fn wait_name_signal(it: &mut MessageIterator, member: &str, name: &str) -> R {
    loop {
        let m = next(it)?;
        if is_signal(&info(&m), DBUS, member) && body::<String>(&m).ok().as_deref() == Some(name) {
            return Ok(());
        }
    }
}

fn names() -> R {
    let (a, b, c) = (connect()?, connect()?, connect()?);
    let (mut a_in, mut b_in) = (messages(&a), messages(&b));
    let name = format!("org.kdbusbridge.Compat.N{}", token());
    let request = |conn: &Connection, flags: u32| -> Result<u32, String> {
        body::<u32>(&driver(conn, "RequestName", &(name.as_str(), flags)).map_err(e("RequestName"))?).map_err(e("RequestName body"))
    };
    equal(request(&a, 1 | 4)?, 1, "A RequestName")?;
    equal(request(&b, 4)?, 3, "B RequestName DO_NOT_QUEUE")?;
    equal(request(&b, 0)?, 2, "B RequestName queued")?;
    let queued: Vec<String> = body(&driver(&a, "ListQueuedOwners", &name.as_str()).map_err(e("ListQueuedOwners"))?).map_err(e("body"))?;
    equal(queued, vec![unique(&a), unique(&b)], "ListQueuedOwners")?;
    equal(request(&c, 2 | 4)?, 1, "C RequestName REPLACE_EXISTING")?;
    equal(name_owner(&a, &name)?, unique(&c), "owner after replacement")?;
    let released: u32 = body(&driver(&c, "ReleaseName", &name.as_str()).map_err(e("ReleaseName"))?).map_err(e("body"))?;
    equal(released, 1, "C ReleaseName")?;
    equal(name_owner(&a, &name)?, unique(&b), "owner after release")?;
    deadline("A got no NameLost or B no NameAcquired");
    wait_name_signal(&mut a_in, "NameLost", &name)?;
    wait_name_signal(&mut b_in, "NameAcquired", &name)
}

fn call_scenario() -> R {
    let c = connect()?;
    let t = token();
    equal(body::<String>(&fix(&c, "Echo", &t.as_str()).map_err(e("Echo"))?).map_err(e("Echo body"))?, t.clone(), "Echo")?;
    equal(body::<i32>(&fix(&c, "Add", &(40i32, 2i32)).map_err(e("Add"))?).map_err(e("Add body"))?, 42, "Add")?;
    equal(method_error(fix(&c, "Fail", &"boom"))?, (format!("{}.Error.Failed", IFACE), "boom".to_string()), "error")?;
    let (name, _) = method_error(driver(&c, "GetNameOwner", &"org.kdbusbridge.Nobody"))?;
    equal(name, format!("{}.Error.NameHasNoOwner", DBUS), "GetNameOwner(nobody)")
}

fn add_match(c: &Connection, rule: &str) -> R {
    driver(c, "AddMatch", &rule).map(|_| ()).map_err(e("AddMatch"))
}

fn signals() -> R {
    let c = connect()?;
    let mut inbox = messages(&c);
    add_match(&c, &format!("type='signal',interface='{}',member='Tick',arg0='yes',arg1='b1',path_namespace='{}/ns'", IFACE, OPATH))?;
    add_match(&c, &format!("type='signal',interface='{}',member='End'", IFACE))?;
    fix(&c, "EmitMatches", &()).map_err(e("EmitMatches"))?;
    deadline("no End signal");
    let mut ticks = Vec::new();
    loop {
        let i = info(&next(&mut inbox)?);
        if is_signal(&i, IFACE, "End") { break; }
        if is_signal(&i, IFACE, "Tick") || is_signal(&i, IFACE, "Tock") { ticks.push(i.path); }
    }
    equal(ticks, vec![format!("{}/ns", OPATH), format!("{}/ns/a/b", OPATH)], "matched signals")
}

fn unicast() -> R {
    let (c, observer) = (connect()?, connect()?);
    let (mut c_in, mut observer_in) = (messages(&c), messages(&observer));
    add_match(&observer, &format!("type='signal',interface='{}'", IFACE))?;
    let t = token();
    fix(&c, "EmitTo", &(unique(&c).as_str(), t.as_str())).map_err(e("EmitTo"))?;
    deadline("unicast signal or End missing");
    loop {
        let m = next(&mut c_in)?;
        if is_signal(&info(&m), IFACE, "Unicast") {
            equal(body::<String>(&m).map_err(e("body"))?, t.clone(), "unicast body")?;
            break;
        }
    }
    loop {
        let i = info(&next(&mut observer_in)?);
        check(!is_signal(&i, IFACE, "Unicast"), "a unicast signal reached a non-recipient")?;
        if is_signal(&i, IFACE, "End") { return Ok(()); }
    }
}

fn fds() -> R {
    let c = connect()?;
    let t = token();
    let mut p = [0i32; 2];
    // std::io::pipe is newer than Debian 13's rustc.
    check(unsafe { pipe(p.as_mut_ptr()) } == 0, "pipe")?;
    let (r, mut w) = unsafe { (OwnedFd::from_raw_fd(p[0]), std::fs::File::from_raw_fd(p[1])) };
    w.write_all(t.as_bytes()).map_err(e("write"))?;
    drop(w);
    let reply = fix(&c, "ReadFd", &Fd::from(r.as_fd())).map_err(e("ReadFd"))?;
    drop(r);
    equal(body::<String>(&reply).map_err(e("ReadFd body"))?, t.clone(), "ReadFd")?;
    let reply = fix(&c, "MakeFd", &t.as_str()).map_err(e("MakeFd"))?;
    let b = reply.body();
    let fd: Fd = b.deserialize().map_err(e("MakeFd body"))?;
    let owned: OwnedFd = fd.as_fd().try_clone_to_owned().map_err(e("dup"))?;
    let mut s = String::new();
    std::fs::File::from(owned).read_to_string(&mut s).map_err(e("read"))?;
    equal(s, t, "MakeFd content")
}

extern "C" {
    fn pipe(fds: *mut i32) -> i32;
}

fn properties() -> R {
    let c = connect()?;
    let get = |name: &str| -> Result<OwnedValue, String> {
        body::<OwnedValue>(&call(&c, &fixture(), OPATH, PROPS, "Get", &(IFACE, name)).map_err(e("Get"))?).map_err(e("Get body"))
    };
    equal(String::try_from(get("Name")?).ok(), Some("compat-fixture".to_string()), "Get Name")?;
    call(&c, &fixture(), OPATH, PROPS, "Set", &(IFACE, "Count", zvariant::Value::from(42i32))).map_err(e("Set"))?;
    equal(i32::try_from(get("Count")?).ok(), Some(42), "Get Count after Set")?;
    let all: std::collections::HashMap<String, OwnedValue> =
        body(&call(&c, &fixture(), OPATH, PROPS, "GetAll", &IFACE).map_err(e("GetAll"))?).map_err(e("GetAll body"))?;
    equal(all.get("Count").and_then(|v| i32::try_from(v).ok()), Some(42), "GetAll Count")?;
    let xml: String = body(&call(&c, &fixture(), OPATH, "org.freedesktop.DBus.Introspectable", "Introspect", &())
        .map_err(e("Introspect"))?).map_err(e("Introspect body"))?;
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
    let got: (u32, String) = body(&fix(&c, "Digest", &data).map_err(e("Digest"))?).map_err(e("Digest body"))?;
    equal(got, (LARGE as u32, digest), "Digest of 32 MiB")?;
    let blob: Vec<u8> = body(&fix(&c, "Blob", &(LARGE as u32)).map_err(e("Blob"))?).map_err(e("Blob body"))?;
    equal(blob.len(), LARGE, "32 MiB reply length")?;
    check(blob == data, "32 MiB reply differs")
}

fn monitor() -> R {
    let (mon, c) = (connect()?, connect()?);
    let mut inbox = messages(&mon);
    call(&mon, DBUS, DBUS_PATH, "org.freedesktop.DBus.Monitoring", "BecomeMonitor", &(Vec::<String>::new(), 0u32))
        .map_err(e("BecomeMonitor"))?;
    let t = token();
    fix(&c, "Echo", &t.as_str()).map_err(e("Echo"))?;
    deadline("monitor did not see the call and its reply");
    let (mut seen_call, mut seen_reply) = (false, false);
    while !(seen_call && seen_reply) {
        let m = next(&mut inbox)?;
        if body::<String>(&m).ok().as_deref() == Some(t.as_str()) {
            let kind = info(&m).kind;
            seen_call |= kind == MessageType::MethodCall;
            seen_reply |= kind == MessageType::MethodReturn;
        }
    }
    Ok(())
}

fn noreply() -> R {
    let c = connect()?;
    let mut inbox = messages(&c);
    let callee = callee();
    add_match(&c, &format!("type='signal',sender='{}',member='NameOwnerChanged',arg0='{}'", DBUS, callee))?;
    let owner = name_owner(&c, &callee)?;
    let (name, _) = method_error(call(&c, &callee, OPATH, IFACE, "Hang", &()))?;
    equal(name, format!("{}.Error.NoReply", DBUS), "error of the pending call")?;
    deadline("no NameOwnerChanged");
    loop {
        let m = next(&mut inbox)?;
        if is_signal(&info(&m), DBUS, "NameOwnerChanged") {
            let args: (String, String, String) = body(&m).map_err(e("NameOwnerChanged body"))?;
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
            eprintln!("not expressible with this client");
            exit(77);
        }
    };
    if let Err(why) = result {
        eprintln!("{}", why.replace('\n', " "));
        exit(1);
    }
}
