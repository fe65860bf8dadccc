//! The Docker runtime against a Docker daemon that only speaks TLS, as
//! GitLab's docker-in-docker does (`DOCKER_HOST=tcp://docker:2376`,
//! `DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH=/certs/client`).
//!
//! Compiled with `--features docker`. The test makes its own CA, a server
//! certificate for `127.0.0.1` and `localhost` and client certificates with
//! `openssl`, then starts a second `dockerd` beside the host's: its own data
//! root, exec root (and so its own containerd), pid file and containerd
//! namespace, listening only on `tcp://127.0.0.1:<free port>` with
//! `--tlsverify`, on a bridge of its own and without iptables rules or
//! sysctl changes, so the host's daemon is never touched. (Not
//! `--bridge=none`: a daemon started with it deletes the host's `docker0`,
//! moby's `removeDefaultBridgeInterface`, and the host daemon's containers
//! lose their network; the run fails if `docker0` is gone afterwards.)
//! Guards stop that daemon and remove its bridge and directories on every
//! path. Without root, `dockerd`, `openssl`, `ip` or gcc every trial is
//! *ignored* with the reason; with `QUS_REQUIRE_ENGINES=1` that is a failure.

#![cfg(feature = "docker")]

use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_harness::runtime::{
    BuildSpec, ContextFile, DockerRuntime, Endpoint, RunSpec, Runtime as _, RuntimeError,
    TlsConnectError, TlsFailure, TlsFiles,
};

#[path = "common/tool.rs"]
mod tool;

/// How long the daemon may take to answer, and to stop.
const DAEMON_START: Duration = Duration::from_secs(60);
const DAEMON_STOP: Duration = Duration::from_secs(30);

/// The label on what the trials create (removed with the daemon anyway).
const RUN_ID: &str = "qus-tls-test";

type Body = fn(&Daemon) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    // One daemon, started once, shared by trials that run one at a time.
    args.test_threads = Some(1);
    let tests: &[(&str, Body)] = &[
        (
            "runtime_probes_builds_and_runs_over_tls",
            runtime_probes_builds_and_runs_over_tls,
        ),
        (
            "the_harness_reads_docker_tls_verify_and_docker_cert_path",
            the_harness_reads_docker_tls_verify_and_docker_cert_path,
        ),
        (
            "images_are_built_into_the_tls_daemon",
            images_are_built_into_the_tls_daemon,
        ),
        (
            "a_wrong_ca_fails_naming_docker_cert_path",
            a_wrong_ca_fails_naming_docker_cert_path,
        ),
        (
            "a_client_certificate_of_another_ca_is_refused",
            a_client_certificate_of_another_ca_is_refused,
        ),
        (
            "missing_client_files_are_named",
            missing_client_files_are_named,
        ),
        (
            "plain_http_to_the_tls_port_says_to_turn_tls_on",
            plain_http_to_the_tls_port_says_to_turn_tls_on,
        ),
    ];
    let daemon: Result<Arc<Daemon>, Outcome> = match prerequisites() {
        Err(reason) => Err(Outcome::Unavailable(reason)),
        Ok(()) => Daemon::start().map(Arc::new).map_err(Outcome::Broken),
    };
    let trials = tests
        .iter()
        .map(|&(name, body)| {
            let daemon = daemon.clone();
            Trial::ignorable_test(name, move || match &daemon {
                Ok(daemon) => body(daemon).map(|()| Completion::Completed),
                Err(Outcome::Broken(message)) => Err(message.clone().into()),
                Err(Outcome::Unavailable(reason)) if require_engines() => {
                    Err(format!("QUS_REQUIRE_ENGINES=1 but {reason}").into())
                }
                Err(Outcome::Unavailable(reason)) => Ok(Completion::ignored_with(reason)),
            })
        })
        .collect();
    let docker0 = link_exists("docker0");
    let conclusion = libtest_mimic::run(&args, trials);
    // The trials hold clones; this is the last reference: the guard runs.
    drop(daemon);
    if docker0 && !link_exists("docker0") {
        eprintln!("error: the host's `docker0` bridge is gone after the TLS daemon ran");
        std::process::exit(1);
    }
    conclusion.exit();
}

/// Whether the network interface `name` exists.
fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Why the trials cannot run.
#[derive(Clone)]
enum Outcome {
    /// A prerequisite is missing: ignored, or a failure when required.
    Unavailable(String),
    /// The daemon did not start: always a failure.
    Broken(String),
}

fn require_engines() -> bool {
    std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1")
}

/// `Ok` when a TLS daemon can be started here, else why not.
fn prerequisites() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (a second dockerd)".into());
    }
    for program in ["dockerd", "openssl", "ip"] {
        which::which(program).map_err(|_| format!("`{program}` is not installed"))?;
    }
    tool::tool_binary().map(|_| ())
}

/// The TLS daemon and the files the trials use; dropping it stops the
/// daemon and removes everything it and the trials wrote.
struct Daemon {
    /// `tcp://127.0.0.1:<port>`.
    url: String,
    /// The client files signed by the daemon's CA (`ca.pem`, `cert.pem`,
    /// `key.pem`), as `DOCKER_CERT_PATH` names them.
    certs: PathBuf,
    /// Client files of another CA.
    wrong_ca: PathBuf,
    /// The daemon's CA with a client certificate of the other CA.
    wrong_client: PathBuf,
    /// The daemon's CA alone.
    ca_only: PathBuf,
    /// A build context with the static tool as entrypoint.
    tool_context: PathBuf,
    /// The daemon's log.
    log: PathBuf,
    root: PathBuf,
    child: std::sync::Mutex<Child>,
    /// Dropped after the daemon stopped (fields drop after `Drop::drop`).
    _bridge: Bridge,
}

impl Daemon {
    /// Makes the certificates and starts `dockerd`; `Err` with its log when
    /// it does not answer.
    fn start() -> Result<Self, String> {
        let root = tempfile::Builder::new()
            .prefix("qus-tls-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("no temporary directory: {e}"))?
            .keep();
        // From here on, the guard removes `root` whatever happens.
        let partial = Cleanup(root.clone());
        let pki = root.join("pki");
        std::fs::create_dir_all(&pki).map_err(|e| e.to_string())?;
        let certs = root.join("client");
        let wrong_ca = root.join("wrong-ca");
        let wrong_client = root.join("wrong-client");
        let ca_only = root.join("ca-only");
        for dir in [&certs, &wrong_ca, &wrong_client, &ca_only] {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        make_ca(&pki, "ca")?;
        make_ca(&pki, "other-ca")?;
        sign(&pki, "ca", "server", "localhost", SERVER_EXTENSIONS)?;
        sign(&pki, "ca", "client", "qus-test", CLIENT_EXTENSIONS)?;
        sign(
            &pki,
            "other-ca",
            "other-client",
            "qus-test",
            CLIENT_EXTENSIONS,
        )?;
        let copy = |from: &str, to: &Path| {
            std::fs::copy(pki.join(from), to)
                .map(|_| ())
                .map_err(|e| format!("cannot copy `{from}`: {e}"))
        };
        copy("ca.pem", &certs.join("ca.pem"))?;
        copy("client.pem", &certs.join("cert.pem"))?;
        copy("client-key.pem", &certs.join("key.pem"))?;
        copy("other-ca.pem", &wrong_ca.join("ca.pem"))?;
        copy("other-client.pem", &wrong_ca.join("cert.pem"))?;
        copy("other-client-key.pem", &wrong_ca.join("key.pem"))?;
        copy("ca.pem", &wrong_client.join("ca.pem"))?;
        copy("other-client.pem", &wrong_client.join("cert.pem"))?;
        copy("other-client-key.pem", &wrong_client.join("key.pem"))?;
        copy("ca.pem", &ca_only.join("ca.pem"))?;

        let tool_context = root.join("tool");
        std::fs::create_dir_all(&tool_context).map_err(|e| e.to_string())?;
        let tool_path = tool_context.join("tool");
        std::fs::write(&tool_path, tool::tool_binary()?).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&tool_path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        std::fs::write(
            tool_context.join("Containerfile"),
            "FROM scratch\nCOPY tool /tool\nENTRYPOINT [\"/tool\"]\n",
        )
        .map_err(|e| e.to_string())?;

        // A free port: bound, read, released.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let config = root.join("daemon.json");
        std::fs::write(&config, "{}\n").map_err(|e| e.to_string())?;
        let bridge = Bridge::create()?;
        let log = root.join("dockerd.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let path = |p: PathBuf| p.into_os_string();
        let child = Command::new("dockerd")
            // An empty configuration: the host's /etc/docker/daemon.json
            // (its `hosts`, its storage) is not this daemon's.
            .arg("--config-file")
            .arg(path(config))
            .arg("--data-root")
            .arg(path(root.join("data")))
            .arg("--exec-root")
            .arg(path(root.join("exec")))
            .arg("--pidfile")
            .arg(path(root.join("dockerd.pid")))
            .args(["-H", &url, "--tlsverify"])
            .arg("--tlscacert")
            .arg(path(pki.join("ca.pem")))
            .arg("--tlscert")
            .arg(path(pki.join("server.pem")))
            .arg("--tlskey")
            .arg(path(pki.join("server-key.pem")))
            // A bridge of its own, no iptables rules, no sysctls: nothing
            // shared with the host's daemon. A system containerd, where
            // there is one, is shared, in namespaces of its own.
            .arg(format!("--bridge={}", bridge.name))
            .args(["--iptables=false", "--ip6tables=false"])
            .args(["--ip-forward=false", "--ip-masq=false"])
            .args(["--containerd-namespace", "qus-tls-test"])
            .args(["--containerd-plugins-namespace", "qus-tls-test-plugins"])
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        std::mem::forget(partial);
        let daemon = Self {
            url,
            certs,
            wrong_ca,
            wrong_client,
            ca_only,
            tool_context,
            log,
            root,
            child: std::sync::Mutex::new(child),
            _bridge: bridge,
        };
        daemon.wait_until_it_answers()?;
        Ok(daemon)
    }

    fn wait_until_it_answers(&self) -> Result<(), String> {
        let started = Instant::now();
        let endpoint = self.endpoint(&self.certs);
        loop {
            let answer = block_on(DockerRuntime::connect_to(&endpoint));
            match answer {
                Ok(_) => {
                    eprintln!(
                        "  TLS dockerd at {} answered after {:.1}s",
                        self.url,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(err) => {
                    let exited = self.child.lock().unwrap().try_wait().ok().flatten();
                    if exited.is_some() || started.elapsed() > DAEMON_START {
                        return Err(format!(
                            "the TLS dockerd did not answer ({}; exit {exited:?}):\n{}",
                            chain(&err),
                            self.log_tail()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The daemon's URL with TLS files from `dir`.
    fn endpoint(&self, dir: &Path) -> Endpoint {
        Endpoint::new(&self.url).with_tls(TlsFiles::in_dir(dir))
    }

    /// `qus-harness run` of the fixture scenario `pass.yaml`, which needs
    /// the engine, with the docker CLI's TLS variables.
    fn run_scenario(&self, certs: Option<&Path>) -> Result<Output, Failed> {
        let scenario =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker/pass.yaml");
        let context = format!("TOOL_CONTEXT={}", self.tool_context.display());
        let args = [
            "run",
            scenario.to_str().unwrap(),
            "--runtime",
            "docker",
            "--require-engine",
            "--var",
            &context,
        ];
        self.harness(certs, &args)
    }

    /// `qus-harness ARGS` with the docker CLI's TLS variables: TLS on and
    /// `DOCKER_CERT_PATH=certs` when `certs` is given, TLS off otherwise.
    fn harness(&self, certs: Option<&Path>, args: &[&str]) -> Result<Output, Failed> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_qus-harness"));
        command
            .args(args)
            .env("DOCKER_HOST", &self.url)
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_CONFIG")
            .env("CI", "true");
        if let Some(dir) = certs {
            command
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", dir);
        }
        Ok(command.output()?)
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        stop(&mut child, "dockerd");
        // dockerd stops the containerd it started; one left running (the
        // daemon was killed) is stopped here.
        let containerd = self.root.join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(&containerd)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        drop(Cleanup(self.root.clone()));
    }
}

/// Removes a directory tree, unmounting what a daemon left mounted in it.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let root = self.0.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut inside: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        // Deepest first.
        inside.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in inside {
            let _ = rustix::mount::unmount(mount, rustix::mount::UnmountFlags::DETACH);
        }
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!("error: cannot remove `{}`: {err}", self.0.display());
        }
    }
}

/// A Linux bridge with a /24 no route of the host covers, for the TLS
/// daemon's default network; deleted on drop.
struct Bridge {
    name: String,
}

impl Bridge {
    fn create() -> Result<Self, String> {
        let name = format!("qustls{}", std::process::id() % 100_000);
        let routes = ip(&["-4", "route", "show", "table", "all"])?;
        let taken: Vec<(u32, u32)> = routes
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.contains('/')))
            .filter_map(|prefix| {
                let (addr, len) = prefix.split_once('/')?;
                let addr: std::net::Ipv4Addr = addr.parse().ok()?;
                let len: u32 = len.parse().ok()?;
                Some((u32::from(addr), len))
            })
            .collect();
        let overlaps = |net: u32| {
            taken.iter().any(|&(addr, len)| {
                let len = len.min(24);
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                addr & mask == net & mask
            })
        };
        let net = (0..=255u32)
            .map(|n| u32::from(std::net::Ipv4Addr::new(10, 199, n as u8, 0)))
            .find(|&net| !overlaps(net))
            .ok_or("no free /24 in 10.199.0.0/16 for the TLS daemon's bridge")?;
        let gateway = format!("{}/24", std::net::Ipv4Addr::from(net + 1));
        ip(&["link", "add", &name, "type", "bridge"])?;
        let bridge = Self { name };
        ip(&["addr", "add", &gateway, "dev", &bridge.name])?;
        ip(&["link", "set", &bridge.name, "up"])?;
        Ok(bridge)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Err(err) = ip(&["link", "del", &self.name]) {
            eprintln!("error: cannot delete the bridge `{}`: {err}", self.name);
        }
    }
}

/// `ip ARGS`, its stdout.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Stops `child` with SIGTERM, then SIGKILL after [`DAEMON_STOP`].
fn stop(child: &mut Child, what: &str) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let started = Instant::now();
    while started.elapsed() < DAEMON_STOP {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("error: {what} did not stop within {DAEMON_STOP:?}: killed");
    let _ = child.kill();
    let _ = child.wait();
}

/// `subjectAltName` for the addresses the trials connect to.
const SERVER_EXTENSIONS: &str =
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
const CLIENT_EXTENSIONS: &str = "extendedKeyUsage=clientAuth\n";

/// A self-signed CA: `<name>.pem` and `<name>-key.pem` in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=qus test {name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

/// A certificate `<name>.pem` (key `<name>-key.pem`) for `cn`, signed by
/// CA `ca`, with `extensions`.
fn sign(dir: &Path, ca: &str, name: &str, cn: &str, extensions: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    )?;
    std::fs::write(dir.join(format!("{name}.ext")), extensions).map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

/// `err` and its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The [`TlsConnectError`] an `Unreachable` error carries.
fn tls_cause(err: &RuntimeError) -> Option<&TlsConnectError> {
    match err {
        RuntimeError::Unreachable { source, .. } => source.downcast_ref::<TlsConnectError>(),
        _ => None,
    }
}

fn runtime_probes_builds_and_runs_over_tls(daemon: &Daemon) -> Result<(), Failed> {
    block_on(async {
        let runtime = DockerRuntime::connect_to(&daemon.endpoint(&daemon.certs))
            .await
            .map_err(|e| chain(&e))?;
        check(runtime.endpoint() == daemon.url, runtime.endpoint())?;
        let info = runtime.probe().await.map_err(|e| chain(&e))?;
        check(
            !info.version.is_empty(),
            format!("no engine version: {info:?}"),
        )?;
        let image = format!("qus-test/tls-tool:{}", std::process::id());
        let spec = BuildSpec::inline(
            "FROM scratch\nCOPY tool /tool\nENTRYPOINT [\"/tool\"]\n",
            vec![ContextFile::executable(
                "tool",
                tool::tool_binary()?.to_vec(),
            )],
            image.clone(),
        )
        .with_run_id(RUN_ID);
        let built = runtime.build(&spec).await.map_err(|e| chain(&e))?;
        check(built.success, format!("build failed: {}", built.output))?;
        check(
            runtime.image_exists(&image).await.map_err(|e| chain(&e))?,
            "the built image is not in the TLS daemon",
        )?;
        let run = RunSpec::new(image.clone(), ["echo", "over tls", "exit", "4"])
            .with_run_id(RUN_ID)
            .with_timeout(Duration::from_secs(60));
        let outcome = runtime.run(&run).await.map_err(|e| chain(&e))?;
        check(
            outcome.exit_code == 4 && outcome.stdout == "over tls\n",
            format!("{outcome:?}"),
        )?;
        let removed = runtime
            .remove_labelled(qus_harness::runtime::RUN_LABEL, RUN_ID)
            .await
            .map_err(|e| chain(&e))?;
        check(removed >= 1, format!("removed {removed}"))?;
        check(
            !runtime.image_exists(&image).await.map_err(|e| chain(&e))?,
            "the image outlived its removal",
        )
    })
}

fn the_harness_reads_docker_tls_verify_and_docker_cert_path(daemon: &Daemon) -> Result<(), Failed> {
    let out = daemon.run_scenario(Some(&daemon.certs))?;
    check(out.status.code() == Some(0), describe(&out))?;
    check(
        text(&out.stdout).contains("1 passed"),
        format!("no pass line:\n{}", describe(&out)),
    )
}

fn images_are_built_into_the_tls_daemon(daemon: &Daemon) -> Result<(), Failed> {
    let started = Instant::now();
    let out = daemon.harness(
        Some(&daemon.certs),
        &["images", "fixtures", "--arches", "none"],
    )?;
    eprintln!(
        "    31 probe images over TLS: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    check(out.status.code() == Some(0), describe(&out))?;
    block_on(async {
        let runtime = DockerRuntime::connect_to(&daemon.endpoint(&daemon.certs))
            .await
            .map_err(|e| chain(&e))?;
        let image = "qus-fixtures/probe:aarch64";
        check(
            runtime.image_exists(image).await.map_err(|e| chain(&e))?,
            format!("`{image}` is not in the TLS daemon"),
        )?;
        // The host's own machine: its probe runs without a handler.
        let outcome = runtime
            .run(&RunSpec::new(
                "qus-fixtures/probe:x86_64",
                Vec::<String>::new(),
            ))
            .await
            .map_err(|e| chain(&e))?;
        check(
            outcome.is_success() && outcome.stdout == "x86_64\n",
            format!("{outcome:?}"),
        )
    })
}

fn a_wrong_ca_fails_naming_docker_cert_path(daemon: &Daemon) -> Result<(), Failed> {
    let err = block_on(DockerRuntime::connect_to(
        &daemon.endpoint(&daemon.wrong_ca),
    ))
    .err()
    .ok_or("connected with another CA")?;
    let tls = tls_cause(&err).ok_or_else(|| format!("not a TLS error: {}", chain(&err)))?;
    check(
        tls.kind
            == TlsFailure::UntrustedDaemon {
                ca: daemon.wrong_ca.join("ca.pem"),
                origin: format!("`{}`", daemon.wrong_ca.display()),
            },
        format!("{:?}", tls.kind),
    )?;

    let out = daemon.run_scenario(Some(&daemon.wrong_ca))?;
    let stderr = text(&out.stderr);
    check(out.status.code() == Some(3), describe(&out))?;
    let expected = format!(
        "the daemon at `{}` presented a certificate that the CA `{}/ca.pem` (from \
         `DOCKER_CERT_PATH={}`) did not sign",
        daemon.url,
        daemon.wrong_ca.display(),
        daemon.wrong_ca.display()
    );
    check(
        stderr.contains(&expected),
        format!("expected {expected:?} in:\n{stderr}"),
    )
}

fn a_client_certificate_of_another_ca_is_refused(daemon: &Daemon) -> Result<(), Failed> {
    let err = block_on(DockerRuntime::connect_to(
        &daemon.endpoint(&daemon.wrong_client),
    ))
    .err()
    .ok_or("connected with a client certificate of another CA")?;
    let tls = tls_cause(&err).ok_or_else(|| format!("not a TLS error: {}", chain(&err)))?;
    check(
        matches!(&tls.kind, TlsFailure::ClientRefused { cert, .. }
            if *cert == daemon.wrong_client.join("cert.pem")),
        format!("{:?}: {}", tls.kind, chain(&err)),
    )
}

fn missing_client_files_are_named(daemon: &Daemon) -> Result<(), Failed> {
    let out = daemon.run_scenario(Some(&daemon.ca_only))?;
    let stderr = text(&out.stderr);
    check(out.status.code() == Some(3), describe(&out))?;
    let expected = format!(
        "cannot use the TLS file `{}/cert.pem` (from `DOCKER_CERT_PATH={}`)",
        daemon.ca_only.display(),
        daemon.ca_only.display()
    );
    check(
        stderr.contains(&expected),
        format!("expected {expected:?} in:\n{stderr}"),
    )
}

fn plain_http_to_the_tls_port_says_to_turn_tls_on(daemon: &Daemon) -> Result<(), Failed> {
    let out = daemon.run_scenario(None)?;
    let stderr = text(&out.stderr);
    check(out.status.code() == Some(3), describe(&out))?;
    let expected = format!(
        "the daemon at `{}` expects TLS: set `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH`",
        daemon.url
    );
    check(
        stderr.contains(&expected),
        format!("expected {expected:?} in:\n{stderr}"),
    )
}
